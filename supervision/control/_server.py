"""The control socket: a unix socket (mode 0600) serving the control protocol for the shell.

:class:`ControlServer` listens on a path, accepts any number of connections and gives each its
own worker thread, which reads framed requests (:mod:`supervision.control._proto`) and runs
those that never wait (:data:`~supervision.control._ops.IMMEDIATE`: reads of published state
and ``tell``) itself, in arrival order. A request that may wait (on an actor's mailbox, a
timeout, a stream) runs in a short-lived thread of its own, so a slow request (a ``state`` of
a busy actor, waiting its timeout) never holds up the others on the same connection, and
streamed requests (``log.follow``, ``trace``) run until they end, are cancelled (``cancel``
with their id) or the connection closes. Answers are written under a per-connection lock. A
request that fails is answered with an error of its kind; a malformed frame closes the
connection. Every thread has an owner: ``close()`` stops
accepting, closes every connection, cancels every request and joins the threads (bounded).

:class:`ControlActor` is the tree's ``control`` child: it owns a server for the root of the
tree it runs in.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from actors import Actor, service
from supervision._events import EventLog
from supervision._supervisor import Supervisor
from supervision._unixpath import bound_inode, claim_socket_path, remove_if_bound
from supervision.control._ops import IMMEDIATE, OpContext, Operation, OpError, base_operations
from supervision.control._proto import (
    PROTOCOL_VERSION,
    BadRequest,
    FrameParser,
    ProtocolError,
    Request,
    answer,
    check_request,
    error,
    event,
    frame,
)

__all__ = ["ControlActor", "ControlServer"]

logger = logging.getLogger(__name__)

_STARTED = time.time()
_RECV_SIZE = 65536


class _Connection:
    def __init__(self, sock: socket.socket, server: ControlServer) -> None:
        self.sock = sock
        self.server = server
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.requests: dict[int, threading.Event] = {}
        self.workers: list[threading.Thread] = []
        self.thread = threading.Thread(target=self.serve, name="control-conn", daemon=True)

    def send(self, value: Any) -> None:
        data = frame(value)
        with self.lock:
            if self.closed.is_set():
                return
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed.set()

    def serve(self) -> None:
        parser = FrameParser()
        buf = bytearray(_RECV_SIZE)  # one receive buffer for the connection's life
        view = memoryview(buf)
        try:
            while not self.closed.is_set():
                try:
                    n = self.sock.recv_into(buf)
                except OSError:
                    break
                if not n:
                    break
                try:
                    values = parser.feed(view[:n])
                except ProtocolError as exc:
                    logger.warning("control: closing a connection: %s", exc)
                    break
                for value in values:
                    self.dispatch(value)
        finally:
            self.close()

    def dispatch(self, value: Any) -> None:
        rid = value.get("id", -1) if isinstance(value, dict) else -1
        try:
            req = check_request(value)
        except BadRequest as exc:
            self.send(error(rid if isinstance(rid, int) else -1, str(exc), "bad-request"))
            return
        if req.op == "hello":
            self.hello(req)
            return
        if req.op == "cancel":
            target = self.requests.get(req.args["request"])
            if target is not None:
                target.set()
            self.send(answer(req.id, target is not None))
            return
        if req.op in self.server.immediate:  # never waits: run here, no thread hop
            self.execute(req, self.closed)
            return
        cancelled = threading.Event()
        self.requests[req.id] = cancelled
        worker = threading.Thread(target=self.run, args=(req, cancelled),
                                  name=f"control-{req.op}", daemon=True)
        self.workers = [w for w in self.workers if w.is_alive()]
        self.workers.append(worker)
        worker.start()

    def hello(self, req: Request) -> None:
        version = req.args.get("version")
        if version != PROTOCOL_VERSION:
            self.send(error(req.id, f"protocol version {version!r} is not supported (this "
                                    f"server speaks {PROTOCOL_VERSION})", "refused"))
            return
        self.send(answer(req.id, {"version": PROTOCOL_VERSION, "pid": os.getpid(),
                                  "started_at": self.server.started_at,
                                  "uptime": time.time() - self.server.started_at}))

    def run(self, req: Request, cancelled: threading.Event) -> None:
        """A request's own thread: execute it, then forget its cancel flag."""
        try:
            self.execute(req, cancelled)
        finally:
            self.requests.pop(req.id, None)

    def execute(self, req: Request, cancelled: threading.Event) -> None:
        """Run one request and answer it (an error answer if it fails)."""
        op = self.server.operations.get(req.op)
        try:
            if op is None:
                raise OpError(f"{req.op} is not available here", "refused")
            ctx = OpContext(self.server.current_root(), self.server.events(),
                            lambda v: self.send(event(req.id, v)), cancelled)
            result = op(ctx, dict(req.args))
            self.send(answer(req.id, result))
        except OpError as exc:
            self.send(error(req.id, str(exc), exc.kind))
        except Exception as exc:  # an operation's own failure: answer it, keep serving
            logger.exception("control: %s failed", req.op)
            self.send(error(req.id, f"{type(exc).__name__}: {exc}", "failed"))

    def close(self) -> None:
        self.closed.set()
        for cancelled in list(self.requests.values()):
            cancelled.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.server._forget(self)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in [self.thread, *self.workers]:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


