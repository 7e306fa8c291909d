"""The hypervisor calls and host actions of xenops plans: one frozen dataclass per operation.

A plan names each operation as a value whose fields are typed and checked when it is built
(`PlanError`, a ValueError naming the class and the field, see ``_checks``), so a bad argument
fails at planning time and the executor parses nothing: it finds the method for a step by its
type in one table (``xen/xenops/_executor.py``).

Hypervisor calls (the `HypervisorCall` union), each one member of `xen.hypervisor.Hypervisor`:

==============================================  ============================================
``CreateDomain(spec)``                          ``create(spec)``; the new domid is the
                                                plan's result (``PlanResult.domid``)
``DestroyDomain(domid)``                        ``destroy``
``ShutdownDomain(domid, reason)``               ``shutdown`` (a `ShutdownReason`)
``PauseDomain(domid)``, ``UnpauseDomain``       ``pause``, ``unpause``
``SetDomainHandle(domid, handle)``              ``set_handle`` (a `uuid.UUID`)
``SetTarget(domid, target)``                    ``set_target`` (a stub domain's guest)
``SetMaxVcpus(domid, vcpus)``                   ``max_vcpus``
``SetMaxMem(domid, kib)``                       ``setmaxmem``
``ShadowAllocation(domid, mib)``                ``shadow_allocation``
``SetHvmParam(domid, param, value)``            ``set_hvm_param`` (an `HvmParam`)
``AssignDevice(domid, bdf)``, ``DeassignDevice``  ``assign_device``, ``deassign_device``
``IomemPermission(domid, first_pfn, count,      ``iomem_permission``
allow=)``
``IoportPermission(domid, first, count, allow=)``  ``ioport_permission``
``IrqPermission(domid, pirq, allow=)``          ``irq_permission``
``MapPirq(domid, gsi)``                         ``map_pirq`` (asking for pirq = the GSI)
``UnmapPirq(domid, pirq)``                      ``unmap_pirq``
==============================================  ============================================

`PciAdd` and `PciRelease` are composite: the executor reads the device (its BARs and IRQ) from
the host (``HostActions.pci_device``) and runs the steps `xen.xenops._pci` expands them into.

Host actions (the `HostAction` union), each one method of the executor's ``HostActions``:
`PciBind`, `PciFlr`, `PciPermissive`, `LoopDetach`, `KillProcess`, `SurfmanSetPvDisplay`,
`InputAttachVkbd`, `InputDetachVkbd`.

Each value has ``ignore_errors``: when set, its failure is logged and the plan goes on. Domain
ids are 0..0x7FEF; counts and sizes are non-negative ints within what Xen accepts (a vcpu count
1..2**32-1, a shadow pool of at most ``MAX_SHADOW_MIB``, a 64-bit HVM param value).

Pure: no I/O.
"""

from __future__ import annotations

import uuid
from dataclasses import KW_ONLY, dataclass

from xen.hypervisor import MAX_SHADOW_MIB, DomainSpec, HvmParam, ShutdownReason
from xen.xenops._checks import (
    PlanError,
    check_bdf,
    check_bool,
    check_domid,
    check_instance,
    check_int,
    check_timeout,
)

__all__ = [
    "AssignDevice",
    "CreateDomain",
    "DeassignDevice",
    "DestroyDomain",
    "HostAction",
    "HypervisorCall",
    "InputAttachVkbd",
    "InputDetachVkbd",
    "IomemPermission",
    "IoportPermission",
    "IrqPermission",
    "KillProcess",
    "LoopDetach",
    "MapPirq",
    "PauseDomain",
    "PciAdd",
    "PciBind",
    "PciFlr",
    "PciPermissive",
    "PciRelease",
    "SetDomainHandle",
    "SetHvmParam",
    "SetMaxMem",
    "SetMaxVcpus",
    "SetTarget",
    "ShadowAllocation",
    "ShutdownDomain",
    "SurfmanSetPvDisplay",
    "UnmapPirq",
    "UnpauseDomain",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1
_IOPORTS = 0x10000  # x86 I/O space: ports 0..0xFFFF
_MAX_PIRQ = (1 << 31) - 1  # a C int

# ------------------------------------------------------------------ hypervisor calls


@dataclass(frozen=True, slots=True)
class CreateDomain:
    """Create a domain (XEN_DOMCTL_createdomain); the executor records the new domid."""

    spec: DomainSpec
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_instance(self, "spec", DomainSpec)


@dataclass(frozen=True, slots=True)
class DestroyDomain:
    """Destroy a domain (XEN_DOMCTL_destroydomain)."""

    domid: int
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)


