"""Lazy package exports: a package ``__init__`` names what it exports and where it lives, and
each name is imported on first use.

Command-line clients (``xec``, ``db-cmd``, ``oxt-shell``, ``xenops``) import a few light modules
from packages whose other modules pull in pykka and threads; a lazy ``__init__`` keeps their
start-up short. Usage in a package ``__init__``::

    __getattr__, __dir__ = lazy_exports(__name__, {"Actor": "actors._actor", ...})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, sources: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` for ``package`` exporting ``sources``."""

    def __getattr__(name: str) -> Any:
        try:
            module = sources[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(sources)

    return __getattr__, __dir__
