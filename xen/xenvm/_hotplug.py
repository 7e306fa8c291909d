"""Device changes from config edits: what ``disk-add``, ``nic-add``, ``pci-add``,
``disk-del``, ``nic-del`` and ``pci-del`` change (pure).

:func:`added` appends a ``disk``, ``nic`` or ``pci`` entry (the config file's syntax) to a
config and names the one device that is new; :func:`removed` drops a disk (by guest device
name, e.g. ``xvdb``), a nic (by id) or a PCI device (by BDF) and names the frontend to unplug
(kind and devid; a PCI device's frontend is its group's). The machine then
keeps the new config and, when the VM has a domain, plugs or unplugs that device. A bad entry
or a device the config does not have is a ``TaskError`` naming the task; the config is then
unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from xen.xenops import Kind, name_to_devid
from xen.xenvm._config import VmConfig, add_entry
from xen.xenvm._config_devices import DiskConfig, NicConfig, PciConfig
from xen.xenvm._config_values import ConfigError
from xen.xenvm._tasks import TaskError

__all__ = ["Added", "DeviceKey", "Removed", "added", "removed"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

DeviceKey = Literal["disk", "nic", "pci"]


@dataclass(frozen=True, slots=True)
class Added:
    """The config with the new entry, and the new device."""

    config: VmConfig
    device: DiskConfig | NicConfig | PciConfig


@dataclass(frozen=True, slots=True)
class Removed:
    """The config without the device, and the device's frontend (kind, devid)."""

    config: VmConfig
    kind: Kind
    devid: int


def added(config: VmConfig, key: DeviceKey, entry: str) -> Added:
    """``config`` with the ``key`` entry ``entry`` appended (see the module docstring)."""
    try:
        changed = add_entry(config, key, entry)
    except ConfigError as exc:
        raise TaskError(f"{key}-add: {exc}") from None
    if key == "disk":
        return Added(changed, changed.disks[-1])
    if key == "pci":
        new = changed.pcis[-1]
        if any(p.bdf == new.bdf for p in config.pcis):
            raise TaskError(f"pci-add: {new.bdf} is already in the config")
        return Added(changed, new)
    old = {nic.nic_id for nic in config.nics}
    return Added(changed, next(nic for nic in changed.nics if nic.nic_id not in old))


def removed(config: VmConfig, key: DeviceKey, ident: str) -> Removed:
    """``config`` without disk ``ident`` (guest device name), nic ``ident`` (its id) or PCI
    device ``ident`` (its BDF)."""
    if key == "pci":
        gone = [p for p in config.pcis if p.bdf == ident.lower()]
        if not gone:
            raise TaskError(f"pci-del: no pci device {ident!r}")
        pcis = tuple(p for p in config.pcis if p.bdf != ident.lower())
        return Removed(dataclasses.replace(config, pcis=pcis), Kind.PCI, gone[0].group)
    if key == "disk":
        disks = tuple(d for d in config.disks if d.virtpath != ident)
        if len(disks) == len(config.disks):
            raise TaskError(f"disk-del: no disk {ident!r}")
        return Removed(dataclasses.replace(config, disks=disks), Kind.VBD, name_to_devid(ident))
    nics = tuple(n for n in config.nics if str(n.nic_id) != ident)
    if len(nics) == len(config.nics):
        raise TaskError(f"nic-del: no nic {ident!r}")
    return Removed(dataclasses.replace(config, nics=nics), Kind.VIF, int(ident))
