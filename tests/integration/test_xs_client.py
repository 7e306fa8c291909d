"""The xenstore client against the simulated xenstored over its real unix socket, and against
raw sockets that misbehave (silent, or dropping the connection mid-request)."""

from __future__ import annotations

import concurrent.futures
import os
import resource
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pyxs

import actors
from actors import Actor, handles
from supervision import Backoff, ChildSpec, EventLog, RestartMode, Supervisor, SupFlags, start_actor
from tests.helpers import wait_until
from xen.sim.xenstored import XenstoredServer
from xen.xenstore import (
    Access,
    AddWatch,
    ClientClosed,
    ClientState,
    ConnectionLost,
    GetClient,
    InvalidRequest,
    NodeExists,
    NoSuchNode,
    Op,
    Packet,
    PacketParser,
    PacketTooLarge,
    Perm,
    PermissionDenied,
    RetryPolicy,
    Transaction,
    TransactionConflict,
    WatchFired,
    XenstoreActor,
    XenstoreClient,
    XenstoreTimeout,
    XenstoreUnavailable,
    all_of,
    any_of,
    key_to_disappear,
    value_to_appear,
    value_to_become,
)
from xen.xenstore._ops import NodeOps

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=200, max_time=3.0, initial=0.01, maximum=0.05)
SHORT = RetryPolicy(attempts=3, max_time=0.3, initial=0.02, maximum=0.05)


@pytest.fixture
def sockdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="xsc-"))  # unix socket paths are limited to 107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(sockdir: Path) -> Iterator[XenstoredServer]:
    srv = XenstoredServer(sockdir / "sock")
    srv.start()
    yield srv
    srv.close()


@pytest.fixture
def client(server: XenstoredServer) -> Iterator[XenstoreClient]:
    with XenstoreClient(server.socket_path, timeout=1.0, reconnect=FAST) as c:
        yield c


