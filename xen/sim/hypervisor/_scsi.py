"""The simulated host's SCSI devices: its disks and CD/DVD drives, as dom0 sees them. Pure.

Each `SimScsiDevice` has a SCSI address (``H:C:T:L``), a SCSI peripheral type (0 a disk, 5 a
CD/DVD drive), vendor and model texts, its block device's name (``sda``, ``sr0``), its size in
512-byte sectors (of the medium, for a drive), the USB device it sits on (``bus:dev``, empty
when it is not on USB) and, for a drive, whether a medium is in it.

`SimScsiBus.devices` answers what a dom0 reads under ``/sys/bus/scsi/devices`` (and what
udev's ``cdrom_id`` says of the medium), one plain map per device: ``hctl``, ``type``,
``vendor``, ``model``, ``block``, ``sectors``, ``usb``, ``medium`` (None for a disk).
`SimScsiBus.eject` is the ``CDROMEJECT`` ioctl of a drive: its medium goes (an empty drive
only opens its tray) and the ejections are counted; a disk cannot be ejected (ENOTTY, as the
ioctl on a disk), an unknown address is ENODEV. The bus travels on the hypervisor socket as the
PCI bus's sysfs stand-in does (``scsi_devices``, ``scsi_eject``; docs/simhost.md).
"""

from __future__ import annotations

import errno as _errno
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from xen.hypervisor import InvalidArgument, error_for_errno

__all__ = ["DEFAULT_SCSI_DEVICES", "SCSI_CDROM", "SCSI_DISK", "SimScsiBus", "SimScsiDevice"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

SCSI_DISK = 0
SCSI_CDROM = 5
_HCTL = re.compile(r"\d{1,4}:\d{1,4}:\d{1,4}:\d{1,4}")
_BLOCK = re.compile(r"[a-z][a-z0-9]{0,15}")


@dataclass(frozen=True, slots=True)
class SimScsiDevice:
    """A device on the simulated SCSI bus, as configured."""

    hctl: str
    type: int
    vendor: str
    model: str
    block: str
    sectors: int = 0
    usb: str = ""
    medium: bool = False

    def __post_init__(self) -> None:
        if not _HCTL.fullmatch(self.hctl):
            raise InvalidArgument(f"SCSI address {self.hctl!r} is not H:C:T:L")
        if self.type not in (SCSI_DISK, SCSI_CDROM):
            raise InvalidArgument(f"SCSI device {self.hctl}: type {self.type!r} is not 0 or 5")
        if not _BLOCK.fullmatch(self.block):
            raise InvalidArgument(f"SCSI device {self.hctl}: bad block device {self.block!r}")
        if isinstance(self.sectors, bool) or not isinstance(self.sectors, int) \
                or self.sectors < 0:
            raise InvalidArgument(f"SCSI device {self.hctl}: bad size {self.sectors!r}")


DEFAULT_SCSI_DEVICES: tuple[SimScsiDevice, ...] = (
    SimScsiDevice("0:0:0:0", SCSI_DISK, "ATA", "Samsung SSD 860", "sda", 500118192),
    SimScsiDevice("1:0:0:0", SCSI_CDROM, "HL-DT-ST", "DVDRAM GH24NSD1", "sr0", 1433600,
                  medium=True),
    SimScsiDevice("6:0:0:0", SCSI_CDROM, "ASUS", "SDRW-08D2S-U", "sr1", 0, usb="2:3"),
)


class SimScsiBus:
    """The simulated SCSI bus (see the module docstring)."""

    def __init__(self, devices: Iterable[SimScsiDevice] = DEFAULT_SCSI_DEVICES) -> None:
        self._devs: dict[str, SimScsiDevice] = {}
        self._medium: dict[str, bool] = {}
        self.ejections: dict[str, int] = {}
        for dev in devices:
            if dev.hctl in self._devs:
                raise InvalidArgument(f"SCSI device {dev.hctl} is listed twice")
            self._devs[dev.hctl] = dev
            self._medium[dev.hctl] = dev.medium and dev.type == SCSI_CDROM
            self.ejections[dev.hctl] = 0

    def devices(self) -> list[dict[str, Any]]:
        """Every device, by address (see the module docstring)."""
        out = []
        for hctl, dev in sorted(self._devs.items()):
            drive = dev.type == SCSI_CDROM
            medium = self._medium[hctl]
            out.append({"hctl": hctl, "type": dev.type, "vendor": dev.vendor,
                        "model": dev.model, "block": dev.block,
                        "sectors": dev.sectors if not drive or medium else 0,
                        "usb": dev.usb, "medium": medium if drive else None,
                        "ejections": self.ejections[hctl]})
        return out

    def eject(self, hctl: str) -> None:
        """Eject the drive's medium (see the module docstring)."""
        what = f"eject SCSI device {hctl}"
        dev = self._devs.get(hctl)
        if dev is None:
            raise error_for_errno(_errno.ENODEV, what, "no such SCSI device on this host")
        if dev.type != SCSI_CDROM:
            raise error_for_errno(_errno.ENOTTY, what, f"{dev.block} is not a CD/DVD drive")
        self._medium[hctl] = False
        self.ejections[hctl] += 1

    def insert(self, hctl: str) -> None:
        """A medium is put in the drive (tests, the simulated host's control)."""
        dev = self._devs.get(hctl)
        if dev is None or dev.type != SCSI_CDROM:
            raise error_for_errno(_errno.ENODEV, f"insert a medium in {hctl}",
                                  "no such CD/DVD drive on this host")
        self._medium[hctl] = True
