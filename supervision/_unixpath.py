"""The path of a listening unix socket a server owns, and its removal at close.

A server binds a path, and a later server (its own replacement after a crash or a kill, say) may
bind the same path before the first one has closed. The first one's close must then leave the
path alone: it removes it only while the file there is still the one it bound, as recorded by
:func:`bound_inode` right after its bind.
"""

from __future__ import annotations

import os

__all__ = ["bound_inode", "remove_if_bound"]


def bound_inode(path: str | os.PathLike[str]) -> int:
    """The inode of the socket file just bound at ``path`` (for :func:`remove_if_bound`)."""
    return os.stat(path).st_ino


def remove_if_bound(path: str | os.PathLike[str], inode: int | None) -> None:
    """Remove ``path`` if it is still the file whose inode is ``inode``; else (another file,
    none, or no inode recorded) leave it. Never raises: it runs when a server closes."""
    try:
        if inode is not None and os.stat(path).st_ino == inode:
            os.unlink(path)
    except OSError:  # gone already, or not ours to remove
        pass
