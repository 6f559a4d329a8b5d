"""Typed loaders for the three H&M files, with validation and a parquet cache.

Reading goes through ``pyarrow.csv`` (multi-threaded, C++ parsing) so that 31.8M
transactions load in well under a minute; validation uses Arrow compute kernels on the
whole column at once. Only when something is wrong do we take a slow path to find the
first offending row, so the error can name file, column and line.

What real copies look like and we tolerate: an extra unnamed index column (files re-saved
by pandas), article ids that lost their leading zero, empty optional fields.
What we refuse: a missing column, an unparsable date or number, a negative price, an
unknown sales channel, malformed ids, transactions whose articles are not in the catalogue
(beyond ``UNKNOWN_ARTICLE_TOLERANCE``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shared.atomic import atomic_path, file_stamp, read_marker, write_marker
from shared.data.schema import (
    ARTICLE_COLUMNS,
    ARTICLE_ID_LEN,
    ARTICLE_INT_COLUMNS,
    ARTICLE_OPTIONAL_COLUMNS,
    ARTICLES_FILE,
    CUSTOMER_COLUMNS,
    CUSTOMERS_FILE,
    SALES_CHANNELS,
    TRANSACTION_COLUMNS,
    TRANSACTIONS_FILE,
    UNKNOWN_ARTICLE_TOLERANCE,
)

ARTICLE_ID_RE = r"^[0-9]{1,10}$"
CUSTOMER_ID_RE = r"^[0-9a-f]{64}$"
CACHE_FORMAT_VERSION = 1


class DataValidationError(ValueError):
    """A data file is broken; the message names the file, the column and an example row."""

    def __init__(self, file: Path | str, column: str | None, line: int | None, problem: str, value: object = None):
        self.file, self.column, self.line, self.problem, self.value = str(file), column, line, problem, value
        where = [str(file)]
        if column is not None:
            where.append(f"column '{column}'")
        if line is not None:
            where.append(f"line {line}")
        detail = f" (value {value!r})" if value is not None else ""
        super().__init__(f"{', '.join(where)}: {problem}{detail}")


@dataclass
class Dataset:
    articles: pd.DataFrame
    customers: pd.DataFrame
    transactions: pd.DataFrame


# --- reading -------------------------------------------------------------------------------


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        try:
            return next(csv.reader(fh))
        except StopIteration:
            raise DataValidationError(path, None, 1, "file is empty (no header row)") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            _raise_structural(path, exc)
            raise DataValidationError(path, None, 1, f"the header row does not parse: {exc}") from exc


def _locate_structural(path: Path) -> DataValidationError | None:
    """The first line that is not UTF-8, or whose row has a different number of fields than the
    header (the two things Arrow's CSV reader refuses without saying where). Line numbers are
    physical lines, as an editor shows them."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return DataValidationError(
                    path,
                    None,
                    number,
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at character {exc.start + 1} of the line)",
                )
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            return DataValidationError(path, None, 1, "file is empty (no header row)")
        except csv.Error as exc:
            return DataValidationError(path, None, 1, f"the header row does not parse: {exc}")
        start = 1
        try:
            for row in reader:
                if row and len(row) != len(header):
                    return DataValidationError(
                        path, None, start + 1, f"row has {len(row)} fields, the header has {len(header)}"
                    )
                start = reader.line_num
        except csv.Error as exc:  # e.g. a NUL byte, an unterminated quote at end of file
            return DataValidationError(path, None, reader.line_num, f"row does not parse as CSV: {exc}")
    return None


def _raise_structural(path: Path, exc: BaseException) -> None:
    problem = _locate_structural(path)
    if problem is not None:
        raise problem from exc


def _read_csv(path: Path, **kwargs) -> pa.Table:  # type: ignore[no-untyped-def]
    """``pyarrow.csv.read_csv``; a file it cannot parse is a DataValidationError naming the line
    (found by a slower pass only when it fails)."""
    try:
        return pacsv.read_csv(path, **kwargs)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        _raise_structural(path, exc)
        raise


def _is_index_column(name: str) -> bool:
    # pandas writes its index as an unnamed first column ("" in the header, "Unnamed: 0" on re-read).
    return name == "" or name.startswith("Unnamed:")


