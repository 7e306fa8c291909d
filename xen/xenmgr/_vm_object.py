"""The objects of one VM: ``/vm/<u_>`` and its ``disk/<id>`` and ``nic/<id>``.

``/vm/<u_>`` serves the interfaces of ``xenmgr_vm.xml`` in its order, with every property
(read from one ``dump`` of the VM's subtree per call; ``autostart-pending`` from the
autostart's published list) and these methods: the lifecycle
(``start shutdown destroy reboot pause unpause sleep resume hibernate``, ``_flows``),
``delete``, ``add_disk``, ``list_disks``, ``add_nic``, ``list_nics``, ``get_db_key``,
``set_db_key``, ``get_domstore_key``, ``set_domstore_key``, ``read_icon``. A call on the object
of a VM deleted meanwhile answers ``no vm with uuid X``.

Disks (``com.citrix.xenclient.vmdisk``): ``attach_vhd`` and ``attach_phy`` point the disk at a
file or a device (a path that does not exist: error 223), ``delete`` removes its entry (never
its file); a disk that is gone: 206. Nics (``com.citrix.xenclient.vmnic``): ``delete``; a nic
that is gone: 222. Device changes reach the monitor at the VM's next start (the config is
given to it then); the objects follow the database at once.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from actors import ActorDeadError, NoSuchActor, ServiceUnavailable, service
from rpc.dbus import Call, dbus_method
from xen.xenmgr._autostart import AutostartPending
from xen.xenmgr._context import disk_path, nic_path
from xen.xenmgr._dbview import DbView
from xen.xenmgr._devices import read_disk, read_disks, read_nic, read_nics
from xen.xenmgr._errors import error, no_vm_with_uuid, plain
from xen.xenmgr._messages import ConfigChanged
from xen.xenmgr._properties import Target
from xen.xenmgr._props import PropertyObject
from xen.xenmgr._root import delete_vm
from xen.xenmgr._schema import DEFAULT_NETWORK, next_id, next_virtual_device
from xen.xenmgr._vm_argo import ArgoRuleMethods
from xen.xenmgr._vm_child import ChildVmMethods
from xen.xenmgr._vm_extras import DiskKeyMethods, VmInputMethods
from xen.xenmgr._vm_net_firewall import NetFirewallMethods
from xen.xenmgr._vm_pci_rules import PciRuleMethods
from xen.xenmgr._vm_product import ProductMethods

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["DiskObject", "NicObject", "VmObject"]

VM = "com.citrix.xenclient.xenmgr.vm"
VMDISK = "com.citrix.xenclient.vmdisk"
VMNIC = "com.citrix.xenclient.vmnic"
MAX_ICON_BYTES = 1 << 20


def _key(key: str) -> str:
    """A database key relative to a VM (no empty segment, no ``..``)."""
    parts = [p for p in key.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise plain(f"bad key {key!r}")
    return "/".join(parts)


def _autostart_pending(ctx: ServiceContext) -> tuple[str, ...]:
    """The VMs the autostart has still to start (none when it does not run)."""
    try:
        return service(ctx.settings.autostart_actor, AutostartPending).uuids
    except (NoSuchActor, ServiceUnavailable, ActorDeadError):
        return ()


class _VmScoped(PropertyObject):
    """An object whose properties read one VM's subtree."""

    @property
    def uuid(self) -> str:
        assert self.target.uuid is not None
        return self.target.uuid

    def load_view(self, cached: bool = False) -> DbView:
        extra = None
        if self.target.disk is None and self.target.nic is None:
            pending = _autostart_pending(self.ctx)
            if pending:
                extra = {"xenmgr": {"autostart-pending-vms": {
                    str(i): u for i, u in enumerate(pending)}}}
        db = self.ctx.db
        view = db.cached_vm_view(self.uuid, extra) if cached else db.vm_view(self.uuid, extra)
        if not view.is_node(f"/vm/{self.uuid}"):
            raise no_vm_with_uuid(self.uuid)
        return view

    def tree(self) -> dict[str, Any]:
        tree = self.ctx.db.vm_tree(self.uuid)
        if not tree:
            raise no_vm_with_uuid(self.uuid)
        return tree

    def changed(self) -> None:
        self.ctx.tell_queue(ConfigChanged(self.uuid))


