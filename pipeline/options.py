"""Options every subcommand shares, so ``--data-dir`` / ``--output-dir`` look the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click

from shared.config import PathSettings, get_paths

F = TypeVar("F", bound=Callable[..., Any])


def path_options(func: F) -> F:
    """Add ``--data-dir`` and ``--output-dir`` (defaults: HM_DATA_DIR / HM_OUTPUT_DIR)."""
    func = click.option(
        "--output-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="Where artifacts go (default: $HM_OUTPUT_DIR or output/).",
    )(func)
    func = click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="Folder with articles.csv, customers.csv, transactions_train.csv (default: $HM_DATA_DIR or data/).",
    )(func)
    return func


def paths_from(data_dir: Path | None, output_dir: Path | None) -> PathSettings:
    return get_paths(data_dir, output_dir)


def parse_cutoff(value: str | None) -> date | None | str:
    """``--cutoff``: a date (first day held out), 'none' (train on everything) or default."""
    if value is None:
        return "default"
    if value.lower() == "none":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM-DD or 'none', got {value!r}") from exc


def cutoff_option(func: F) -> F:
    return click.option(
        "--cutoff",
        default=None,
        help="First day held out (YYYY-MM-DD). Default: the last 7 days are held out. "
        "'none' trains on everything (production).",
    )(func)
