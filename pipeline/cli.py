"""``hmrec``: the one command-line entry point that composes the offline steps.

Each module in ``pipeline/commands/`` contributes its subcommands through a
``register(cli)`` function, so adding a step never means editing this file.
"""

from __future__ import annotations

import importlib
import pkgutil

import click

import shared.config  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TF)
from pipeline import commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """H&M two-stage recommender: data, training, inference, search, evaluation."""


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(cli)


_register_all()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