def _check_columns(path: Path, header: list[str], required: tuple[str, ...]) -> list[str]:
    present = [c for c in header if not _is_index_column(c)]
    for col in required:
        if col not in present:
            raise DataValidationError(path, col, 1, f"required column is missing (header has: {', '.join(present)})")
    return present


def _line_of(index: int) -> int:
    """Row index (0-based, data rows) -> line number in the file (the header is line 1)."""
    return int(index) + 2


def _read_strings(path: Path, columns: tuple[str, ...]) -> pa.Table:
    """Read the wanted columns as strings (the slow path, also used to find bad rows)."""
    header = _header(path)
    _check_columns(path, header, columns)
    opts = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in columns},
        include_columns=list(columns),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        return _read_csv(path, convert_options=opts)
    except pa.ArrowInvalid as exc:
        raise DataValidationError(path, None, None, f"does not parse as CSV: {exc}") from exc


def _first_bad(path: Path, column: str, bad_mask: pa.Array | np.ndarray, values: pa.Array, problem: str) -> None:
    """Raise for the first row where ``bad_mask`` is true, if any."""
    # Null comparisons (an optional empty value) are not violations; callers test nulls explicitly.
    mask = np.asarray(pc.fill_null(bad_mask, False) if isinstance(bad_mask, pa.Array | pa.ChunkedArray) else bad_mask)
    if mask.any():
        i = int(np.flatnonzero(mask)[0])
        raise DataValidationError(
            path, column, _line_of(i), problem, values[i].as_py() if hasattr(values[i], "as_py") else values[i]
        )


