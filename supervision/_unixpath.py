"""The path of a listening unix socket a server owns: claimed before its bind, removed at close.

:func:`claim_socket_path` makes a path free for a new listening socket: a stale socket file
(nobody answers there) is removed, a live one is refused (``EADDRINUSE``), anything that is not
a socket is refused (``EEXIST``) and never deleted.

A server binds a path, and a later server (its own replacement after a crash or a kill, say) may
bind the same path before the first one has closed. The first one's close must then leave the
path alone: it removes it only while the file there is still the one it bound, as recorded by
:func:`bound_inode` right after its bind.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

__all__ = ["bound_inode", "claim_socket_path", "remove_if_bound"]

_PROBE_TIMEOUT = 1.0  # a live server with a full backlog may not accept the probe at once


def claim_socket_path(path: str | os.PathLike[str]) -> None:
    """Make ``path`` free for ``bind`` (see the module docstring); `OSError` with ``EEXIST``
    or ``EADDRINUSE`` (the message names the path) when it is not ours to take."""
    where = os.fspath(path)
    if not os.path.lexists(where):
        return
    if not stat.S_ISSOCK(os.lstat(where).st_mode):
        raise OSError(errno.EEXIST, f"{where} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(_PROBE_TIMEOUT)
        probe.connect(where)
    except OSError:
        os.unlink(where)  # a stale socket file: nobody answers there
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"a server already listens on {where}")


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
