"""The xenstore layout of domains and PV devices: paths, permissions and identities.

Pure values only. A device is a pair of endpoints (frontend in the guest, backend in a driver
domain). Its nodes:

- frontend  `/local/domain/<fe>/device/<fe-kind>/<devid>`
- backend   `/local/domain/<be>/backend/<be-kind>/<fe>/<devid>`
- error     `/local/domain/<fe>/error/device/<fe-kind>/<devid>/error`
- hotplug   `/xapi/<fe>/hotplug/<be-kind>/<devid>` (+ `/hotplug` status node written by the
  udev scripts), `/xapi/<fe>/hotplug-extra/<be-kind>/<devid>` (loop devices),
  `/xapi/<fe>/frontend/<fe-kind>/<devid>/hotplug` (dom0 frontends).

Device specs and the node values a device add writes are in _devspec.

Failure: a bad domid, devid or permission raises LayoutError (a ValueError) naming it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Device",
    "Endpoint",
    "Kind",
    "LayoutError",
    "PermLevel",
    "Perms",
    "PhysType",
    "Protocol",
    "check_domid",
    "domain_path",
    "private_path",
    "ro_perms",
    "rw_perms",
    "vm_path",
    "vss_path",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

PermLevel = Literal["n", "r", "w", "b"]
_PERM_LEVELS = ("n", "r", "w", "b")
_MAX_DOMID = 0xFFFF


class LayoutError(ValueError):
    """A device spec or permission that cannot be laid out in xenstore."""


def check_domid(what: str, domid: int) -> None:
    if isinstance(domid, bool) or not isinstance(domid, int) or not 0 <= domid <= _MAX_DOMID:
        raise LayoutError(f"{what} must be a domid in 0..{_MAX_DOMID}, got {domid!r}")


class Kind(enum.Enum):
    """Device kinds, as they appear in xenstore paths."""

    VIF = "vif"
    VWIF = "vwif"
    VBD = "vbd"
    TAP = "tap"
    PCI = "pci"
    VFB = "vfb"
    VKBD = "vkbd"
    V4V = "v4v"
    CONSOLE = "console"
    VSND = "vsnd"
    VTPM = "vtpm"


class Protocol(enum.Enum):
    """Frontend ring protocol (`protocol` key) of a guest ABI."""

    NATIVE = "native"
    X86_32 = "x86_32-abi"
    X86_64 = "x86_64-abi"


class PhysType(enum.Enum):
    """How a disk image is exported: blkback (phy, file) or blktap (qcow, vhd, aio)."""

    PHY = "phy"
    FILE = "file"
    QCOW = "qcow"
    VHD = "vhd"
    AIO = "aio"

    @property
    def uses_tap(self) -> bool:
        return self in (PhysType.QCOW, PhysType.VHD, PhysType.AIO)

    @property
    def backend_type(self) -> str:
        """The backend `type` value: phy, file or tap."""
        return "tap" if self.uses_tap else self.value


@dataclass(frozen=True, slots=True)
class Perms:
    """Xenstore permissions: owner, everyone else's level, and per-domain exceptions."""

    owner: int
    other: PermLevel = "n"
    acl: tuple[tuple[int, PermLevel], ...] = ()

    def __post_init__(self) -> None:
        check_domid("perms owner", self.owner)
        if self.other not in _PERM_LEVELS:
            raise LayoutError(f"perms level must be one of n r w b, got {self.other!r}")
        for domid, level in self.acl:
            check_domid("perms acl domid", domid)
            if level not in _PERM_LEVELS:
                raise LayoutError(f"perms level must be one of n r w b, got {level!r}")

    def to_strings(self) -> list[str]:
        """The wire form: `[<other><owner>, <level><domid>...]`, e.g. ["n0", "r5"]."""
        return [f"{self.other}{self.owner}"] + [f"{level}{domid}" for domid, level in self.acl]

    @classmethod
    def from_strings(cls, items: list[str] | tuple[str, ...]) -> Perms:
        """Parse the wire form. Raises LayoutError on an empty list or a bad entry."""
        if not items:
            raise LayoutError("empty permission list")
        parsed: list[tuple[int, PermLevel]] = []
        for item in items:
            level, digits = item[:1], item[1:]
            if level not in _PERM_LEVELS or not digits.isdigit():
                raise LayoutError(f"bad permission entry {item!r}")
            parsed.append((int(digits), level))  # type: ignore[arg-type]
        (owner, other), acl = parsed[0], tuple(parsed[1:])
        return cls(owner, other, acl)


