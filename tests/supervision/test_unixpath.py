"""A server's socket path: claimed before its bind (a stale socket replaced, a live one or a
file refused), removed at close only while it is still the one it bound."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from supervision import bound_inode, claim_socket_path, remove_if_bound


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


def test_claim_removes_a_stale_socket_and_refuses_a_live_one_or_a_file(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    claim_socket_path(path)  # nothing there: nothing to do
    live = _listen(path)
    try:
        with pytest.raises(OSError, match="already listens") as info:
            claim_socket_path(path)
        assert info.value.errno == errno.EADDRINUSE and path.exists()
    finally:
        live.close()  # the file stays, nobody answers: stale
    claim_socket_path(path)
    assert not path.exists()
    path.write_text("not a socket")
    with pytest.raises(OSError, match="is not a socket") as info:
        claim_socket_path(path)
    assert info.value.errno == errno.EEXIST and path.read_text() == "not a socket"
