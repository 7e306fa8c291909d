"""dom0's PCI sysfs (``/sys/bus/pci``): reading a device, binding it to pciback, resetting it.

One small interface, `PciSysfs` (``read``, ``write``, ``driver``: paths relative to
``/sys/bus/pci``; failures are OSErrors with the errno the kernel gives), and two
implementations: `HostPciSysfs` writes the real files of a dom0 (xen-pciback loaded); it
cannot be proven without hardware (no device to give away here) and is written from the
kernel's documented interface. `SimPciSysfs` asks the simulated host, whose PCI bus model
answers the same paths (docs/simhost.md). The logic on top is the same for both:

* `pci_functions`: every BDF of the host (the entries of ``devices``: a directory reads as its
  entries, one a line).
* `read_pci_device`: class, vendor, device, irq, the BARs of ``resource`` and the driver;
  `PciDeviceMissing` (an OSError, ENODEV) names a BDF the host does not have.
* `bind_to_pciback`: nothing when pciback already holds it; else unbind the current driver,
  ``drivers/pciback/new_slot`` then ``drivers/pciback/bind`` (the original's order).
* `reset_device`: ``drivers/pciback/reset_device`` (OpenXT's pciback; a function-level
  reset), skipped with a log line for network controllers as the original did.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from xen.hypervisor import HypervisorError
from xen.xenops._pci import PCIBACK, PciHostDevice, parse_resource

if TYPE_CHECKING:
    from xen.hypervisor import SimBackend

__all__ = [
    "HostPciSysfs",
    "PciDeviceMissing",
    "PciSysfs",
    "PciSysfsActions",
    "SimPciSysfs",
    "bind_to_pciback",
    "pci_functions",
    "read_pci_device",
    "reset_device",
]

logger = logging.getLogger("xenops")


class PciDeviceMissing(OSError):
    """The host has no PCI device with that BDF."""


class PciSysfs(Protocol):
    """``/sys/bus/pci``, paths relative to it."""

    def read(self, path: str) -> str:
        """The file's text, stripped; a directory reads as its entries, one a line, sorted."""
        ...

    def write(self, path: str, value: str) -> None:
        """Write ``value`` to the file (one write, as the kernel wants)."""
        ...

    def driver(self, bdf: str) -> str | None:
        """The name of the driver bound to ``bdf``, None when unbound."""
        ...

class HostPciSysfs:
    """A dom0's real ``/sys/bus/pci`` (``root`` for tests)."""

    def __init__(self, root: str | os.PathLike[str] = "/sys/bus/pci") -> None:
        self.root = Path(root)

    def read(self, path: str) -> str:
        target = self.root / path
        if target.is_dir():
            return "\n".join(sorted(os.listdir(target)))
        return target.read_text().strip()

    def write(self, path: str, value: str) -> None:
        with open(self.root / path, "w") as f:
            f.write(value)

    def driver(self, bdf: str) -> str | None:
        try:
            return os.path.basename(os.readlink(self.root / "devices" / bdf / "driver"))
        except FileNotFoundError:
            return None

class SimPciSysfs:
    """The simulated host's stand-in, over its hypervisor socket."""

    def __init__(self, backend: SimBackend) -> None:
        self._backend = backend

    def close(self) -> None:
        """Close the connection."""
        self._backend.close()

    def read(self, path: str) -> str:
        try:
            return self._backend.sysfs_read(path).strip()
        except HypervisorError as exc:
            raise _os_error(exc) from None

    def write(self, path: str, value: str) -> None:
        try:
            self._backend.sysfs_write(path, value)
        except HypervisorError as exc:
            raise _os_error(exc) from None

    def driver(self, bdf: str) -> str | None:
        try:
            return self.read(f"devices/{bdf}/driver")
        except FileNotFoundError:
            return None

def _os_error(exc: HypervisorError) -> OSError:
    code = exc.errno if exc.errno is not None else errno.EIO
    return OSError(code, str(exc))


def pci_functions(sysfs: PciSysfs) -> list[str]:
    """Every PCI function of the host, sorted (see the module docstring)."""
    return sorted(line for line in sysfs.read("devices").splitlines() if line)


def read_pci_device(sysfs: PciSysfs, bdf: str) -> PciHostDevice:
    """The device ``bdf`` (see the module docstring)."""
    try:
        class_code = int(sysfs.read(f"devices/{bdf}/class"), 16)
    except (FileNotFoundError, OSError) as exc:
        if isinstance(exc, FileNotFoundError) or exc.errno in (errno.ENOENT, errno.ENODEV):
            raise PciDeviceMissing(errno.ENODEV, f"no PCI device {bdf} on this host") from None
        raise
    irq = int(sysfs.read(f"devices/{bdf}/irq") or "0")
    return PciHostDevice(
        bdf, class_code, int(sysfs.read(f"devices/{bdf}/vendor"), 16),
        int(sysfs.read(f"devices/{bdf}/device"), 16), irq,
        parse_resource(sysfs.read(f"devices/{bdf}/resource"), bdf), sysfs.driver(bdf))


def bind_to_pciback(sysfs: PciSysfs, bdf: str) -> None:
    """Give ``bdf`` to pciback (see the module docstring)."""
    current = sysfs.driver(bdf)
    if current == PCIBACK:
        return
    if current is not None:
        logger.info("pci %s: unbinding from %s", bdf, current)
        sysfs.write(f"drivers/{current}/unbind", bdf)
    sysfs.write(f"drivers/{PCIBACK}/new_slot", bdf)
    sysfs.write(f"drivers/{PCIBACK}/bind", bdf)
    logger.info("pci %s: bound to %s", bdf, PCIBACK)


def reset_device(sysfs: PciSysfs, bdf: str) -> None:
    """Function-level reset of ``bdf`` through pciback, unless it is a network controller."""
    device = read_pci_device(sysfs, bdf)
    if not device.resettable:
        logger.info("pci %s: class %#08x is never reset (as the original)", bdf,
                    device.class_code)
        return
    sysfs.write(f"drivers/{PCIBACK}/reset_device", bdf)


class PciSysfsActions:
    """The PCI host actions over a `PciSysfs` (mixed into a ``HostActions``; the subclass
    gives ``pci_sysfs()``)."""

    def pci_sysfs(self) -> PciSysfs:
        """The sysfs to act on."""
        raise NotImplementedError

    def pci_bind(self, bdf: str) -> None:
        """Unbind the PCI function from its driver and bind it to pciback."""
        bind_to_pciback(self.pci_sysfs(), bdf)

    def pci_flr(self, bdf: str) -> None:
        """Reset the PCI function (pciback ``reset_device``; network controllers skipped)."""
        reset_device(self.pci_sysfs(), bdf)

    def pci_permissive(self, bdf: str) -> None:
        """pciback passes the guest's config-space writes through (``permissive``)."""
        self.pci_sysfs().write(f"drivers/{PCIBACK}/permissive", bdf)

    def pci_restrictive(self, bdf: str) -> None:
        """pciback filters the guest's config-space writes again (``restrictive``, OpenXT's
        pciback; a stock pciback has no such node: an OSError)."""
        self.pci_sysfs().write(f"drivers/{PCIBACK}/restrictive", bdf)

    def pci_device(self, bdf: str) -> PciHostDevice:
        """The PCI function as dom0 sees it; `PciDeviceMissing` for an unknown BDF."""
        return read_pci_device(self.pci_sysfs(), bdf)