def _parse_numeric(path: Path, column: str, values: pa.ChunkedArray, kind: pa.DataType, optional: bool) -> pa.Array:
    """Cast string column to a number; empty means null when ``optional``, else it is refused."""
    stripped = pc.utf8_trim_whitespace(values)
    empty = pc.equal(stripped, "")
    if not optional:
        _first_bad(path, column, empty, values, "value is missing")
    as_null = pc.if_else(empty, pa.scalar(None, pa.string()), stripped)
    try:
        return pc.cast(as_null, kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Find the culprit with pandas, which can coerce and tell us where.
        series = pd.to_numeric(pd.Series(as_null.to_pandas()), errors="coerce")
        bad = series.isna().to_numpy() & ~pc.is_null(as_null).to_numpy(zero_copy_only=False)
        _first_bad(path, column, bad, values, f"not a number (expected {kind})")
        raise


def _normalise_article_ids(path: Path, column: str, values: pa.ChunkedArray) -> pa.ChunkedArray:
    stripped = pc.utf8_trim_whitespace(values)
    ok = pc.match_substring_regex(stripped, ARTICLE_ID_RE)
    _first_bad(path, column, pc.invert(ok), values, "article_id must be 1 to 10 digits")
    # Real copies re-saved by tools that parsed ids as numbers lost their leading zero.
    return pc.utf8_lpad(stripped, ARTICLE_ID_LEN, "0")


def _check_customer_ids(path: Path, column: str, values: pa.ChunkedArray) -> pa.ChunkedArray:
    stripped = pc.utf8_trim_whitespace(values)
    ok = pc.match_substring_regex(stripped, CUSTOMER_ID_RE)
    _first_bad(path, column, pc.invert(ok), values, "customer_id must be 64 lowercase hex characters")
    return stripped


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas()


# --- articles ------------------------------------------------------------------------------


def load_articles(path: Path | str) -> pd.DataFrame:
    """Read ``articles.csv`` (or its parquet cache): one row per article, ids zero-padded."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    raw = _read_strings(path, ARTICLE_COLUMNS)
    cols: dict[str, pa.Array] = {}
    for col in ARTICLE_COLUMNS:
        values = raw.column(col)
        if col == "article_id":
            cols[col] = _normalise_article_ids(path, col, values)
        elif col in ARTICLE_INT_COLUMNS:
            cols[col] = _parse_numeric(path, col, values, pa.int32(), optional=False)
        else:
            if col not in ARTICLE_OPTIONAL_COLUMNS:
                _first_bad(path, col, pc.equal(pc.utf8_trim_whitespace(values), ""), values, "value is missing")
            cols[col] = values
    table = pa.table(cols)
    dup = pc.greater(pc.value_counts(table.column("article_id")).field("counts"), 1)
    if pc.any(dup).as_py():
        counts = pc.value_counts(table.column("article_id"))
        first_dup = counts.field("values")[int(np.flatnonzero(np.asarray(dup))[0])].as_py()
        i = int(np.flatnonzero(np.asarray(pc.equal(table.column("article_id"), first_dup)))[1])
        raise DataValidationError(path, "article_id", _line_of(i), "duplicate article_id", first_dup)
    return _to_pandas(table)


# --- customers -----------------------------------------------------------------------------


def load_customers(path: Path | str) -> pd.DataFrame:
    """Read ``customers.csv``: FN/Active 1.0 or 0.0, age NaN when unknown, missing text ''."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    raw = _read_strings(path, CUSTOMER_COLUMNS)
    cols: dict[str, pa.Array] = {"customer_id": _check_customer_ids(path, "customer_id", raw.column("customer_id"))}
    for flag in ("FN", "Active"):
        # The public file has 1.0 or empty: empty means the customer did not opt in.
        parsed = _parse_numeric(path, flag, raw.column(flag), pa.float32(), optional=True)
        cols[flag] = pc.fill_null(parsed, 0.0)
    age = _parse_numeric(path, "age", raw.column("age"), pa.float32(), optional=True)
    _first_bad(path, "age", pc.or_(pc.less(age, 0), pc.greater(age, 120)), raw.column("age"), "age outside 0..120")
    for col in ("club_member_status", "fashion_news_frequency", "postal_code"):
        cols[col] = pc.utf8_trim_whitespace(raw.column(col))
    cols["age"] = age
    return _to_pandas(pa.table({c: cols[c] for c in CUSTOMER_COLUMNS}))


# --- transactions --------------------------------------------------------------------------


def load_transactions(
    path: Path | str, article_ids: pd.Series | pd.Index | None = None, tolerance: float = UNKNOWN_ARTICLE_TOLERANCE
) -> pd.DataFrame:
    """Read ``transactions_train.csv``; with ``article_ids``, refuse unknown articles beyond ``tolerance``."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    header = _header(path)
    _check_columns(path, header, TRANSACTION_COLUMNS)
    types = {
        "t_dat": pa.string(),
        "customer_id": pa.string(),
        "article_id": pa.string(),
        "price": pa.float64(),
        "sales_channel_id": pa.int64(),
    }
    opts = pacsv.ConvertOptions(
        column_types=types, include_columns=list(TRANSACTION_COLUMNS), strings_can_be_null=False
    )
    try:
        raw = _read_csv(path, convert_options=opts, read_options=pacsv.ReadOptions(block_size=1 << 24))
    except pa.ArrowInvalid as exc:
        # Not a ragged row or bad bytes (_read_csv names those): a number did not parse. Redo
        # as strings to name the row.
        raw = _read_strings(path, TRANSACTION_COLUMNS)
        for col, kind in (("price", pa.float64()), ("sales_channel_id", pa.int64())):
            _parse_numeric(path, col, raw.column(col), kind, optional=False)
        raise DataValidationError(path, None, None, f"does not parse as CSV: {exc}") from exc
    if raw.num_rows == 0:
        return _to_pandas(_empty_transactions())

    dates = raw.column("t_dat")
    parsed = pc.strptime(pc.utf8_trim_whitespace(dates), format="%Y-%m-%d", unit="s", error_is_null=True)
    _first_bad(path, "t_dat", pc.is_null(parsed), dates, "not a date (expected YYYY-MM-DD)")

    price = raw.column("price")
    _first_bad(path, "price", pc.is_null(price), price, "price is missing")
    _first_bad(path, "price", pc.less(price, 0), price, "price is negative")
    channel = raw.column("sales_channel_id")
    _first_bad(
        path,
        "sales_channel_id",
        pc.invert(pc.is_in(channel, pa.array(sorted(SALES_CHANNELS)))),
        channel,
        f"sales_channel_id must be one of {sorted(SALES_CHANNELS)}",
    )

    aids = _normalise_article_ids(path, "article_id", raw.column("article_id"))
    cids = _check_customer_ids(path, "customer_id", raw.column("customer_id"))
    if article_ids is not None:
        known = pc.is_in(aids, pa.array(pd.Index(article_ids).astype(str).unique().tolist(), pa.string()))
        unknown = pc.invert(known)
        share = pc.sum(unknown).as_py() / raw.num_rows
        if share > tolerance:
            i = int(np.flatnonzero(np.asarray(unknown))[0])
            raise DataValidationError(
                path,
                "article_id",
                _line_of(i),
                f"{share:.2%} of transactions name articles absent from articles.csv (tolerance {tolerance:.2%})",
                aids[i].as_py(),
            )
    table = pa.table(
        {
            "t_dat": pc.cast(parsed, pa.timestamp("ns")),
            "customer_id": cids,
            "article_id": aids,
            "price": pc.cast(price, pa.float32()),
            "sales_channel_id": pc.cast(channel, pa.int8()),
        }
    )
    return _to_pandas(table)


def _empty_transactions() -> pa.Table:
    return pa.table(
        {
            "t_dat": pa.array([], pa.timestamp("ns")),
            "customer_id": pa.array([], pa.string()),
            "article_id": pa.array([], pa.string()),
            "price": pa.array([], pa.float32()),
            "sales_channel_id": pa.array([], pa.int8()),
        }
    )


# --- dataset + parquet cache ---------------------------------------------------------------


def _source_stamp(path: Path) -> dict[str, object]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "format": CACHE_FORMAT_VERSION}


def _cached(path: Path, cache_dir: Path | None, loader, **kwargs) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Load ``path`` through a parquet copy in ``cache_dir``, refreshed when the CSV changes."""
    if cache_dir is None:
        return loader(path, **kwargs)
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / (path.stem + ".parquet")
    # The completion marker, written last: the CSV it was made from and the parquet file it
    # vouches for. A missing or stale marker, or a parquet file it does not describe (another
    # run replaced it, a copy was interrupted), means the cache is rebuilt, never trusted.
    marker_file = cache_dir / (path.stem + ".source.json")
    stamp = _source_stamp(path)
    marker = read_marker(marker_file)
    if (
        marker is not None
        and target.exists()
        and marker.get("source") == stamp
        and marker.get("parquet") == file_stamp(target)
    ):
        return pd.read_parquet(target)
    df = loader(path, **kwargs)
    # A unique temporary name per write: two runs at once each rename a whole file into place.
    with atomic_path(target) as tmp:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp, compression="zstd")
    write_marker(marker_file, {"source": stamp, "parquet": file_stamp(target)})
    return df


