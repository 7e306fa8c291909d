"""What the xenmgr bus service publishes for the rest of the branch (``ManagerBus``).

The notification queue sends every signal through :meth:`ManagerBus.emit` (the service's
connection owns ``com.citrix.xenclient.xenmgr``, so clients matching on that sender get
them) and reports the VMs' state notifications to ``states`` (``_vm_waits``); the per-VM
event handlers and the autostart reach the database and the hook targets through ``db`` and
``conn``. Resolve it at each use (``actors.service(settings.service,
ManagerBus)``): after a restart of the service there is a new one and the old one's
connection is closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rpc.dbus import BusConnection, ObjectTable
    from xen.xenmgr._dbclient import DbClient
    from xen.xenmgr._vm_waits import StateChanges

__all__ = ["PROPERTIES", "ManagerBus"]

PROPERTIES = "org.freedesktop.DBus.Properties"


class ManagerBus:
    """The live service's connection, objects, database client and the VM state changes its
    waiters block on (``_vm_waits``; the queue reports to it) (thread-safe)."""

    __slots__ = ("conn", "db", "objects", "states")

    def __init__(self, conn: BusConnection, objects: ObjectTable, db: DbClient,
                 states: StateChanges) -> None:
        self.conn = conn
        self.objects = objects
        self.db = db
        self.states = states

    def emit(self, path: str, interface: str, member: str, args: tuple[Any, ...]) -> None:
        """Send one signal declared in the interface files, or ``PropertiesChanged`` with
        ``args`` = (interface, {name: value}) (raises if the bus is gone)."""
        if interface == PROPERTIES and member == "PropertiesChanged":
            self.objects.emit_properties_changed(path, args[0], args[1])
        else:
            self.objects.emit(path, interface, member, *args)
