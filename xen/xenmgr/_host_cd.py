"""The host's CD/DVD drives and disks on ``/host``: listing them, giving a drive to a VM,
ejecting its medium (a mixin of the host object).

The drives and disks are dom0's SCSI devices (:func:`xen.xenmgr._host_io.scsi_sysfs`: a dom0's
``/sys/bus/scsi``, or the simulated host's). A drive's id is its SCSI address ``H:C:T:L``; an id
that is not four numbers, or names no drive of the host, is refused naming it.

* ``list_cd_devices``: per drive ``id``, ``name`` (``<vendor> <model>``), ``vm`` and
  ``vm-sticky`` (its assignment, below) and ``usb-id`` (``(bus << 8) + device`` of the USB
  device it sits on, ``""`` when not on USB);
* ``list_disk_devices``: per disk ``udi`` (its sysfs path, ``/sys/bus/scsi/devices/<H:C:T:L>``:
  HAL, which named them in the original, is gone) and ``block-device`` (``/dev/sda``);
* assignment, as the original's bsg passthrough: a running VM *holds* a drive when its device
  model says so (xenstore ``/local/domain/<domid>/bsgdev/<a_b_c_d>/lock`` = ``1``); a *sticky*
  assignment is kept in the db (``/xenmgr/cdassign/<a_b_c_d>`` = the VM's uuid) and survives
  the VM's restarts. ``get_cd_device_assignment`` answers (sticky, uuid) of the first VM that
  holds it, else of the sticky VM, else ``(false, "")``;
* ``assign_cd_device(id, sticky, uuid)``: the drive is first taken back from every VM holding
  it and its sticky assignment dropped; then, for a uuid (``""``: leave it unassigned), the
  sticky assignment is written when asked, and a running VM is given the drive. Giving and
  taking back are requests to the VM's device model (``/local/domain/<domid>/bsgdev-req/
  <a_b_c_d>/req-assign`` or ``req-eject`` = ``1``), which removes the node once done; a device
  model that does not answer within 5 s fails the call, naming the VM (the guest's ``bsgdev``
  and ``bsgdev-req`` are made the guest's own first, so that its device model, in a stub
  domain too, may write them). Then
  ``cd_assignment_changed(id, uuid, path)`` is sent on ``/`` (``""`` and ``/`` when
  unassigned);
* ``eject_cd_device(id)``: the drive's medium is ejected (``CDROMEJECT``), whoever holds it.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

from rpc.dbus import Call, dbus_method
from xen.xenmgr._errors import no_vm_with_uuid, plain
from xen.xenmgr._host_io import scsi_sysfs, xenstore
from xen.xenmgr._messages import Emit
from xen.xenmgr._monitors import monitor_view
from xen.xenmgr._queue import XENMGR
from xen.xenmgr._uuids import vm_object_path
from xen.xenops import ScsiDevice

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["HostCdMethods", "parse_cd_id", "sticky_node"]

logger = logging.getLogger("xenmgr")

HOST = "com.citrix.xenclient.xenmgr.host"
REQUEST_TIMEOUT = 5.0
_ID = re.compile(r"(\d{1,4}):(\d{1,4}):(\d{1,4}):(\d{1,4})")


def parse_cd_id(text: str) -> str:
    """The drive id ``H:C:T:L`` in its canonical form; an error naming a malformed one."""
    match = _ID.fullmatch(text.strip())
    if match is None:
        raise plain(f"bad CD device id {text!r}: not H:C:T:L")
    return ":".join(str(int(p)) for p in match.groups())


def _key(hctl: str) -> str:
    return hctl.replace(":", "_")


def sticky_node(hctl: str) -> str:
    """The db node of a drive's sticky assignment."""
    return f"/xenmgr/cdassign/{_key(hctl)}"