class VmObject(ArgoRuleMethods, NetFirewallMethods, PciRuleMethods, ProductMethods,
               VmInputMethods, ChildVmMethods, _VmScoped):
    """``/vm/<u_>`` (see the module docstring)."""

    @classmethod
    def make(cls, ctx: ServiceContext, uuid: str, _ident: int) -> VmObject:
        return cls(ctx, Target(uuid))

    # lifecycle
    @dbus_method(VM, "start")
    def start(self, call: Call) -> None:
        self.ctx.flows.start(self.uuid)

    @dbus_method(VM, "shutdown")
    def shutdown(self, call: Call) -> None:
        self.ctx.flows.shutdown(self.uuid)

    @dbus_method(VM, "start_internal")
    def start_internal(self, call: Call) -> None:
        self.ctx.flows.start(self.uuid)

    @dbus_method(VM, "suspend_to_file")
    def suspend_to_file(self, call: Call, file: str) -> None:
        self.ctx.flows.suspend_to_file(self.uuid, file)

    @dbus_method(VM, "resume_from_file")
    def resume_from_file(self, call: Call, file: str) -> None:
        self.ctx.flows.resume_from_file(self.uuid, file)

    @dbus_method(VM, "destroy")
    def destroy(self, call: Call) -> None:
        self.ctx.flows.destroy(self.uuid)

    @dbus_method(VM, "reboot")
    def reboot(self, call: Call) -> None:
        self.ctx.flows.reboot(self.uuid)

    @dbus_method(VM, "pause")
    def pause(self, call: Call) -> None:
        self.ctx.flows.pause(self.uuid)

    @dbus_method(VM, "unpause")
    def unpause(self, call: Call) -> None:
        self.ctx.flows.unpause(self.uuid)

    @dbus_method(VM, "sleep")
    def sleep(self, call: Call) -> None:
        self.ctx.flows.sleep(self.uuid)

    @dbus_method(VM, "resume")
    def resume(self, call: Call) -> None:
        self.ctx.flows.resume(self.uuid)

    @dbus_method(VM, "hibernate")
    def hibernate(self, call: Call) -> None:
        self.ctx.flows.hibernate(self.uuid)

    @dbus_method(VM, "delete")
    def delete(self, call: Call) -> None:
        delete_vm(self.ctx, self.uuid, unrestricted=False)

    # disks and nics
    @dbus_method(VM, "list_disks")
    def list_disks(self, call: Call) -> list[str]:
        disks, _nics = self.ctx.sync_devices(self.uuid, self.tree())
        return [disk_path(self.uuid, d) for d in disks]

    @dbus_method(VM, "list_nics")
    def list_nics(self, call: Call) -> list[str]:
        _disks, nics = self.ctx.sync_devices(self.uuid, self.tree())
        return [nic_path(self.uuid, n) for n in nics]

    @dbus_method(VM, "add_disk")
    def add_disk(self, call: Call) -> str:
        view = DbView(self.tree())
        disks = read_disks(view)
        ident = next_id(d.id for d in disks)
        device = next_virtual_device(d.device for d in disks if d.device)
        base = f"/vm/{self.uuid}/config/disk/{ident}"
        for key, value in (("path", ""), ("type", "vhd"), ("mode", "w"), ("device", device),
                           ("devtype", "disk"), ("shared", "false")):
            self.ctx.db.write(f"{base}/{key}", value)
        self.ctx.sync_devices(self.uuid, self.tree())
        self.changed()
        return disk_path(self.uuid, ident)

    @dbus_method(VM, "add_nic")
    def add_nic(self, call: Call) -> str:
        view = DbView(self.tree())
        ident = next_id(n.id for n in read_nics(view))
        base = f"/vm/{self.uuid}/config/nic/{ident}"
        self.ctx.db.write(f"{base}/id", str(ident))
        self.ctx.db.write(f"{base}/network", DEFAULT_NETWORK)
        self.ctx.sync_devices(self.uuid, self.tree())
        self.changed()
        return nic_path(self.uuid, ident)

    # keys
    @dbus_method(VM, "get_db_key")
    def get_db_key(self, call: Call, key: str) -> str:
        self.tree()
        return self.ctx.db.read(f"/vm/{self.uuid}/{_key(key)}")

    @dbus_method(VM, "set_db_key")
    def set_db_key(self, call: Call, key: str, value: str) -> None:
        self.tree()
        path = f"/vm/{self.uuid}/{_key(key)}"
        if self.ctx.db.read(path) != value or not self.ctx.db.exists(path):
            self.ctx.db.write(path, value)
            self.changed()

    @dbus_method(VM, "get_domstore_key")
    def get_domstore_key(self, call: Call, key: str) -> str:
        self.tree()
        return self.ctx.db.read(f"/dom-store/{self.uuid}/{_key(key)}")

    @dbus_method(VM, "set_domstore_key")
    def set_domstore_key(self, call: Call, key: str, value: str) -> None:
        self.tree()
        self.ctx.db.write(f"/dom-store/{self.uuid}/{_key(key)}", value)

    @dbus_method(VM, "read_icon")
    def read_icon(self, call: Call) -> bytes:
        path = self.tree().get("image_path")
        if not isinstance(path, str) or not path or not os.path.isabs(path):
            return b""
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_ICON_BYTES + 1)
        except OSError as exc:
            raise error(223, f"{path}: {exc.strerror or exc}") from None
        if len(data) > MAX_ICON_BYTES:
            raise error(223, f"{path}: larger than {MAX_ICON_BYTES} bytes")
        return data


