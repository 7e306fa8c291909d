"""Who reads the xenstore connection: a caller alone reads its own reply (no thread hop), the
reader thread reads for callers that wait and for watch events between requests, and a caller
that reads also delivers the watch events it finds; against the simulated xenstored and a raw
socket playing xenstored."""

from __future__ import annotations

import concurrent.futures
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.integration.test_xs_client import server, sockdir  # noqa: F401 (fixtures)
from xen.sim.xenstored import XenstoredServer
from xen.xenstore import (
    NoSuchNode,
    Op,
    Packet,
    PacketParser,
    Read,
    RetryPolicy,
    Rm,
    Transaction,
    WatchFired,
    Write,
    XenstoreClient,
    XenstoreError,
    XenstoreTimeout,
)
from xen.xenstore import _connection as connection_module

pytestmark = pytest.mark.integration

SHORT = RetryPolicy(attempts=3, max_time=0.3, initial=0.02, maximum=0.05)


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(thread name, op) of every packet a client connection reads, as the reading thread
    parses it (a caller reading its own reply completes it without `Connection._dispatch`)."""
    seen: list[tuple[str, int]] = []

    class RecordingParser(PacketParser):
        def feed(self, data: bytes) -> list[Packet]:
            packets = super().feed(data)
            seen.extend((threading.current_thread().name, packet.op) for packet in packets)
            return packets

    monkeypatch.setattr(connection_module, "PacketParser", RecordingParser)
    return seen


def test_a_lone_caller_reads_its_own_replies(server: XenstoredServer,  # noqa: F811
                                             readers: list[tuple[str, int]]) -> None:
    with XenstoreClient(server.socket_path, timeout=2.0) as c:
        for i in range(20):
            c.write(f"/r/k{i}", str(i))
            assert c.read(f"/r/k{i}") == str(i)
    assert len(readers) == 40
    assert {name for name, _ in readers} == {threading.current_thread().name}


def test_watch_events_between_requests_are_read_by_the_reader_thread(
        server: XenstoredServer, readers: list[tuple[str, int]]) -> None:  # noqa: F811
    events: list[WatchFired] = []
    fired = threading.Event()

    def on_event(event: WatchFired) -> None:
        events.append(event)
        if event.path == "/w/x":
            fired.set()

    with XenstoreClient(server.socket_path, timeout=2.0) as c, \
            XenstoreClient(server.socket_path, timeout=2.0) as other:
        c.watch("/w", "tok", on_event)
        readers.clear()
        other.write("/w/x", "1")  # an event for c while c has no request in flight
        assert fired.wait(5)
    watch_readers = [name for name, op in readers if op == Op.WATCH_EVENT]
    assert watch_readers and all("reader" in name for name in watch_readers), readers


def test_threads_waiting_behind_a_reading_caller_get_their_replies(
        server: XenstoredServer) -> None:  # noqa: F811
    with XenstoreClient(server.socket_path, timeout=5.0) as c:
        def work(k: int) -> None:
            for i in range(30):
                c.write(f"/t{k}/n{i}", f"{k}.{i}")
                assert c.read(f"/t{k}/n{i}") == f"{k}.{i}"

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for future in [pool.submit(work, k) for k in range(8)]:
                future.result(timeout=30)


def test_a_reading_caller_delivers_the_watch_events_before_its_reply(
        sockdir: Path) -> None:  # noqa: F811
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sockdir / "fake"))
    listener.listen(1)
    events: list[WatchFired] = []
    got = threading.Event()

    def on_event(event: WatchFired) -> None:
        events.append(event)
        got.set()

    try:
        with XenstoreClient(listener.getsockname(), timeout=2.0, reconnect=SHORT) as c:
            peer, _ = listener.accept()
            parser = PacketParser()
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                registered = pool.submit(c.watch, "/a", "tok", on_event)
                (watch,) = parser.feed(peer.recv(4096))
                peer.sendall(Packet(Op.WATCH, watch.req_id, 0, b"OK\0").encode())
                registered.result(timeout=2)
                reading = pool.submit(c.read, "/a/b")
                (read,) = parser.feed(peer.recv(4096))
                # One chunk: an event, then the reply; the caller reads both.
                peer.sendall(Packet(Op.WATCH_EVENT, 0, 0, b"/a/b\0tok\0").encode()
                             + Packet(Op.READ, read.req_id, 0, b"v").encode())
                assert reading.result(timeout=2) == "v"
            assert got.wait(2)
            assert events == [WatchFired("/a/b", "tok")]
            peer.close()
    finally:
        listener.close()


def test_a_lone_callers_reply_split_or_behind_a_late_reply_is_still_matched(
        sockdir: Path, readers: list[tuple[str, int]]) -> None:  # noqa: F811
    """The caller's first receive brings not just its reply: a late reply to a request that
    timed out before it, then half of its own reply (the rest comes later). The late reply is
    dropped, the caller's reply is put together and returned; the caller read all of it."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sockdir / "fake"))
    listener.listen(1)
    try:
        with XenstoreClient(listener.getsockname(), timeout=0.3, reconnect=SHORT) as c:
            peer, _ = listener.accept()
            parser = PacketParser()
            with pytest.raises(XenstoreTimeout):
                c.read("/late")
            (late,) = parser.feed(peer.recv(4096))
            with concurrent.futures.ThreadPoolExecutor(1, "caller") as pool:
                reading = pool.submit(c.read, "/a")
                (read,) = parser.feed(peer.recv(4096))
                reply = Packet(Op.READ, read.req_id, 0, b"value").encode()
                peer.sendall(Packet(Op.READ, late.req_id, 0, b"old").encode() + reply[:18])
                time.sleep(0.05)  # the caller has received the first part
                assert not reading.done()
                peer.sendall(reply[18:])
                assert reading.result(timeout=2) == "value"
            peer.close()
    finally:
        listener.close()
    assert [op for _, op in readers] == [Op.READ, Op.READ]
    assert {name for name, _ in readers} == {"caller_0"}


