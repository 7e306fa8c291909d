"""Device specs and the xenstore node values a device add writes, as the original wrote them.

`device_layout(spec)` gives the frontend and backend key/value pairs in write order (besides
the `backend`/`frontend` links that the add plan writes first). Values that need I/O (the
backend domain's UUID, a loop device, a disk's major:minor, a console ring) are fields of the
spec: the caller resolves them before planning.

Failure: a malformed spec raises LayoutError (a ValueError) naming the field; a bad virtpath
raises DeviceNameError (also a ValueError).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from xen.xenops._devid import XenbusState, name_to_devid, physical_device_string
from xen.xenops._layout import (
    Device,
    Endpoint,
    Kind,
    LayoutError,
    PhysType,
    Protocol,
    check_domid,
)

__all__ = [
    "VIF_SCRIPT",
    "ConsoleSpec",
    "DeviceLayout",
    "DeviceSpec",
    "PciDev",
    "PciSpec",
    "PvDeviceSpec",
    "VbdSpec",
    "VifSpec",
    "VtpmSpec",
    "device_layout",
    "device_of_spec",
    "vif_rate_value",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_STATE_INIT = XenbusState.INITIALISING.to_xenstore()
_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
VIF_SCRIPT = "/etc/xensource/scripts/vif"
_DEFAULT_RATE_TIMESLICE_US = 50_000



@dataclass(frozen=True, slots=True)
class VbdSpec:
    """A virtual disk. `physical_device` (major, minor) and `loop_device` come from the host."""

    frontend_domid: int
    virtpath: str
    physpath: str
    phystype: PhysType
    mode: Literal["r", "w"] = "w"
    device_type: Literal["disk", "cdrom"] = "disk"
    backend_domid: int = 0
    backend_uuid: str = ""
    hvm: bool = False
    use_stubdom: bool = False
    protocol: Protocol = Protocol.NATIVE
    removable: bool = False
    physical_device: tuple[int, int] | None = None
    loop_device: str | None = None
    extra_backend_keys: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in ("r", "w"):
            raise LayoutError(f"vbd mode must be r or w, got {self.mode!r}")
        if self.device_type not in ("disk", "cdrom"):
            raise LayoutError(f"vbd device type must be disk or cdrom, got {self.device_type!r}")
        name_to_devid(self.virtpath)  # raises DeviceNameError (a ValueError)
        if self.phystype is PhysType.FILE and not self.hvm and self.loop_device is None:
            raise LayoutError("a PV file-backed vbd needs its loop device (loop_device)")

    @property
    def devid(self) -> int:
        return name_to_devid(self.virtpath)


@dataclass(frozen=True, slots=True)
class VifSpec:
    """A network interface (vif, or vwif when wireless). `network` is the backend `bridge`."""

    frontend_domid: int
    devid: int
    mac: str
    network: str | None = None
    backend_domid: int = 0
    backend_uuid: str = ""
    wireless: bool = False
    protocol: Protocol = Protocol.NATIVE
    rate: tuple[int, int] | None = None  # (KiB/s, timeslice in us; <= 0 means 50 ms)

    def __post_init__(self) -> None:
        if not _MAC_RE.fullmatch(self.mac):
            raise LayoutError(f"vif mac must be xx:xx:xx:xx:xx:xx, got {self.mac!r}")


@dataclass(frozen=True, slots=True)
class PciDev:
    """One PCI function passed through, with its per-device options (already resolved)."""

    domain: int
    bus: int
    slot: int
    func: int
    guest_slot: int | None = None
    msitranslate: int = 1
    power_mgmt: int = 1
    vdevfn: int | None = None

    def __post_init__(self) -> None:
        limits = (("domain", self.domain, 0xFFFF), ("bus", self.bus, 0xFF),
                  ("slot", self.slot, 0x1F), ("func", self.func, 0x7))
        for what, value, limit in limits:
            if not 0 <= value <= limit:
                raise LayoutError(f"pci {what} must be in 0..{limit:#x}, got {value!r}")

    @property
    def bdf(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.func:x}"

    @property
    def dev_string(self) -> str:
        """The backend `dev-<i>` value: BDF plus `@slot` when a guest slot is forced."""
        return self.bdf + ("" if self.guest_slot is None else f"@{self.guest_slot:02x}")


@dataclass(frozen=True, slots=True)
class PciSpec:
    """A PCI passthrough group (devid = group id); the backend is always dom0."""

    frontend_domid: int
    devid: int
    devs: tuple[PciDev, ...]
    hvm: bool = True
    pvpci: bool = True
    flr: bool = False
    assign: bool = True
    permissive: bool = False
    bind: bool = False

    def __post_init__(self) -> None:
        if not self.devs:
            raise LayoutError("a pci group needs at least one device")


@dataclass(frozen=True, slots=True)
class ConsoleSpec:
    """A PV console device (stubdomain use). `ring` = (port, ring-ref) for the ioemu copy."""

    frontend_domid: int
    devid: int = 0
    output: str = ""
    ioemu: bool = True
    hvm: bool = False
    backend_domid: int = 0
    protocol: Protocol = Protocol.NATIVE
    domain_name: str = "some name"
    ring: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.devid == 0 and self.ioemu and not self.hvm and self.ring is None:
            raise LayoutError("an ioemu console 0 of a PV domain needs its ring (port, ring-ref)")


@dataclass(frozen=True, slots=True)
class PvDeviceSpec:
    """A trivial front/back pair: vfb, vkbd, vsnd or v4v (backend dom0)."""

    kind: Kind
    frontend_domid: int
    devid: int = 0
    protocol: Protocol = Protocol.NATIVE

    def __post_init__(self) -> None:
        if self.kind not in (Kind.VFB, Kind.VKBD, Kind.VSND, Kind.V4V):
            raise LayoutError(f"not a simple PV device kind: {self.kind.value}")


@dataclass(frozen=True, slots=True)
class VtpmSpec:
    """A virtual TPM (devid 0): the backend (``backend_domid``, the vTPM manager's domain)
    gets ``pref_instance`` (the TPM instance asked for), ``resume`` = ``False``, the VM's
    ``uuid`` and ``domain`` (its name), as the original wrote them."""

    frontend_domid: int
    backend_domid: int
    instance: int
    vm_uuid: str
    vm_name: str
    devid: int = 0

    def __post_init__(self) -> None:
        check_domid("vtpm backend domid", self.backend_domid)
        if self.instance < 0:
            raise LayoutError(f"vtpm instance must be >= 0, got {self.instance}")


DeviceSpec = VbdSpec | VifSpec | PciSpec | ConsoleSpec | PvDeviceSpec | VtpmSpec


@dataclass(frozen=True, slots=True)
class DeviceLayout:
    device: Device
    frontend: tuple[tuple[str, str], ...]
    backend: tuple[tuple[str, str], ...]


def device_of_spec(spec: DeviceSpec) -> Device:
    """The endpoints a spec describes."""
    if isinstance(spec, VbdSpec):
        be_kind = Kind.TAP if spec.phystype.uses_tap else Kind.VBD
        fe = Endpoint(spec.frontend_domid, Kind.VBD, spec.devid)
        return Device(fe, Endpoint(spec.backend_domid, be_kind, spec.devid))
    if isinstance(spec, VifSpec):
        fe_kind = Kind.VWIF if spec.wireless else Kind.VIF
        fe = Endpoint(spec.frontend_domid, fe_kind, spec.devid)
        return Device(fe, Endpoint(spec.backend_domid, Kind.VIF, spec.devid))
    if isinstance(spec, PciSpec):
        fe = Endpoint(spec.frontend_domid, Kind.PCI, spec.devid)
        return Device(fe, Endpoint(0, Kind.PCI, spec.devid))
    if isinstance(spec, ConsoleSpec):
        fe = Endpoint(spec.frontend_domid, Kind.CONSOLE, spec.devid)
        return Device(fe, Endpoint(0, Kind.CONSOLE, spec.devid))
    if isinstance(spec, VtpmSpec):
        fe = Endpoint(spec.frontend_domid, Kind.VTPM, spec.devid)
        return Device(fe, Endpoint(spec.backend_domid, Kind.VTPM, spec.devid))
    fe = Endpoint(spec.frontend_domid, spec.kind, spec.devid)
    return Device(fe, Endpoint(0, spec.kind, spec.devid))


def _vbd_layout(spec: VbdSpec) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    physpath = f"/dev/{spec.virtpath}" if spec.use_stubdom else spec.physpath
    back: list[tuple[str, str]] = list(spec.extra_backend_keys)
    if spec.phystype.uses_tap:
        back.append(("params", f"{spec.phystype.value}:{physpath}"))
    else:
        back.append(("params", physpath))
    if spec.phystype is PhysType.FILE and not spec.hvm and spec.loop_device is not None:
        if spec.physical_device is None:
            raise LayoutError("a PV file-backed vbd needs the loop device's major:minor")
        back.append(("physical-device", physical_device_string(*spec.physical_device)))
        back.append(("loop-device", spec.loop_device))
    elif spec.phystype is PhysType.PHY and spec.physical_device is not None:
        back.append(("physical-device", physical_device_string(*spec.physical_device)))
    dev = spec.virtpath
    if spec.frontend_domid == 0 and dev.startswith("x"):
        dev = "/dev/" + dev  # qemu in dom0 wants a /dev/ path
    back += [
        ("frontend-id", str(spec.frontend_domid)),
        ("online", "1"),
        ("removable", "1" if spec.removable else "0"),
        ("state", _STATE_INIT),
        ("dev", dev),
        ("type", "phy" if spec.use_stubdom else spec.phystype.backend_type),
        ("mode", spec.mode),
    ]
    front = [
        ("backend-id", str(spec.backend_domid)),
        ("backend-uuid", spec.backend_uuid),
        ("state", _STATE_INIT),
        ("virtual-device", str(spec.devid)),
        ("device-type", spec.device_type),
    ]
    if spec.protocol is not Protocol.NATIVE:
        front.append(("protocol", spec.protocol.value))
    return front, back


def vif_rate_value(kib_per_s: int, timeslice_us: int) -> str | None:
    """The backend `rate` value "<bytes per interval>,<interval us>", or None if out of range."""
    if timeslice_us <= 0:
        timeslice_us = _DEFAULT_RATE_TIMESLICE_US
    per_interval = kib_per_s * 1024 * timeslice_us // 1_000_000
    if 0 < per_interval < 0xFFFFFFFF:
        return f"{per_interval},{timeslice_us}"
    return None


def _vif_layout(spec: VifSpec) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    back = [
        ("frontend-id", str(spec.frontend_domid)),
        ("online", "1"),
        ("state", _STATE_INIT),
        ("script", VIF_SCRIPT),
        ("mac", spec.mac),
        ("handle", str(spec.devid)),
    ]
    if spec.rate is not None:
        rate = vif_rate_value(*spec.rate)
        if rate is not None:
            back.append(("rate", rate))
    if spec.network is not None:
        back.append(("bridge", spec.network))
    front = [
        ("backend-id", str(spec.backend_domid)),
        ("backend-uuid", spec.backend_uuid),
        ("state", _STATE_INIT),
        ("handle", str(spec.devid)),
        ("mac", spec.mac),
    ]
    if spec.protocol is not Protocol.NATIVE:
        front.append(("protocol", spec.protocol.value))
    return front, back


def _pci_layout(spec: PciSpec) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    back: list[tuple[str, str]] = [("flr", "1")] if spec.flr else []
    for i, dev in enumerate(spec.devs):
        back.append((f"dev-{i}", dev.dev_string))
        if dev.vdevfn is not None:
            back.append((f"vdevfn-{i}", str(dev.vdevfn)))
    first = spec.devs[0]  # the group's options come from its first device, as before
    back += [
        ("frontend-id", str(spec.frontend_domid)),
        ("online", "1"),
        ("num_devs", str(len(spec.devs))),
        ("msitranslate", str(first.msitranslate)),
        ("power_mgmt", str(first.power_mgmt)),
    ]
    if spec.pvpci:
        back.append(("state", _STATE_INIT))
    front = [("backend-id", "0"), ("state", _STATE_INIT)]
    return front, back


def _console_layout(spec: ConsoleSpec) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    back = [
        ("frontend-id", str(spec.frontend_domid)),
        ("online", "1"),
        ("state", _STATE_INIT),
        ("domain", spec.domain_name),
        ("protocol", "vt100"),
    ]
    console_type = "ioemu" if spec.ioemu else "xenconsoled"
    front: list[tuple[str, str]] = []
    if spec.devid == 0 and spec.ioemu and not spec.hvm:
        assert spec.ring is not None  # checked in ConsoleSpec
        port, ring_ref = spec.ring
        front = [
            ("backend-id", str(spec.backend_domid)),
            ("protocol", spec.protocol.value),
            ("limit", "0"),
            ("ring-ref", ring_ref),
            ("port", port),
            ("type", console_type),
            ("output", spec.output),
        ]
    elif spec.devid > 0:
        # The original wrote `protocol` twice (ABI, then vt100); the last write is what stays.
        front = [
            ("backend-id", str(spec.backend_domid)),
            ("state", _STATE_INIT),
            ("limit", "0"),
            ("protocol", "vt100"),
            ("type", console_type),
            ("output", spec.output),
        ]
    return front, back


def _pv_layout(spec: PvDeviceSpec) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    fe_id = ("frontend-id", str(spec.frontend_domid))
    if spec.kind is Kind.V4V:
        return (
            [("backend-id", "0"), ("state", _STATE_INIT)],
            [fe_id, ("state", XenbusState.UNKNOWN.to_xenstore())],
        )
    back = [fe_id, ("online", "1"), ("state", _STATE_INIT)]
    if spec.kind is Kind.VSND:
        return [("backend-id", "0"), ("state", _STATE_INIT)], back
    front = [("backend-id", "0"), ("protocol", spec.protocol.value), ("state", _STATE_INIT)]
    return front, back


def device_layout(spec: DeviceSpec) -> DeviceLayout:
    """Frontend and backend key/values of a device add (links excluded), in write order."""
    check_domid("frontend domid", spec.frontend_domid)
    if isinstance(spec, VbdSpec):
        front, back = _vbd_layout(spec)
    elif isinstance(spec, VifSpec):
        front, back = _vif_layout(spec)
    elif isinstance(spec, PciSpec):
        front, back = _pci_layout(spec)
    elif isinstance(spec, ConsoleSpec):
        front, back = _console_layout(spec)
    elif isinstance(spec, VtpmSpec):
        front = [("backend-id", str(spec.backend_domid)), ("state", _STATE_INIT)]
        back = [("frontend-id", str(spec.frontend_domid)), ("online", "1"),
                ("state", _STATE_INIT), ("pref_instance", str(spec.instance)),
                ("resume", "False"), ("uuid", spec.vm_uuid), ("domain", spec.vm_name)]
    else:
        front, back = _pv_layout(spec)
    return DeviceLayout(device_of_spec(spec), tuple(front), tuple(back))