class ControlServer:
    """Serves the control protocol on ``path`` for the tree ``root()`` returns."""

    def __init__(self, path: Path | str, root: Callable[[], Supervisor],
                 events: Callable[[], EventLog],
                 extra_operations: Mapping[str, Operation] | None = None) -> None:
        self.path = Path(path)
        self.root = root
        self.events = events
        self.operations = {**base_operations(), **(extra_operations or {})}
        self.immediate = IMMEDIATE - set(extra_operations or ())  # ours, known not to wait
        self.started_at = _STARTED
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._conns: set[_Connection] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._root: Supervisor | None = None

    def current_root(self) -> Supervisor:
        """``root()``, looked up again only once the one found before has stopped."""
        root = self._root
        if root is None or root.actor_stopped.is_set():
            root = self._root = self.root()
        return root

    def start(self) -> None:
        """Listen (mode 0600; a stale socket file is replaced, a live one refused)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        claim_socket_path(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._inode = bound_inode(self.path)  # close() removes the path only while ours
        sock.listen(16)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept, name="control-accept",
                                        daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._closing.is_set():
            try:
                conn_sock, _ = self._sock.accept()
            except OSError:
                break
            conn = _Connection(conn_sock, self)
            with self._lock:
                if self._closing.is_set():
                    conn_sock.close()
                    break
                self._conns.add(conn)
            conn.thread.start()

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._conns.discard(conn)

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving; join every thread within ``timeout`` s."""
        self._closing.set()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close()
        for conn in conns:
            conn.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        remove_if_bound(self.path, self._inode)  # not a later server's socket at the path


class ControlActor(Actor):
    """The tree's ``control`` child: a :class:`ControlServer` for the root of its tree."""

    def __init__(self, path: str, extra_operations: Mapping[str, Operation] | None = None
                 ) -> None:
        super().__init__()
        self.socket_path = path
        self.extra = extra_operations
        self.server: ControlServer | None = None

    def on_start(self) -> None:
        """Listen on the socket."""
        def root() -> Supervisor:
            return service("/", Supervisor)

        events = self.context.extras.get("events") or EventLog()
        self.server = ControlServer(self.socket_path, root, lambda: events, self.extra)
        self.server.start()

    def snapshot(self) -> dict[str, Any]:
        """The socket path, for inspection."""
        return {"socket": self.socket_path}

    def on_stop(self) -> None:
        """Close the socket and every connection."""
        if self.server is not None:
            self.server.close()

    def on_failure(self, *_exc: object) -> None:
        """Close the socket and connections after a crash or a kill (still listening, it would
        keep the next instance from starting)."""
        if self.server is not None:
            self.server.close()

    on_killed = on_failure
