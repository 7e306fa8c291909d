"""The simulated hypervisor served on a unix socket, with a Python API for the simulated host.

`HypervisorServer` owns a `SimHypervisor` model and two daemon threads:
- the loop thread (``sim-hypervisor``) does all socket I/O: it accepts connections on
  ``socket_path`` (mode 0600; every connection is privileged, like dom0's privcmd) and answers
  the requests of `xen.hypervisor.wire`, each in arrival order, exactly once;
- the event thread (``sim-hypervisor-events``) hands the model's events to subscribers.

Thread safety: the model is touched only under one lock, by the loop thread (requests) and by
the Python API (`apply`, `inspect` and the guest hooks), from any thread. Events are queued
under that lock, so subscribers see them in the order the model produced them, whichever thread
caused them. Subscribers run in the event thread, outside the lock: they may call back into the
server. A subscriber that raises is logged and keeps its subscription.

Failure behaviour:
- A request that fails gets an error reply naming the `xen.hypervisor` error class (NoSuchDomain,
  OutOfMemory, InvalidArgument, ...) with its message and errno; malformed arguments are
  InvalidArgument. The connection stays up.
- A connection that breaks the framing (oversize or malformed frame, other protocol version) is
  answered for the requests before the bad frame, told why when it sent another version, then
  closed. A connection whose unread replies exceed ``max_outbuf`` is closed.
- `start` refuses a path where a server already answers (EADDRINUSE) and replaces a stale
  socket file. The socket file appears only once it accepts connections (bound under a
  temporary name, then renamed). `close` stops both threads and joins each within
  ``timeout`` (TimeoutError if one does not end), closes every socket and unlinks the socket
  file; events already queued are delivered first. It is idempotent.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import logging
import os
import queue
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from supervision import claim_socket_path
from xen.hypervisor import (
    DomainSpec,
    HypervisorError,
    InvalidArgument,
    ShutdownReason,
    check_domid,
)
from xen.hypervisor.wire import (
    MAX_FRAME,
    MAX_INFOLIST,
    OPS,
    BadPayload,
    ErrorReply,
    HvServerProtocol,
    RemoteProtocolError,
    Reply,
    Request,
    UnsupportedVersion,
    decode_dataclass,
    decode_handle,
    encode_value,
)
from xen.sim._serving import send_pending
from xen.sim.hypervisor._model import HypervisorEvent, PciChanged, SimHypervisor
from xen.sim.hypervisor._pciops import PCI_OPS, execute_pci

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["HypervisorServer", "Subscription"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_RECV_SIZE = 65536
_DEFAULT_MAX_OUTBUF = 8 * MAX_FRAME
_STOP = object()


@dataclass(eq=False, slots=True)
class _Conn:
    sock: socket.socket
    conn_id: int
    proto: HvServerProtocol
    out: bytearray = field(default_factory=bytearray)


class Subscription:
    """A subscriber's registration; `cancel` stops deliveries (idempotent)."""

    def __init__(self, server: HypervisorServer,
                 callback: Callable[[HypervisorEvent], None]) -> None:
        self._server = server
        self.callback = callback

    def cancel(self) -> None:
        self._server._unsubscribe(self)


