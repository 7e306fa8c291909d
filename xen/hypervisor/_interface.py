"""The one hypervisor interface: the `Hypervisor` protocol, its values and its errors.

Every part of the toolstack that talks to Xen does it through an object satisfying `Hypervisor`.
Two backends implement it: `xen.hypervisor.SimBackend` (the simulated host's socket) and
`xen.xc.XcBackend` (libxenctrl through cffi). `UnimplementedHypervisor` is the template for
further ones: every member raises `Unsupported` naming the member.

The interface is grouped by object: `HostOps` (version, physinfo), `DomainOps` (create,
pause, unpause, shutdown, destroy, getinfolist, getinfo, setmaxmem, set_handle,
set_target, find_by_handle, and the domain-build steps max_vcpus, shadow_allocation, set_hvm_param,
get_hvm_param) and `PciOps` (PCI passthrough and I/O-space grants: test_assign_device,
assign_device, deassign_device, iomem_permission, ioport_permission, irq_permission,
map_pirq, unmap_pirq); `Hypervisor` is all three plus `close`.

Values (in `xen.hypervisor._values`) are frozen dataclasses shaped like
libxenctrl's: `DomainInfo` (xc_domaininfo_t, with the XEN_DOMINF_* flag word decoded into
booleans and losslessly re-encoded by `DomainInfo.flags`), `PhysInfo` (xc_physinfo_t),
`Version` (XENVER_version + XENVER_extraversion), `DomainSpec` (what a create needs), and the
enums `ShutdownReason`, `DomInfoFlag`, `PhysCap`, `HvmParam` (HVM_PARAM_* of Xen 4.17). Memory
is counted in 4 KiB pages as Xen reports it; the ``*_kib`` properties convert.

Shutdown codes are Xen's SHUTDOWN_* (public/sched.h): poweroff 0, reboot 1, suspend 2, crash 3,
watchdog 4, soft_reset 5. The original OpenXT toolstack calls code 4 "halt" (its Xal maps a
domain that shut down with 4 to Halted, like poweroff); `ShutdownReason.HALT` is an alias of
`WATCHDOG` for that reason.

Errors (in `xen.hypervisor._errors`): every failure is a `HypervisorError`
with a message naming the operation and the domain, and an ``errno`` where one applies.
Subclasses: `NoSuchDomain` (ESRCH), `OutOfMemory` (ENOMEM), `InvalidArgument` (EINVAL; also a
ValueError), `PermissionDenied` (EPERM/EACCES),
`Unsupported` (the backend does not implement the member; also a NotImplementedError),
`Unavailable` (the hypervisor cannot be reached at all: no Xen, no socket, the server went away)
and its subclass `HypervisorTimeout`. `error_for_errno` picks the class for an errno;
`ERRORS` maps class names to classes (the simulated hypervisor's wire carries the name).

This module is pure: no I/O, no threads.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from xen.hypervisor._errors import Unsupported
from xen.hypervisor._values import (
    DomainInfo,
    DomainSpec,
    HvmParam,
    PhysInfo,
    ShutdownReason,
    Version,
)

__all__ = [
    "DomainOps",
    "HostOps",
    "Hypervisor",
    "PciOps",
    "UnimplementedHypervisor",
    "iter_domains",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


# --- the interface -----------------------------------------------------------------------------


class HostOps(Protocol):
    """The host as a whole."""

    def version(self) -> Version:
        """The hypervisor version."""
        ...

    def physinfo(self) -> PhysInfo:
        """Cpus, memory (total, free, being scrubbed) and capabilities of the host."""
        ...


class DomainOps(Protocol):
    """Domains. Every member raises `NoSuchDomain` for a domid that does not exist and
    `InvalidArgument` for a malformed argument or an operation refused on that domain."""

    def create(self, spec: DomainSpec) -> int:
        """Create a domain, paused; returns its domid. `OutOfMemory` when memory or domids run
        out."""
        ...

    def pause(self, domid: int) -> None:
        """Pause (counted: each pause needs an unpause, as XEN_DOMCTL_pausedomain)."""
        ...

    def unpause(self, domid: int) -> None:
        """Undo one pause; `InvalidArgument` when the domain is not paused."""
        ...

    def shutdown(self, domid: int, reason: ShutdownReason) -> None:
        """Shut the domain down with ``reason`` (the first reason sticks); it stays until
        destroyed."""
        ...

    def destroy(self, domid: int) -> None:
        """Kill the domain: it is dying, then gone once nothing holds its pages.
        Destroying a dying domain succeeds and does nothing."""
        ...

    def getinfolist(self, first: int = 0, max_domains: int = 1024) -> list[DomainInfo]:
        """Up to ``max_domains`` domains with domid >= ``first``, in domid order."""
        ...

    def getinfo(self, domid: int) -> DomainInfo:
        """The domain ``domid``; `NoSuchDomain` when it does not exist."""
        ...

    def setmaxmem(self, domid: int, kib: int) -> None:
        """Set the most memory the domain may hold (KiB, rounded down to pages)."""
        ...

    def set_handle(self, domid: int, handle: uuid.UUID) -> None:
        """Set the domain's 16-byte handle (the VM UUID)."""
        ...

    def set_target(self, domid: int, target: int) -> None:
        """Give domain ``domid`` (a stub domain) privilege over the HVM domain ``target``
        (XEN_DOMCTL_set_target); Xen keeps a reference on ``target`` until ``domid`` is
        destroyed. `NoSuchDomain` for either; `InvalidArgument` for the same domain or one
        that already has a target; `HypervisorError` (EOPNOTSUPP) for a PV target."""
        ...

    def find_by_handle(self, handle: uuid.UUID) -> list[DomainInfo]:
        """Every domain with that handle, in domid order (during a reboot the dying old domain
        and the new one can share it)."""
        ...

    def max_vcpus(self, domid: int, vcpus: int) -> None:
        """Give the domain ``vcpus`` vcpus (XEN_DOMCTL_max_vcpus; an integer >= 1). On Xen 4.17
        the count is fixed at create and this only allocates the vcpus: another count is
        `InvalidArgument`. The simulated hypervisor lets it change the count until the domain
        first runs."""
        ...

    def shadow_allocation(self, domid: int, mib: int) -> int:
        """Set the domain's shadow/HAP page pool to ``mib`` MiB (XEN_DOMCTL_SHADOW_OP_SET_
        ALLOCATION; 0..`MAX_SHADOW_MIB`), taken from host free memory; returns the allocation
        now held, in MiB (Xen may round up). `OutOfMemory` when it does not fit."""
        ...

    def set_hvm_param(self, domid: int, param: HvmParam, value: int) -> None:
        """Set an HVM parameter (HVMOP_set_param; ``value`` a 64-bit unsigned integer).
        `InvalidArgument` for a PV domain, a deprecated parameter or a value Xen refuses."""
        ...

    def get_hvm_param(self, domid: int, param: HvmParam) -> int:
        """Read an HVM parameter (HVMOP_get_param); `InvalidArgument` for a PV domain or a
        deprecated parameter."""
        ...