class DiskObject(DiskKeyMethods, _VmScoped):
    """``/vm/<u_>/disk/<id>`` (see the module docstring)."""

    @classmethod
    def make(cls, ctx: ServiceContext, uuid: str, ident: int) -> DiskObject:
        return cls(ctx, Target(uuid, disk=ident))

    def _base(self) -> str:
        tree = self.tree()
        if read_disk(DbView(tree), self.target.disk or 0) is None:
            raise error(206)
        return f"/vm/{self.uuid}/config/disk/{self.target.disk}"

    def _attach(self, path: str, kind: str) -> None:
        if not os.path.exists(path):
            raise error(223, f"{path}: no such file or device")
        base = self._base()
        self.ctx.db.write(f"{base}/path", path)
        self.ctx.db.write(f"{base}/type", kind)
        self.changed()

    @dbus_method(VMDISK, "attach_vhd")
    def attach_vhd(self, call: Call, vhd_path: str) -> None:
        self._attach(vhd_path, "vhd")

    @dbus_method(VMDISK, "attach_phy")
    def attach_phy(self, call: Call, phy_path: str) -> None:
        self._attach(phy_path, "phy")

    @dbus_method(VMDISK, "delete")
    def delete(self, call: Call) -> None:
        self.ctx.db.rm(self._base())
        self.ctx.sync_devices(self.uuid, self.tree())
        self.changed()


class NicObject(_VmScoped):
    """``/vm/<u_>/nic/<id>`` (see the module docstring)."""

    @classmethod
    def make(cls, ctx: ServiceContext, uuid: str, ident: int) -> NicObject:
        return cls(ctx, Target(uuid, nic=ident))

    @dbus_method(VMNIC, "delete")
    def delete(self, call: Call) -> None:
        nic = read_nic(DbView(self.tree()), self.target.nic or 0)
        if nic is None:
            raise error(222)
        self.ctx.db.rm(f"/vm/{self.uuid}/config/nic/{nic.node}")
        self.ctx.sync_devices(self.uuid, self.tree())
        self.changed()