class HypervisorServer:
    """A simulated hypervisor on a unix socket; see the module docstring."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        model: SimHypervisor | None = None,
        *,
        memory_mib: int = 8192,
        max_frame: int = MAX_FRAME,
        max_outbuf: int = _DEFAULT_MAX_OUTBUF,
    ) -> None:
        self._path = os.fspath(socket_path)
        self._model = model if model is not None else SimHypervisor(memory_mib * 1024)
        self._max_frame = max_frame
        self._max_outbuf = max_outbuf
        self._lock = threading.Lock()
        self._sel: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._loop: threading.Thread | None = None
        self._dispatcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._conns: dict[int, _Conn] = {}
        self._next_conn = 1
        self._closed = False
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._subscribers: list[Subscription] = []
        self._sub_lock = threading.Lock()
        self._delivery = threading.Condition()
        self._queued = 0
        self._delivered = 0

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def socket_path(self) -> str:
        return self._path

    def start(self) -> None:
        """Bind the socket and start both threads. `OSError` when the socket cannot be made."""
        if self._loop is not None or self._closed:
            raise RuntimeError("a HypervisorServer can be started once")
        self._sel = selectors.DefaultSelector()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            self._listener = _listen(self._path)
        except BaseException:
            self._sel.close()
            self._wake_r.close()
            self._wake_w.close()
            self._closed = True
            raise
        self._sel.register(self._listener, selectors.EVENT_READ, "listener")
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="sim-hypervisor-events", daemon=True)
        self._dispatcher.start()
        self._loop = threading.Thread(target=self._run, name="sim-hypervisor", daemon=True)
        self._loop.start()
        log.info("simulated hypervisor listening on %s", self._path)

    def close(self, timeout: float = 5.0) -> None:
        """Stop and join both threads (bounded), close the sockets, unlink the socket file."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
        stuck = []
        if self._loop is not None:
            self._loop.join(timeout)
            if self._loop.is_alive():
                stuck.append(self._loop.name)
        self._close_sockets()
        self._events.put(_STOP)
        if self._dispatcher is not None:
            self._dispatcher.join(timeout)
            if self._dispatcher.is_alive():
                stuck.append(self._dispatcher.name)
        if stuck:
            raise TimeoutError(f"threads {stuck} did not stop within {timeout} s")

    def __enter__(self) -> HypervisorServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- Python API (any thread) ---------------------------------------------------------------

    def subscribe(self, callback: Callable[[HypervisorEvent], None]) -> Subscription:
        """Call ``callback(event)`` in the event thread for every later model event, in order."""
        sub = Subscription(self, callback)
        with self._sub_lock:
            self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._sub_lock, contextlib.suppress(ValueError):
            self._subscribers.remove(sub)

    def wait_delivered(self, timeout: float = 5.0) -> bool:
        """Wait until every event queued so far has been handed to the subscribers; False on
        timeout."""
        with self._lock:
            target = self._queued
        with self._delivery:
            return self._delivery.wait_for(lambda: self._delivered >= target, timeout)

    def inspect(self, fn: Callable[[SimHypervisor], T]) -> T:
        """Run ``fn(model)`` under the model lock (to read it; change it through `apply`)."""
        with self._lock:
            return fn(self._model)

    def apply(self, fn: Callable[[SimHypervisor], list[HypervisorEvent]]) -> list[HypervisorEvent]:
        """Run the model operation ``fn(model)`` under the lock and publish its events.
        RuntimeError once the server is closed (nobody would deliver them)."""
        if self._closed:
            raise RuntimeError("the simulated hypervisor server is closed")
        return self._mutate(fn)

    def _mutate(
        self, fn: Callable[[SimHypervisor], list[HypervisorEvent]]
    ) -> list[HypervisorEvent]:
        with self._lock:
            events = fn(self._model)
            self._publish(events)
        return events

    def crash(self, domid: int) -> list[HypervisorEvent]:
        """The guest in ``domid`` crashes."""
        return self.apply(lambda m: m.guest_crash(domid))

    def guest_shutdown(self, domid: int, reason: ShutdownReason) -> list[HypervisorEvent]:
        """The guest in ``domid`` shuts itself down with ``reason``."""
        return self.apply(lambda m: m.guest_shutdown(domid, reason))

    def set_busy(self, domid: int, busy: bool) -> list[HypervisorEvent]:
        """The guest is busy (``running``) or idle (``blocked``)."""
        return self.apply(lambda m: m.guest_set_busy(domid, busy))

    def set_memory(self, domid: int, kib: int) -> list[HypervisorEvent]:
        """The guest balloons to ``kib``."""
        return self.apply(lambda m: m.guest_set_memory(domid, kib))

    def hold(self, domid: int) -> list[HypervisorEvent]:
        """A backend keeps the domain's pages mapped (a destroyed domain stays dying)."""
        return self.apply(lambda m: m.hold(domid))

    def unhold(self, domid: int) -> list[HypervisorEvent]:
        """The backend lets go of the domain's pages."""
        return self.apply(lambda m: m.unhold(domid))

    # --- requests ------------------------------------------------------------------------------

    def _answer(self, req: Request) -> Reply | ErrorReply:
        try:
            return Reply(req.req_id, self._execute(req))
        except HypervisorError as exc:
            return ErrorReply(req.req_id, type(exc).__name__, str(exc), exc.errno)
        except BadPayload as exc:
            return ErrorReply(req.req_id, "InvalidArgument", f"{req.op}: {exc}", _errno.EINVAL)

    def _execute(self, req: Request) -> object:
        names = OPS.get(req.op)
        if names is None:
            raise InvalidArgument(f"unknown operation {req.op!r}")
        if sorted(k for k, _ in req.args) != sorted(names):
            got = [k for k, _ in req.args]
            raise InvalidArgument(f"{req.op} takes arguments {names}, got {got}")
        op = req.op
        if op in PCI_OPS:
            with self._lock:
                value = execute_pci(self._model, req)
                if op not in ("pci_state", "sysfs_read", "test_assign_device", "scsi_devices",
                              "scsi_eject"):
                    self._publish([PciChanged(op)])
            return value
        if op == "getinfolist":
            first, count = _int(req, "first"), _int(req, "max_domains")
            return encode_value(self.inspect(
                lambda m: m.getinfolist(first, min(count, MAX_INFOLIST))))
        if op == "find_by_handle":
            handle = decode_handle(req.arg("handle"))
            return encode_value(self.inspect(lambda m: m.find_by_handle(handle)))
        if op in ("version", "physinfo"):
            return encode_value(self.inspect(
                lambda m: m.version() if op == "version" else m.physinfo()))
        if op == "create":
            spec = decode_dataclass(DomainSpec, req.arg("spec"))
            with self._lock:
                domid, events = self._model.create(spec)
                self._publish(events)
            return domid
        domid = _int(req, "domid")
        check_domid(domid)
        if op == "getinfo":
            return encode_value(self.inspect(lambda m: m.getinfo(domid)))
        if op == "get_hvm_param":
            param = _int(req, "param")
            return self.inspect(lambda m: m.get_hvm_param(domid, param))
        if op == "shadow_allocation":
            mib = _int(req, "mib")
            with self._lock:
                held, events = self._model.shadow_allocation(domid, mib)
                self._publish(events)
            return held
        mutate: dict[str, Callable[[SimHypervisor], list[HypervisorEvent]]] = {
            "pause": lambda m: m.pause(domid),
            "unpause": lambda m: m.unpause(domid),
            "destroy": lambda m: m.destroy(domid),
            "shutdown": lambda m: m.shutdown(domid, _int(req, "reason")),
            "setmaxmem": lambda m: m.setmaxmem(domid, _int(req, "kib")),
            "set_handle": lambda m: m.set_handle(domid, decode_handle(req.arg("handle"))),
            "set_target": lambda m: m.set_target(domid, _int(req, "target")),
            "max_vcpus": lambda m: m.max_vcpus(domid, _int(req, "vcpus")),
            "set_hvm_param": lambda m: m.set_hvm_param(
                domid, _int(req, "param"), _int(req, "value")),
        }
        self._mutate(mutate[op])
        return None

    def _publish(self, events: list[HypervisorEvent]) -> None:
        # Called with self._lock held, so the queue order is the model's order.
        for event in events:
            self._queued += 1
            self._events.put(event)

    # --- event thread --------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            try:
                item = self._events.get(timeout=1.0)
            except queue.Empty:
                continue
            if item is _STOP:
                return
            with self._sub_lock:
                subs = list(self._subscribers)
            for sub in subs:
                try:
                    sub.callback(item)
                except Exception:
                    log.exception("event subscriber %r failed on %r", sub.callback, item)
            with self._delivery:
                self._delivered += 1
                self._delivery.notify_all()

    # --- loop thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        sel = self._sel
        assert sel is not None
        try:
            while not self._stop.is_set():
                for key, mask in sel.select(timeout=1.0):
                    if key.data is None:
                        with contextlib.suppress(BlockingIOError):
                            while self._wake_r.recv(4096):
                                pass
                    elif key.data == "listener":
                        self._accept()
                    else:
                        self._service(key.data, mask)
        except Exception:
            log.exception("simulated hypervisor loop failed; stopping")
            self._stop.set()

    def _accept(self) -> None:
        assert self._listener is not None and self._sel is not None
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        conn = _Conn(sock, self._next_conn, HvServerProtocol(self._max_frame))
        self._next_conn += 1
        self._conns[conn.conn_id] = conn
        self._sel.register(sock, selectors.EVENT_READ, conn)
        log.debug("conn %d accepted", conn.conn_id)

    def _service(self, conn: _Conn, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush(conn)
        if not mask & selectors.EVENT_READ or conn.conn_id not in self._conns:
            return
        try:
            data = conn.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._drop(conn, f"receive failed: {exc}")
            return
        if not data:
            self._drop(conn, "peer closed")
            return
        error: RemoteProtocolError | None = None
        try:
            requests = conn.proto.feed(data)
        except RemoteProtocolError as exc:  # the stream is lost
            requests = [m for m in exc.messages if isinstance(m, Request)]
            error = exc
        for req in requests:
            conn.out += conn.proto.send(self._answer(req))
        if isinstance(error, UnsupportedVersion) and error.req_id is not None:
            conn.out += conn.proto.send(ErrorReply(
                error.req_id, "Unavailable", f"protocol version mismatch: {error}", None))
        self._flush(conn)
        if error is not None:
            log.warning("conn %d: %s; disconnecting", conn.conn_id, error)
            self._drop(conn, str(error))

    def _flush(self, conn: _Conn) -> None:
        if conn.conn_id not in self._conns:
            return
        failure = send_pending(conn.sock, conn.out)
        if failure is not None:
            self._drop(conn, f"send failed: {failure}")
            return
        if len(conn.out) > self._max_outbuf:
            self._drop(conn, f"over {self._max_outbuf} bytes of unread replies")
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        assert self._sel is not None
        if self._sel.get_key(conn.sock).events != events:
            self._sel.modify(conn.sock, events, conn)

    def _drop(self, conn: _Conn, reason: str) -> None:
        if self._conns.pop(conn.conn_id, None) is None:
            return
        log.debug("conn %d closed: %s", conn.conn_id, reason)
        assert self._sel is not None
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn.sock)
        conn.sock.close()

    def _close_sockets(self) -> None:
        for conn in list(self._conns.values()):
            conn.sock.close()
        self._conns.clear()
        if self._listener is not None:
            self._listener.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
        if self._sel is not None:
            self._sel.close()
        self._wake_r.close()
        self._wake_w.close()


def _int(req: Request, name: str) -> int:
    value = req.arg(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{req.op}: argument {name} must be an integer, got {value!r:.40}")
    return value


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, d = divmod(n, 36)
        out = digits[d] + out
        if not n:
            return out


def _listen(path: str) -> socket.socket:
    claim_socket_path(path)
    # Bind and listen under a temporary name, then rename: the socket file appears only when
    # it accepts connections, so a client that sees it can connect. The temporary name is no
    # longer than "socket" (a dot and the pid in base 36), so any path that can be bound at all
    # can be bound through it.
    tmp = os.path.join(os.path.dirname(path), f".{_base36(os.getpid())}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(tmp)
        os.chmod(tmp, 0o600)
        sock.listen(64)
        sock.setblocking(False)
        os.replace(tmp, path)
    except BaseException:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return sock
