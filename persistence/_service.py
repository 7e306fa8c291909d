"""The db service actor: ``com.citrix.xenclient.db`` at ``/`` on the bus, served by the store.

Semantics (docs/dbd.md):

* **Bus name** ``com.citrix.xenclient.db``, requested with DoNotQueue; owned by another
  connection -> the start fails (the original exited), and the supervisor retries with backoff.
* **Object** ``/`` with interface ``com.citrix.xenclient.db`` (``rpc/idl/db.xml``), plus
  ``Introspect``. Error names as the original: a body of the wrong signature ->
  ``org.freedesktop.DBus.Error.InvalidSignature``; an unknown method, or an interface the object
  does not have -> ``org.freedesktop.DBus.Error.UnknownMethod``; a refused request
  (``DbError``: bad path, limits, binary node, malformed JSON, unidentified caller) ->
  ``org.freedesktop.DBus.Error.Failed`` with the error's text. A call to another object path
  gets ``UnknownObject`` (the original sent no reply at all, leaving the caller to time out).
* **Where calls run.** Handlers run in the *store's* mailbox (one hop from the bus reader
  thread: the store is the only writer of the tree), in arrival order. Reads are answered from
  memory; a read of an identified caller that arrives when every call this service passed to
  the store is done is answered in the reader thread, under the store's tree lock (no hop; it
  sees every earlier call's change, as in the mailbox). ``write``, ``inject`` and ``rm`` are
  answered from the group committer's callback once their log record is durable (the handler
  returns ``DEFERRED``), so the store never waits for an fsync.
* **Caller identity and domstore**. Each sender is identified once, by this
  actor (identification may need a bus round trip, which must not happen in the reader thread
  nor stall the store): a name registered in the :class:`~rpc.dbus.CallerIdentity` registry
  (by a proxy) gets its domid and VM uuid; with ``identity_service=True`` (standalone dbd) the
  registry of the bus's identity service (``org.openxt.toolstack.identity``) is asked first
  when the name is not registered locally; an unregistered connection is dom0 only if its uid
  is 0. dom0 addresses the whole tree; any other domain is confined to ``/dom-store/<uuid>/``;
  a domain without a uuid, or a connection that is neither registered nor root, is refused
  (``Failed`` "failed to resolve domid N to uuid" / "failed to get the domid given message
  sender (...)"). Calls from a sender are queued behind its identification, so they keep their
  order. Identities are forgotten when their connection leaves the bus.
* **Change notifications** (not in the original; ``rpc/idl/toolstack_db.xml``). After every
  mutation that changed the tree (from the bus or in-process) and after a reload from disk, in
  the store's thread and so before the writer is answered, the service broadcasts
  ``org.openxt.toolstack.DbChanges.changed(s path, t seq)`` from ``/``: ``path`` is the
  written, injected or removed path (``/`` after a reload), ``seq`` counts this connection's
  signals from 1. A client that copies parts of the tree (xenmgr) drops its copies on them.
* **Failure.** When the bus goes away the service crashes (``BusService``) and is restarted by
  the supervisor; the store and its tree are untouched.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors import ActorDeadError, NoSuchActor, actor_of, handles, resolve
from persistence._flusher import sibling
from persistence._limits import Caller, DbError, confine_path
from persistence._messages import WatchChanges
from persistence._store import DbStore, current_store
from rpc.dbus import (
    ACCESS_DENIED,
    DEFERRED,
    FAILED,
    IDENTITY_INTERFACE,
    IDENTITY_NAME,
    IDENTITY_PATH,
    INVALID_SIGNATURE,
    NAME_HAS_NO_OWNER,
    SERVICE_UNKNOWN,
    UNKNOWN_METHOD,
    BusService,
    Call,
    CallerIdentity,
    DBusError,
    DBusJob,
    Dispatcher,
    RemoteObject,
    caller_identity,
    dbus_method,
    refuse_unavailable,
)
from rpc.idl import package_interface

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from concurrent.futures import Future

    from jeepney.low_level import Message

    from rpc.dbus import BusConnection

__all__ = ["CHANGES_INTERFACE", "DB_INTERFACE", "DB_PATH", "DB_SERVICE", "CallerCache",
           "DbObject", "DbService"]

log = logging.getLogger(__name__)

DB_SERVICE = "com.citrix.xenclient.db"
DB_INTERFACE = "com.citrix.xenclient.db"
DB_PATH = "/"
CHANGES_INTERFACE = "org.openxt.toolstack.DbChanges"
_UNIDENTIFIED = "failed to get the domid given message sender"
_NOC_RULE = ("type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
             "member='NameOwnerChanged'")


class CallerCache:
    """Unique bus name -> :class:`Caller` (or the refusal), resolved once per connection.

    ``route`` (reader thread) says whether a call may go straight to the store: only when the
    sender is identified and none of its earlier calls is still waiting for identification.
    """

    def __init__(self, registry: CallerIdentity, remote: bool = False,
                 timeout: float = 5.0) -> None:
        self.registry = registry
        self.remote = remote
        self.timeout = timeout
        self._lock = threading.Lock()
        self._known: dict[str, Caller | DbError] = {}
        self._pending: dict[str, int] = {}

    def route(self, sender: str) -> bool:
        """True: straight to the store; False: through identification (counted as pending).

        Only the bus reader thread calls this, so the lock-free first test is safe: a sender
        leaves ``_pending`` only after its queued calls were passed to the store.
        """
        if sender in self._known and sender not in self._pending:
            return True
        with self._lock:
            if sender in self._known and not self._pending.get(sender):
                return True
            self._pending[sender] = self._pending.get(sender, 0) + 1
            return False

    def done(self, sender: str) -> None:
        """A call that went through identification has been passed on (or answered)."""
        with self._lock:
            left = self._pending.get(sender, 0) - 1
            if left > 0:
                self._pending[sender] = left
            else:
                self._pending.pop(sender, None)

    def caller_of(self, sender: str) -> Caller:
        """The identified caller; raises the refusal (:class:`DbError`)."""
        found = self._known.get(sender)
        if isinstance(found, Caller):
            return found
        raise found if found is not None else DbError(_UNIDENTIFIED)

    def forget(self, sender: str) -> None:
        """The connection left the bus."""
        with self._lock:
            self._known.pop(sender, None)

    def __len__(self) -> int:
        return len(self._known)

    def resolve(self, conn: BusConnection, sender: str) -> None:
        """Identify ``sender`` (may call the bus). Raises :class:`DBusError` on a transient
        failure (nothing is remembered then)."""
        if sender in self._known:
            return
        found: Caller | DbError | None = None
        ident = self.registry.lookup(sender)
        try:
            if ident is None and self.remote:
                found = self._ask_service(conn, sender)
            if found is None:
                if ident is None:
                    ident = self.registry.identify(conn, sender, self.timeout)
                found = _caller(ident.domid, ident.uuid)
        except DBusError as exc:
            if exc.name != ACCESS_DENIED:
                raise
            found = DbError(f"{_UNIDENTIFIED} ({exc.message or exc.name})")
        self._remember(sender, found)

    def _remember(self, sender: str, found: Caller | DbError) -> None:
        with self._lock:
            self._known[sender] = found

    def _ask_service(self, conn: BusConnection, sender: str) -> Caller | None:
        """The bus identity service's answer; None when no such service is on the bus."""
        remote = RemoteObject(conn, IDENTITY_NAME, IDENTITY_PATH, timeout=self.timeout)
        try:
            domid, uuid = remote.call(IDENTITY_INTERFACE, "get_identity", "s", sender)
        except DBusError as exc:
            if exc.name in (SERVICE_UNKNOWN, NAME_HAS_NO_OWNER):
                return None
            raise
        return _caller(int(domid), str(uuid))


