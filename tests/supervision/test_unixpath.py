"""A server's socket path is removed at close only while it is still the one it bound."""

from __future__ import annotations

import socket
from pathlib import Path

from supervision import bound_inode, remove_if_bound


def _listen(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(1)
    return sock


def test_only_the_socket_bound_here_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    first = _listen(path)
    mine = bound_inode(path)
    path.unlink()  # a later server takes the path over
    second = _listen(path)
    try:
        remove_if_bound(path, mine)
        assert path.exists()  # the later server's file stays
        remove_if_bound(path, bound_inode(path))
        assert not path.exists()
        remove_if_bound(path, mine)  # gone already: nothing to do, no error
        remove_if_bound(path, None)
    finally:
        first.close()
        second.close()
