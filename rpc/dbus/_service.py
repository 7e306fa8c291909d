"""A supervised DBus service: an actor that owns a bus connection, its names and its objects.

Lifecycle (the semantics a subclass can rely on):

1. ``on_start`` connects to the bus, calls :meth:`BusService.setup` (the subclass exports its
   objects there), then requests each of ``bus_names`` with DoNotQueue. A name owned by someone
   else fails the start (``StartFailed``), as the original daemons exited.
2. Calls run through each object's dispatcher; by default in this actor's own mailbox, so a
   service's state is touched by one thread only, in order.
3. When the bus goes away (``dbus-daemon`` died or was restarted) the connection reports it,
   the actor crashes with ``ConnectionLost``, and its supervisor restarts it: the new instance
   connects again and re-owns its names. ``on_start`` keeps trying to connect for
   ``connect_patience`` seconds (0.5 s; a bus being restarted is back well within that), then
   fails, and the supervisor's intensity and backoff decide how long to keep trying.
4. ``on_stop`` (and a crash) calls :meth:`BusService.teardown`, stops worker pools and closes
   the connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from actors import Actor, handles
from rpc.dbus._connection import ALREADY_OWNER, PRIMARY_OWNER, BusConnection
from rpc.dbus._dispatch import ActorDispatcher, DBusJob, PoolDispatcher
from rpc.dbus._errors import INVALID_ARGS, UNKNOWN_INTERFACE, UNKNOWN_METHOD, ConnectionLost
from rpc.dbus._export import Dispatcher, ExportedObject, ObjectTable
from rpc.idl import Interface

__all__ = ["BusService", "NameTaken"]

logger = logging.getLogger(__name__)


class NameTaken(RuntimeError):
    """Another connection owns a bus name this service needs."""


@dataclass(frozen=True, slots=True)
class _Lost:
    """The connection reported that the bus went away."""


class BusService(Actor):
    """Base class of DBus services (see the module docstring)."""

    bus_names: ClassVar[tuple[str, ...]] = ()
    signature_error: ClassVar[str] = INVALID_ARGS
    unknown_method_error: ClassVar[str] = UNKNOWN_METHOD
    unknown_interface_error: ClassVar[str] = UNKNOWN_INTERFACE

    def __init__(self, address: str, *, names: Sequence[str] | None = None) -> None:
        super().__init__()
        self.address = address
        self.names = tuple(names) if names is not None else self.bus_names
        self.objects = ObjectTable(signature_error=self.signature_error,
                                   unknown_method_error=self.unknown_method_error,
                                   unknown_interface_error=self.unknown_interface_error)
        self.connection: BusConnection | None = None
        self._pools: list[PoolDispatcher] = []

    # ------------------------------------------------------------------ for subclasses

    def setup(self) -> None:
        """Export objects (called after connecting, before the names are requested)."""

    def teardown(self) -> None:
        """Release what :meth:`setup` took (called on stop and on crash)."""

    def export(self, path: str, interfaces: Sequence[Interface], impl: object | None = None,
               *, parallel: int = 0) -> ExportedObject:
        """Serve ``impl`` (default: this actor) at ``path``.

        Handlers run in this actor's mailbox, or on a pool of ``parallel`` threads when given.
        """
        dispatcher: Dispatcher
        if parallel:
            pool = PoolDispatcher(parallel, name=f"{self.name}-pool")
            self._pools.append(pool)
            dispatcher = pool
        else:
            dispatcher = ActorDispatcher(self.actor_ref)
        return self.objects.export(path, interfaces, self if impl is None else impl, dispatcher)

    def emit(self, path: str, interface: str, member: str, *args: Any) -> None:
        """Broadcast a signal declared in the IDL."""
        self.objects.emit(path, interface, member, *args)

    @property
    def bus(self) -> BusConnection:
        """The live connection (only between start and stop)."""
        if self.connection is None:
            raise ConnectionLost("not connected")
        return self.connection

    # ------------------------------------------------------------------ lifecycle

    connect_patience: ClassVar[float] = 0.5
    """Seconds ``on_start`` keeps trying to reach a bus that is not there (yet)."""

    def _connect(self) -> BusConnection:
        deadline = time.monotonic() + self.connect_patience
        delay = 0.02
        while True:
            try:
                return BusConnection(self.address, on_call=self.objects.handle_call,
                                     on_lost=self._report_lost, label=self.name)
            except ConnectionLost:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def on_start(self) -> None:
        """Connect, export, own the names (see the module docstring)."""
        self.connection = self._connect()
        self.objects.bind(self.connection.send)
        self.setup()
        for name in self.names:
            code = self.connection.request_name(name)
            if code not in (PRIMARY_OWNER, ALREADY_OWNER):
                raise NameTaken(f"bus name {name} is owned by another connection")
        logger.info("%s on the bus as %s (%s)", self.name, self.connection.unique_name,
                    ", ".join(self.names) or "no names")

    def _report_lost(self) -> None:
        self._tell_self(_Lost())

    @handles(_Lost)
    def _lost(self, _msg: _Lost) -> None:
        raise ConnectionLost(f"{self.name}: connection to the bus at {self.address} lost")

    @handles(DBusJob)
    def _run_job(self, msg: DBusJob) -> None:
        msg.run()

    def _close(self) -> None:
        try:
            self.teardown()
        except Exception:
            logger.exception("%s: teardown failed", self.name)
        self._disconnect()

    def _disconnect(self) -> None:
        for pool in self._pools:
            pool.close()
        self._pools.clear()
        if self.connection is not None:
            self.connection.close()

    def on_stop(self) -> None:
        """Tear down and disconnect."""
        self._close()

    def on_failure(self, *_exc: Any) -> None:
        """Tear down and disconnect after a crash."""
        self._close()

    def on_killed(self) -> None:
        """Disconnect (the bus names go with the connection) and stop the pools, without
        ``teardown``: a new instance may have set up already."""
        self._disconnect()
