"""The host's PCI devices, as xenmgr lists them and matches passthrough rules against them.

They are read through the host's PCI sysfs (:func:`xen.xenmgr._host_io.pci_sysfs`: a dom0's
``/sys/bus/pci``, or the simulated host's stand-in on its hypervisor socket; none configured:
no devices): every function of ``devices``, with its ``class``, ``vendor``, ``device``, bound
driver, ``label`` (its name, when the firmware gives one) and ``boot_vga``.

* :func:`host_pci_devices` gives every device as :class:`HostPci`;
* :func:`device_map` the map a listing answers: ``addr`` (the BDF), ``class`` (``0x%04x``, the
  class and subclass, as the rules are written), ``vendor``, ``device``, ``name``, ``driver``;
* :func:`matching` the devices a VM's rule (``_devices.PciRule``) selects: its BDF, or every
  device whose class, vendor and device equal the rule's (a missing one matches anything);
* GPUs are the display controllers (class ``0x03``); ``boot_vga`` marks the one the firmware
  booted on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from xen.xenmgr._devices import PciRule
from xen.xenmgr._host_io import pci_sysfs
from xen.xenmgr._settings import ManagerSettings
from xen.xenops import PciSysfs, pci_functions

__all__ = ["HostPci", "device_map", "host_pci_devices", "is_gpu", "matching", "read_pci"]

logger = logging.getLogger("xenmgr")


@dataclass(frozen=True, slots=True)
class HostPci:
    """One PCI function of the host; ``class_code`` is the 24-bit class (class, subclass,
    programming interface); ``boot_vga``: the display the firmware booted on."""

    bdf: str
    class_code: int
    vendor: int
    device: int
    name: str = ""
    driver: str = ""
    boot_vga: bool = False


def _optional(sysfs: PciSysfs, path: str) -> str:
    try:
        return sysfs.read(path)
    except OSError:
        return ""


def read_pci(sysfs: PciSysfs) -> list[HostPci]:
    """Every PCI function ``sysfs`` shows, by address (a device that went away meanwhile is
    left out)."""
    out = []
    for bdf in pci_functions(sysfs):
        base = f"devices/{bdf}"
        try:
            cls, vendor, device = (int(sysfs.read(f"{base}/{n}"), 16)
                                   for n in ("class", "vendor", "device"))
        except FileNotFoundError:
            continue
        out.append(HostPci(bdf, cls, vendor, device, name=_optional(sysfs, f"{base}/label"),
                           driver=sysfs.driver(bdf) or "",
                           boot_vga=_optional(sysfs, f"{base}/boot_vga") == "1"))
    return sorted(out, key=lambda d: d.bdf)


def host_pci_devices(settings: ManagerSettings) -> list[HostPci]:
    """The host's PCI devices, by address (module docstring)."""
    sysfs = pci_sysfs(settings)
    return [] if sysfs is None else read_pci(sysfs)


def device_map(dev: HostPci) -> dict[str, str]:
    """A device as a listing answers it (module docstring)."""
    return {"addr": dev.bdf, "class": f"0x{dev.class_code >> 8:04x}",
            "vendor": f"0x{dev.vendor:04x}", "device": f"0x{dev.device:04x}",
            "name": dev.name, "driver": dev.driver}


def is_gpu(dev: HostPci) -> bool:
    """A display controller (class 0x03)."""
    return dev.class_code >> 16 == 0x03


def matching(rule: PciRule, devices: list[HostPci]) -> list[HostPci]:
    """The devices ``rule`` selects (module docstring)."""
    if rule.bdf is not None:
        return [d for d in devices if d.bdf == rule.bdf]
    return [d for d in devices
            if (rule.pci_class is None or rule.pci_class == d.class_code >> 8)
            and (rule.vendor is None or rule.vendor == d.vendor)
            and (rule.device is None or rule.device == d.device)]
