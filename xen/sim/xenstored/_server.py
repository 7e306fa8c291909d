"""A simulated xenstored: the pure `Store` served over unix sockets.

One owner object, `XenstoredServer`, runs one selector loop thread that does all socket I/O and
is the only thread touching the `Store` (so requests are serialised, as in cxenstored). Other
threads reach the store only through `call`, which runs a function in the loop thread and waits
for it with a timeout; `introduce_domain`, `release_domain` and `fire_special_watch` are built on
it for the simulated hypervisor.

Sockets:
- the main socket (``socket_path``, mode 0600): every connection is privileged dom0, like a dom0
  process on xenstored's socket;
- with ``domain_sockets`` (default on), one socket per introduced domain at
  `domain_socket_path` (``<socket_path>.dom<domid>``), created when the domain is introduced and
  removed, with all its connections, when it is released. A connection there acts as that
  (unprivileged) domain: relative paths resolve under its ``/local/domain/<domid>``, permissions
  and quotas apply. Simulated guests use it in place of a xenbus ring.

Guarantees and failure behaviour:
- Replies echo the request's req_id and tx_id; replies and watch events leave in the order the
  store produced them; requests of one connection are handled in arrival order.
- A connection that announces a payload over 4096 bytes is disconnected (as real xenstored
  does); requests it completed before are still answered first. While over 256 KiB of a
  connection's output is unsent, its further requests are not read (backpressure); if its unsent
  output still grows past ``max_outbuf`` (watch events it does not read), it is disconnected.
- `start` refuses a socket path where a server already answers (EADDRINUSE) or that is not a
  socket (EEXIST), and replaces a stale socket file. `close` stops the loop, joins the thread
  within its timeout (raising TimeoutError if it does not end), closes every socket and unlinks
  the socket files. It is idempotent.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import os
import queue
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from supervision import claim_socket_path
from xen.sim._serving import send_pending
from xen.sim.xenstored._store import Disconnect, Note, Output, Result, Send, Store
from xen.xenstore import (
    Op,
    Packet,
    PacketParser,
    PayloadTooLarge,
    RemoteProtocolError,
    Write,
    XenstoreError,
    watch_event_packet,
)

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["XenstoredServer"]

log = logging.getLogger(__name__)
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}

T = TypeVar("T")
_RECV_SIZE = 65536
_DEFAULT_MAX_OUTBUF = 4 * 1024 * 1024
# Stop reading a client's requests while this much of its output is unsent (backpressure, as
# xenstored does); only watch events caused by others can then grow it up to max_outbuf.
_HIGH_WATER = 256 * 1024


@dataclass(eq=False, slots=True)
class _Client:
    sock: socket.socket
    conn_id: int
    domid: int
    parser: PacketParser = field(default_factory=PacketParser)
    out: bytearray = field(default_factory=bytearray)
    pending: collections.deque[Packet] = field(default_factory=collections.deque)
    error: RemoteProtocolError | None = None


@dataclass(eq=False, slots=True)
class _Listener:
    sock: socket.socket
    path: str
    domid: int


class XenstoredServer:
    """A xenstored on a unix socket; see the module docstring."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        store: Store | None = None,
        domain_sockets: bool = True,
        seed_dom0: bool = False,
        max_outbuf: int = _DEFAULT_MAX_OUTBUF,
    ) -> None:
        self._path = os.fspath(socket_path)
        self._store = store if store is not None else Store()
        self._domain_sockets = domain_sockets
        self._seed_dom0 = seed_dom0
        self._max_outbuf = max_outbuf
        self._sel: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._calls: queue.SimpleQueue[tuple[Callable[[], object], concurrent.futures.Future]] = (
            queue.SimpleQueue()
        )
        self._wake_r, self._wake_w = socket.socketpair()
        self._clients: dict[int, _Client] = {}
        self._backlog: dict[int, _Client] = {}  # clients with requests waiting (backpressure)
        self._listeners: dict[int, _Listener] = {}  # domid -> listener (0: the main socket)
        self._next_conn = 1
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def socket_path(self) -> str:
        return self._path

    def domain_socket_path(self, domid: int) -> str:
        """Where connections act as domain ``domid`` (exists while it is introduced)."""
        return f"{self._path}.dom{domid}"

    def start(self) -> None:
        """Bind the main socket and start the loop thread."""
        if self._thread is not None or self._closed:
            raise RuntimeError("a XenstoredServer can be started once")
        if self._seed_dom0:
            self._seed()
        self._sel = selectors.DefaultSelector()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            self._listen(0, self._path)
        except BaseException:
            self._close_sockets()
            raise
        self._thread = threading.Thread(target=self._run, name="sim-xenstored", daemon=True)
        self._thread.start()
        log.info("xenstored listening on %s", self._path)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop, join it (bounded), close all sockets and unlink socket files."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._close_sockets()
        if thread is not None and thread.is_alive():
            raise TimeoutError(f"xenstored loop thread did not stop within {timeout} s")
        self._fail_pending_calls()

    def __enter__(self) -> XenstoredServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- thread-safe API -----------------------------------------------------------------------

    def call(self, fn: Callable[[Store], T], timeout: float = 5.0) -> T:
        """Run ``fn(store)`` in the loop thread and return its result (or raise its error).

        Raises TimeoutError if the loop does not get to it within ``timeout``, RuntimeError if
        the server is not running. From the loop thread itself ``fn`` runs at once."""
        if self._thread is None or self._closed or not self._thread.is_alive():
            raise RuntimeError("the xenstored server is not running")
        if threading.current_thread() is self._thread:
            return fn(self._store)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._calls.put((lambda: fn(self._store), future))
        self._wake()
        return future.result(timeout)

    def introduce_domain(self, domid: int, mfn: int = 0, port: int = 1) -> None:
        """INTRODUCE on the hypervisor's behalf; fires @introduceDomain for a new domain."""
        self.call(lambda store: self._deliver_result(store.introduce_domain(domid, mfn, port)))

    def release_domain(self, domid: int) -> None:
        """RELEASE: drops the domain's connections and socket, fires @releaseDomain.

        Raises `XenstoreError` (ENOENT) if the domain is not introduced."""
        self.call(lambda store: self._deliver_result(store.release_domain(domid)))

    def fire_special_watch(self, name: str) -> None:
        """Fire ``@releaseDomain`` / ``@introduceDomain`` without a domain change (a domain
        shut down or crashed: what VIRQ_DOM_EXC makes cxenstored do)."""
        self.call(lambda store: self._deliver_result(store.fire_special(name)))

    # --- loop thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        sel = self._sel
        assert sel is not None
        try:
            while not self._stop.is_set():
                runnable = [c for c in self._backlog.values() if len(c.out) < _HIGH_WATER]
                for client in runnable:
                    self._process_pending(client)
                for key, mask in sel.select(timeout=0 if runnable else 1.0):
                    if key.fileobj is self._wake_r:
                        self._drain_wake()
                    elif isinstance(key.data, _Listener):
                        self._accept(key.data)
                    elif isinstance(key.data, _Client):
                        self._service(key.data, mask)
                self._run_calls()
        except Exception:
            log.exception("xenstored loop failed; stopping")
            self._stop.set()

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    def _run_calls(self) -> None:
        while True:
            try:
                fn, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller, which re-raises it
                future.set_exception(exc)

    def _accept(self, listener: _Listener) -> None:
        try:
            sock, _ = listener.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn_id = self._next_conn
        self._next_conn += 1
        try:
            self._store.connect(conn_id, listener.domid)
        except XenstoreError:
            sock.close()
            return
        sock.setblocking(False)
        client = _Client(sock, conn_id, listener.domid)
        self._clients[conn_id] = client
        assert self._sel is not None
        self._sel.register(sock, selectors.EVENT_READ, client)
        log.debug("conn %d accepted (domain %d)", conn_id, listener.domid)

    def _service(self, client: _Client, mask: int) -> None:
        if client.conn_id not in self._clients:
            return  # dropped earlier in this loop iteration (e.g. its domain was released)
        if mask & selectors.EVENT_WRITE:
            self._flush(client)
        if client.conn_id not in self._clients:
            return
        if mask & selectors.EVENT_READ and not client.pending and not self._receive(client):
            return
        self._process_pending(client)

    def _receive(self, client: _Client) -> bool:
        """Read and parse what the client sent; False if it is gone."""
        try:
            data = client.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError as exc:
            self._drop(client, f"receive failed: {exc}")
            return False
        if not data:
            self._drop(client, "peer closed")
            return False
        try:
            client.pending.extend(client.parser.feed(data))
        except RemoteProtocolError as exc:
            if isinstance(exc, PayloadTooLarge):
                client.pending.extend(exc.packets)
            client.error = exc
        return True

    def _process_pending(self, client: _Client) -> None:
        # Requests wait while the client's unsent output is over the high-water mark, so that
        # one read of pipelined requests cannot produce unbounded output. The replies and events
        # of one read's requests leave together, one send per connection (not one per reply).
        if client.conn_id not in self._clients:
            return
        touched: dict[int, _Client] = {}
        try:
            while client.pending and (len(client.out) < _HIGH_WATER
                                      or client.error is not None):
                packet = client.pending.popleft()
                outputs = self._store.process(client.conn_id, packet)
                if packet.op in (Op.INTRODUCE, Op.RELEASE):
                    self._sync_domain_sockets()  # before the reply: the socket exists once OK
                self._queue(outputs, touched)
                if client.conn_id not in self._clients:
                    return
        finally:
            for other in touched.values():
                self._flush(other)
        if client.pending:
            self._backlog[client.conn_id] = client
        else:
            self._backlog.pop(client.conn_id, None)
        if client.error is not None and not client.pending:
            log.warning("conn %d: %s; disconnecting", client.conn_id, client.error)
            self._flush(client)
            self._drop(client, str(client.error))

    def _deliver(self, outputs: list[Output]) -> None:
        touched: dict[int, _Client] = {}
        self._queue(outputs, touched)
        for client in touched.values():
            self._flush(client)

    def _queue(self, outputs: list[Output], touched: dict[int, _Client]) -> None:
        """Append ``outputs`` to their connections' output, adding each to ``touched`` (the
        caller flushes them); a disconnect is carried out at once, after a last flush."""
        for out in outputs:
            if isinstance(out, Note):
                log.log(_LEVELS.get(out.level, logging.INFO), "%s", out.text)
                continue
            if isinstance(out, Disconnect):
                client = self._clients.get(out.conn_id)
                if client is not None:
                    self._flush(client)
                    self._drop(client, out.reason, forget=False)
                continue
            client = self._clients.get(out.conn_id)
            if client is None:
                continue
            client.out += out.packet.encode()
            touched[client.conn_id] = client

    def _deliver_result(self, result: Result) -> None:
        outputs: list[Output] = [
            Send(ev.conn_id, watch_event_packet(ev.path, ev.token)) for ev in result.events
        ]
        outputs += [Disconnect(c, "its domain was released") for c in result.disconnect]
        self._sync_domain_sockets()
        self._deliver(outputs)

    def _flush(self, client: _Client) -> None:
        if client.conn_id not in self._clients:
            return
        failure = send_pending(client.sock, client.out)
        if failure is not None:
            self._drop(client, f"send failed: {failure}")
            return
        if len(client.out) > self._max_outbuf:
            self._drop(client, f"over {self._max_outbuf} bytes of unread output")
            return
        reading = selectors.EVENT_READ if len(client.out) < _HIGH_WATER else 0
        events = reading | (selectors.EVENT_WRITE if client.out else 0)
        assert self._sel is not None
        if self._sel.get_key(client.sock).events != events:
            self._sel.modify(client.sock, events, client)

    def _drop(self, client: _Client, reason: str, *, forget: bool = True) -> None:
        self._backlog.pop(client.conn_id, None)
        if self._clients.pop(client.conn_id, None) is None:
            return
        log.debug("conn %d closed: %s", client.conn_id, reason)
        if forget:
            self._store.disconnect(client.conn_id)
        assert self._sel is not None
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(client.sock)
        client.sock.close()

    # --- sockets -------------------------------------------------------------------------------

    def _listen(self, domid: int, path: str) -> None:
        claim_socket_path(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        listener = _Listener(sock, path, domid)
        self._listeners[domid] = listener
        assert self._sel is not None
        self._sel.register(sock, selectors.EVENT_READ, listener)

    def _sync_domain_sockets(self) -> None:
        if not self._domain_sockets:
            return
        introduced = set(self._store.domains())
        for domid in [d for d in self._listeners if d and d not in introduced]:
            self._unlisten(self._listeners.pop(domid))
        for domid in introduced - set(self._listeners):
            try:
                self._listen(domid, self.domain_socket_path(domid))
            except OSError as exc:
                log.error("cannot open the socket of domain %d: %s", domid, exc)

    def _unlisten(self, listener: _Listener) -> None:
        if self._sel is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(listener.sock)
        listener.sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(listener.path)

    def _close_sockets(self) -> None:
        for client in list(self._clients.values()):
            client.sock.close()
        self._clients.clear()
        for listener in list(self._listeners.values()):
            self._unlisten(listener)
        self._listeners.clear()
        if self._sel is not None:
            self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _fail_pending_calls(self) -> None:
        while True:
            try:
                _, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(RuntimeError("the xenstored server was closed"))

    def _seed(self) -> None:
        # What xen-init-dom0 writes on a real host, so that dom0 has a home.
        for key, value in (("domid", b"0"), ("name", b"Domain-0")):
            self._store.execute(0, Write(f"/local/domain/0/{key}", value))
