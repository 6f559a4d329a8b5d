"""Data writes that cannot corrupt, and CSV parse failures that name the file and the line."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pandas as pd
import pytest

from shared.atomic import atomic_path, read_marker, temp_path_for, write_marker
from shared.data import (
    DataValidationError,
    load_articles,
    load_customers,
    load_dataset,
    load_transactions,
)

CID = "a" * 64
TX_HEADER = "t_dat,customer_id,article_id,price,sales_channel_id\n"


def _tx(tmp_path: Path, body: bytes) -> Path:
    p = tmp_path / "transactions_train.csv"
    p.write_bytes(TX_HEADER.encode() + body)
    return p


def _rows(n: int) -> bytes:
    return "".join(f"2020-09-{1 + i % 20:02d},{CID},{108775015 + i},0.01,2\n" for i in range(n)).encode()


# --- CSV parse failures: the file and the line ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        (_rows(5) + f"2020-09-06,{CID},108775015,0.01,2,EXTRA\n".encode() + _rows(3), 7, "6 fields, the header has 5"),
        (_rows(5) + f"2020-09-06,{CID},108775015\n".encode(), 7, "3 fields, the header has 5"),
        (
            _rows(2) + f"2020-09-06,{CID},10877\xe95015,0.01,2\n".encode("latin-1") + _rows(2),
            4,
            "not valid UTF-8 (byte 0xe9",
        ),
        (_rows(3) + b"2020-09-06,\xff\xfe,1,0.01,2\n", 5, "not valid UTF-8 (byte 0xff"),
    ],
)
def test_transactions_parse_failures_name_file_and_line(tmp_path: Path, body: bytes, line: int, words: str) -> None:
    p = _tx(tmp_path, body)
    with pytest.raises(DataValidationError) as info:
        load_transactions(p)
    assert info.value.line == line and info.value.file == str(p), str(info.value)
    assert words in str(info.value) and f"line {line}" in str(info.value)


def test_ragged_row_after_a_quoted_multiline_field_counts_physical_lines(tmp_path: Path) -> None:
    p = tmp_path / "customers.csv"
    header = "customer_id,FN,Active,club_member_status,fashion_news_frequency,age,postal_code\n"
    p.write_text(header + f'{CID},1.0,1.0,ACTIVE,NONE,30,"two\nlines"\n' + f"{CID},1.0,1.0,ACTIVE,NONE,30\n")
    with pytest.raises(DataValidationError) as info:
        load_customers(p)
    assert info.value.line == 4 and "6 fields, the header has 7" in str(info.value)


def test_non_utf8_header_and_articles_name_the_line(tmp_path: Path) -> None:
    p = tmp_path / "articles.csv"
    p.write_bytes(b"article_id,prod_name\xff\n")
    with pytest.raises(DataValidationError, match=r"articles.csv, line 1: not valid UTF-8"):
        load_articles(p)


def test_a_nul_byte_is_named(tmp_path: Path) -> None:
    p = _tx(tmp_path, _rows(2) + b"2020-09-06,\x00" + CID.encode() + b",1,0.01,2\n")
    with pytest.raises(DataValidationError) as info:
        load_transactions(p)
    assert info.value.file == str(p)  # whichever way Arrow or csv fails on it, never a raw traceback


# --- unique temporary names, atomic renames, markers ----------------------------------------------


def test_temporary_names_are_unique_per_write(tmp_path: Path) -> None:
    target = tmp_path / "x.parquet"
    names = {temp_path_for(target) for _ in range(100)}
    assert len(names) == 100 and all(n.parent == tmp_path and n.name.startswith(".x.parquet.") for n in names)


def test_atomic_path_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


def test_concurrent_writers_never_mix(tmp_path: Path) -> None:
    """Eight writers of distinct 1 MB payloads at once: the file is always one of them, whole."""
    target = tmp_path / "shared.bin"
    payloads = [bytes([i]) * (1 << 20) for i in range(8)]

    def write(data: bytes) -> None:
        for _ in range(5):
            with atomic_path(target, durable=False) as tmp, open(tmp, "wb") as fh:
                for k in range(0, len(data), 4096):
                    fh.write(data[k : k + 4096])

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in payloads
    assert os.listdir(tmp_path) == ["shared.bin"]


def test_marker_round_trip_and_garbage_is_not_complete(tmp_path: Path) -> None:
    write_marker(tmp_path / "m.json", {"a": 1})
    assert read_marker(tmp_path / "m.json") == {"a": 1}
    (tmp_path / "m.json").write_text('{"a": ')  # a marker cut short
    assert read_marker(tmp_path / "m.json") is None
    assert read_marker(tmp_path / "missing.json") is None


def test_parquet_cache_with_a_replaced_or_unmarked_file_is_rebuilt(hm_sample_dir: Path, tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "d"
    shutil.copytree(hm_sample_dir / "resaved_by_pandas", src)
    cache = tmp_path / "cache"
    first = load_dataset(src, cache)
    parquet = cache / "transactions_train.parquet"
    # Another run (or a crash mid-copy) left a different file under the cache's name.
    pd.DataFrame({"junk": [1]}).to_parquet(parquet)
    again = load_dataset(src, cache)
    pd.testing.assert_frame_equal(first.transactions, again.transactions)
    # No marker (an interrupted first write): rebuilt as well, and the marker is written.
    (cache / "transactions_train.source.json").unlink()
    pd.DataFrame({"junk": [1]}).to_parquet(parquet)
    pd.testing.assert_frame_equal(first.transactions, load_dataset(src, cache).transactions)
    marker = read_marker(cache / "transactions_train.source.json")
    assert marker is not None and marker["parquet"]["size"] == parquet.stat().st_size
    assert not [p for p in os.listdir(cache) if p.endswith(".tmp")]
