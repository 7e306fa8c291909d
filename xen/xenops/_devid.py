"""Virtual block device numbers (vbd devids) and the XenbusState values.

A vbd's devid is the number written to `virtual-device` and used in its xenstore paths.
It is derived from the guest-visible name (`virtpath`):

- `xvdX[N]` (Xen PV disks): disks a..p with partitions 0..15 use major 202, minor 16*disk +
  partition, devid = 256*202 + minor (the original's only form). Larger disk indexes
  (`xvdq`.., `xvdaa`.., bijective base 26 as in Linux) or partitions >= 16 use Xen's
  extended encoding `1<<28 | disk<<8 | partition` (disk < 2**20, partition < 256).
- `sdX[N]`: major 8, disks a..p, minor 16*disk + partition (partition 0..15).
- `hdX[N]`: IDE, disks a..t; majors 3, 22, 33, 34, 56, 57, 88, 89, 90, 91 (two disks per
  major), minor 64*(disk % 2) + partition (partition 0..63).
- a plain decimal number: taken as the devid itself.

Partition 0 is the whole disk and is written without digits; partition digits have no leading
zero. `devid_to_name` inverts `name_to_devid` for every name it accepts (plain numbers map
back to a name when they encode one).

Guarantees: pure and total on its domain. Failure: a name or number outside these forms raises
DeviceNameError (a ValueError) naming it. The original fell back to stat()ing /dev/<name>;
that is I/O and is left to callers.
"""

from __future__ import annotations

import enum
import re

__all__ = [
    "EXTENDED_FLAG",
    "IDE_MAJORS",
    "SCSI_MAJOR",
    "XVD_MAJOR",
    "DeviceNameError",
    "XenbusState",
    "devid_to_name",
    "major_minor",
    "name_to_devid",
    "physical_device_string",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

XVD_MAJOR = 202
SCSI_MAJOR = 8
IDE_MAJORS: tuple[int, ...] = (3, 22, 33, 34, 56, 57, 88, 89, 90, 91)
EXTENDED_FLAG = 1 << 28
_EXTENDED_MAX_DISK = (1 << 20) - 1
_MAX_NAME = 64  # longest virtpath we parse; bounds the regex work

_NAME_RE = re.compile(r"(xvd|sd|hd)([a-z]+)(0|[1-9][0-9]{0,3})?")


class DeviceNameError(ValueError):
    """A virtual device name or number that maps to no vbd devid."""


class XenbusState(enum.IntEnum):
    """The xenbus front/back state machine values, as written in `state` nodes."""

    UNKNOWN = 0
    INITIALISING = 1
    INIT_WAIT = 2
    INITIALISED = 3
    CONNECTED = 4
    CLOSING = 5
    CLOSED = 6

    @classmethod
    def parse(cls, text: str) -> XenbusState:
        """The state a `state` node holds. Raises ValueError on anything but "0".."6"."""
        stripped = text.strip()
        if not stripped.isdigit() or len(stripped) > 1 or int(stripped) > 6:
            raise ValueError(f"not a xenbus state: {text!r}")
        return cls(int(stripped))

    def to_xenstore(self) -> str:
        return str(int(self))

    @property
    def description(self) -> str:
        """The lower-case word the original logged (e.g. 'initwait')."""
        return self.name.lower().replace("_", "")


def _letters_to_index(letters: str) -> int:
    """Bijective base 26: a=0, z=25, aa=26, ..."""
    index = 0
    for ch in letters:
        index = index * 26 + (ord(ch) - ord("a") + 1)
    return index - 1


def _index_to_letters(index: int) -> str:
    out = []
    n = index + 1
    while n > 0:
        n, rem = divmod(n - 1, 26)
        out.append(chr(ord("a") + rem))
    return "".join(reversed(out))


def _suffix(partition: int) -> str:
    return str(partition) if partition else ""


def name_to_devid(name: str) -> int:
    """The devid of a virtpath such as `xvda`, `hdc`, `sdb2`, `xvdaa` or `51712`."""
    if not isinstance(name, str) or not name or len(name) > _MAX_NAME:
        raise DeviceNameError(f"not a virtual device name: {name!r}")
    if name.isdigit():
        if len(name) > 1 and name[0] == "0":
            raise DeviceNameError(f"device number with a leading zero: {name!r}")
        devid = int(name)
        if devid >= 1 << 32:
            raise DeviceNameError(f"device number out of range: {name!r}")
        return devid
    match = _NAME_RE.fullmatch(name)
    if match is None:
        raise DeviceNameError(f"not a virtual device name: {name!r}")
    prefix, letters, digits = match.group(1), match.group(2), match.group(3)
    disk = _letters_to_index(letters)
    partition = int(digits) if digits else 0
    if prefix == "xvd":
        if disk < 16 and partition < 16:
            return (XVD_MAJOR << 8) | (disk << 4) | partition
        if disk > _EXTENDED_MAX_DISK or partition > 255:
            raise DeviceNameError(f"xvd disk or partition out of range: {name!r}")
        return EXTENDED_FLAG | (disk << 8) | partition
    if prefix == "sd":
        if disk >= 16 or partition >= 16:
            raise DeviceNameError(f"sd disk must be sda..sdp with partition < 16: {name!r}")
        return (SCSI_MAJOR << 8) | (disk << 4) | partition
    # hd
    if disk >= 2 * len(IDE_MAJORS) or partition >= 64:
        raise DeviceNameError(f"hd disk must be hda..hdt with partition < 64: {name!r}")
    major = IDE_MAJORS[disk // 2]
    return (major << 8) | (64 * (disk % 2) + partition)


def devid_to_name(devid: int) -> str:
    """The canonical virtpath of a devid. Raises DeviceNameError if it encodes no name."""
    if isinstance(devid, bool) or not isinstance(devid, int) or devid < 0 or devid >= 1 << 32:
        raise DeviceNameError(f"not a vbd devid: {devid!r}")
    if devid & EXTENDED_FLAG:
        if devid >> 29:
            raise DeviceNameError(f"not a vbd devid: {devid}")
        disk, partition = (devid >> 8) & _EXTENDED_MAX_DISK, devid & 0xFF
        return "xvd" + _index_to_letters(disk) + _suffix(partition)
    major, minor = devid >> 8, devid & 0xFF
    if major == XVD_MAJOR:
        return "xvd" + _index_to_letters(minor >> 4) + _suffix(minor & 0xF)
    if major == SCSI_MAJOR:
        return "sd" + _index_to_letters(minor >> 4) + _suffix(minor & 0xF)
    if major in IDE_MAJORS:
        disk = 2 * IDE_MAJORS.index(major) + (minor >> 6)
        return "hd" + _index_to_letters(disk) + _suffix(minor & 0x3F)
    raise DeviceNameError(f"devid {devid} (major {major}) encodes no known device name")


def major_minor(name: str) -> tuple[int, int]:
    """(major, minor) of an xvd/sd/hd name in the legacy encoding (no extended xvd)."""
    devid = name_to_devid(name)
    if name.isdigit() or devid & EXTENDED_FLAG:
        raise DeviceNameError(f"{name!r} has no legacy major:minor")
    return devid >> 8, devid & 0xFF


def physical_device_string(major: int, minor: int) -> str:
    """The backend `physical-device` value: lower-case hex `major:minor`."""
    if major < 0 or minor < 0:
        raise DeviceNameError(f"bad device numbers {major}:{minor}")
    return f"{major:x}:{minor:x}"
