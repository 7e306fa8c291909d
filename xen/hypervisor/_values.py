"""The values of the hypervisor interface (re-exported by `xen.hypervisor`; import them from there).

Frozen dataclasses shaped like libxenctrl's: `DomainInfo` (xc_domaininfo_t, with the
XEN_DOMINF_* flag word decoded into booleans and losslessly re-encoded by `DomainInfo.flags`),
`PhysInfo` (xc_physinfo_t), `Version` (XENVER_version + XENVER_extraversion), `DomainSpec`
(what a create needs); the enums `ShutdownReason` (with the ``control/shutdown`` words that
ask a guest for each), `DomInfoFlag`, `PhysCap` and `HvmParam` (Xen 4.17's numbers); and the
argument checks every backend runs before any call (`check_domid`, `check_range`,
`check_hvm_param`), each raising `InvalidArgument` naming what was wrong. Memory is counted
in 4 KiB pages as Xen reports it; the ``*_kib`` properties convert.

Pure: no I/O.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import ClassVar

from xen.hypervisor._errors import InvalidArgument

__all__ = [
    "DOMID_FIRST_RESERVED",
    "INVALID_MAX_VCPU_ID",
    "MAX_SHADOW_MIB",
    "NULL_HANDLE",
    "PAGE_KIB",
    "SHUTDOWN_CODE_NONE",
    "DomInfoFlag",
    "DomainInfo",
    "DomainSpec",
    "HvmParam",
    "PhysCap",
    "PhysInfo",
    "ShutdownReason",
    "Version",
    "check_domid",
    "check_hvm_param",
    "check_range",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: x86 page size in KiB (XC_PAGE_SHIFT 12).
PAGE_KIB = 4
#: The handle of a domain nobody named (dom0 keeps it).
NULL_HANDLE = uuid.UUID(int=0)
#: Domain ids from here up are DOMID_SELF, DOMID_IO, ... (public/xen.h); never allocated.
DOMID_FIRST_RESERVED = 0x7FF0
#: The shutdown code field of a domain that never shut down (Xen's SHUTDOWN_CODE_INVALID, ~0u,
#: as the 8 bits the flag word carries).
SHUTDOWN_CODE_NONE = 0xFF
#: max_vcpu_id of a domain without vcpus (XEN_INVALID_MAX_VCPU_ID).
INVALID_MAX_VCPU_ID = 0xFFFFFFFF
#: The largest shadow/HAP allocation a request may name, in MiB: Xen shifts the MiB count into
#: a 32-bit page count (``mb << 8``), so a larger one would wrap silently.
MAX_SHADOW_MIB = (1 << 24) - 1

_SHUTDOWN_SHIFT = 16  # XEN_DOMINF_shutdownshift
_SHUTDOWN_MASK = 0xFF  # XEN_DOMINF_shutdownmask
_DOMID_MAX = 0xFFFF


# --- values ------------------------------------------------------------------------------------


class ShutdownReason(enum.IntEnum):
    """Xen's SHUTDOWN_* codes (public/sched.h), and the words that ask a guest for them.

    A toolstack asks a guest to shut down by writing a word to its ``control/shutdown``
    xenstore node: `control_word` gives it, `from_control_word` reads one back. The words are
    the original toolstack's: ``poweroff``, ``reboot``, ``suspend``, ``crash``, and ``halt``
    for 4 (Linux's xenbus shutdown handler halts on it; Xen calls the code WATCHDOG).
    SOFT_RESET has no word: it is the guest's own request (kexec), never asked of it.
    """

    POWEROFF = 0
    REBOOT = 1
    SUSPEND = 2
    CRASH = 3
    WATCHDOG = 4
    SOFT_RESET = 5

    HALT = 4  # the original toolstack's name for 4 (an alias of WATCHDOG)

    @property
    def control_word(self) -> str:
        """The ``control/shutdown`` word asking for this; ValueError for SOFT_RESET."""
        word = _CONTROL_WORDS.get(self)
        if word is None:
            raise ValueError(f"{self.name} has no control/shutdown word "
                             f"(a guest is never asked for it)")
        return word

    @classmethod
    def from_control_word(cls, word: str) -> ShutdownReason:
        """The reason a ``control/shutdown`` word asks for; ValueError naming an unknown one."""
        for reason, known in _CONTROL_WORDS.items():
            if known == word:
                return reason
        raise ValueError(f"unknown control/shutdown word {word!r} "
                         f"(known: {', '.join(_CONTROL_WORDS.values())})")


_CONTROL_WORDS = {
    ShutdownReason.POWEROFF: "poweroff",
    ShutdownReason.REBOOT: "reboot",
    ShutdownReason.SUSPEND: "suspend",
    ShutdownReason.CRASH: "crash",
    ShutdownReason.HALT: "halt",
}


class DomInfoFlag(enum.IntFlag):
    """XEN_DOMINF_* bits of xen_domctl_getdomaininfo.flags (Xen 4.17, public/domctl.h)."""

    DYING = 1 << 0
    HVM_GUEST = 1 << 1
    SHUTDOWN = 1 << 2
    PAUSED = 1 << 3
    BLOCKED = 1 << 4
    RUNNING = 1 << 5
    DEBUGGED = 1 << 6
    XS_DOMAIN = 1 << 7
    HAP = 1 << 8


class HvmParam(enum.IntEnum):
    """The HVM_PARAM_* indices the toolstack uses (Xen 4.17, public/hvm/params.h).

    Xen 4.17 lists PAE_ENABLED and NESTEDHVM as deprecated (setting or reading them fails with
    EINVAL; nested virtualisation became a createdomain flag); the original toolstack set them
    during the HVM build on older Xen, so they are named here."""

    CALLBACK_IRQ = 0     # how event-channel upcalls reach the guest; nonzero = PV drivers up
    STORE_EVTCHN = 2     # xenstore ring event channel
    PAE_ENABLED = 4      # deprecated in 4.17
    VIRIDIAN = 9         # Hyper-V enlightenment bits (HVMPV_*; base_freq required)
    TIMER_MODE = 10      # HVMPTM_* 0..3
    HPET_ENABLED = 11    # boolean; Xen starts HVM guests at 1
    ACPI_S_STATE = 14    # 0 (S0) or 3 (S3)
    VPT_ALIGN = 16       # boolean: align periodic virtual timers
    CONSOLE_EVTCHN = 18  # console ring event channel
    NESTEDHVM = 24       # deprecated in 4.17


class PhysCap(enum.IntFlag):
    """XEN_SYSCTL_PHYSCAP_* bits of xen_sysctl_physinfo.capabilities (Xen 4.17)."""

    HVM = 1 << 0
    PV = 1 << 1
    DIRECTIO = 1 << 2
    HAP = 1 << 3
    SHADOW = 1 << 4
    IOMMU_HAP_PT_SHARE = 1 << 5
    VMTRACE = 1 << 6
    VPMU = 1 << 7
    GNTTAB_V1 = 1 << 8
    GNTTAB_V2 = 1 << 9


def check_domid(domid: int) -> None:
    """Raise `InvalidArgument` unless ``domid`` is an int 0..65535."""
    if isinstance(domid, bool) or not isinstance(domid, int) or not 0 <= domid <= _DOMID_MAX:
        raise InvalidArgument(f"bad domain id {domid!r} (expected an integer 0..{_DOMID_MAX})")


def check_range(what: str, name: str, value: object, low: int, high: int) -> int:
    """``value`` when it is an int ``low..high``; else `InvalidArgument` naming ``what`` (the
    operation and domain) and the argument ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgument(
            f"{what}: bad {name} {value!r} (expected an integer {low}..{high})")
    return value


def check_hvm_param(what: str, param: object) -> HvmParam:
    """``param`` as an `HvmParam` (a member or its number); else `InvalidArgument`."""
    if not isinstance(param, bool) and isinstance(param, int):
        try:
            return HvmParam(param)
        except ValueError:
            pass
    known = ", ".join(f"{p.name} {p.value}" for p in HvmParam)
    raise InvalidArgument(f"{what}: unknown HVM param {param!r} (known: {known})")


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainInfo:
    """One domain as xc_domain_getinfolist reports it (xc_domaininfo_t).

    The flag booleans follow Xen's rules: ``blocked`` only when every online vcpu is blocked,
    ``running`` when any vcpu is on a cpu, both off without online vcpus; ``dying`` once the
    domain is killed (it may linger while pages are still mapped); ``shutdown`` with
    ``shutdown_code`` set by the guest or the toolstack. ``shutdown_code`` is the raw 8-bit
    field, `SHUTDOWN_CODE_NONE` (255) for a domain that never shut down.
    """

    domid: int
    handle: uuid.UUID = NULL_HANDLE
    dying: bool = False
    hvm: bool = False
    shutdown: bool = False
    paused: bool = False
    blocked: bool = False
    running: bool = False
    debugged: bool = False
    xs_domain: bool = False
    hap: bool = False
    shutdown_code: int = SHUTDOWN_CODE_NONE
    tot_pages: int = 0
    max_pages: int = 0
    outstanding_pages: int = 0
    shr_pages: int = 0
    paged_pages: int = 0
    shared_info_frame: int = 0
    cpu_time: int = 0  # nanoseconds spent running, all vcpus
    nr_online_vcpus: int = 0
    max_vcpu_id: int = INVALID_MAX_VCPU_ID
    ssidref: int = 0
    cpupool: int = 0

    _FLAG_FIELDS: ClassVar[tuple[tuple[str, DomInfoFlag], ...]] = (
        ("dying", DomInfoFlag.DYING),
        ("hvm", DomInfoFlag.HVM_GUEST),
        ("shutdown", DomInfoFlag.SHUTDOWN),
        ("paused", DomInfoFlag.PAUSED),
        ("blocked", DomInfoFlag.BLOCKED),
        ("running", DomInfoFlag.RUNNING),
        ("debugged", DomInfoFlag.DEBUGGED),
        ("xs_domain", DomInfoFlag.XS_DOMAIN),
        ("hap", DomInfoFlag.HAP),
    )

    @classmethod
    def from_flags(cls, flags: int, **fields: object) -> DomainInfo:
        """Build from a raw XEN_DOMINF_* word plus the other fields by name."""
        decoded: dict[str, object] = {
            name: bool(flags & bit) for name, bit in cls._FLAG_FIELDS
        }
        decoded["shutdown_code"] = (flags >> _SHUTDOWN_SHIFT) & _SHUTDOWN_MASK
        decoded.update(fields)
        return cls(**decoded)  # type: ignore[arg-type]

    @property
    def flags(self) -> int:
        """The raw XEN_DOMINF_* word (with the shutdown code in bits 16-23)."""
        word = 0
        for name, bit in self._FLAG_FIELDS:
            if getattr(self, name):
                word |= bit
        return word | (self.shutdown_code & _SHUTDOWN_MASK) << _SHUTDOWN_SHIFT

    @property
    def uuid(self) -> uuid.UUID:
        """The domain handle (the VM's UUID when the toolstack set one)."""
        return self.handle

    @property
    def shutdown_reason(self) -> ShutdownReason | None:
        """Why the domain shut down; None while not shut down or for a code Xen does not
        define."""
        if not self.shutdown:
            return None
        try:
            return ShutdownReason(self.shutdown_code)
        except ValueError:
            return None

    @property
    def dead(self) -> bool:
        """Shut down or dying: the guest will not run again in this domain."""
        return self.shutdown or self.dying

    @property
    def tot_kib(self) -> int:
        return self.tot_pages * PAGE_KIB

    @property
    def max_kib(self) -> int:
        return self.max_pages * PAGE_KIB


@dataclass(frozen=True, slots=True, kw_only=True)
class PhysInfo:
    """The host as xc_physinfo reports it (xc_physinfo_t, Xen 4.17)."""

    threads_per_core: int
    cores_per_socket: int
    nr_cpus: int
    max_cpu_id: int
    nr_nodes: int
    max_node_id: int
    cpu_khz: int
    capabilities: PhysCap
    arch_capabilities: int = 0
    total_pages: int
    free_pages: int
    scrub_pages: int = 0
    outstanding_pages: int = 0
    max_mfn: int = 0

    @property
    def total_kib(self) -> int:
        return self.total_pages * PAGE_KIB

    @property
    def free_kib(self) -> int:
        return self.free_pages * PAGE_KIB

    @property
    def scrub_kib(self) -> int:
        return self.scrub_pages * PAGE_KIB

    @property
    def hvm(self) -> bool:
        return bool(self.capabilities & PhysCap.HVM)

    @property
    def pv(self) -> bool:
        return bool(self.capabilities & PhysCap.PV)

    @property
    def directio(self) -> bool:
        return bool(self.capabilities & PhysCap.DIRECTIO)

    @property
    def hap(self) -> bool:
        return bool(self.capabilities & PhysCap.HAP)


@dataclass(frozen=True, slots=True)
class Version:
    """Hypervisor version: XENVER_version (major, minor) and XENVER_extraversion."""

    major: int
    minor: int
    extra: str = ""

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}{self.extra}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainSpec:
    """What creating a domain needs.

    ``memory_kib`` is what the domain holds once created (rounded up to whole pages): the
    simulated hypervisor allocates it at create (create+build in one step); on real Xen the
    builder populates it later. ``max_memory_kib`` (default: ``memory_kib``) is the initial
    maxmem, rounded down to pages as XEN_DOMCTL_max_mem does. Raises `InvalidArgument` naming
    the bad field.
    """

    handle: uuid.UUID = NULL_HANDLE
    hvm: bool = False
    hap: bool = True
    ssidref: int = 0
    max_vcpus: int = 1
    memory_kib: int = 0
    max_memory_kib: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.handle, uuid.UUID):
            raise InvalidArgument(f"DomainSpec.handle must be a uuid.UUID, got {self.handle!r}")
        for name, low, high in (("ssidref", 0, 0xFFFFFFFF), ("max_vcpus", 1, 4096),
                                ("memory_kib", 0, 1 << 50)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidArgument(
                    f"DomainSpec.{name} must be an integer {low}..{high}, got {value!r}")
        if self.max_memory_kib is not None and (
            isinstance(self.max_memory_kib, bool) or not isinstance(self.max_memory_kib, int)
            or not 0 <= self.max_memory_kib <= 1 << 50
        ):
            raise InvalidArgument(
                f"DomainSpec.max_memory_kib must be a non-negative integer or None, "
                f"got {self.max_memory_kib!r}")

    @property
    def memory_pages(self) -> int:
        return -(-self.memory_kib // PAGE_KIB)

    @property
    def max_pages(self) -> int:
        limit = self.memory_kib if self.max_memory_kib is None else self.max_memory_kib
        return max(limit // PAGE_KIB, self.memory_pages)
