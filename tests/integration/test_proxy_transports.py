"""The proxy's transports: unix, tcp, and Argo through the simulated host's stand-in."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpc.proxy import (
    Accepted,
    ArgoSimError,
    TransportError,
    argo_connect,
    argo_listen_path,
    connect_outgoing,
    decode_argo_header,
    open_listener,
    parse_channel,
    parse_connect_line,
)
from xen.sim._argo import ArgoStandIn

pytestmark = pytest.mark.integration


def _accept(listener: object) -> Accepted:
    for _ in range(50):
        got = listener.accept(0.1)  # type: ignore[attr-defined]
        if got is not None:
            return got  # type: ignore[no-any-return]
    raise AssertionError("nothing accepted")


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[ArgoStandIn]:
    live = {0, 3, 7}
    s = ArgoStandIn(tmp_path / "argo", lambda domid: domid in live).start()
    try:
        yield s
    finally:
        s.close()


def test_unix_listener_gives_domain_0_and_replaces_a_stale_socket(tmp_path: Path) -> None:
    path = tmp_path / "in.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on
    listener = open_listener(parse_channel(f"unix:{path}", outgoing=False))
    try:
        client = connect_outgoing(parse_channel(f"unix:{path}", outgoing=True))
        got = _accept(listener)
        client.sendall(b"x")
        assert got.sock.recv(1) == b"x" and got.domid == 0
        got.sock.close()
        client.close()
        with pytest.raises(TransportError, match="already listens"):
            open_listener(parse_channel(f"unix:{path}", outgoing=False))
    finally:
        listener.close()
    assert not path.exists()


def test_a_regular_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("keep")
    with pytest.raises(TransportError, match="not a socket"):
        open_listener(parse_channel(f"unix:{path}", outgoing=False))
    assert path.read_text() == "keep"


def test_tcp_listens_on_loopback() -> None:
    listener = open_listener(parse_channel("tcp:127.0.0.1:0", outgoing=False))
    try:
        host, port = listener.address.split(":")
        assert host == "127.0.0.1"
        client = socket.create_connection((host, int(port)), timeout=2)
        got = _accept(listener)
        assert got.domid == 0 and got.peer.startswith("tcp 127.0.0.1")
        got.sock.close()
        client.close()
    finally:
        listener.close()


def test_argo_without_the_module_or_stand_in_names_what_is_missing() -> None:
    with pytest.raises(TransportError, match="Argo kernel module"):
        open_listener(parse_channel("argo:5555", outgoing=False))


def test_argo_stand_in_tells_the_listener_the_guests_domid(standin: ArgoStandIn) -> None:
    argo_dir = str(standin.directory)
    listener = open_listener(parse_channel("argo:5555", outgoing=False), argo_dir=argo_dir)
    try:
        assert listener.address == argo_listen_path(argo_dir, 0, 5555)
        guest = argo_connect(argo_dir, 7, 0, 5555)
        got = _accept(listener)
        assert got.domid == 7 and got.peer.startswith("argo dom7:")
        guest.sendall(b"\0AUTH")
        assert got.sock.recv(5) == b"\0AUTH"
        got.sock.sendall(b"OK")
        assert guest.recv(2) == b"OK"
        got.sock.close()
        guest.close()
    finally:
        listener.close()


def test_argo_stand_in_refuses_unknown_domains_and_closed_ports(standin: ArgoStandIn) -> None:
    argo_dir = str(standin.directory)
    with pytest.raises(TransportError, match="nobody listens on dom0:5555"):
        argo_connect(argo_dir, 3, 0, 5555)
    listener = open_listener(parse_channel("argo:5555", outgoing=False), argo_dir=argo_dir)
    try:
        with pytest.raises(TransportError, match="no domain 9"):
            argo_connect(argo_dir, 9, 0, 5555)
    finally:
        listener.close()


def test_argo_outgoing_to_a_guest_port(standin: ArgoStandIn) -> None:
    argo_dir = str(standin.directory)
    guest_side = open_listener(parse_channel("unix:" + argo_listen_path(argo_dir, 3, 6000),
                                             outgoing=False), argo_dir=argo_dir)
    guest_side._argo = True  # a guest's listener on the stand-in
    try:
        conn = connect_outgoing(parse_channel("argo-domid:6000:3", outgoing=True),
                                argo_dir=argo_dir)
        got = _accept(guest_side)
        assert got.domid == 0  # dom0 connected
        got.sock.close()
        conn.close()
    finally:
        guest_side.close()


def test_a_forged_hand_over_is_refused(standin: ArgoStandIn) -> None:
    argo_dir = str(standin.directory)
    listener = open_listener(parse_channel("argo:5555", outgoing=False), argo_dir=argo_dir)
    try:
        forger = socket.socket(socket.AF_UNIX)
        forger.connect(argo_listen_path(argo_dir, 0, 5555))
        forger.sendall(b"ARGO\0\1\0\0\0\0\0\0")  # a header without a stream
        with pytest.raises(TransportError, match="hand-over"):
            _accept(listener)
        forger.close()
    finally:
        listener.close()


def test_stand_in_codec_errors_are_named() -> None:
    with pytest.raises(ArgoSimError, match="CONNECT"):
        parse_connect_line(b"HELLO\n")
    with pytest.raises(ArgoSimError, match="domid"):
        parse_connect_line(b"CONNECT 99999 0 1\n")
    with pytest.raises(ArgoSimError, match="bytes"):
        decode_argo_header(b"ARGO")
    assert parse_connect_line(b"CONNECT 3 0 5555\n") == (3, 0, 5555)