def _caller(domid: int, uuid: str) -> Caller:
    return Caller(domid, uuid or None)


def _when_durable(call: Call, future: Future[object]) -> Any:
    """Answer ``call`` when ``future`` completes (in the committer's thread)."""

    def answer(done: Future[object]) -> None:
        try:
            exc = done.exception()
            if exc is None:
                call.reply(None)
            else:
                call.fail(exc)
        except Exception:  # the connection closed meanwhile: nobody to answer
            log.debug("could not answer %s from %s", call.member, call.sender, exc_info=True)

    future.add_done_callback(answer)
    return DEFERRED


class DbObject:
    """The handlers of ``com.citrix.xenclient.db`` (run in the store's thread)."""

    def __init__(self, callers: CallerCache) -> None:
        self.callers = callers

    def _path(self, call: Call, path: str) -> str:
        return confine_path(path, self.callers.caller_of(call.sender))

    @dbus_method(DB_INTERFACE, "read")
    def read(self, call: Call, path: str) -> str:
        return current_store().tree.read(self._path(call, path))

    @dbus_method(DB_INTERFACE, "read_binary")
    def read_binary(self, call: Call, path: str) -> bytes:
        return current_store().tree.read_binary(self._path(call, path))

    @dbus_method(DB_INTERFACE, "dump")
    def dump(self, call: Call, path: str) -> str:
        return current_store().tree.dump(self._path(call, path))

    @dbus_method(DB_INTERFACE, "list")
    def list(self, call: Call, path: str) -> list[str]:
        return current_store().tree.list(self._path(call, path))

    @dbus_method(DB_INTERFACE, "exists")
    def exists(self, call: Call, path: str) -> bool:
        return current_store().tree.exists(self._path(call, path))

    @dbus_method(DB_INTERFACE, "write")
    def write(self, call: Call, path: str, value: str) -> Any:
        target = self._path(call, path)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("write %s %s %.200s", call.sender, target, value)
        return _when_durable(call, current_store().write(target, value))

    @dbus_method(DB_INTERFACE, "inject")
    def inject(self, call: Call, path: str, text: str) -> Any:
        target = self._path(call, path)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("inject %s %s %.200s", call.sender, target, text)
        return _when_durable(call, current_store().inject(target, text))

    @dbus_method(DB_INTERFACE, "rm")
    def rm(self, call: Call, path: str) -> Any:
        target = self._path(call, path)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("rm %s %s", call.sender, target)
        return _when_durable(call, current_store().rm(target))


