"""The host's PCI devices, as xenmgr lists them and matches passthrough rules against them.

Where they are read (``ManagerSettings.pci_inventory``): ``sim``, the simulated host's
mirror of its PCI bus in xenstore (``/sim/pci/<node>/{bdf,name,class,vendor,device,driver}``);
``dom0``, ``/sys/bus/pci/devices/<bdf>/{class,vendor,device}`` and the ``driver`` link (not
proven here: no PCI hardware); ``none``: no devices.

* :func:`host_pci_devices` gives every device as :class:`HostPci`;
* :func:`device_map` the map a listing answers: ``addr`` (the BDF), ``class`` (``0x%04x``, the
  class and subclass, as the rules are written), ``vendor``, ``device``, ``name``, ``driver``;
* :func:`matching` the devices a VM's rule (``_devices.PciRule``) selects: its BDF, or every
  device whose class, vendor and device equal the rule's (a missing one matches anything);
* GPUs are the display controllers (class ``0x03``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from actors import service
from xen.xenmgr._devices import PciRule
from xen.xenmgr._settings import ManagerSettings
from xen.xenstore import XenstoreClient

__all__ = ["HostPci", "device_map", "host_pci_devices", "is_gpu", "matching"]

logger = logging.getLogger("xenmgr")

SIM_ROOT = "/sim/pci"
SYSFS = "/sys/bus/pci/devices"


@dataclass(frozen=True, slots=True)
class HostPci:
    """One PCI function of the host; ``class_code`` is the 24-bit class (class, subclass,
    programming interface)."""

    bdf: str
    class_code: int
    vendor: int
    device: int
    name: str = ""
    driver: str = ""


def _sim(settings: ManagerSettings) -> list[HostPci]:
    xs = service(settings.xenstore_service, XenstoreClient)
    out = []
    for node in xs.directory(SIM_ROOT) if xs.exists(SIM_ROOT) else []:
        base = f"{SIM_ROOT}/{node}"
        bdf = xs.try_read(f"{base}/bdf")
        if not bdf:
            continue  # grants/, or a device being rewritten
        out.append(HostPci(bdf, int(xs.read(f"{base}/class"), 16),
                           int(xs.read(f"{base}/vendor"), 16), int(xs.read(f"{base}/device"), 16),
                           xs.try_read(f"{base}/name") or "", xs.try_read(f"{base}/driver") or ""))
    return out


def _dom0() -> list[HostPci]:
    out = []
    for bdf in sorted(os.listdir(SYSFS)):
        def read(name: str, bdf: str = bdf) -> int:
            with open(os.path.join(SYSFS, bdf, name)) as f:
                return int(f.read().strip(), 16)
        link = os.path.join(SYSFS, bdf, "driver")
        driver = os.path.basename(os.readlink(link)) if os.path.islink(link) else ""
        out.append(HostPci(bdf, read("class"), read("vendor"), read("device"), "", driver))
    return out


def host_pci_devices(settings: ManagerSettings) -> list[HostPci]:
    """The host's PCI devices, by address (module docstring)."""
    if settings.pci_inventory == "sim":
        devices = _sim(settings)
    elif settings.pci_inventory == "dom0":
        devices = _dom0()
    else:
        devices = []
    return sorted(devices, key=lambda d: d.bdf)


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