def ro_perms(domid: int) -> Perms:
    """Dom0 owns; the guest may read (the original's "roperm")."""
    return Perms(0, "n", ((domid, "r"),))


def rw_perms(domid: int) -> Perms:
    """The guest owns (read/write); nobody else may read (the original's "rwperm")."""
    return Perms(domid)


def domain_path(domid: int) -> str:
    check_domid("domid", domid)
    return f"/local/domain/{domid}"


def vm_path(uuid: str) -> str:
    return f"/vm/{uuid}"


def vss_path(uuid: str) -> str:
    return f"/vss/{uuid}"


def private_path(domid: int) -> str:
    """The toolstack's private hotplug tree of a frontend domain."""
    check_domid("domid", domid)
    return f"/xapi/{domid}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    domid: int
    kind: Kind
    devid: int

    def __post_init__(self) -> None:
        check_domid("endpoint domid", self.domid)
        if isinstance(self.devid, bool) or not isinstance(self.devid, int) or self.devid < 0:
            raise LayoutError(f"devid must be an integer >= 0, got {self.devid!r}")


@dataclass(frozen=True, slots=True)
class Device:
    """A PV device: its frontend and backend endpoints, and every path derived from them."""

    frontend: Endpoint
    backend: Endpoint

    @property
    def frontend_path(self) -> str:
        fe = self.frontend
        return f"{domain_path(fe.domid)}/device/{fe.kind.value}/{fe.devid}"

    @property
    def backend_path(self) -> str:
        be, fe = self.backend, self.frontend
        return f"{domain_path(be.domid)}/backend/{be.kind.value}/{fe.domid}/{be.devid}"

    @property
    def error_dir(self) -> str:
        fe = self.frontend
        return f"{domain_path(fe.domid)}/error/device/{fe.kind.value}/{fe.devid}"

    @property
    def error_path(self) -> str:
        return f"{self.error_dir}/error"

    @property
    def hotplug_path(self) -> str:
        be = self.backend
        return f"{private_path(self.frontend.domid)}/hotplug/{be.kind.value}/{be.devid}"

    @property
    def hotplug_status_path(self) -> str:
        """Written `online` by the backend udev script on add, removed on remove."""
        return f"{self.hotplug_path}/hotplug"

    @property
    def hotplug_extra_path(self) -> str:
        be = self.backend
        return f"{private_path(self.frontend.domid)}/hotplug-extra/{be.kind.value}/{be.devid}"

    @property
    def frontend_hotplug_path(self) -> str:
        """Written `online` by the frontend udev script when the frontend is in dom0."""
        fe = self.frontend
        return f"{private_path(fe.domid)}/frontend/{fe.kind.value}/{fe.devid}/hotplug"

    @property
    def udev_path(self) -> str:
        fe = self.frontend
        return f"{private_path(fe.domid)}/hotplug/{fe.kind.value}/{fe.devid}"

    @property
    def hotplug_connected_path(self) -> str:
        """`hotplug-status` = connected, which netback waits for."""
        return f"{self.backend_path}/hotplug-status"

    @property
    def tapdisk_error_path(self) -> str:
        return f"{self.backend_path}/tapdisk-error"

    @property
    def backend_state_path(self) -> str:
        return f"{self.backend_path}/state"

    @property
    def backend_online_path(self) -> str:
        return f"{self.backend_path}/online"
