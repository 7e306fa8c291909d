"""Reading a dm-agent subtree from xenstore as nested dicts (the one piece of I/O shared by
the toolstack side and the simulated agents of the dm-agent protocol, ``_dmagent``).

:func:`read_subtree` lists ``path`` down to ``depth`` levels; a node with children becomes a
dict, a leaf its value (``""`` when empty). A directory that vanished or that the reader may
not list is empty (the protocol's nodes come and go while one looks); other xenstore errors
propagate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xen.xenstore import XenstoreError

if TYPE_CHECKING:
    from xen.xenstore import XenstoreClient

__all__ = ["list_dir", "read_subtree"]


def list_dir(xs: XenstoreClient, path: str) -> list[str]:
    """The children of ``path``; none when it vanished or may not be listed."""
    try:
        return list(xs.directory(path))
    except XenstoreError as exc:
        if exc.name in ("ENOENT", "EACCES"):
            return []
        raise


def read_subtree(xs: XenstoreClient, path: str, depth: int,
                 names: list[str] | None = None) -> dict[str, object]:
    """``path``'s subtree, ``depth`` levels of directories (see the module docstring);
    ``names``: ``path``'s children when the caller has just listed them."""
    out: dict[str, object] = {}
    for name in list_dir(xs, path) if names is None else names:
        child = f"{path}/{name}"
        kids = list_dir(xs, child) if depth > 1 else []
        out[name] = read_subtree(xs, child, depth - 1) if kids else (xs.try_read(child) or "")
    return out
