"""`XenstoreClient`: a blocking, thread-safe xenstore client that survives xenstored restarts.

One client holds one connection (`xen.xenstore._connection.Connection`) shared by every thread:
requests are matched to replies by req_id, so any number of threads may call at once. The node
operations come from `NodeOps` (read, write, mkdir, rm, directory, exists, get/set_perms); this
module adds the domain requests, watches, transactions, waiting and the connection's life.

Guarantees and failure behaviour:
- Every request has a timeout (``timeout``, default 5 s, or per call through `request`): past
  it, `XenstoreTimeout`. Server errors raise `XenstoreError` subclasses (`NoSuchNode`,
  `PermissionDenied`, ...; see `xen.xenstore._clientcore`).
- When the connection drops, every request in flight fails at once with `ConnectionLost`
  (it may or may not have been applied), and a reconnect thread makes a new connection,
  retrying within the ``reconnect`` `RetryPolicy` (count, time, backoff). Requests made
  meanwhile wait for it, within their own timeout. On the new connection every registered watch
  is registered again before any request goes through; xenstored fires each watch once at
  registration, which tells every watcher to read its state again. Transactions open on the old
  connection are gone (their next request raises `ConnectionLost`).
- When the retry bound is exhausted the client is FAILED: ``on_failed(error)`` is called once
  (from the reconnect thread) and every request raises `XenstoreUnavailable`. The owner should
  close it and make a new one (`XenstoreActor` crashes, and its supervisor restarts it).
- Watches: `watch(path, token, target)` delivers `WatchFired(path, token)` to an actor (name or
  ref) or a callback through `xen.xenstore._dispatch.WatchDispatcher` (coalesced while not
  taken). A watch may be added before `connect` or while reconnecting: it is registered as soon
  as there is a connection. Several registrations may share a token: an event goes to those whose
  path is the event's path or an ancestor of it (to all of them if none is).
- `close` stops every thread this client started (reader, reconnect, dispatcher) within its
  timeout, fails what is in flight with `ClientClosed`, and is idempotent.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TypeVar, overload

from xen.xenstore._clientcore import (
    ClientClosed,
    ClientState,
    Close,
    Connected,
    ConnectionLost,
    GaveUp,
    Lost,
    NodeExists,
    NoSuchNode,
    RetryPolicy,
    XenstoreConnectionError,
    XenstoreTimeout,
    XenstoreUnavailable,
    next_state,
)
from xen.xenstore._conditions import Condition, next_wait
from xen.xenstore._connection import Connection
from xen.xenstore._dispatch import WatchDispatcher, WatchFired, WatchTarget
from xen.xenstore._ops import (
    NodeOps,
    Transaction,
    check_path,
    check_reply,
    reply_or_error,
    run_transaction,
)
from xen.xenstore._requests import (
    GetDomainPath,
    Introduce,
    IsDomainIntroduced,
    Release,
    Request,
    Resume,
    SetTarget,
    Unwatch,
    Watch,
    decode_reply,
)
from xen.xenstore._transport import open_transport
from xen.xenstore._wire import Op, RemoteProtocolError, XenstoreError

__all__ = ["DEFAULT_RECONNECT", "DEFAULT_TRANSACTION_RETRY", "XenstoreClient"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_RECONNECT = RetryPolicy(attempts=20, max_time=30.0, initial=0.05, maximum=2.0, jitter=0.2)
DEFAULT_TRANSACTION_RETRY = RetryPolicy(
    attempts=32, max_time=10.0, initial=0.002, maximum=0.2, jitter=0.5
)
_S = ClientState


def _under(event_path: str, watch_path: str) -> bool:
    if event_path == watch_path:
        return True
    prefix = watch_path if watch_path.endswith("/") else watch_path + "/"
    return event_path.startswith(prefix)


class XenstoreClient(NodeOps):
    """See the module docstring. ``path``: the xenstored socket (default ``$XENSTORED_PATH``
    or ``/var/run/xenstored/socket``), or with ``xenbus=True`` the xenbus device."""

    def __init__(
        self,
        path: str | None = None,
        *,
        xenbus: bool = False,
        timeout: float = 5.0,
        reconnect: RetryPolicy = DEFAULT_RECONNECT,
        transaction_retry: RetryPolicy = DEFAULT_TRANSACTION_RETRY,
        on_failed: Callable[[XenstoreUnavailable], None] | None = None,
        name: str = "xenstore",
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self._path = path
        self._xenbus = xenbus
        self._timeout = timeout
        self._reconnect_policy = reconnect
        self._tx_policy = transaction_retry
        self._on_failed = on_failed
        self._name = name
        self._cond = threading.Condition()
        self._state = _S.IDLE
        self._conn: Connection | None = None
        self._establishing: Connection | None = None
        self._failure: XenstoreUnavailable | None = None
        self._closing = threading.Event()
        self._reconnector: threading.Thread | None = None
        # token -> watch path -> target; changed under _watch_lock and _cond, read under _cond.
        self._watches: dict[str, dict[str, WatchTarget]] = {}
        self._watch_lock = threading.Lock()
        self._wait_ids = itertools.count(1)
        self._dispatcher = WatchDispatcher(self._routes, name=name)

    def __repr__(self) -> str:
        return f"XenstoreClient({self._path or 'default path'}, {self._state.value})"

    # ------------------------------------------------------------------ life

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def timeout(self) -> float:
        return self._timeout

    def counters(self) -> tuple[int, int]:
        """(requests sent, round trips) on the current connection (0, 0 without one)."""
        conn = self._conn
        return (conn.requests, conn.round_trips) if conn is not None else (0, 0)

    def fileno(self) -> int:
        """The descriptor of the current connection, -1 if there is none."""
        conn = self._conn
        return conn.fileno() if conn is not None else -1

    def connect(self) -> XenstoreClient:
        """Make the first connection, retrying within the ``reconnect`` policy; raises
        `XenstoreUnavailable` (the client stays unconnected and threadless) if it cannot."""
        with self._cond:
            if self._state is not _S.IDLE:
                raise XenstoreConnectionError(f"connect() on a {self._state.value} client")
        self._dispatcher = WatchDispatcher(self._routes, name=self._name).start()
        error = self._connect_loop()
        if error is not None:
            self._dispatcher.stop()
            raise error
        return self

    def __enter__(self) -> XenstoreClient:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self, timeout: float = 2.0) -> None:
        """Stop every thread of this client and fail what is in flight (`ClientClosed`)."""
        with self._cond:
            self._state = next_state(self._state, Close())
            conns = [c for c in (self._conn, self._establishing) if c is not None]
            self._conn = None
            self._closing.set()
            self._cond.notify_all()
        for conn in conns:
            conn.close(timeout)
        thread = self._reconnector
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._dispatcher.stop(timeout)

    def _connect_loop(self) -> XenstoreUnavailable | None:
        """Attempt connections within the policy; None once connected (or closed)."""
        began, attempt = time.monotonic(), 0
        last: Exception | None = None
        while True:
            attempt += 1
            try:
                self._establish()
                return None
            except ClientClosed:
                return None
            except (XenstoreConnectionError, XenstoreTimeout, RemoteProtocolError) as exc:
                last = exc
            delay = self._reconnect_policy.next_delay(attempt, time.monotonic() - began)
            if delay is None:
                break
            logger.debug("connect attempt %d failed (%s); again in %.2f s", attempt, last, delay)
            if self._closing.wait(delay):
                return None
        where = self._path or "the default path"
        return XenstoreUnavailable(
            f"no connection to xenstored at {where} after {attempt} attempts in"
            f" {time.monotonic() - began:.2f} s: {last}"
        )

    def _establish(self) -> None:
        """One attempt: connect, register every watch, then publish the connection."""
        transport = open_transport(self._path, xenbus=self._xenbus)
        try:
            conn = Connection(transport, on_event=self._dispatcher.post, on_lost=self._on_lost,
                              name=self._name)
        except OSError as exc:  # e.g. EMFILE making the wake pipe
            transport.close()
            raise XenstoreUnavailable(f"cannot set up a xenstore connection: {exc}") from None
        with self._cond:
            if self._closing.is_set():
                conn.close()
                raise ClientClosed("the client was closed")
            self._establishing = conn
        conn.start()
        try:
            with self._watch_lock:
                self._register_all(conn)
                with self._cond:
                    self._establishing = None
                    if not conn.alive:  # died before it was ours: its on_lost was ignored
                        raise ConnectionLost(f"connection to {conn.path} dropped at once")
                    self._state = next_state(self._state, Connected())
                    if self._state is _S.CLOSED:
                        raise ClientClosed("the client was closed")
                    self._conn = conn
                    self._cond.notify_all()
        except BaseException:
            with self._cond:
                self._establishing = None
            conn.close()
            raise
        logger.info("connected to xenstored at %s (fd %d)", conn.path, conn.fileno())

    def _register_all(self, conn: Connection) -> None:
        with self._cond:
            watches = [(p, t) for t, paths in self._watches.items() for p in paths]
        deadline = time.monotonic() + self._timeout
        for path, token in watches:
            request = Watch(path, token.encode("utf-8", "surrogateescape"))
            try:
                check_reply(request, conn.request(request, 0, deadline))
            except NodeExists:
                pass
            except XenstoreError as exc:
                logger.error("watch on %r (token %r) refused on reconnect, dropped: %s",
                             path, token, exc)
                with self._cond:
                    self._watches.get(token, {}).pop(path, None)

    def _on_lost(self, conn: Connection, error: Exception) -> None:
        with self._cond:
            if conn is not self._conn:
                return
            self._state = next_state(self._state, Lost())
            self._cond.notify_all()
            if self._state is not _S.RECONNECTING:
                return
            thread = threading.Thread(target=self._reconnect, args=(conn,),
                                      name=f"{self._name}-reconnect", daemon=True)
            self._reconnector = thread
            thread.start()

    def _reconnect(self, old: Connection) -> None:
        try:
            old.close()
        except XenstoreConnectionError as exc:
            logger.warning("closing the lost xenstore connection: %s", exc)
        try:
            error = self._connect_loop()
        except Exception as exc:  # a bug must not leave the client reconnecting forever
            logger.exception("xenstore reconnect failed unexpectedly")
            error = XenstoreUnavailable(f"reconnecting failed: {exc!r}")
        if error is None:
            return
        with self._cond:
            self._state = next_state(self._state, GaveUp())
            self._failure = error
            self._cond.notify_all()
            if self._state is not _S.FAILED:
                return
        logger.error("xenstore client gave up: %s", error)
        if self._on_failed is not None:
            try:
                self._on_failed(error)
            except Exception:
                logger.exception("xenstore on_failed callback raised")

    def _unusable(self) -> XenstoreConnectionError:
        if self._state is _S.FAILED:
            return XenstoreUnavailable(str(self._failure))
        if self._state is _S.IDLE:
            return ClientClosed("the xenstore client is not connected (call connect())")
        return ClientClosed("the xenstore client is closed")

    def _live(self, deadline: float) -> Connection:
        """The current connection, waiting for a reconnection until ``deadline``."""
        if self._state is _S.CONNECTED and (conn := self._conn) is not None:
            return conn  # an unlocked first look: the same race as a look under the lock
        with self._cond:
            while True:
                if self._state is _S.CONNECTED and self._conn is not None:
                    return self._conn
                if self._state is not _S.RECONNECTING:
                    raise self._unusable()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise XenstoreTimeout("no connection to xenstored in time (reconnecting)")
                self._cond.wait(remaining)

    # ------------------------------------------------------------------ requests

    def request(self, request: Request, *, timeout: float | None = None) -> bytes:
        """Send any typed request outside a transaction; the reply payload."""
        deadline = time.monotonic() + (self._timeout if timeout is None else timeout)
        return check_reply(request, self._live(deadline).request(request, 0, deadline))

    def _call(self, request: Request) -> bytes:  # `request` with the client's timeout
        deadline = time.monotonic() + self._timeout
        packet = self._live(deadline).request(request, 0, deadline)
        return packet.payload if packet.op == request.OP else check_reply(request, packet)

    def _call_many(self, requests: Sequence[Request]) -> list[bytes | XenstoreError]:
        deadline = time.monotonic() + self._timeout
        packets = self._live(deadline).request_many(requests, 0, deadline)
        return [reply_or_error(r, p) for r, p in zip(requests, packets, strict=True)]

    def introduce(self, domid: int, mfn: int, port: int) -> None:
        """Tell xenstored to serve domain ``domid`` (fires ``@introduceDomain``)."""
        self.request(Introduce(domid, mfn, port))

    def release(self, domid: int) -> None:
        """Tell xenstored to forget domain ``domid`` (fires ``@releaseDomain``)."""
        self.request(Release(domid))

    def resume(self, domid: int) -> None:
        self.request(Resume(domid))

    def set_target(self, domid: int, target: int) -> None:
        self.request(SetTarget(domid, target))

    def get_domain_path(self, domid: int) -> str:
        path = decode_reply(Op.GET_DOMAIN_PATH, self.request(GetDomainPath(domid)))
        assert isinstance(path, str)
        return path

    def is_domain_introduced(self, domid: int) -> bool:
        return bool(decode_reply(Op.IS_DOMAIN_INTRODUCED,
                                 self.request(IsDomainIntroduced(domid))))

    # ------------------------------------------------------------------ transactions

    @overload
    def transaction(self) -> Transaction: ...

    @overload
    def transaction(
        self, body: Callable[[Transaction], T], *, policy: RetryPolicy | None = None
    ) -> T: ...

    def transaction(
        self,
        body: Callable[[Transaction], T] | None = None,
        *,
        policy: RetryPolicy | None = None,
    ) -> T | Transaction:
        """Without ``body``: start one transaction (a context manager: commit at the end, abort
        on an exception, `TransactionConflict` on EAGAIN, no retry). With ``body``: run
        ``body(t)`` until a commit succeeds, retrying the whole body on EAGAIN within
        ``policy`` (default: the client's ``transaction_retry``); returns what it returned."""
        if body is None:
            return self._start_transaction()
        return run_transaction(self._start_transaction, body, policy or self._tx_policy,
                               self._closing.wait)

    def _start_transaction(self) -> Transaction:
        conn = self._live(time.monotonic() + self._timeout)
        return Transaction.start_on(conn.request_many, self._timeout)

    # ------------------------------------------------------------------ watches

    def watch(self, path: str, token: str, target: WatchTarget) -> None:
        """Deliver `WatchFired` to ``target`` whenever ``path`` or a node under it changes
        (and once now). `NodeExists` if this client already watches ``path`` with ``token``."""
        check_path(path, watch=True)
        raw = token.encode("utf-8", "surrogateescape")
        if not raw or b"\0" in raw:
            raise ValueError(f"a watch token is a non-empty string without NUL, got {token!r}")
        with self._watch_lock:
            with self._cond:
                if path in self._watches.get(token, {}):
                    raise NodeExists("EEXIST", f"already watching {path!r} with token {token!r}")
                if self._state in (_S.CLOSED, _S.FAILED):
                    raise self._unusable()
                self._watches.setdefault(token, {})[path] = target
                conn = self._conn if self._state is _S.CONNECTED else None
            if conn is None:
                return  # registered with the next connection
            try:
                deadline = time.monotonic() + self._timeout
                check_reply(Watch(path, raw), conn.request(Watch(path, raw), 0, deadline))
            except ConnectionLost:
                return  # the reconnect registers it
            except BaseException:
                self._forget(path, token)
                raise

    def unwatch(self, path: str, token: str) -> None:
        """Stop delivering events for that watch (idempotent). An event already queued may
        still arrive."""
        with self._watch_lock:
            target = self._forget(path, token)
            conn = self._conn if self._state is _S.CONNECTED else None
            if target is None or conn is None:
                return
            raw = token.encode("utf-8", "surrogateescape")
            with contextlib.suppress(ConnectionLost, NoSuchNode, ClientClosed):
                deadline = time.monotonic() + self._timeout
                check_reply(Unwatch(path, raw), conn.request(Unwatch(path, raw), 0, deadline))

    def watches(self) -> list[tuple[str, str]]:
        """The registered ``(path, token)`` pairs."""
        with self._cond:
            return [(p, t) for t, paths in self._watches.items() for p in paths]

    def _forget(self, path: str, token: str) -> WatchTarget | None:
        with self._cond:
            paths = self._watches.get(token, {})
            target = paths.pop(path, None)
            if not paths:
                self._watches.pop(token, None)
            return target

    def _routes(self, path: str | None, token: str) -> list[tuple[WatchFired, WatchTarget]]:
        with self._cond:
            regs = list(self._watches.get(token, {}).items())
        if path is None:
            return [(WatchFired(p, token), target) for p, target in regs]
        event = WatchFired(path, token)
        chosen = [target for p, target in regs if _under(path, p)] or [t for _, t in regs]
        return [(event, target) for target in chosen]

    # ------------------------------------------------------------------ waiting

    def wait_until(self, condition: Condition, timeout: float = 120.0, poll: float = 5.0
                   ) -> bool:
        """Wait until ``condition`` holds: True, or False after ``timeout`` seconds.

        Watches every path of the condition (a private token), evaluates it with fresh reads
        at once, after each event, at least every ``poll`` seconds and once more at the end;
        unwatches before returning. Request errors (other than a missing node) propagate."""
        token = f"wait-{next(self._wait_ids)}"
        changed = threading.Event()
        deadline = time.monotonic() + timeout
        watched: list[str] = []
        try:
            for path in condition.paths():
                self.watch(path, token, lambda _event: changed.set())
                watched.append(path)
            while True:
                changed.clear()
                if condition.holds(self.try_read):
                    return True
                wait = next_wait(time.monotonic(), deadline, poll)
                if wait <= 0:
                    return False
                changed.wait(wait)
        finally:
            for path in watched:
                try:
                    self.unwatch(path, token)
                except (XenstoreError, XenstoreConnectionError, XenstoreTimeout) as exc:
                    logger.info("unwatch of %r after a wait failed: %s", path, exc)
