"""The xenmgr bus service: ``com.citrix.xenclient.xenmgr`` and its objects.

A ``BusService`` (docs/dbus.md). At each start (a fresh process, or a restart after a crash
or after the bus went away) it rebuilds what it knows from the database and the monitors: it
exports ``/`` and ``/host``, then for every VM in the database its objects, starting the VM's
monitor if none runs (with the config translated from the database), then tells the
notification queue it is up. It keeps nothing else: the database is the source of truth
(property reads may use copies of VMs' subtrees that dbd's change notifications keep current,
``_dbcache``).

Calls run in parallel on one bounded pool of ``workers`` threads shared by every object, so a
slow call (a start waiting for its domain) never blocks others beyond the pool's size. Calls
caught by a crash of the service fail: the connection closes with them, and the bus answers
their callers (``NoReply``), so no caller hangs.

It publishes :class:`~xen.xenmgr._handle.ManagerBus` (its connection, objects and database
client) for the queue, the event handlers and the autostart.
"""

from __future__ import annotations

import logging
from typing import Any

from rpc.dbus import BusService, PoolDispatcher
from rpc.idl import Interface, load_package
from xen.xenmgr._context import ServiceContext
from xen.xenmgr._dbcache import VmTreeCache, match_rules
from xen.xenmgr._dbclient import DbClient
from xen.xenmgr._errors import XenmgrError
from xen.xenmgr._flows import VmFlows, config_text
from xen.xenmgr._handle import ManagerBus
from xen.xenmgr._messages import ServiceUp
from xen.xenmgr._monitors import ensure_monitor
from xen.xenmgr._properties import Target
from xen.xenmgr._props import with_properties
from xen.xenmgr._root import HostObject, RootObject
from xen.xenmgr._settings import ManagerSettings
from xen.xenmgr._uuids import is_canonical_uuid
from xen.xenmgr._vm_object import DiskObject, NicObject, VmObject

__all__ = ["XENMGR_NAME", "XenmgrService", "interfaces_of"]

logger = logging.getLogger("xenmgr")

XENMGR_NAME = "com.citrix.xenclient.xenmgr"


def interfaces_of(stem: str) -> tuple[Interface, ...]:
    """The interfaces of interface file ``stem`` (``xenmgr``, ``xenmgr_vm``...), in order."""
    return tuple(load_package()[stem].interfaces)


_ROOT = with_properties(RootObject, interfaces_of("xenmgr"))
_HOST = with_properties(HostObject, interfaces_of("xenmgr_host"))
_VM = with_properties(VmObject, interfaces_of("xenmgr_vm"))
_DISK = with_properties(DiskObject, interfaces_of("vm_disk"))
_NIC = with_properties(NicObject, interfaces_of("vm_nic"))


class XenmgrService(BusService):
    """See the module docstring."""

    bus_names = (XENMGR_NAME,)

    def __init__(self, settings: ManagerSettings) -> None:
        super().__init__(settings.address)
        self.settings = settings
        self.ctx: ServiceContext | None = None
        self.pool: PoolDispatcher | None = None
        self.handle: ManagerBus | None = None

    def setup(self) -> None:
        """Export ``/``, ``/host`` and every VM found in the database (module docstring)."""
        s = self.settings
        cache = VmTreeCache()
        self.bus.on_signal = cache.on_signal  # in the reader thread, before later calls
        for rule in match_rules():
            self.bus.add_match(rule)
        db = DbClient(self.bus, timeout=s.db_timeout, cache=cache)
        self.pool = PoolDispatcher(s.workers, name=f"{self.name}-pool")
        kinds: dict[str, Any] = {
            "vm": (interfaces_of("xenmgr_vm"), _VM.make),  # type: ignore[attr-defined]
            "disk": (interfaces_of("vm_disk"), _DISK.make),  # type: ignore[attr-defined]
            "nic": (interfaces_of("vm_nic"), _NIC.make),  # type: ignore[attr-defined]
        }
        ctx = ServiceContext(s, db, VmFlows(s, db, self.bus), self.bus, self.objects,
                             self.pool, kinds)
        self.ctx = ctx
        # PropertiesChanged goes out through the notification queue, only when a value
        # changed (PropertyObject.write_prop), not from the framework after every Set.
        self.objects.properties_changed = _queued_by_the_setter
        self.objects.export("/", interfaces_of("xenmgr"), _ROOT(ctx, Target()), self.pool)
        self.objects.export("/host", interfaces_of("xenmgr_host"), _HOST(ctx, Target()),
                            self.pool)
        for uuid, tree in sorted(db.vms().items()):
            if not is_canonical_uuid(uuid):
                logger.warning("ignoring /vm/%s: not a VM uuid", uuid)
                continue
            ctx.export_vm(uuid, tree)
            try:
                ensure_monitor(s, uuid, config_text(uuid, tree))
            except XenmgrError as exc:
                logger.error("VM %s: no monitor: %s", uuid, exc.message)

    def on_start(self) -> None:
        """Connect, export, own the name; then publish and tell the queue."""
        super().on_start()
        assert self.ctx is not None
        self.handle = ManagerBus(self.bus, self.objects, self.ctx.db, self.ctx.states)
        self.ctx.tell_queue(ServiceUp())

    def published(self) -> ManagerBus | None:
        """The live connection, objects and database client (see ``_handle``)."""
        return self.handle

    def teardown(self) -> None:
        """Stop the pool (the connection is closed by the base class)."""
        self.handle = None
        if self.ctx is not None:
            self.ctx.scripts.close()
            self.ctx.idle_cap.close()
        if self.pool is not None:
            self.pool.close(timeout=2.0)
            self.pool = None


def _queued_by_the_setter(_path: str, _interface: str, _changed: dict[str, Any]) -> None:
    """The framework's ``PropertiesChanged`` hook: nothing to do, the setter queued it."""
