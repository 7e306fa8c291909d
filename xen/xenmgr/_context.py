"""What the objects of the bus service share: the settings, the database, the VM flows, and
the registry of exported VM objects.

The registry follows the database: a VM's objects (``/vm/<u_>`` and one per disk and nic) are
exported when the VM is created or found at start, its device objects are brought in line
with the database whenever the service reads the VM's disks or nics (``sync_devices``), and
every object of a VM goes when the VM is deleted. ``list_vms`` answers from it without a
database round trip. It is rebuilt from the database by every new instance of the service.
Thread-safe: one lock around the registry; exporting is the object table's own (locked) step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actors import ActorDeadError, AskTimeout, NoSuchActor, ask
from xen.xenmgr._dbview import DbView
from xen.xenmgr._devices import read_disks, read_nics
from xen.xenmgr._diag import Gathering
from xen.xenmgr._errors import error, plain
from xen.xenmgr._host_power import IdleCap
from xen.xenmgr._queue import tell_queue
from xen.xenmgr._testing import ScriptQueue
from xen.xenmgr._uuids import vm_object_path
from xen.xenmgr._vm_waits import StateChanges

if TYPE_CHECKING:
    from rpc.dbus import BusConnection, Dispatcher, ObjectTable
    from rpc.idl import Interface
    from xen.xenmgr._dbclient import DbClient
    from xen.xenmgr._flows import VmFlows
    from xen.xenmgr._settings import ManagerSettings

__all__ = ["ServiceContext", "disk_path", "nic_path"]

logger = logging.getLogger("xenmgr")


def disk_path(uuid: str, disk: int) -> str:
    return f"{vm_object_path(uuid)}/disk/{disk}"


def nic_path(uuid: str, nic: int) -> str:
    return f"{vm_object_path(uuid)}/nic/{nic}"


@dataclass(slots=True)
class _Exported:
    disks: set[int] = field(default_factory=set)
    nics: set[int] = field(default_factory=set)


#: Builds the implementation of an object: (context, uuid, device id) -> object.
Factory = Callable[["ServiceContext", str, int], object]


class ServiceContext:
    """See the module docstring."""

    def __init__(self, settings: ManagerSettings, db: DbClient, flows: VmFlows,
                 conn: BusConnection, objects: ObjectTable, dispatcher: Dispatcher,
                 kinds: dict[str, tuple[tuple[Interface, ...], Factory]]) -> None:
        self.settings = settings
        self.db = db
        self.flows = flows
        self.conn = conn
        self.objects = objects
        self.dispatcher = dispatcher
        self.kinds = kinds  # "vm", "disk", "nic" -> (interfaces, factory)
        self._lock = threading.Lock()
        self._vms: dict[str, _Exported] = {}
        self._vm_locks: dict[str, threading.Lock] = {}
        self.scripts = ScriptQueue()  # the testing interface's FIFO (_testing)
        self.host_transition = threading.Lock()  # one host shutdown/reboot at a time
        self.idle_cap = IdleCap()  # the idle shutdown's timer (_host_power), closed at teardown
        self.states = StateChanges()  # VM state notifications, for waiters (_vm_waits)
        self.gathering = Gathering()  # the diag interface's contributions (_diag)

    def vm_lock(self, uuid: str) -> threading.Lock:
        """The lock serialising read-modify-write edits of one VM's db lists."""
        with self._lock:
            return self._vm_locks.setdefault(uuid, threading.Lock())

    def ask_creator(self, message: Any) -> Any:
        """Ask the creation actor (bounded); its refusals are raised as they are."""
        try:
            return ask(self.settings.creator, message, timeout=self.settings.task_timeout)
        except (NoSuchActor, ActorDeadError):
            raise plain("xenmgr's creation actor is restarting: try again") from None
        except AskTimeout:
            raise error(199, "the creation actor did not answer in time") from None

    def tell_queue(self, message: Any) -> None:
        """Hand a signal or a config change to the notification queue (best effort)."""
        tell_queue(self.settings, message)

    # ------------------------------------------------------------------ the registry

    def vm_uuids(self) -> list[str]:
        with self._lock:
            return sorted(self._vms)

    def known(self, uuid: str) -> bool:
        with self._lock:
            return uuid in self._vms

    def _export(self, kind: str, path: str, uuid: str, ident: int) -> None:
        interfaces, factory = self.kinds[kind]
        self.objects.export(path, interfaces, factory(self, uuid, ident), self.dispatcher)

    def export_vm(self, uuid: str, tree: dict[str, Any]) -> None:
        """Export VM ``uuid``'s objects (its disks and nics from ``tree``)."""
        with self._lock:
            if uuid not in self._vms:
                self._export("vm", vm_object_path(uuid), uuid, -1)
                self._vms[uuid] = _Exported()
        self.sync_devices(uuid, tree)

    def unexport_vm(self, uuid: str) -> None:
        """Remove every object of VM ``uuid``."""
        with self._lock:
            exported = self._vms.pop(uuid, None)
            if exported is None:
                return
            for disk in exported.disks:
                self.objects.unexport(disk_path(uuid, disk))
            for nic in exported.nics:
                self.objects.unexport(nic_path(uuid, nic))
            self.objects.unexport(vm_object_path(uuid))

    def sync_devices(self, uuid: str, tree: dict[str, Any]) -> tuple[list[int], list[int]]:
        """Export the disk and nic objects ``tree`` has, unexport the others; the ids."""
        view = DbView(tree)
        try:
            disks = [d.id for d in read_disks(view)]
            nics = [n.id for n in read_nics(view)]
        except Exception as exc:  # a broken entry: keep what is exported
            logger.warning("VM %s: devices unreadable: %s", uuid, exc)
            return [], []
        with self._lock:
            exported = self._vms.get(uuid)
            if exported is None:
                return disks, nics
            for kind, have, want, path in (("disk", exported.disks, set(disks), disk_path),
                                           ("nic", exported.nics, set(nics), nic_path)):
                for ident in sorted(want - have):
                    self._export(kind, path(uuid, ident), uuid, ident)
                for ident in sorted(have - want):
                    self.objects.unexport(path(uuid, ident))
                have.clear()
                have.update(want)
        return disks, nics
