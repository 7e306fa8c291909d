"""The simulated xenstored over its real unix sockets.

Clients: Debian's xenstore-utils (libxenstore4, pointed at the server with XENSTORED_PATH),
pyxs 0.4.1, and a raw client built on our own codec for what those two cannot do
(pipelined out-of-order request ids, oversize packets, per-domain connections).
"""

from __future__ import annotations

import collections
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyxs

from xen.sim.xenstored import XenstoredServer
from xen.xenstore import (
    PAYLOAD_MAX,
    Access,
    GetPerms,
    Introduce,
    IsDomainIntroduced,
    Mkdir,
    Op,
    Packet,
    PacketParser,
    Perm,
    Read,
    Request,
    SetPerms,
    TransactionEnd,
    TransactionStart,
    Watch,
    Write,
    XenstoreError,
    decode_reply,
    split_strings,
)

pytestmark = pytest.mark.integration

needs_xenstore_utils = pytest.mark.skipif(
    shutil.which("xenstore-read") is None, reason="Debian's xenstore-utils is not installed"
)
TIMEOUT = 5.0


@pytest.fixture
def sockdir() -> Iterator[Path]:
    # A short directory: unix socket paths are limited to 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="xs-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(sockdir: Path) -> Iterator[XenstoredServer]:
    srv = XenstoredServer(sockdir / "sock")
    srv.start()
    yield srv
    srv.close()


def run_tool(server: XenstoredServer, *argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XENSTORED_PATH=server.socket_path)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT)