def load_dataset(data_dir: Path | str, cache_dir: Path | str | None = None) -> Dataset:
    """All three tables from ``data_dir`` (CSV), through a parquet cache in ``cache_dir`` if given.

    A folder without ``customers.csv`` gets an empty customers table (transactions may still
    name customers: they are treated as customers with unknown attributes).
    """
    data_dir = Path(data_dir)
    cache = Path(cache_dir) if cache_dir is not None else None
    articles_path = data_dir / ARTICLES_FILE
    if not articles_path.exists():
        raise FileNotFoundError(
            f"{articles_path} not found: a data folder needs articles.csv, customers.csv and "
            f"transactions_train.csv (try `hmrec data synth --scale small --out {data_dir}`)"
        )
    articles = _cached(articles_path, cache, load_articles)
    customers_path = data_dir / CUSTOMERS_FILE
    customers = (
        _cached(customers_path, cache, load_customers)
        if customers_path.exists()
        else pd.DataFrame(
            {c: pd.Series(dtype="float32" if c in ("FN", "Active", "age") else "str") for c in CUSTOMER_COLUMNS}
        )
    )
    tx_path = data_dir / TRANSACTIONS_FILE
    transactions = (
        _cached(tx_path, cache, load_transactions, article_ids=articles["article_id"])
        if tx_path.exists()
        else _to_pandas(_empty_transactions())
    )
    return Dataset(articles=articles, customers=customers, transactions=transactions)
