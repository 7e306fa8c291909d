"""Methods of ``/host`` that need no hardware: the clock, services on the bus, the ISO
library, the power settings (``com.citrix.xenclient.xenmgr.powersettings``) and the installer
state (``com.citrix.xenclient.xenmgr.installer``), backed by the database (a mixin of the host
object).

* ``shutdown``/``reboot``/``shutdown_idle``: every running VM shut down by
  ``shutdown-priority`` group, then the host's power action (:mod:`xen.xenmgr._host_power`);
  ``sleep``/``hibernate``: each VM by its ``s3-mode``/``s4-mode``, then the host's own
  suspend or power-off (:mod:`xen.xenmgr._host_suspend`);
* ``list_pci_devices``: the host's PCI devices, each as ``addr``, ``class``, ``vendor``,
  ``device``, ``name``, ``driver`` (:mod:`xen.xenmgr._pci_inventory`; GPUs, CD drives, disks,
  sound and the rest of ``/host``'s devices: ``_host_gpus``, ``_host_cd``, ``_host_extras``);
* ``get_seconds_from_epoch``: the host's clock, whole seconds;
* ``is_service_running(service)``: whether the bus name has an owner; a bare word ``w`` means
  ``com.citrix.xenclient.w`` (``networkdaemon``, ``input``, ``usbdaemon``...), as OpenXT's
  daemons are named; a name that is not a valid bus name is an error naming it;
* ``list_isos``: the ``.iso`` files of the ISO directory (db ``/xenmgr/isos``, default
  ``isos`` beside the storage directory: ``/storage/isos`` on a dom0), sorted; a missing
  directory is an empty library;
* ``get/set_{ac,battery}_lid_close_action``: db ``/power-management/lid-close-ac-action`` and
  ``/power-management/lid-close-battery-action`` (defaults ``nothing`` on AC, ``sleep`` on
  battery); a value outside the power actions (``sleep hibernate shutdown forced-shutdown
  idle-shutdown reboot nothing``) is refused naming it; written only when it changes. Acting
  on a lid event needs xcpmd, which this project does not have: the setting is kept for it;
* ``get_eula``: the text of the EULA file (``ManagerSettings.eula``); a missing file is an
  error naming it;
* ``get_installstate``: the db subtree ``/installstate`` as a map (``eula-accepted`` ...);
  ``progress_installstate(action)``: records that step as done (``/installstate/<action>`` =
  ``true``); an action that is not a word is refused.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rpc.dbus import Call, dbus_method
from xen.xenmgr._errors import plain
from xen.xenmgr._host_power import idle_shutdown, power_off_host
from xen.xenmgr._host_suspend import hibernate_host, sleep_host
from xen.xenmgr._object_properties import PM_ACTIONS
from xen.xenmgr._pci_inventory import device_map, host_pci_devices

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["LID_KEYS", "HostMethods"]

HOST = "com.citrix.xenclient.xenmgr.host"
POWER = "com.citrix.xenclient.xenmgr.powersettings"
INSTALLER = "com.citrix.xenclient.xenmgr.installer"

#: (db key, default) of the lid-close actions.
LID_KEYS = {"ac": ("/power-management/lid-close-ac-action", "nothing"),
            "battery": ("/power-management/lid-close-battery-action", "sleep")}
_BUS_NAME = re.compile(r"[A-Za-z_-][A-Za-z0-9_-]*(\.[A-Za-z_-][A-Za-z0-9_-]*)+")
_WORD = re.compile(r"[A-Za-z0-9_-]+")


class HostMethods:
    """See the module docstring (mixed into the host object)."""

    ctx: ServiceContext

    @dbus_method(HOST, "get_seconds_from_epoch")
    def get_seconds_from_epoch(self, call: Call) -> int:
        return int(time.time())

    @dbus_method(HOST, "is_service_running")
    def is_service_running(self, call: Call, name: str) -> bool:
        bus_name = name if "." in name else f"com.citrix.xenclient.{name}"
        if len(bus_name) > 255 or not _BUS_NAME.fullmatch(bus_name):
            raise plain(f"not a service name: {name!r}")
        return bool(self.ctx.conn.bus_call("NameHasOwner", "s", (bus_name,),
                                           timeout=self.ctx.settings.db_timeout)[0])

    @dbus_method(HOST, "shutdown")
    def shutdown(self, call: Call) -> None:
        power_off_host(self.ctx, "shutdown")

    @dbus_method(HOST, "reboot")
    def reboot(self, call: Call) -> None:
        power_off_host(self.ctx, "reboot")

    @dbus_method(HOST, "shutdown_idle")
    def shutdown_idle(self, call: Call) -> None:
        idle_shutdown(self.ctx, self.ctx.idle_cap)

    @dbus_method(HOST, "sleep")
    def sleep(self, call: Call) -> None:
        sleep_host(self.ctx)

    @dbus_method(HOST, "hibernate")
    def hibernate(self, call: Call) -> None:
        hibernate_host(self.ctx)

    @dbus_method(HOST, "list_pci_devices")
    def list_pci_devices(self, call: Call) -> list[dict[str, str]]:
        return [device_map(d) for d in host_pci_devices(self.ctx.settings)]

    @dbus_method(HOST, "list_isos")
    def list_isos(self, call: Call) -> list[str]:
        configured = self.ctx.db.read("/xenmgr/isos")
        directory = Path(configured or os.path.join(
            os.path.dirname(self.ctx.settings.storage_dir.rstrip("/")), "isos"))
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise plain(f"cannot list the ISO directory {directory}: {exc.strerror}") from None
        return sorted(str(directory / n) for n in names
                      if n.lower().endswith(".iso") and (directory / n).is_file())

    # ------------------------------------------------------------------ power settings

    def _lid(self, which: str) -> str:
        key, default = LID_KEYS[which]
        return self.ctx.db.read(key) or default

    def _set_lid(self, which: str, action: str) -> None:
        if action not in PM_ACTIONS:
            raise plain(f"lid close action {action!r} is not one of {', '.join(PM_ACTIONS)}")
        if self._lid(which) != action:
            self.ctx.db.write(LID_KEYS[which][0], action)

    @dbus_method(POWER, "get_ac_lid_close_action")
    def get_ac_lid_close_action(self, call: Call) -> str:
        return self._lid("ac")

    @dbus_method(POWER, "get_battery_lid_close_action")
    def get_battery_lid_close_action(self, call: Call) -> str:
        return self._lid("battery")

    @dbus_method(POWER, "set_ac_lid_close_action")
    def set_ac_lid_close_action(self, call: Call, action: str) -> None:
        self._set_lid("ac", action)

    @dbus_method(POWER, "set_battery_lid_close_action")
    def set_battery_lid_close_action(self, call: Call, action: str) -> None:
        self._set_lid("battery", action)

    # ------------------------------------------------------------------ installer

    @dbus_method(INSTALLER, "get_eula")
    def get_eula(self, call: Call) -> str:
        path = self.ctx.settings.eula
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise plain(f"no EULA: {path}: {exc.strerror}") from None

    @dbus_method(INSTALLER, "get_installstate")
    def get_installstate(self, call: Call) -> dict[str, str]:
        tree = self.ctx.db.tree("/installstate")
        if not isinstance(tree, dict):
            return {}
        return {k: v for k, v in tree.items() if isinstance(v, str)}

    @dbus_method(INSTALLER, "progress_installstate")
    def progress_installstate(self, call: Call, action: str) -> None:
        if not _WORD.fullmatch(action):
            raise plain(f"install step {action!r} is not a word")
        self.ctx.db.write(f"/installstate/{action}", "true")
