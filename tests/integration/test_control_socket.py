"""The control socket against bad input: malformed frames close only that connection, bad
requests get errors, a stuck actor never hangs the socket, and the socket is private."""

from __future__ import annotations

import socket
import stat
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import actors
from actors import Actor, handles
from supervision import (
    ChildKind,
    ChildSpec,
    Supervisor,
    SupFlags,
    find_actor,
    start_actor,
    walk_actors,
)
from supervision.control._client import ControlClient, ControlError
from supervision.control._proto import FrameParser, frame
from supervision.control._server import ControlActor
from tests.helpers import wait_until

pytestmark = pytest.mark.integration


@dataclass(frozen=True, slots=True)
class Block:
    release: threading.Event


class Stuck(Actor):
    @handles(Block)
    def _block(self, msg: Block) -> None:
        msg.release.wait(10)


@pytest.fixture
def sock(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "run" / "control.sock"
    ref = Supervisor.start_root(SupFlags(), [
        ChildSpec("stuck", start_actor(Stuck)),
        ChildSpec("control", start_actor(ControlActor, str(path))),
    ])
    yield path
    ref.stop(block=True, timeout=10)


def test_the_socket_is_private(sock: Path) -> None:
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600


def test_malformed_frames_close_only_that_connection(sock: Path) -> None:
    good = ControlClient(sock)
    try:
        for junk in (struct.pack(">I", 64 * 1024 * 1024), struct.pack(">I", 3) + b"\xc1\xc1\xc1"):
            raw = socket.socket(socket.AF_UNIX)
            raw.connect(str(sock))
            raw.sendall(junk)
            raw.settimeout(5)
            assert raw.recv(100) == b""  # closed by the server
            raw.close()
        assert good.call("stats", path="/stuck")["alive"]
    finally:
        good.close()


def test_bad_requests_get_errors(sock: Path) -> None:
    raw = socket.socket(socket.AF_UNIX)
    raw.connect(str(sock))
    raw.sendall(frame({"id": 9, "op": "explode"}) + frame({"id": 10, "op": "state"}))
    raw.settimeout(5)
    data = b""
    while data.count(b"bad-request") < 2:
        chunk = raw.recv(4096)
        assert chunk
        data += chunk
    raw.close()
    with ControlClient(sock) as ctl:
        with pytest.raises(ControlError) as info:
            ctl.call("state", path="/nowhere")
        assert info.value.kind == "not-found"
        with pytest.raises(ControlError) as info:
            ctl.call("hello", version=99)
        assert info.value.kind == "refused"


def test_a_stuck_actor_never_hangs_the_socket(sock: Path) -> None:
    release = threading.Event()
    actors.tell("/stuck", Block(release))
    try:
        with ControlClient(sock) as ctl:
            t0 = time.monotonic()
            with pytest.raises(ControlError) as info:
                ctl.call("state", path="/stuck", timeout=0.3)
            assert info.value.kind == "timeout"
            assert "busy for" in str(info.value) and "Block" in str(info.value)
            assert time.monotonic() - t0 < 2.0
            assert ctl.call("stats", path="/stuck")["current_message"] == "Block"
            assert ctl.call("tree")["children"][0]["id"] == "stuck"
    finally:
        release.set()


def test_a_stream_ends_when_its_cancelled_predicate_turns_true(sock: Path) -> None:
    stop = threading.Event()
    with ControlClient(sock) as ctl:
        threading.Timer(0.2, stop.set).start()  # from another thread, while it waits
        # ends with the server's final answer (else: ControlError timeout after the grace)
        assert list(ctl.stream("log.follow", cancelled=stop.is_set)) == []
        assert ctl.call("stats", path="/stuck")["alive"]  # the connection goes on


def test_requests_on_one_connection_do_not_wait_for_a_slow_one(sock: Path) -> None:
    """A ``state`` waiting on a stuck actor holds up neither the reads sent after it on the
    same connection (answered first, by the connection's worker) nor its own answer."""
    release = threading.Event()
    actors.tell("/stuck", Block(release))
    stuck = actors.actor_of(actors.resolve("/stuck"))
    wait_until(lambda: stuck.stats().current_message == "Block")
    raw = socket.socket(socket.AF_UNIX)
    try:
        raw.connect(str(sock))
        raw.settimeout(10)
        raw.sendall(frame({"id": 1, "op": "state", "args": {"path": "/stuck", "timeout": 2.0}})
                    + frame({"id": 2, "op": "stats", "args": {"path": "/stuck"}})
                    + frame({"id": 3, "op": "tree", "args": {}})
                    + frame({"id": 4, "op": "stats", "args": {"path": "/control"}}))
        parser = FrameParser()
        answers: list[dict[str, Any]] = []
        while len(answers) < 4:
            chunk = raw.recv(65536)
            assert chunk
            answers.extend(parser.feed(chunk))
    finally:
        raw.close()
        release.set()
    assert [a["id"] for a in answers] == [2, 3, 4, 1]
    assert answers[0]["result"]["current_message"] == "Block"
    assert answers[2]["result"]["name"] == "/control"
    assert answers[3]["kind"] == "timeout"


def test_a_killed_control_actor_lets_the_next_one_serve(sock: Path) -> None:
    old = actors.actor_of(actors.resolve("/control"))
    old.kill()  # idle: its thread is let go at once and closes its listening socket
    wait_until(lambda: not old.thread_alive, timeout=5)

    def serving() -> bool:
        try:
            with ControlClient(sock, timeout=2) as ctl:
                return bool(ctl.call("tree"))
        except (OSError, ControlError):
            return False
    wait_until(serving, timeout=10)  # the next instance listens on the same path
    assert actors.actor_of(actors.resolve("/control")) is not old
    assert sock.exists()  # the old instance's close left the new socket file alone


def test_find_actor_looks_into_nested_supervisors_only(tmp_path: Path) -> None:
    inner = ChildSpec("inner", start_actor(Supervisor, SupFlags(),
                                           [ChildSpec("leaf", start_actor(Stuck))]),
                      kind=ChildKind.SUPERVISOR)
    ref = Supervisor.start_root(SupFlags(), [ChildSpec("a", start_actor(Stuck)), inner])
    try:
        root = actors.actor_of(ref)
        assert isinstance(root, Supervisor)
        for path, actor in walk_actors(root):
            assert find_actor(root, path) is actor
        assert find_actor(root, "/inner/leaf") is actors.actor_of(actors.resolve("/inner/leaf"))
        for missing in ("/inner/none", "/a/leaf", "/in", "/innerx/leaf", "inner/leaf"):
            assert find_actor(root, missing) is None
    finally:
        ref.stop(block=True, timeout=10)


def test_the_client_gives_up_on_a_silent_server_within_its_wait(tmp_path: Path) -> None:
    """The client's waits are bounded by the socket's own timeouts: a server that answers
    hello and then nothing makes a call fail with kind 'timeout' after its ``wait``, and a
    later call with a longer wait still gets its answer."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "silent.sock"))
    listener.listen(1)
    release = threading.Event()

    def serve() -> None:
        peer, _ = listener.accept()
        with peer:
            parser = FrameParser()
            answered = 0
            while answered < 3:
                data = peer.recv(65536)
                if not data:
                    return
                for request in parser.feed(data):
                    if request["op"] == "stats" and answered == 1:
                        release.wait(10)  # the first stats: answered only after its wait
                    peer.sendall(frame({"id": request["id"], "ok": True,
                                        "result": f"{request['op']}-{answered}"}))
                    answered += 1

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        with ControlClient(tmp_path / "silent.sock", timeout=5.0) as ctl:
            began = time.monotonic()
            with pytest.raises(ControlError) as info:
                ctl.call("stats", path="/", wait=0.3)
            assert info.value.kind == "timeout"
            assert 0.25 <= time.monotonic() - began < 3
            release.set()
            assert ctl.call("stats", path="/", wait=5.0) == "stats-2"  # the late one skipped
    finally:
        release.set()
        server.join(10)
        listener.close()
