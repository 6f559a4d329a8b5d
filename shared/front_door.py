"""The lazy front door each service package's ``__init__`` opens (PEP 562).

A service's ``__init__`` names its offline API (what the CLI and the evaluation may call) and the
module that defines each name; a name is imported on first use. So ``import services.ranker`` (as
the ranker's serving process does) loads no training module, and callers never import a
service's insides, which can then move freely.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps each public name to its module."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    return __getattr__