class Recorder:
    """A callback target that records events and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[WatchFired] = []
        self._cond = threading.Condition()

    def __call__(self, event: WatchFired) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, path: str, timeout: float = 2.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: any(e.path == path for e in self.events),
                                       timeout), f"no event for {path}: {self.events}"


# --- operations -------------------------------------------------------------------------------


def test_every_node_operation(client: XenstoreClient) -> None:
    client.write("/vm/1/name", "demo")
    assert client.read("/vm/1/name") == "demo"
    assert client.read_bytes("/vm/1/name") == b"demo"
    assert client.try_read("/vm/1/missing") is None
    assert client.exists("/vm/1") and not client.exists("/vm/2")
    client.mkdir("/vm/1/devices")
    client.mkdir("/vm/1/devices")  # existing: kept
    assert client.directory("/vm/1") == ["name", "devices"]
    client.write("/vm/1/bin", b"\x00\xff\n")
    assert client.read_bytes("/vm/1/bin") == b"\x00\xff\n"
    client.set_perms("/vm/1", [Perm(0, Access.NONE), Perm(5, Access.READ)])
    assert client.get_perms("/vm/1") == (Perm(0, Access.NONE), Perm(5, Access.READ))
    client.rm("/vm/1")
    client.rm("/vm/1")  # missing: fine
    assert not client.exists("/vm/1")
    with pytest.raises(NoSuchNode, match="READ /vm/1"):
        client.read("/vm/1")
    with pytest.raises(InvalidRequest, match="invalid xenstore path"):
        client.write("/vm//x", "v")


def test_domain_requests(client: XenstoreClient, server: XenstoredServer) -> None:
    assert client.get_domain_path(7) == "/local/domain/7"
    assert not client.is_domain_introduced(7)
    client.introduce(7, 1234, 5)
    assert client.is_domain_introduced(7)
    assert os.path.exists(server.domain_socket_path(7))
    client.resume(7)
    client.release(7)
    assert not client.is_domain_introduced(7)


def test_empty_value_write_works_where_pyxs_refuses_it(client: XenstoreClient,
                                                       server: XenstoredServer) -> None:
    client.write("/empty", "")
    assert client.read("/empty") == "" and client.exists("/empty")
    client.write("/empty", b"")
    assert client.read_bytes("/empty") == b""
    # The fault we work around: pyxs's own client checks every argument against a regex that
    # needs at least one printable byte.
    with pyxs.Client(unix_socket_path=server.socket_path) as raw, \
            pytest.raises(ValueError):
        raw.write(b"/empty2", b"")


def test_permission_denied_for_an_unprivileged_domain(server: XenstoredServer,
                                                      client: XenstoreClient) -> None:
    client.write("/secret", "x")
    client.mkdir("/local/domain/5")
    client.set_perms("/local/domain/5", ["n5"])  # as the toolstack does: the guest owns it
    server.introduce_domain(5)
    with XenstoreClient(server.domain_socket_path(5), timeout=1.0, reconnect=SHORT) as guest:
        guest.write("data/x", "1")  # relative: its own home
        assert client.read("/local/domain/5/data/x") == "1"
        with pytest.raises(PermissionDenied, match="EACCES"):
            guest.read("/secret")


def test_large_directory_is_read_in_chunks(client: XenstoreClient,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"device-with-a-long-name-{i:04d}" for i in range(400)]  # ~14 KiB of names

    def fill(t: Transaction) -> None:
        for n in names:
            t.write(f"/big/{n}", "")

    client.transaction(fill)
    chunked: list[str] = []
    real = NodeOps._directory_parts

    def spy(self: NodeOps, path: str) -> list[str]:
        chunked.append(path)
        return real(self, path)

    monkeypatch.setattr(NodeOps, "_directory_parts", spy)
    assert client.directory("/big") == names
    with client.transaction() as t:
        assert t.directory("/big") == names
    assert chunked == ["/big", "/big"]  # DIRECTORY answered E2BIG both times


def test_too_large_value_is_refused_and_the_connection_stays_usable(client: XenstoreClient
                                                                     ) -> None:
    with pytest.raises(PacketTooLarge, match="4096"):
        client.write("/big", "x" * 5000)
    client.write("/ok", "y")
    assert client.read("/ok") == "y"


def test_duplicate_watch_is_refused(client: XenstoreClient) -> None:
    client.watch("/a", "t", lambda e: None)
    with pytest.raises(NodeExists):
        client.watch("/a", "t", lambda e: None)


# --- concurrency and descriptors -------------------------------------------------------------


def test_sixteen_threads_share_one_connection(client: XenstoreClient) -> None:
    def work(n: int) -> list[str]:
        out = []
        for i in range(40):
            client.write(f"/t/{n}/{i}", f"{n}-{i}")
            out.append(client.read(f"/t/{n}/{i}"))
        return out

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(work, range(16)))
    assert results == [[f"{n}-{i}" for i in range(40)] for n in range(16)]
    assert len(client.directory("/t")) == 16


@pytest.fixture
def high_fds() -> Iterator[None]:
    """Hold enough descriptors that the next ones are above 1024 (raising the soft limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1200
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    null = os.open(os.devnull, os.O_RDONLY)
    held = [null]
    try:
        while held[-1] <= 1030:
            held.append(os.dup(null))
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_works_with_a_descriptor_above_1024(server: XenstoredServer, high_fds: None) -> None:
    with XenstoreClient(server.socket_path, timeout=1.0, reconnect=SHORT) as c:
        assert c.fileno() > 1024
        seen = Recorder()
        c.watch("/hi", "t", seen)
        seen.wait_for("/hi")
        c.write("/hi/x", "1")
        seen.wait_for("/hi/x")
        assert c.read("/hi/x") == "1"


# --- misbehaving servers ----------------------------------------------------------------------


@pytest.fixture
def listener(sockdir: Path) -> Iterator[socket.socket]:
    """A unix socket that accepts into its backlog and never answers."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(sockdir / "silent"))
    sock.listen(4)
    yield sock
    sock.close()


def test_a_request_without_answer_times_out_and_a_late_reply_is_dropped(
        listener: socket.socket) -> None:
    with XenstoreClient(listener.getsockname(), timeout=0.2, reconnect=SHORT) as c:
        peer, _ = listener.accept()
        began = time.monotonic()
        with pytest.raises(XenstoreTimeout, match="did not answer READ"):
            c.read("/x")
        assert 0.15 < time.monotonic() - began < 1.0
        assert c.state is ClientState.CONNECTED
        parser = PacketParser()
        (late,) = parser.feed(peer.recv(4096))
        peer.sendall(Packet(Op.READ, late.req_id, 0, b"late").encode())  # nobody waits for it
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(c.read, "/y")
            packets: list[Packet] = []
            while not packets:
                packets = parser.feed(peer.recv(4096))
            assert packets[0].payload == b"/y\0" and packets[0].req_id != late.req_id
            peer.sendall(Packet(Op.READ, packets[0].req_id, 0, b"fresh").encode())
            assert future.result(timeout=2) == "fresh"
        peer.close()


def test_requests_in_flight_fail_at_once_when_the_server_drops(listener: socket.socket) -> None:
    failed: list[XenstoreUnavailable] = []
    c = XenstoreClient(listener.getsockname(), timeout=30.0, reconnect=SHORT,
                       on_failed=failed.append).connect()
    peer, _ = listener.accept()
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(c.read, f"/x{i}") for i in range(4)]
            received = b""
            while received.count(b"/x") < 4:  # all four requests reached the "server"
                received += peer.recv(4096)
            began = time.monotonic()
            peer.close()
            listener.close()  # and it does not come back
            for future in futures:
                with pytest.raises(ConnectionLost, match="closed the connection"):
                    future.result(timeout=2)
            assert time.monotonic() - began < 5  # at once, not after the 30 s timeout
        # FAILED is set before on_failed runs (on the client's own thread): wait for both
        wait_until(lambda: c.state is ClientState.FAILED and failed, timeout=5)
        assert len(failed) == 1 and "after 3 attempts" in str(failed[0])
        with pytest.raises(XenstoreUnavailable):
            c.read("/x")
    finally:
        c.close()
    with pytest.raises(ClientClosed):
        c.read("/x")


def test_reconnects_and_registers_watches_again(sockdir: Path) -> None:
    path = sockdir / "sock"
    first = XenstoredServer(path)
    first.start()
    second = None
    seen = Recorder()
    c = XenstoreClient(str(path), timeout=2.0, reconnect=FAST).connect()
    try:
        c.watch("/vm", "vms", seen)
        seen.wait_for("/vm")  # fired at registration
        first_fd = c.fileno()
        first.close()
        wait_until(lambda: c.state is ClientState.RECONNECTING)
        seen.events.clear()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(c.write, "/vm/1", "during the outage")
            second = XenstoredServer(path)
            second.start()
            pending.result(timeout=3)  # waited for the reconnection, then went through
        seen.wait_for("/vm")  # registered again on the new connection: fired once
        assert c.state is ClientState.CONNECTED and c.fileno() != -1
        assert c.read("/vm/1") == "during the outage"
        c.write("/vm/2", "x")
        seen.wait_for("/vm/2")
        assert c.watches() == [("/vm", "vms")]
        assert first_fd != -1
    finally:
        c.close()
        if second is not None:
            second.close()


def test_a_client_without_watches_notices_the_server_gone_while_idle(sockdir: Path) -> None:
    """Without a watch the reader thread does not listen for bytes between requests, only for
    the socket's hang-up: a closed xenstored is still noticed with no request in flight, and the
    client reconnects by itself."""
    path = sockdir / "sock"
    first = XenstoredServer(path)
    first.start()
    second = None
    c = XenstoreClient(str(path), timeout=2.0, reconnect=FAST).connect()
    try:
        c.write("/a", "1")
        assert c.read("/a") == "1"
        first.close()
        wait_until(lambda: c.state is ClientState.RECONNECTING)
        second = XenstoredServer(path)
        second.start()
        wait_until(lambda: c.state is ClientState.CONNECTED)
        c.write("/a", "2")
        assert c.read("/a") == "2"
    finally:
        c.close()
        if second is not None:
            second.close()


# --- transactions -----------------------------------------------------------------------------


def test_transaction_is_retried_on_eagain(client: XenstoreClient,
                                          server: XenstoredServer) -> None:
    client.write("/counter", "1")
    attempts: list[int] = []
    with XenstoreClient(server.socket_path, timeout=1.0) as other:
        def body(t: Transaction) -> int:
            value = int(t.read("/counter"))
            if not attempts:
                other.write("/counter", "10")  # a conflicting write, first time only
            attempts.append(value)
            t.write("/counter", str(value + 1))
            return value

        assert client.transaction(body) == 10
    assert attempts == [1, 10]
    assert client.read("/counter") == "11"


def test_single_attempt_transaction_raises_on_conflict_and_aborts_on_error(
        client: XenstoreClient, server: XenstoredServer) -> None:
    client.write("/c", "1")
    with XenstoreClient(server.socket_path, timeout=1.0) as other:
        with pytest.raises(TransactionConflict), client.transaction() as t:
            t.read("/c")
            other.write("/c", "2")
            t.write("/c", "3")
    assert client.read("/c") == "2"
    with pytest.raises(KeyError), client.transaction() as t:
        t.write("/c", "4")
        raise KeyError("body failed")
    assert client.read("/c") == "2"


# --- watches into actors, waiting ---------------------------------------------------------------


class Watcher(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[WatchFired] = []

    @handles(WatchFired)
    def _fired(self, event: WatchFired) -> None:
        self.events.append(event)

    @handles(str)
    def _get(self, _msg: str) -> list[WatchFired]:
        return list(self.events)


def paths_seen(target: str) -> set[str]:
    return {e.path for e in actors.ask(target, "events", timeout=2)}


def test_watch_events_are_delivered_to_an_actor_by_name(client: XenstoreClient) -> None:
    ref = Watcher.start()
    actors.register_name("/test/watcher", ref)
    try:
        client.watch("/vm/9", "vm9", "/test/watcher")
        wait_until(lambda: "/vm/9" in paths_seen("/test/watcher"))
        client.write("/vm/9/state", "running")
        wait_until(lambda: "/vm/9/state" in paths_seen("/test/watcher"))
        client.unwatch("/vm/9", "vm9")
        assert client.watches() == []
    finally:
        actors.unregister_name("/test/watcher")
        ref.stop()


def test_wait_helpers(client: XenstoreClient) -> None:
    def write_when_waiting(path: str, value: str | None) -> None:
        wait_until(lambda: any(t.startswith("wait-") for _, t in client.watches()))
        if value is None:
            client.rm(path)
        else:
            client.write(path, value)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        done = pool.submit(write_when_waiting, "/dev/0/state", "4")
        assert client.wait_until(value_to_become("/dev/0/state", "4"), timeout=2)
        done.result(timeout=2)
        done = pool.submit(write_when_waiting, "/dev/0", None)
        assert client.wait_until(key_to_disappear("/dev/0"), timeout=2)
        done.result(timeout=2)
    client.write("/a", "1")
    assert client.wait_until(all_of(value_to_appear("/a"), key_to_disappear("/b")), timeout=1)
    assert client.wait_until(any_of(value_to_appear("/b"), value_to_appear("/a")), timeout=1)
    began = time.monotonic()
    assert not client.wait_until(value_to_become("/a", "never"), timeout=0.2, poll=0.05)
    assert time.monotonic() - began < 1.0
    assert client.watches() == []  # the waiters unwatched


# --- the actor in a supervision tree -------------------------------------------------------------


def test_xenstore_actor_crashes_past_the_retry_bound_and_comes_back_with_its_watches(
        sockdir: Path) -> None:
    path = sockdir / "sock"
    srv = XenstoredServer(path)
    srv.start()
    events = EventLog()
    escalations: list[Any] = []
    watcher = Watcher.start()
    actors.register_name("/test/watcher", watcher)
    root = Supervisor.start_root(
        SupFlags(intensity=50, period=10, backoff=Backoff(0.02, 0.1)),
        [ChildSpec("xenstore", start_actor(XenstoreActor, str(path), timeout=1.0,
                                           reconnect=SHORT), mode=RestartMode.RESUME)],
        events=events, on_escalate=escalations.append)
    try:
        client = actors.ask("/xenstore", GetClient(), timeout=2)
        client.write("/vm/1", "a")
        actors.ask("/xenstore", AddWatch("/vm", "vms", "/test/watcher"), timeout=2)
        wait_until(lambda: "/vm" in paths_seen("/test/watcher"))
        first = actors.resolve("/xenstore").actor_urn
        srv.close()
        assert events.wait_for(lambda e: e.kind == "crashed" and e.path == "/xenstore", 3)
        with pytest.raises(ClientClosed):
            client.read("/vm/1")
        srv = XenstoredServer(path)
        srv.start()
        assert events.wait_for(lambda e: e.kind == "restarted" and e.path == "/xenstore", 3)
        assert actors.resolve("/xenstore").actor_urn != first
        fresh = actors.ask("/xenstore", GetClient(), timeout=2)
        fresh.write("/vm/2", "b")
        wait_until(lambda: "/vm/2" in paths_seen("/test/watcher"))  # watch came back
        assert fresh.watches() == [("/vm", "vms")]
        assert not escalations
    finally:
        root.stop(block=True, timeout=5)
        actors.unregister_name("/test/watcher")
        watcher.stop()
        srv.close()
