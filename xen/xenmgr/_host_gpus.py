"""The host's GPUs on ``/host``: their placement (the order of the screens, for the UI and the
seamless mouse) and the ones the display handler drives (a mixin of the host object).

The host's GPUs are its boot display (the display controller whose ``boot_vga`` is 1) and,
when the host can pass a secondary GPU through (the ``secondary-gpu-pt`` capability; not on
this host, so never yet), its other display controllers: the PCI inventory
(``_pci_inventory``). A GPU's id is its PCI address; an id of no host GPU is error 234.

* ``list_gpu_devices``: the host's GPUs the display handler does not drive, each as the PCI
  listing's map (``addr``, ``class``, ``vendor``, ``device``, ``name``, ``driver``) plus
  ``placement``;
* ``get_gpu_placement(id)``: db ``/xenmgr/gpu-placement/<id>``, else the GPU's rank among the
  host's GPUs; ``configure_gpu_placement(id, slot)`` writes it;
* ``set_displayhandler_gpu(gpus)``: a comma-separated list of PCI addresses (``""``: the boot
  display) for the display handler, db ``/xenmgr/dh/gpu``; an address that is malformed, or is
  a VM's passthrough GPU (a VM's ``gpu``), is refused naming it, and nothing is written; then
  ``displayhandler_gpu_changed`` on ``/host``;
* ``get_displayhandler_gpu``: the DRM card numbers of those GPUs, comma-separated (of the boot
  display when none is set; ``-1`` for a GPU no DRM driver holds);
* ``list_gpus_for_displayhandler``: the host's GPUs no VM passes through, each ``addr``,
  ``name``, ``drmcard``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rpc.dbus import Call, dbus_method
from xen.xenmgr._errors import error, plain
from xen.xenmgr._host_io import pci_sysfs
from xen.xenmgr._messages import Emit
from xen.xenmgr._pci_inventory import HostPci, device_map, host_pci_devices, is_gpu

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["DH_GPU", "HostGpuMethods", "host_gpus"]

HOST = "com.citrix.xenclient.xenmgr.host"
DH_GPU = "/xenmgr/dh/gpu"
PLACEMENT = "/xenmgr/gpu-placement"
_BDF = re.compile(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]")


def host_gpus(devices: list[HostPci], secondary: bool = False) -> list[HostPci]:
    """The host's GPUs among ``devices``: the boot display first (module docstring)."""
    gpus = [d for d in devices if is_gpu(d)]
    boot = [d for d in gpus if d.boot_vga]
    return boot + ([d for d in gpus if not d.boot_vga] if secondary else [])


class HostGpuMethods:
    """See the module docstring (mixed into the host object)."""

    ctx: ServiceContext

    def _gpus(self) -> list[HostPci]:
        return host_gpus(host_pci_devices(self.ctx.settings))

    def _gpu(self, gpu_id: str) -> tuple[int, HostPci]:
        for rank, gpu in enumerate(self._gpus()):
            if gpu.bdf == gpu_id.strip().lower():
                return rank, gpu
        raise error(234, gpu_id)

    def _placement(self, gpu_id: str) -> int:
        rank, gpu = self._gpu(gpu_id)
        stored = self.ctx.db.read(f"{PLACEMENT}/{gpu.bdf}")
        try:
            return int(stored) if stored else rank
        except ValueError:
            return rank

    def _passed_through(self) -> set[str]:
        return {str(tree.get("gpu") or "").strip().lower()
                for tree in self.ctx.db.vms().values()} - {""}

    def _drm_card(self, bdf: str) -> int:
        sysfs = pci_sysfs(self.ctx.settings)
        try:
            cards = sysfs.read(f"devices/{bdf}/drm").split() if sysfs is not None else []
        except OSError:
            return -1
        numbers = [int(c[4:]) for c in cards if re.fullmatch(r"card\d+", c)]
        return min(numbers) if numbers else -1

    @dbus_method(HOST, "list_gpu_devices")
    def list_gpu_devices(self, call: Call) -> list[dict[str, str]]:
        handled = {a.strip().lower() for a in (self.ctx.db.read(DH_GPU) or "").split(",")}
        return [{**device_map(g), "placement": str(self._placement(g.bdf))}
                for g in self._gpus() if g.bdf not in handled]

    @dbus_method(HOST, "get_gpu_placement")
    def get_gpu_placement(self, call: Call, gpu_id: str) -> int:
        return self._placement(gpu_id)

    @dbus_method(HOST, "configure_gpu_placement")
    def configure_gpu_placement(self, call: Call, gpu_id: str, slot: int) -> None:
        _rank, gpu = self._gpu(gpu_id)
        self.ctx.db.write(f"{PLACEMENT}/{gpu.bdf}", str(slot))

    @dbus_method(HOST, "set_displayhandler_gpu")
    def set_displayhandler_gpu(self, call: Call, gpus: str) -> None:
        wanted = [a.strip().lower() for a in gpus.split(",")] if gpus.strip() else []
        passed = self._passed_through()
        for addr in wanted:
            if not _BDF.fullmatch(addr):
                raise plain(f"display handler GPU {addr!r} is not a PCI address DDDD:BB:SS.F")
            if addr in passed:
                raise plain(f"GPU {addr} is assigned to a VM for passthrough")
        self.ctx.db.write(DH_GPU, ",".join(wanted))
        self.ctx.tell_queue(Emit("/host", HOST, "displayhandler_gpu_changed"))

    @dbus_method(HOST, "get_displayhandler_gpu")
    def get_displayhandler_gpu(self, call: Call) -> str:
        wanted = [a for a in (self.ctx.db.read(DH_GPU) or "").split(",") if a]
        if not wanted:
            boot = [g.bdf for g in self._gpus() if g.boot_vga]
            return str(self._drm_card(boot[0])) if boot else "-1"
        return ",".join(str(self._drm_card(a)) for a in wanted)

    @dbus_method(HOST, "list_gpus_for_displayhandler")
    def list_gpus_for_displayhandler(self, call: Call) -> list[dict[str, str]]:
        passed = self._passed_through()
        return [{"addr": g.bdf, "name": g.name, "drmcard": str(self._drm_card(g.bdf))}
                for g in self._gpus() if g.bdf not in passed]
