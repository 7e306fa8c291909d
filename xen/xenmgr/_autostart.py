"""The autostart: at the manager's start, the ``start_on_boot`` VMs, one after the other.

A ``temporary`` child of the manager branch (never restarted: a crash of it does not start the
VMs a second time). At its start it removes the list a previous run may have left (as the
original did at each start). Unless disabled (the ``--no-autostart`` option, or the database's
``/xenmgr/autostart`` false) it writes the order (``autostart_order``) as the database list
``/xenmgr/autostart-pending-vms`` (so the ``autostart-pending`` property shows it), then starts
each VM in its own message (a stop request is served between two starts), removing it from the
list once started or failed. A VM that fails to start is logged and skipped. Each start is
bounded by the task timeout.

It publishes :class:`AutostartPending` (the VMs still to start, from memory), so the
``autostart-pending`` property costs no database round trip; it is the only writer of the
database list, which mirrors it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from actors import Actor, ActorDeadError, NoSuchActor, ServiceUnavailable, handles, service
from xen.xenmgr._autostart_plan import AUTOSTART_PENDING, autostart_order
from xen.xenmgr._errors import XenmgrError
from xen.xenmgr._flows import VmFlows
from xen.xenmgr._handle import ManagerBus
from xen.xenmgr._settings import ManagerSettings

__all__ = ["Autostart", "AutostartPending"]

logger = logging.getLogger("xenmgr")


class AutostartPending:
    """The VMs the autostart has still to start (thread-safe: replaced as a whole)."""

    __slots__ = ("uuids",)

    def __init__(self) -> None:
        self.uuids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Plan:
    """Compute the order and queue the starts."""


@dataclass(frozen=True, slots=True)
class _StartNext:
    uuid: str


class Autostart(Actor):
    """See the module docstring."""

    def __init__(self, settings: ManagerSettings) -> None:
        super().__init__()
        self.settings = settings
        self.pending: list[str] = []
        self.handle = AutostartPending()

    def on_start(self) -> None:
        """Queue the plan (the start itself stays short)."""
        self._tell_self(_Plan())

    def published(self) -> AutostartPending:
        """The VMs still to start (see the module docstring)."""
        return self.handle

    def _set_pending(self, uuids: list[str]) -> None:
        self.pending = list(uuids)
        self.handle.uuids = tuple(uuids)

    def _bus(self) -> ManagerBus | None:
        try:
            return service(self.settings.service, ManagerBus)
        except (NoSuchActor, ServiceUnavailable, ActorDeadError):
            logger.warning("autostart: the bus service is not running")
            return None

    @handles(_Plan)
    def _plan(self, _msg: _Plan) -> None:
        bus = self._bus()
        if bus is None:
            return
        try:
            bus.db.rm(AUTOSTART_PENDING)
            if not self.settings.autostart:
                logger.info("autostart disabled (--no-autostart)")
                return
            if bus.db.read("/xenmgr/autostart") in ("false", "no", "0"):
                logger.info("autostart disabled by /xenmgr/autostart")
                return
            order = autostart_order(bus.db.vms())
            for i, uuid in enumerate(order):
                bus.db.write(f"{AUTOSTART_PENDING}/{i}", uuid)
        except XenmgrError as exc:
            logger.error("autostart: %s", exc.message)
            return
        self._set_pending(order)
        logger.info("autostart: %s", ", ".join(order) or "nothing to start")
        for uuid in order:
            self._tell_self(_StartNext(uuid))

    @handles(_StartNext)
    def _start_next(self, msg: _StartNext) -> None:
        bus = self._bus()
        if bus is None:
            return
        try:
            VmFlows(self.settings, bus.db, bus.conn).start(msg.uuid)
            logger.info("autostart: VM %s started", msg.uuid)
        except XenmgrError as exc:
            logger.error("autostart: VM %s: %s", msg.uuid, exc.message)
        self._set_pending([u for u in self.pending if u != msg.uuid])
        try:
            bus.db.rm(AUTOSTART_PENDING)
            for i, uuid in enumerate(self.pending):
                bus.db.write(f"{AUTOSTART_PENDING}/{i}", uuid)
        except XenmgrError as exc:
            logger.warning("autostart: %s", exc.message)