def test_floods_of_events_while_many_threads_write_neither_block_nor_lose_replies(
        sockdir: Path) -> None:  # noqa: F811
    """The peer answers each request with its reply and then 256 KiB of events (of the client's
    watch) before it reads again, while 32 threads send three 4 KiB writes each into a small
    send buffer: whoever holds the read role must keep reading while it waits to send, or the
    peer and the client wait for each other until the timeout; the last events are read with
    no request in flight."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sockdir / "flood"))
    listener.listen(1)
    event = Packet(Op.WATCH_EVENT, 0, 0, b"/f/" + b"e" * 3000 + b"\0nobody\0").encode()
    burst = event * (256 * 1024 // len(event))

    def serve(peer: socket.socket) -> None:
        parser = PacketParser()
        answered = 0
        while answered < 32 * 3:
            data = peer.recv(65536)
            if not data:
                return
            for packet in parser.feed(data):
                if packet.op == Op.WATCH:
                    peer.sendall(Packet(Op.WATCH, packet.req_id, 0, b"OK\0").encode())
                    continue
                peer.sendall(Packet(Op.WRITE, packet.req_id, 0, b"OK\0").encode() + burst)
                answered += 1

    try:
        with XenstoreClient(listener.getsockname(), timeout=20.0, reconnect=SHORT) as c:
            peer, _ = listener.accept()
            with socket.socket(fileno=os.dup(c.fileno())) as ours:
                ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            server = threading.Thread(target=serve, args=(peer,), daemon=True)
            server.start()
            events: list[WatchFired] = []
            c.watch("/f", "nobody", events.append)

            def work(i: int) -> None:
                for _ in range(3):
                    c.write(f"/f/{i}", "v" * 4000)

            with concurrent.futures.ThreadPoolExecutor(32) as pool:
                futures = [pool.submit(work, i) for i in range(32)]
                for future in futures:
                    future.result(timeout=30)
            server.join(10)
            assert not server.is_alive()
            deadline = time.monotonic() + 10  # delivered coalesced: some, each of the watch
            while not events and time.monotonic() < deadline:
                time.sleep(0.01)
            assert events and all(e.token == "nobody" for e in events)
            peer.close()
    finally:
        listener.close()


def test_pipelined_requests_are_applied_in_order_and_errors_come_back_per_request(
        server: XenstoredServer) -> None:  # noqa: F811
    with XenstoreClient(server.socket_path, timeout=5.0) as c:
        c.write("/p/gone", "x")
        requests = [Write(f"/p/n{i}", str(i).encode()) for i in range(40)]  # two batches
        requests += [Write("/p/n0", b"last"), Read("/p/missing"), Rm("/p/gone"),
                     Read("/p/n0")]
        replies = c.pipeline(requests)
        assert replies[:41] == [b"OK\0"] * 41
        assert isinstance(replies[41], NoSuchNode)  # returned, not raised; the next ran
        assert replies[42:] == [b"OK\0", b"last"]  # in order: n0 was written twice
        assert not c.exists("/p/gone")
        assert c.counters()[1] < c.counters()[0]  # fewer round trips than requests

        def body(t: Transaction) -> None:
            replies = t.pipeline([Write("/p/t1", b"1"), Read("/p/nothing"),
                                  Write("/p/t2", b"2")])
            if any(isinstance(r, XenstoreError) for r in replies):
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError, match="abort"):
            c.transaction(body)
        assert not c.exists("/p/t1") and not c.exists("/p/t2")  # aborted: nothing applied