class PciOps(Protocol):
    """PCI passthrough and I/O-space grants (libxenctrl's xc_*assign_device,
    xc_domain_{iomem,ioport,irq}_permission, xc_physdev_{map,unmap}_pirq). ``bdf`` is a PCI
    address ``DDDD:BB:SS.F`` (hex); a malformed one is `InvalidArgument`. Every member raises
    `NoSuchDomain` for a domid that does not exist."""

    def test_assign_device(self, domid: int, bdf: str) -> bool:
        """True when the device could be assigned to ``domid`` (not assigned to another
        domain); False when it is busy (EBUSY). Other failures raise."""
        ...

    def assign_device(self, domid: int, bdf: str) -> None:
        """Assign the device to ``domid`` in the IOMMU (XEN_DOMCTL_assign_device, flag
        RDM_RELAXED as libxl's default); a device assigned elsewhere is `HypervisorError`
        EBUSY, an unknown one `HypervisorError` ENODEV."""
        ...

    def deassign_device(self, domid: int, bdf: str) -> None:
        """Give the device back from ``domid`` (XEN_DOMCTL_deassign_device)."""
        ...

    def iomem_permission(self, domid: int, first_mfn: int, nr_mfns: int,
                         allow: bool) -> None:
        """Grant (``allow``) or revoke ``domid``'s access to ``nr_mfns`` machine frames from
        ``first_mfn`` (a BAR's pages)."""
        ...

    def ioport_permission(self, domid: int, first_port: int, nr_ports: int,
                          allow: bool) -> None:
        """Grant or revoke ``domid``'s access to ``nr_ports`` I/O ports from ``first_port``."""
        ...

    def irq_permission(self, domid: int, pirq: int, allow: bool) -> None:
        """Grant or revoke ``domid``'s access to the physical IRQ ``pirq``."""
        ...

    def map_pirq(self, domid: int, gsi: int, pirq: int | None = None) -> int:
        """Map the host interrupt ``gsi`` into ``domid`` (PHYSDEVOP_map_pirq, type GSI) as
        ``pirq`` (None: the same number, as libxenctrl does for a negative one); returns the
        pirq Xen chose."""
        ...

    def unmap_pirq(self, domid: int, pirq: int) -> None:
        """Undo `map_pirq` (PHYSDEVOP_unmap_pirq)."""
        ...