class RawClient:
    """A blocking client on our codec; watch events are kept apart from replies."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(path)
        self.parser = PacketParser()
        self.replies: collections.deque[Packet] = collections.deque()
        self.events: collections.deque[tuple[str, bytes]] = collections.deque()

    def close(self) -> None:
        self.sock.close()

    def _pump(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("server closed the connection")
        for packet in self.parser.feed(data):
            if packet.op == Op.WATCH_EVENT:
                path, token = split_strings(packet.payload)[:2]
                self.events.append((path.decode(), token))
            else:
                self.replies.append(packet)

    def reply(self) -> Packet:
        while not self.replies:
            self._pump()
        return self.replies.popleft()

    def event(self) -> tuple[str, bytes]:
        while not self.events:
            self._pump()
        return self.events.popleft()

    def call(self, request: Request, tx_id: int = 0, req_id: int = 1) -> object:
        self.sock.sendall(request.encode(req_id, tx_id).encode())
        packet = self.reply()
        assert (packet.req_id, packet.tx_id) == (req_id, tx_id)
        return decode_reply(packet.op, packet.payload)

    def closed_by_server(self) -> bool:
        try:
            while True:
                self._pump()
        except EOFError:
            return True


@pytest.fixture
def raw(server: XenstoredServer) -> Iterator[RawClient]:
    client = RawClient(server.socket_path)
    yield client
    client.close()


# --- Debian's C tools ---------------------------------------------------------------------------


@needs_xenstore_utils
def test_c_tools_write_read_list_ls_rm(server: XenstoredServer) -> None:
    assert run_tool(server, "xenstore-write", "/vm/a", "one", "/vm/b", "two words").returncode == 0
    out = run_tool(server, "xenstore-read", "/vm/a", "/vm/b")
    assert (out.returncode, out.stdout) == (0, "one\ntwo words\n")
    assert run_tool(server, "xenstore-list", "/vm").stdout.split() == ["a", "b"]
    out = run_tool(server, "xenstore-ls", "-f", "/vm")
    assert out.stdout.splitlines() == ['/vm/a = "one"', '/vm/b = "two words"']
    assert run_tool(server, "xenstore-exists", "/vm/a").returncode == 0
    assert run_tool(server, "xenstore-rm", "/vm/a").returncode == 0
    assert run_tool(server, "xenstore-exists", "/vm/a").returncode == 1
    out = run_tool(server, "xenstore-read", "/vm/a")
    assert out.returncode == 1 and "couldn't read path /vm/a" in out.stderr
    out = run_tool(server, "xenstore-ls", "-f")
    assert '/vm/b = "two words"' in out.stdout.splitlines()


@needs_xenstore_utils
def test_c_tools_chmod_and_perms_listing(server: XenstoredServer, raw: RawClient) -> None:
    run_tool(server, "xenstore-write", "/p/q/r", "x")
    assert run_tool(server, "xenstore-chmod", "-r", "/p", "r0", "b3").returncode == 0
    assert raw.call(GetPerms("/p/q/r")) == (Perm(0, Access.READ), Perm(3, Access.BOTH))
    out = run_tool(server, "xenstore-ls", "-p", "/p")
    assert "(r0,b3)" in out.stdout


@needs_xenstore_utils
def test_c_tools_list_a_directory_over_the_payload_limit(server: XenstoredServer) -> None:
    names = [f"a-fairly-long-child-name-{i:04d}" for i in range(300)]
    keys = [arg for name in names for arg in (f"/big/{name}", "")]
    for i in range(0, len(keys), 100):  # a few invocations, each one transaction
        assert run_tool(server, "xenstore-write", *keys[i : i + 100]).returncode == 0
    out = run_tool(server, "xenstore-list", "/big")  # DIRECTORY answers E2BIG: DIRECTORY_PART
    assert (out.returncode, out.stdout.split()) == (0, names)


@needs_xenstore_utils
def test_c_tools_watch(server: XenstoredServer) -> None:
    env = dict(os.environ, XENSTORED_PATH=server.socket_path)
    proc = subprocess.Popen(
        ["xenstore-watch", "-n", "2", "/w"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
        assert ready and proc.stdout.readline() == "/w\n"  # the registration event
        run_tool(server, "xenstore-write", "/w/child", "1")
        assert proc.wait(TIMEOUT) == 0
        assert proc.stdout.read() == "/w/child\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        if proc.stdout is not None:
            proc.stdout.close()


# --- pyxs ---------------------------------------------------------------------------------------


def test_pyxs_reads_writes_and_lists(server: XenstoredServer) -> None:
    with pyxs.Client(unix_socket_path=server.socket_path) as c:
        c.write(b"/x/y", b"v")
        c.mkdir(b"/x/z")
        assert c.read(b"/x/y") == b"v"
        assert sorted(c.list(b"/x")) == [b"y", b"z"]
        assert c.exists(b"/x/z") and not c.exists(b"/x/nope")
        c.set_perms(b"/x/y", [b"r0", b"w5"])
        assert c.get_perms(b"/x/y") == [b"r0", b"w5"]
        assert c.get_domain_path(4) == b"/local/domain/4"
        c.delete(b"/x")
        assert not c.exists(b"/x/y")
        with pytest.raises(pyxs.PyXSError) as info:
            c.read(b"/x/y")
        assert info.value.args[0] == 2  # ENOENT


def test_pyxs_transactions_commit_and_conflict(server: XenstoredServer) -> None:
    with (
        pyxs.Client(unix_socket_path=server.socket_path) as a,
        pyxs.Client(unix_socket_path=server.socket_path) as b,
    ):
        a.write(b"/t/k", b"0")
        a.transaction()
        assert a.read(b"/t/k") == b"0"
        a.write(b"/t/k", b"1")
        assert b.read(b"/t/k") == b"0"  # not visible before commit
        assert a.commit() is True
        assert b.read(b"/t/k") == b"1"
        a.transaction()
        a.read(b"/t/k")
        b.write(b"/t/k", b"2")  # intervening write to a touched node
        a.write(b"/t/k", b"3")
        assert a.commit() is False  # EAGAIN
        assert b.read(b"/t/k") == b"2"


def test_pyxs_watches_across_connections(server: XenstoredServer) -> None:
    with (
        pyxs.Client(unix_socket_path=server.socket_path) as a,
        pyxs.Client(unix_socket_path=server.socket_path) as b,
    ):
        m = a.monitor()
        m.watch(b"/mon", b"tok")
        events = m.wait()
        assert next(events) == (b"/mon", b"tok")
        b.write(b"/mon/child", b"1")
        assert next(events) == (b"/mon/child", b"tok")
        b.transaction()
        b.write(b"/mon/tx", b"1")
        b.commit()
        assert next(events) == (b"/mon/tx", b"tok")
        m.unwatch(b"/mon", b"tok")


# --- raw protocol ------------------------------------------------------------------------------


def test_pipelined_requests_echo_out_of_order_ids(raw: RawClient) -> None:
    raw.call(Write("/o", b"v"))
    ids = [7, 3, 99, 2**32 - 1]
    raw.sock.sendall(b"".join(Read("/o").encode(i).encode() for i in ids))
    replies = [raw.reply() for _ in ids]
    assert [p.req_id for p in replies] == ids
    assert {p.payload for p in replies} == {b"v"}
    tx = raw.call(TransactionStart())
    assert isinstance(tx, int)
    assert raw.call(Read("/o"), tx_id=tx, req_id=5) == b"v"  # call() checks the echo
    raw.call(TransactionEnd(True), tx_id=tx)


def test_oversize_packet_disconnects_after_answering_earlier_ones(
    server: XenstoredServer, raw: RawClient
) -> None:
    good = Read("/tool").encode(req_id=8).encode()
    bad = Packet(Op.WRITE, 9, 0, b"").encode()[:12] + (PAYLOAD_MAX + 1).to_bytes(4, "little")
    raw.sock.sendall(good + bad)
    assert raw.reply().req_id == 8
    assert raw.closed_by_server()
    other = RawClient(server.socket_path)  # the server itself carries on
    try:
        assert other.call(Read("/tool")) == b""
    finally:
        other.close()


def test_many_concurrent_connections(server: XenstoredServer) -> None:
    clients = [RawClient(server.socket_path) for _ in range(64)]
    try:
        for i, c in enumerate(clients):
            c.sock.sendall(Write(f"/many/{i}", str(i).encode()).encode(i).encode())
        for i, c in enumerate(clients):
            assert c.reply().req_id == i
        for i, c in enumerate(clients):
            assert c.call(Read(f"/many/{(i + 1) % 64}")) == str((i + 1) % 64).encode()
    finally:
        for c in clients:
            c.close()


def test_unread_output_is_bounded(sockdir: Path) -> None:
    with XenstoredServer(sockdir / "s2", max_outbuf=64 * 1024) as srv:
        lazy, busy = RawClient(srv.socket_path), RawClient(srv.socket_path)
        try:
            lazy.call(Watch("/", b"t" * 3000))  # each event is over 3 KB; never read
            batch = b"".join(Write(f"/n{i}", b"").encode(i).encode() for i in range(400))
            busy.sock.sendall(batch)
            for _ in range(400):
                busy.reply()
            assert lazy.closed_by_server()  # events beyond the bound dropped the reader
        finally:
            lazy.close()
            busy.close()


def test_pipelining_client_gets_backpressure_not_dropped(sockdir: Path) -> None:
    with XenstoredServer(sockdir / "s4", max_outbuf=1024 * 1024) as srv:
        c = RawClient(srv.socket_path)
        try:
            c.call(Write("/big", b"v" * 4000))
            count = 2000  # ~8 MB of replies, far over max_outbuf
            todo = memoryview(b"".join(Read("/big").encode(i).encode() for i in range(count)))
            c.sock.setblocking(False)
            got, deadline = 0, time.monotonic() + TIMEOUT
            while got < count and time.monotonic() < deadline:
                want_write = [c.sock] if todo else []
                readable, writable, _ = select.select([c.sock], want_write, [], 1.0)
                if writable:
                    todo = todo[c.sock.send(todo) :]
                if readable:
                    c._pump()
                    while c.replies:
                        assert c.replies.popleft().req_id == got
                        got += 1
            assert got == count
        finally:
            c.close()


# --- domains ------------------------------------------------------------------------------------


def test_introduce_and_release_from_python(server: XenstoredServer, raw: RawClient) -> None:
    raw.call(Watch("@introduceDomain", b"i"))
    raw.call(Watch("@releaseDomain", b"r"))
    assert [raw.event(), raw.event()] == [("@introduceDomain", b"i"), ("@releaseDomain", b"r")]
    server.introduce_domain(5)
    assert raw.event() == ("@introduceDomain", b"i")
    assert raw.call(IsDomainIntroduced(5)) is True
    raw.call(Mkdir("/local/domain/5"))
    raw.call(SetPerms("/local/domain/5", (Perm(5, Access.NONE),)))
    guest = RawClient(server.domain_socket_path(5))
    try:
        assert guest.call(Write("device/state", b"4")) == "OK"  # relative to its home
        assert raw.call(Read("/local/domain/5/device/state")) == b"4"
        with pytest.raises(XenstoreError, match="EACCES"):
            guest.call(Read("/tool"))
        with pytest.raises(XenstoreError, match="EACCES"):
            guest.call(Introduce(6, 1, 1))
        server.fire_special_watch("@releaseDomain")  # e.g. the guest shut down
        assert raw.event() == ("@releaseDomain", b"r")
        server.release_domain(5)
        assert raw.event() == ("@releaseDomain", b"r")
        assert guest.closed_by_server()
        assert not os.path.exists(server.domain_socket_path(5))
    finally:
        guest.close()
    with pytest.raises(XenstoreError, match="ENOENT"):
        server.release_domain(5)


def test_introduce_over_the_wire_opens_the_domain_socket(
    server: XenstoredServer, raw: RawClient
) -> None:
    assert raw.call(Introduce(7, 1234, 3)) == "OK"
    assert os.path.exists(server.domain_socket_path(7))
    assert server.call(lambda store: store.domains()) == [7]


# --- lifecycle ----------------------------------------------------------------------------------


def test_start_refuses_a_live_socket_and_replaces_a_stale_one(
    server: XenstoredServer, sockdir: Path
) -> None:
    with pytest.raises(OSError, match="already listens"):
        XenstoredServer(server.socket_path).start()
    stale = sockdir / "stale"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()  # leaves the file behind, with nobody listening
    with XenstoredServer(stale) as srv:
        c = RawClient(srv.socket_path)
        assert c.call(Read("/tool")) == b""
        c.close()
    assert not stale.exists()
    precious = sockdir / "file"
    precious.write_text("keep me")
    with pytest.raises(FileExistsError, match="not a socket"):
        XenstoredServer(precious).start()
    assert precious.read_text() == "keep me"


def test_close_is_bounded_and_idempotent(sockdir: Path) -> None:
    srv = XenstoredServer(sockdir / "s3", seed_dom0=True)
    srv.start()
    client = RawClient(srv.socket_path)
    assert client.call(Read("/local/domain/0/name")) == b"Domain-0"
    started = time.monotonic()
    srv.close(timeout=2.0)
    srv.close()
    assert time.monotonic() - started < 2.0
    assert client.closed_by_server()
    client.close()
    with pytest.raises(RuntimeError):
        srv.call(lambda store: None)


@needs_xenstore_utils
def test_cli_runs_until_sigterm(sockdir: Path) -> None:
    path = sockdir / "cli"
    proc = subprocess.Popen(
        [sys.executable, "-m", "xen.sim.xenstored", "--socket", str(path)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], TIMEOUT)
        assert ready and "listening" in proc.stderr.readline()
        env = dict(os.environ, XENSTORED_PATH=str(path))
        out = subprocess.run(
            ["xenstore-write", "/cli", "ok"], env=env, capture_output=True, timeout=TIMEOUT
        )
        assert out.returncode == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
        assert not path.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        if proc.stderr is not None:
            proc.stderr.close()