@dataclass(frozen=True, slots=True)
class ShutdownDomain:
    """Shut a domain down by hypercall (SCHEDOP_remote_shutdown), whatever the guest does."""

    domid: int
    reason: ShutdownReason
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_instance(self, "reason", ShutdownReason)


@dataclass(frozen=True, slots=True)
class PauseDomain:
    """Pause a domain (XEN_DOMCTL_pausedomain)."""

    domid: int
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)


@dataclass(frozen=True, slots=True)
class UnpauseDomain:
    """Unpause a domain (XEN_DOMCTL_unpausedomain)."""

    domid: int
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)


@dataclass(frozen=True, slots=True)
class SetDomainHandle:
    """Give a domain a new handle (XEN_DOMCTL_setdomainhandle)."""

    domid: int
    handle: uuid.UUID
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_instance(self, "handle", uuid.UUID)


@dataclass(frozen=True, slots=True)
class SetTarget:
    """Give stub domain ``domid`` privilege over its HVM guest ``target``
    (XEN_DOMCTL_set_target)."""

    domid: int
    target: int
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_domid(self, "target")


@dataclass(frozen=True, slots=True)
class SetMaxVcpus:
    """Allocate the domain's vcpus (XEN_DOMCTL_max_vcpus)."""

    domid: int
    vcpus: int
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_int(self, "vcpus", 1, _U32)


@dataclass(frozen=True, slots=True)
class SetMaxMem:
    """Set the domain's memory limit in KiB (XEN_DOMCTL_max_mem)."""

    domid: int
    kib: int
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_int(self, "kib", 0)


@dataclass(frozen=True, slots=True)
class ShadowAllocation:
    """Size the domain's shadow/HAP pool in MiB (XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION)."""

    domid: int
    mib: int
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_int(self, "mib", 0, MAX_SHADOW_MIB)


@dataclass(frozen=True, slots=True)
class SetHvmParam:
    """Set an HVM parameter (HVMOP_set_param)."""

    domid: int
    param: HvmParam
    value: int
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_instance(self, "param", HvmParam)
        check_int(self, "value", 0, _U64)


@dataclass(frozen=True, slots=True)
class PciAdd:
    """Pass a PCI function through to a domain: sysfs permissions, assignment, IRQ and BAR
    grants (the original's pci_add; ``assign``: assign it in the IOMMU; ``permissive``:
    pciback passes config writes through; ``flr``: reset it first; ``pvpci``: a PV PCI
    frontend will see it)."""

    domid: int
    bdf: str
    _: KW_ONLY
    assign: bool
    permissive: bool
    flr: bool
    hvm: bool
    pvpci: bool
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_bdf(self)
        check_bool(self, "assign", "permissive", "flr", "hvm", "pvpci")


@dataclass(frozen=True, slots=True)
class PciRelease:
    """Take a PCI function back from a domain: deassign (unless never ``assigned``: a stub
    domain's copy), unmap its pirq, revoke its BAR and IRQ grants."""

    domid: int
    bdf: str
    _: KW_ONLY
    hvm: bool
    assigned: bool = True
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_bdf(self)
        check_bool(self, "hvm", "assigned")


@dataclass(frozen=True, slots=True)
class IoportPermission:
    """Grant (``allow``) or revoke a domain's access to ``count`` I/O ports from ``first``
    (XEN_DOMCTL_ioport_permission)."""

    domid: int
    first: int
    count: int
    _: KW_ONLY
    allow: bool
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_int(self, "first", 0, _IOPORTS - 1)
        check_int(self, "count", 1, _IOPORTS - self.first)
        check_bool(self, "allow")