@runtime_checkable
class Hypervisor(HostOps, DomainOps, PciOps, Protocol):
    """A hypervisor backend: host, domain and PCI operations, then `close`."""

    name: str

    def close(self) -> None:
        """Release the connection or handle. Idempotent; later calls raise `Unavailable`."""
        ...


def iter_domains(hv: DomainOps, page: int = 256) -> Iterator[DomainInfo]:
    """Every domain, in domid order, paging through `getinfolist` ``page`` at a time."""
    first = 0
    while True:
        batch = hv.getinfolist(first, page)
        yield from batch
        if len(batch) < page:
            return
        first = batch[-1].domid + 1


class UnimplementedHypervisor:
    """The template for a new backend: every member raises `Unsupported` naming it."""

    name = "unimplemented"

    def _no(self, member: str) -> Unsupported:
        return Unsupported(f"not implemented: {self.name} backend, {member}")

    def version(self) -> Version:
        raise self._no("version")

    def physinfo(self) -> PhysInfo:
        raise self._no("physinfo")

    def create(self, spec: DomainSpec) -> int:
        raise self._no("create")

    def pause(self, domid: int) -> None:
        raise self._no("pause")

    def unpause(self, domid: int) -> None:
        raise self._no("unpause")

    def shutdown(self, domid: int, reason: ShutdownReason) -> None:
        raise self._no("shutdown")

    def destroy(self, domid: int) -> None:
        raise self._no("destroy")

    def getinfolist(self, first: int = 0, max_domains: int = 1024) -> list[DomainInfo]:
        raise self._no("getinfolist")

    def getinfo(self, domid: int) -> DomainInfo:
        raise self._no("getinfo")

    def setmaxmem(self, domid: int, kib: int) -> None:
        raise self._no("setmaxmem")

    def set_handle(self, domid: int, handle: uuid.UUID) -> None:
        raise self._no("set_handle")

    def set_target(self, domid: int, target: int) -> None:
        raise self._no("set_target")

    def find_by_handle(self, handle: uuid.UUID) -> list[DomainInfo]:
        raise self._no("find_by_handle")

    def max_vcpus(self, domid: int, vcpus: int) -> None:
        raise self._no("max_vcpus")

    def shadow_allocation(self, domid: int, mib: int) -> int:
        raise self._no("shadow_allocation")

    def set_hvm_param(self, domid: int, param: HvmParam, value: int) -> None:
        raise self._no("set_hvm_param")

    def get_hvm_param(self, domid: int, param: HvmParam) -> int:
        raise self._no("get_hvm_param")

    def test_assign_device(self, domid: int, bdf: str) -> bool:
        raise self._no("test_assign_device")

    def assign_device(self, domid: int, bdf: str) -> None:
        raise self._no("assign_device")

    def deassign_device(self, domid: int, bdf: str) -> None:
        raise self._no("deassign_device")

    def iomem_permission(self, domid: int, first_mfn: int, nr_mfns: int,
                         allow: bool) -> None:
        raise self._no("iomem_permission")

    def ioport_permission(self, domid: int, first_port: int, nr_ports: int,
                          allow: bool) -> None:
        raise self._no("ioport_permission")

    def irq_permission(self, domid: int, pirq: int, allow: bool) -> None:
        raise self._no("irq_permission")

    def map_pirq(self, domid: int, gsi: int, pirq: int | None = None) -> int:
        raise self._no("map_pirq")

    def unmap_pirq(self, domid: int, pirq: int) -> None:
        raise self._no("unmap_pirq")

    def close(self) -> None:
        raise self._no("close")
