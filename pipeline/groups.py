"""Command groups shared by several command modules (``train``, ``search``, ``evaluate``...)."""

from __future__ import annotations

import click


def get_group(cli: click.Group, name: str, help: str = "", invoke_without_command: bool = False) -> click.Group:
    """Return the sub-group ``name`` of ``cli``, creating it on first use.

    Several modules in ``pipeline/commands/`` add commands to the same group (e.g.
    ``hmrec train candidate`` and ``hmrec train ranker``); whichever registers first
    creates it.
    """
    existing = cli.commands.get(name)
    if isinstance(existing, click.Group):
        return existing
    group = click.Group(name=name, help=help, invoke_without_command=invoke_without_command)
    cli.add_command(group)
    return group