class HostCdMethods:
    """See the module docstring (mixed into the host object)."""

    ctx: ServiceContext

    # ------------------------------------------------------------------ inventory

    def _scsi(self) -> list[ScsiDevice]:
        sysfs = scsi_sysfs(self.ctx.settings)
        if sysfs is None:
            return []
        try:
            return sysfs.devices()
        except OSError as exc:
            raise plain(f"cannot read the host's disks and CD drives: {exc}") from None

    def _drive(self, text: str) -> ScsiDevice:
        hctl = parse_cd_id(text)
        for dev in self._scsi():
            if dev.hctl == hctl and dev.is_cdrom:
                return dev
        raise plain(f"no CD device {hctl} on this host")

    # ------------------------------------------------------------------ assignment

    def _running(self) -> dict[str, int]:
        out = {}
        for uuid in self.ctx.vm_uuids():
            view = monitor_view(uuid)
            if view is not None and view.domid >= 0:
                out[uuid] = view.domid
        return out

    def _holders(self, hctl: str) -> list[str]:
        xs = xenstore(self.ctx.settings)
        return [uuid for uuid, domid in sorted(self._running().items())
                if xs.try_read(f"/local/domain/{domid}/bsgdev/{_key(hctl)}/lock") == "1"]

    def _sticky(self, hctl: str) -> str:
        return self.ctx.db.read(sticky_node(hctl)) or ""

    def _assignment(self, hctl: str) -> tuple[bool, str]:
        sticky = self._sticky(hctl)
        holders = self._holders(hctl)
        if holders:
            return holders[0] == sticky, holders[0]
        return (True, sticky) if sticky else (False, "")

    def _request(self, uuid: str, domid: int, hctl: str, what: str) -> None:
        xs = xenstore(self.ctx.settings)
        for area in ("bsgdev", "bsgdev-req"):  # the guest's (and its stub domain's) to write
            path = f"/local/domain/{domid}/{area}"
            if not xs.exists(path):
                xs.mkdir(path)
                xs.set_perms(path, [f"n{domid}"])
        node = f"/local/domain/{domid}/bsgdev-req/{_key(hctl)}/req-{what}"
        xs.write(node, "1")
        deadline = time.monotonic() + REQUEST_TIMEOUT
        while xs.try_read(node) is not None:
            if time.monotonic() > deadline:
                xs.rm(node)
                verb = "assign" if what == "assign" else "unassign"
                raise plain(f"{verb} of CD device {hctl} failed: VM {uuid}'s device model did "
                            f"not answer within {REQUEST_TIMEOUT:g} s")
            time.sleep(0.05)

    # ------------------------------------------------------------------ methods

    @dbus_method(HOST, "list_cd_devices")
    def list_cd_devices(self, call: Call) -> list[dict[str, str]]:
        out = []
        for dev in self._scsi():
            if not dev.is_cdrom:
                continue
            sticky, vm = self._assignment(dev.hctl)
            usb = "" if dev.usb is None else str(((dev.usb[0] & 0xFF) << 8) + (dev.usb[1] & 0xFF))
            out.append({"id": dev.hctl, "name": dev.name, "vm": vm,
                        "vm-sticky": "1" if sticky else "0", "usb-id": usb})
        return out

    @dbus_method(HOST, "list_disk_devices")
    def list_disk_devices(self, call: Call) -> list[dict[str, str]]:
        return [{"udi": f"/sys/bus/scsi/devices/{d.hctl}", "block-device": f"/dev/{d.block}"}
                for d in self._scsi() if not d.is_cdrom and d.block]

    @dbus_method(HOST, "get_cd_device_assignment")
    def get_cd_device_assignment(self, call: Call, devid: str) -> tuple[bool, str]:
        return self._assignment(self._drive(devid).hctl)

    @dbus_method(HOST, "assign_cd_device")
    def assign_cd_device(self, call: Call, devid: str, sticky: bool, vm_uuid: str) -> None:
        hctl = self._drive(devid).hctl
        uuid = vm_uuid.strip().lower()
        if uuid and not self.ctx.db.exists(f"/vm/{uuid}"):
            raise no_vm_with_uuid(vm_uuid)
        running = self._running()
        for holder in self._holders(hctl):
            self._request(holder, running[holder], hctl, "eject")
        if self._sticky(hctl):
            self.ctx.db.rm(sticky_node(hctl))
        if uuid and sticky:
            self.ctx.db.write(sticky_node(hctl), uuid)
        if uuid and uuid in running:
            logger.info("assigning CD device %s to VM %s", hctl, uuid)
            self._request(uuid, running[uuid], hctl, "assign")
        _sticky, now = self._assignment(hctl)
        self.ctx.tell_queue(Emit("/", XENMGR, "cd_assignment_changed",
                                 (hctl, now, vm_object_path(now) if now else "/")))

    @dbus_method(HOST, "eject_cd_device")
    def eject_cd_device(self, call: Call, devid: str) -> None:
        dev = self._drive(devid)
        sysfs = scsi_sysfs(self.ctx.settings)
        assert sysfs is not None  # _drive found the drive through it
        logger.info("ejecting CD device %s (/dev/%s)", dev.hctl, dev.block)
        try:
            sysfs.eject(dev.hctl)
        except OSError as exc:
            raise plain(f"cannot eject CD device {dev.hctl}: {exc}") from None