@dataclass(frozen=True, slots=True)
class _Identify:
    """Identify the sender of ``call``, then pass ``job`` to the store (a service that ends
    first answers ``call`` ``Failed``: ``actors.Undeliverable``)."""

    call: Call
    job: Callable[[], None]

    def undelivered(self, reason: str) -> None:
        """The service ended first: the caller gets ``Failed`` now."""
        DBusJob(self.job, self.call).undelivered(reason)


_READS = frozenset({"read", "read_binary", "dump", "list", "exists"})


class _StoreDispatcher(Dispatcher):
    """Runs handlers in the store's mailbox; first calls of a sender go through the service.

    A read of an identified sender is answered here, in the bus reader thread, when nothing
    this dispatcher passed on is still queued or running (``_unfinished`` == 0: every earlier
    call, of any sender, has changed the tree already), under the store's tree lock
    (``DbStore.reading``): one thread hop less, the same answers in the same order. Only the
    reader thread calls :meth:`submit`. A job that never runs (its actor ended) leaves the count
    up, which only routes reads through the mailbox: the store's end restarts this service
    (``rest_for_one``) and with it this dispatcher.
    """

    def __init__(self, service: DbService) -> None:
        self.service = service
        self.callers = service.callers
        self._lock = threading.Lock()
        self._unfinished = 0
        self._store: DbStore | None = None

    def submit(self, call: Call, job: Callable[[], None]) -> None:
        direct = self.callers.route(call.sender)
        if direct and not self._unfinished and call.member in _READS \
                and call.interface == DB_INTERFACE and self._read_here(job):
            return
        target = self.service.store if direct else self.service.name
        self._count(1)
        counted = self._counted(job)
        try:
            if direct:
                resolve(target).tell(DBusJob(counted, call))
            else:
                self.service.actor_ref.tell(_Identify(call, counted))
        except (NoSuchActor, ActorDeadError):
            self._count(-1)
            if not direct:
                self.callers.done(call.sender)
            refuse_unavailable(call, f"{target} is restarting")

    def settle(self) -> None:
        """A passed-on job was answered without running (the service refused its caller)."""
        self._count(-1)

    def bind(self) -> None:
        """Read here from the store running now (the service starts after it and is restarted
        with it); none: every call goes through the mailbox."""
        try:
            store = actor_of(resolve(self.service.store))
        except (NoSuchActor, ActorDeadError, TypeError):
            return
        self._store = store if isinstance(store, DbStore) else None

    def _read_here(self, job: Callable[[], None]) -> bool:
        store = self._store
        if store is None or store.actor_stopped.is_set():
            return False
        with store.reading():
            job()
        return True

    def _counted(self, job: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                job()
            finally:
                self._count(-1)
        return run

    def _count(self, delta: int) -> None:
        with self._lock:
            self._unfinished += delta


class DbService(BusService):
    """``com.citrix.xenclient.db`` on the bus (see the module docstring)."""

    bus_names = (DB_SERVICE,)
    signature_error = INVALID_SIGNATURE
    unknown_method_error = UNKNOWN_METHOD
    unknown_interface_error = UNKNOWN_METHOD

    def __init__(self, address: str, store: str | None = None, *,
                 registry: CallerIdentity | None = None, identity_service: bool = False,
                 names: Sequence[str] | None = None) -> None:
        super().__init__(address, names=names)
        self._store_name = store
        self.registry = registry if registry is not None else caller_identity
        self.callers = CallerCache(self.registry, remote=identity_service)
        self._dispatcher = _StoreDispatcher(self)

    @property
    def store(self) -> str:
        """The store's name (by default the sibling ``store``)."""
        if self._store_name is None:
            self._store_name = sibling(self.name, "store")
        return self._store_name

    def setup(self) -> None:
        """Export ``/``, follow connections leaving the bus, watch the store's changes."""
        self._dispatcher.bind()
        self.objects.export(DB_PATH, [package_interface(DB_INTERFACE)], DbObject(self.callers),
                            self._dispatcher)
        self.bus.on_signal = self._on_signal
        self.bus.add_match(_NOC_RULE)
        signature = package_interface(CHANGES_INTERFACE).signal("changed")
        assert signature is not None
        objects, seqs, sig = self.objects, itertools.count(1), signature.signature

        def changed(path: str) -> None:  # in the store's thread
            objects.emit(DB_PATH, CHANGES_INTERFACE, "changed", path, next(seqs), signature=sig)
        resolve(self.store).tell(WatchChanges(self.name, changed))

    def teardown(self) -> None:
        """Stop watching the store's changes (the base class closes the connection)."""
        try:
            resolve(self.store).tell(WatchChanges(self.name, None))
        except (NoSuchActor, ActorDeadError):
            pass
        super().teardown()

    def _on_signal(self, msg: Message) -> None:
        body = tuple(msg.body)
        if len(body) == 3 and str(body[0]).startswith(":") and body[2] == "":
            self.callers.forget(body[0])
            self.registry.unregister(body[0])

    @handles(_Identify)
    def _identify(self, msg: _Identify) -> None:
        sender = msg.call.sender
        try:
            try:
                self.callers.resolve(self.bus, sender)
            except DBusError as exc:
                self._dispatcher.settle()
                msg.call.fail(DBusError(FAILED, f"{_UNIDENTIFIED}: {exc.message or exc.name}"))
                return
            try:
                resolve(self.store).tell(DBusJob(msg.job, msg.call))
            except (NoSuchActor, ActorDeadError):
                self._dispatcher.settle()
                refuse_unavailable(msg.call, f"{self.store} is restarting")
        finally:
            self.callers.done(sender)
