"""dom0's SCSI disks and CD/DVD drives: what ``/sys/bus/scsi`` shows of them, and ejecting a
drive's medium.

One small interface, `ScsiSysfs` (``devices``, ``eject``), and two implementations, as for the
PCI sysfs (`xen.xenops._sysfs`): `HostScsiSysfs` reads a dom0's ``/sys/bus/scsi/devices/<H:C:T:L>``
(``type``, ``vendor``, ``model``, the ``block/<name>`` directory and its ``size``; the USB
device above it, found by walking up the device path to a directory whose ``subsystem`` is
``usb``, gives ``busnum:devnum``) and ejects with the ``CDROMEJECT`` ioctl on ``/dev/<name>``
(the medium state of a dom0 drive is not read: it needs udev's ``cdrom_id``; None). It cannot be
proven here (no drive) and is written from the kernel's documented layout. `SimScsiSysfs` asks
the simulated host over its hypervisor socket (docs/simhost.md). Each device is a `ScsiDevice`;
failures are OSErrors with the errno the kernel gives (ENODEV: no such device; ENOTTY: not a
drive).
"""

from __future__ import annotations

import errno
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from xen.hypervisor import HypervisorError

if TYPE_CHECKING:
    from xen.hypervisor import SimBackend

__all__ = ["SCSI_CDROM", "SCSI_DISK", "HostScsiSysfs", "ScsiDevice", "ScsiSysfs",
           "SimScsiSysfs"]

SCSI_DISK = 0
SCSI_CDROM = 5
CDROMEJECT = 0x5309  # linux/cdrom.h


@dataclass(frozen=True, slots=True)
class ScsiDevice:
    """One SCSI device of dom0: its address, SCSI peripheral type (0 disk, 5 CD/DVD drive),
    vendor and model, block device name (``""`` when it has none), size in 512-byte sectors,
    the USB device it sits on (``(bus, dev)``, None when not on USB) and, for a drive, whether
    it holds a medium (None: unknown)."""

    hctl: str
    type: int
    vendor: str
    model: str
    block: str
    sectors: int = 0
    usb: tuple[int, int] | None = None
    medium: bool | None = None

    @property
    def is_cdrom(self) -> bool:
        """A CD/DVD drive."""
        return self.type == SCSI_CDROM

    @property
    def name(self) -> str:
        """``<vendor> <model>``, as the original named a drive."""
        return f"{self.vendor} {self.model}".strip()


class ScsiSysfs(Protocol):
    """dom0's SCSI devices."""

    def devices(self) -> list[ScsiDevice]:
        """Every SCSI device, by address."""
        ...

    def eject(self, hctl: str) -> None:
        """Eject the medium of drive ``hctl``."""
        ...


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _hctl_key(hctl: str) -> tuple[int, ...]:
    return tuple(int(p) for p in hctl.split(":"))


class HostScsiSysfs:
    """A dom0's real ``/sys/bus/scsi`` (``root``: ``/sys``, for tests)."""

    def __init__(self, root: str | os.PathLike[str] = "/sys") -> None:
        self.root = Path(root)

    def _usb(self, device: Path) -> tuple[int, int] | None:
        path = device.resolve()
        while path != path.parent and path.is_relative_to(self.root):
            if (path / "subsystem").is_symlink() and \
                    os.path.basename(os.readlink(path / "subsystem")) == "usb":
                bus, dev = _read(path / "busnum"), _read(path / "devnum")
                if bus.isdigit() and dev.isdigit():
                    return int(bus), int(dev)
            path = path.parent
        return None

    def devices(self) -> list[ScsiDevice]:
        base = self.root / "bus" / "scsi" / "devices"
        try:
            names = [n for n in os.listdir(base) if n.count(":") == 3
                     and all(p.isdigit() for p in n.split(":"))]
        except FileNotFoundError:
            return []
        out = []
        for hctl in sorted(names, key=_hctl_key):
            dev = base / hctl
            kind = _read(dev / "type")
            try:
                blocks = sorted(os.listdir(dev / "block"))
            except OSError:
                blocks = []
            block = blocks[0] if blocks else ""
            size = _read(dev / "block" / block / "size") if block else ""
            out.append(ScsiDevice(hctl, int(kind) if kind.isdigit() else -1,
                                  _read(dev / "vendor"), _read(dev / "model"), block,
                                  int(size) if size.isdigit() else 0, self._usb(dev)))
        return out

    def eject(self, hctl: str) -> None:
        match = [d for d in self.devices() if d.hctl == hctl]
        if not match:
            raise OSError(errno.ENODEV, f"no SCSI device {hctl} on this host")
        if not match[0].is_cdrom or not match[0].block:
            raise OSError(errno.ENOTTY, f"SCSI device {hctl} is not a CD/DVD drive")
        fd = os.open(f"/dev/{match[0].block}", os.O_RDONLY | os.O_NONBLOCK)
        try:
            fcntl.ioctl(fd, CDROMEJECT)
        finally:
            os.close(fd)


def _device(entry: dict[str, Any]) -> ScsiDevice:
    usb = str(entry.get("usb") or "")
    bus, _, dev = usb.partition(":")
    medium = entry.get("medium")
    return ScsiDevice(str(entry["hctl"]), int(entry["type"]), str(entry.get("vendor", "")),
                      str(entry.get("model", "")), str(entry.get("block", "")),
                      int(entry.get("sectors", 0)),
                      (int(bus), int(dev)) if bus.isdigit() and dev.isdigit() else None,
                      medium if isinstance(medium, bool) else None)


class SimScsiSysfs:
    """The simulated host's SCSI devices, over its hypervisor socket."""

    def __init__(self, backend: SimBackend) -> None:
        self._backend = backend

    def devices(self) -> list[ScsiDevice]:
        try:
            return [_device(e) for e in self._backend.scsi_devices()]
        except HypervisorError as exc:
            raise OSError(exc.errno or errno.EIO, str(exc)) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise OSError(errno.EIO, f"the simulated host's SCSI list is malformed: "
                          f"{exc}") from None

    def eject(self, hctl: str) -> None:
        try:
            self._backend.scsi_eject(hctl)
        except HypervisorError as exc:
            raise OSError(exc.errno or errno.EIO, str(exc)) from None