@dataclass(frozen=True, slots=True)
class IomemPermission:
    """Grant (``allow``) or revoke a domain's access to ``count`` machine frames from
    ``first_pfn`` (XEN_DOMCTL_iomem_permission)."""

    domid: int
    first_pfn: int
    count: int
    _: KW_ONLY
    allow: bool
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_int(self, "first_pfn", 0, _U64)
        check_int(self, "count", 1, _U64 - self.first_pfn + 1)
        check_bool(self, "allow")


@dataclass(frozen=True, slots=True)
class AssignDevice:
    """Assign a PCI function to a domain in the IOMMU (XEN_DOMCTL_assign_device)."""

    domid: int
    bdf: str
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_bdf(self)


@dataclass(frozen=True, slots=True)
class DeassignDevice:
    """Take a PCI function back from a domain (XEN_DOMCTL_deassign_device)."""

    domid: int
    bdf: str
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_bdf(self)


@dataclass(frozen=True, slots=True)
class IrqPermission:
    """Grant (``allow``) or revoke a domain's access to a physical IRQ
    (XEN_DOMCTL_irq_permission)."""

    domid: int
    pirq: int
    _: KW_ONLY
    allow: bool
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_int(self, "pirq", 0, _MAX_PIRQ)
        check_bool(self, "allow")


@dataclass(frozen=True, slots=True)
class MapPirq:
    """Map a host GSI into a domain as the pirq of the same number (PHYSDEVOP_map_pirq)."""

    domid: int
    gsi: int
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_int(self, "gsi", 0, _MAX_PIRQ)


@dataclass(frozen=True, slots=True)
class UnmapPirq:
    """Unmap a domain's pirq (PHYSDEVOP_unmap_pirq)."""

    domid: int
    pirq: int
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)
        check_int(self, "pirq", 0, _MAX_PIRQ)


HypervisorCall = (
    CreateDomain | DestroyDomain | ShutdownDomain | PauseDomain | UnpauseDomain
    | SetDomainHandle | SetTarget | SetMaxVcpus | SetMaxMem | ShadowAllocation | SetHvmParam
    | PciAdd | PciRelease | IoportPermission | IomemPermission | AssignDevice | DeassignDevice
    | IrqPermission | MapPirq | UnmapPirq
)

# ---------------------------------------------------------------------- host actions


@dataclass(frozen=True, slots=True)
class PciBind:
    """Unbind a PCI function from its driver and bind it to pciback."""

    bdf: str
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_bdf(self)


@dataclass(frozen=True, slots=True)
class PciFlr:
    """Reset a PCI function (pciback's ``reset_device``)."""

    bdf: str
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_bdf(self)


@dataclass(frozen=True, slots=True)
class PciPermissive:
    """Let the guest write the PCI function's config space through pciback (``permissive``;
    a device model in a stub domain needs it); ``allow=False``: pciback's ``restrictive``."""

    bdf: str
    allow: bool = True
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_bdf(self)
        check_bool(self, "allow")


@dataclass(frozen=True, slots=True)
class LoopDetach:
    """Free a loop device (``losetup -d``)."""

    device: str
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.device, str) or not self.device or "\0" in self.device:
            raise PlanError(f"LoopDetach.device must be a device path, got {self.device!r}")


@dataclass(frozen=True, slots=True)
class KillProcess:
    """SIGTERM a process, wait up to ``timeout`` s for it to go, then SIGKILL."""

    pid: int
    timeout: float
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_int(self, "pid", 2)  # never init (1) nor a process group (0, negative)
        check_timeout(self.timeout)


@dataclass(frozen=True, slots=True)
class SurfmanSetPvDisplay:
    """Tell surfman the domain's PV framebuffer is its display."""

    domid: int
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)


@dataclass(frozen=True, slots=True)
class InputAttachVkbd:
    """Tell the input daemon to feed the domain's virtual keyboard."""

    domid: int
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)


@dataclass(frozen=True, slots=True)
class InputDetachVkbd:
    """Tell the input daemon the domain's virtual keyboard is gone."""

    domid: int
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_domid(self)


HostAction = (
    PciBind | PciFlr | PciPermissive | LoopDetach | KillProcess | SurfmanSetPvDisplay
    | InputAttachVkbd | InputDetachVkbd
)
