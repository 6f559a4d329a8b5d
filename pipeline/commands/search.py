"""``hmrec index`` (search indexes), ``hmrec search text|image`` and ``hmrec evaluate search``.

hmrec index                      # both: text indexes (servable at once, photos "pending"), then photos
hmrec index --text-only          # everything but the photo embeddings (manifest image_index.status = pending)
hmrec index text | images
hmrec search text "floral summer dress" --k 12 --filter colour_group_name=Black --mode hybrid
hmrec search image path/to/photo.jpg --k 12
hmrec evaluate search --data-dir REAL --json output/search_eval.json
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pipeline.options import F, path_options, paths_from
from shared.config import PathSettings

FILTER_HELP = (
    "Filter as key=value, repeatable; keys: the catalogue columns of shared.contract.schemas.FILTER_COLUMNS, "
    "price_min, price_max. Repeating a column means any of the values."
)


def _load(paths: PathSettings) -> Any:
    from shared.data import DataValidationError, load_dataset

    try:
        return load_dataset(paths.data_dir, paths.cache_dir)
    except (DataValidationError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc


def _index_text(paths: PathSettings) -> dict[str, Any]:
    """The text indexes and a manifest that serves them with photos pending (or absent)."""
    from services.search import build_text_index, image_index_pending, write_manifest

    data = _load(paths)
    report = build_text_index(data.articles, data.transactions, paths.search_dir)
    report.update(image_index_pending(data.articles, paths.data_dir / "images", paths.search_dir))
    write_manifest(paths.search_dir, report)
    click.echo(
        f"text index: {report['articles']} articles ({report['priced_articles']} with a price), "
        f"{report['customers_with_history']} customer histories -> {paths.search_dir}; "
        f"text embeddings: {report['text_documents_embedded']} documents embedded, "
        f"{report['text_documents_reused']} reused, {report['text_embedding_seconds']} s "
        f"({report['text_embedding_cpu_seconds']} CPU s)"
    )
    return report


def _index_images(paths: PathSettings, batch_size: int) -> dict[str, Any]:
    from services.search import build_image_index, write_manifest

    data = _load(paths)
    images_dir = paths.data_dir / "images"
    report = build_image_index(data.articles, images_dir, paths.search_dir, batch_size=batch_size)
    write_manifest(paths.search_dir, report)
    per_k = report["embed_seconds_per_1000"]
    click.echo(
        f"image index: {report['images']} photos ({report['images_embedded']} embedded, "
        f"{report['images_reused']} reused), {report['images_skipped_no_photo']} articles without a "
        f"photo skipped; {per_k if per_k is not None else '-'} s per 1,000 photos embedded "
        f"({report['embed_cpu_seconds_per_1000'] or '-'} CPU s)"
    )
    return report


def _parse_filters(pairs: tuple[str, ...]) -> Any:
    from pydantic import ValidationError

    from shared.contract.schemas import FILTER_COLUMNS, SearchFilters

    fields: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--filter")
        if key in ("price_min", "price_max"):
            fields[key] = value
        elif key in FILTER_COLUMNS:
            fields.setdefault(key, []).append(value)
        else:
            raise click.BadParameter(
                f"unknown filter {key!r}; use one of {', '.join(FILTER_COLUMNS)}, price_min, price_max",
                param_hint="--filter",
            )
    try:
        return SearchFilters.model_validate(fields)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--filter") from exc


def _open_index(paths: PathSettings, with_images: bool) -> Any:
    from services.search import SearchIndex, SearchSettings

    settings = SearchSettings(index_dir=paths.search_dir, models_dir=paths.models_dir)
    try:
        return SearchIndex.load(paths.search_dir, settings, with_images=with_images)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc


def _write_answer(answer: Any, target: Path, query: dict[str, Any], index: Any) -> None:
    rows = index.catalogue.frame.set_index("article_id")
    click.echo(f"{'rank':>4}  {'article_id':<10}  {'score':>8}  name / type / colour")
    for rank, r in enumerate(answer.results, start=1):
        a = rows.loc[r.article_id]
        click.echo(
            f"{rank:>4}  {r.article_id:<10}  {r.score:8.4f}  {a['prod_name']} / "
            f"{a['product_type_name']} / {a['colour_group_name']}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"query": query, **answer.model_dump()}, indent=2))
    click.echo(f"wrote {target}")


# --- hmrec index [text | images] ---------------------------------------------------------------


# `hmrec index` alone builds everything (what `hmrec run` and the e2e stack call).
@click.group("index", invoke_without_command=True, help="Build the search indexes under <output-dir>/search/.")
@path_options
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True)
@click.option(
    "--text-only",
    is_flag=True,
    help="Everything but the photo embeddings: a servable index whose manifest says image_index.status "
    "= pending (image search answers 503 until a full `hmrec index` completes).",
)
@click.pass_context
def index_group(
    ctx: click.Context, data_dir: Path | None, output_dir: Path | None, batch_size: int, text_only: bool
) -> None:
    """Without a subcommand: text indexes (written first, servable at once with photos pending),
    then photo embeddings (when the data has images/), then a manifest with photos complete."""
    if ctx.invoked_subcommand is not None:
        return
    paths = paths_from(data_dir, output_dir)
    _index_text(paths)
    if text_only:
        click.echo("--text-only: photos pending; run `hmrec index` (or `hmrec index images`) to add them")
    elif (paths.data_dir / "images").is_dir():
        _index_images(paths, batch_size)
    else:
        click.echo(f"no {paths.data_dir / 'images'}: image search stays off")


@click.command("text")
@path_options
def index_text_command(data_dir: Path | None, output_dir: Path | None) -> None:
    """Catalogue + prices, TF-IDF, sentence embeddings, customer histories."""
    _index_text(paths_from(data_dir, output_dir))


@click.command("images")
@path_options
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True)
def index_images_command(data_dir: Path | None, output_dir: Path | None, batch_size: int) -> None:
    """Embed every article photo (resumable; GPU when torch sees one) -> image_embeddings.parquet."""
    _index_images(paths_from(data_dir, output_dir), batch_size)


# --- hmrec search text | image ------------------------------------------------------------------


def _query_options(modes: list[str]) -> Callable[[F], F]:
    """The options a text and a photo query share: paths, k, customer, filters, and its modes (the first is the default)."""

    def decorate(func: F) -> F:
        func = click.option("--mode", type=click.Choice(modes), default=modes[0], show_default=True)(func)
        func = click.option("--filter", "filters", multiple=True, help=FILTER_HELP)(func)
        func = click.option("--customer-id", default=None, help="Personalise for this customer (64 hex characters).")(
            func
        )
        func = click.option("--k", type=click.IntRange(1, 100), default=12, show_default=True)(func)
        return path_options(func)

    return decorate


@click.command("text")
@click.argument("query")
@_query_options(["hybrid", "tfidf", "semantic"])
def search_text_command(
    query: str,
    data_dir: Path | None,
    output_dir: Path | None,
    k: int,
    customer_id: str | None,
    filters: tuple[str, ...],
    mode: str,
) -> None:
    """Text query -> top k articles, also written to <output-dir>/final_recs_text_query.json."""
    from pydantic import ValidationError

    from shared.contract.schemas import TextSearchRequest

    try:
        request = TextSearchRequest(
            query=query, k=k, filters=_parse_filters(filters), customer_id=customer_id, mode=mode
        )  # type: ignore[arg-type]
    except ValidationError as exc:
        raise click.BadParameter(str(exc)) from exc
    paths = paths_from(data_dir, output_dir)
    index = _open_index(paths, with_images=False)
    answer = index.text_search(request.query, request.k, request.filters, request.customer_id, request.mode)
    _write_answer(answer, paths.output_dir / "final_recs_text_query.json", request.model_dump(), index)


@click.command("image")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_query_options(["default", "embedder", "colour"])
def search_image_command(
    path: Path,
    data_dir: Path | None,
    output_dir: Path | None,
    k: int,
    customer_id: str | None,
    filters: tuple[str, ...],
    mode: str,
) -> None:
    """Photo query -> top k visually similar articles, also written to <output-dir>/final_recs_img_query.json."""
    import hashlib
    import re

    from services.search import UploadError, configure_pillow, decode_upload
    from shared.contract.schemas import CUSTOMER_ID_PATTERN

    if customer_id is not None and not re.fullmatch(CUSTOMER_ID_PATTERN, customer_id):
        raise click.BadParameter("a customer id is 64 lowercase hex characters", param_hint="--customer-id")
    parsed = _parse_filters(filters)
    paths = paths_from(data_dir, output_dir)
    index = _open_index(paths, with_images=True)
    data = path.read_bytes()
    configure_pillow(index.settings.max_image_pixels)
    try:
        image = decode_upload(data, index.settings.max_image_pixels)
    except UploadError as exc:
        raise click.ClickException(f"{path}: {exc.message}") from exc
    try:
        answer = index.image_search(image, k, parsed, customer_id, mode, hashlib.sha256(data).hexdigest())
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc
    query = {
        "image": str(path),
        "k": k,
        "filters": parsed.model_dump(exclude_none=True),
        "customer_id": customer_id,
        "mode": mode,
    }
    _write_answer(answer, paths.output_dir / "final_recs_img_query.json", query, index)


# --- hmrec evaluate search ----------------------------------------------------------------------


@click.command("search")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Any folder with articles.csv and images/<3 digits>/<id>.jpg.",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write the metrics here.")
@click.option(
    "--limit",
    type=click.IntRange(11, None),
    default=None,
    help="Evaluate on the first N articles only (quick checks).",
)
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where photo embeddings are kept between runs (default: <output-dir>/search_eval/<data folder name>).",
)
@click.option("--output-dir", type=click.Path(path_type=Path), default=None, help="Default: $HM_OUTPUT_DIR or output/.")
def evaluate_search_command(
    data_dir: Path, json_path: Path | None, limit: int | None, work_dir: Path | None, output_dir: Path | None
) -> None:
    """Image p@10 (same product group / colour group, leave-one-out) and text p@12."""
    from services.search import evaluate_search_quality, format_report

    work = work_dir or paths_from(None, output_dir).output_dir / "search_eval" / data_dir.resolve().name
    try:
        result = evaluate_search_quality(data_dir, work_dir=work, limit=limit)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_report(result))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2))
        click.echo(f"wrote {json_path}")
