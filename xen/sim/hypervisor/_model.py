"""The simulated hypervisor as a pure model: domains, domids, memory, flags. No I/O, no threads.

`SimHypervisor` answers the `xen.hypervisor.Hypervisor` questions (version, physinfo, getinfolist,
getinfo, find_by_handle) and applies its operations. Every operation that changes state returns
the events it caused (`_events`), in order, so that the simulated
host can do what xenstored does on a real host. Guest-side hooks (`guest_shutdown`, `guest_crash`,
`guest_set_busy`, `guest_set_memory`) and backend-side hooks (`hold`, `unhold`: pages still
mapped by a backend) let a guest or device simulator drive the other half.

Rules (each as real Xen 4.17 does it unless marked *sim*):
- Domain 0 exists from the start, running, holding ``dom0_kib``; it cannot be paused or
  destroyed (EINVAL: Xen refuses these on the calling domain). *sim*: nor shut down or given
  guest events (on a real host that would take the host down).
- Domids come from a rover: each create takes the next free id after the last one handed out,
  wrapping from DOMID_FIRST_RESERVED-1 (0x7FEF) to 1, so ids are not reused soon. An id is
  busy while its domain exists, dying included. No free id: `OutOfMemory` (Xen: ENOMEM).
- Memory: ``free_pages + sum(tot_pages) + sum(shadow pools) == total_pages`` always. *sim*:
  create allocates ``spec.memory_kib`` at once (create and build in one); not enough free
  memory raises `OutOfMemory` and changes nothing. A domain's pages are freed when it is gone.
  ``scrub_pages`` is always 0 (Xen 4.17 scrubs freed memory in idle time and reports 0).
- A new domain is paused once (controller pause count 1). `pause` adds one (at most 255, then
  EOVERFLOW), `unpause` removes one (`InvalidArgument` at 0). ``paused`` is count > 0.
- `shutdown` (toolstack) and `guest_shutdown` (the guest's SCHEDOP_shutdown) set ``shutdown``
  and the code; the first code sticks and a second shutdown does nothing. The domain stays,
  with its memory, until destroyed. A crash is a shutdown with code 3 (domain_crash).
- `destroy` makes the domain dying (flag ``dying``, as Xen after domain_kill); it is gone
  (out of getinfolist, memory freed) at once, or when the last `hold` is released.
  Destroying a dying domain succeeds and does nothing (Xen returns 0).
- Flags as xc_domain_getinfolist reports them: with online vcpus, an unpaused live domain is
  ``running`` if the guest is busy (`guest_set_busy`) and ``blocked`` otherwise (an idle
  guest); a paused, shut down or dying domain neither. Without vcpus neither. dom0 is running.
- `setmaxmem` always succeeds for an existing domain, even below what it holds (Xen dropped
  that check: the domain just cannot grow). `guest_set_memory` (ballooning) honours maxmem and
  host free memory.
- `max_vcpus` takes 1..128 (HVM_MAX_VCPUS; *sim*: PV too). Xen 4.17 fixes the count at
  createdomain (another: EINVAL). *sim*: it may change until the domain first runs (unpaused
  to count 0) or dies, as on the older Xen the original drove (create, then max_vcpus); then
  only the current count is accepted (a no-op, as 4.17), another is `InvalidArgument`.
- `shadow_allocation` sizes the domain's shadow/HAP pool (MiB) from host free memory and
  returns the new size; `OutOfMemory` when the growth does not fit (*sim*: nothing changes;
  Xen keeps what it got). The pool is freed when the domain becomes dying (domain_kill); a
  request on a dying domain is ignored (Xen returns 0). *sim*: no rounding, no minimum.
- HVM params exist on HVM domains only (PV: `InvalidArgument`, Xen's EINVAL); values are
  checked as Xen 4.17 does (`_params`). *sim*: only `HvmParam` indices; values are
  stored, nothing acts on them (ACPI_S_STATE 3 does not suspend vcpus).
- max_vcpus and shadow_allocation refuse dom0 (EINVAL); the build steps raise no events.
- *sim*: ``cpu_time`` stays 0 and ``shared_info_frame`` is a made-up per-domain number.
- `set_target` (a stub domain's privilege over its HVM guest) holds a reference on the target
  until the stub domain is gone: a destroyed target stays dying until then. Errors as Xen's:
  no such target (ESRCH), the same domain or one that already has a target (EINVAL), a PV
  target (EOPNOTSUPP).
- PCI passthrough is the bus model's (``pci``, `_pci.SimPciBus`); a dying domain's devices
  and grants are released there (domain_kill).

Events: DomainShutdown, DomainDying and DomainGone have ``dom_exc`` (VIRQ_DOM_EXC: xenstored
fires ``@releaseDomain``, and releases the connection of a gone domain); the others nothing.

Failures raise `xen.hypervisor` errors (NoSuchDomain, InvalidArgument, OutOfMemory,
HypervisorError with errno EOVERFLOW or EEXIST) and leave the model unchanged: every check
happens before the first change.
"""

from __future__ import annotations

import errno as _errno
import uuid
from collections.abc import Iterable

from xen.hypervisor import (
    DOMID_FIRST_RESERVED,
    MAX_SHADOW_MIB,
    NULL_HANDLE,
    PAGE_KIB,
    DomainInfo,
    DomainSpec,
    HvmParam,
    HypervisorError,
    InvalidArgument,
    NoSuchDomain,
    OutOfMemory,
    PhysCap,
    PhysInfo,
    ShutdownReason,
    Version,
    check_domid,
    check_hvm_param,
    check_range,
)
from xen.sim.hypervisor._domain import SimDomain
from xen.sim.hypervisor._events import (
    DomainCreated,
    DomainDying,
    DomainGone,
    DomainPaused,
    DomainShutdown,
    DomainUnpaused,
    HandleChanged,
    HypervisorEvent,
    MaxMemChanged,
    MemoryChanged,
    PciChanged,
)
from xen.sim.hypervisor._params import DEFAULTS as _PARAM_DEFAULTS
from xen.sim.hypervisor._params import check_get, check_set
from xen.sim.hypervisor._pci import DEFAULT_PCI_DEVICES, SimPciBus, SimPciDevice
from xen.sim.hypervisor._scsi import SimScsiBus

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_VERSION",
    "SimHypervisor",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

DEFAULT_VERSION = Version(4, 17, ".0-sim")
DEFAULT_CAPABILITIES = (PhysCap.HVM | PhysCap.PV | PhysCap.DIRECTIO | PhysCap.HAP
                        | PhysCap.SHADOW | PhysCap.GNTTAB_V1 | PhysCap.GNTTAB_V2)
_MAX_PAUSE_COUNT = 255  # Xen's cap on the controller pause count (then EOVERFLOW)
_DEFAULT_DOM0_KIB = 512 * 1024
_PAGES_PER_MIB = 1024 // PAGE_KIB
_HVM_MAX_VCPUS = 128  # public/hvm/hvm_info_table.h


# --- the model ---------------------------------------------------------------------------------


class SimHypervisor:
    """The simulated hypervisor; see the module docstring for its rules.

    ``total_kib`` is the host's memory; dom0 takes ``dom0_kib`` of it (default 512 MiB, or a
    quarter of the host when that is less). Raises `InvalidArgument` for a host that cannot
    hold dom0."""

    def __init__(
        self,
        total_kib: int,
        *,
        dom0_kib: int | None = None,
        nr_cpus: int = 4,
        cpu_khz: int = 2_000_000,
        capabilities: PhysCap = DEFAULT_CAPABILITIES,
        version: Version = DEFAULT_VERSION,
        pci_devices: Iterable[SimPciDevice] = DEFAULT_PCI_DEVICES,
    ) -> None:
        self.pci = SimPciBus(pci_devices)
        self.scsi = SimScsiBus()  # dom0's disks and CD drives (_scsi)
        if total_kib < PAGE_KIB:
            raise InvalidArgument(f"host memory of {total_kib} KiB is less than one page")
        if nr_cpus < 1:
            raise InvalidArgument(f"a host needs at least one cpu, got {nr_cpus}")
        self._total_pages = total_kib // PAGE_KIB
        if dom0_kib is None:
            dom0_kib = min(_DEFAULT_DOM0_KIB, total_kib // 4)
        dom0_pages = -(-dom0_kib // PAGE_KIB)
        if not 0 < dom0_pages <= self._total_pages:
            raise InvalidArgument(
                f"dom0 memory of {dom0_kib} KiB does not fit a host of {total_kib} KiB")
        self._nr_cpus = nr_cpus
        self._cpu_khz = cpu_khz
        self._capabilities = capabilities
        self._version = version
        self._domains: dict[int, SimDomain] = {
            0: SimDomain(0, NULL_HANDLE, hvm=False, hap=False, ssidref=0, vcpus=nr_cpus,
                       tot_pages=dom0_pages, max_pages=dom0_pages)
        }
        self._free_pages = self._total_pages - dom0_pages
        self._rover = 0

    # --- queries -------------------------------------------------------------------------------

    def version(self) -> Version:
        return self._version

    def physinfo(self) -> PhysInfo:
        return PhysInfo(
            threads_per_core=1,
            cores_per_socket=self._nr_cpus,
            nr_cpus=self._nr_cpus,
            max_cpu_id=self._nr_cpus - 1,
            nr_nodes=1,
            max_node_id=0,
            cpu_khz=self._cpu_khz,
            capabilities=self._capabilities,
            total_pages=self._total_pages,
            free_pages=self._free_pages,
            scrub_pages=0,
            max_mfn=self._total_pages - 1,
        )

    @property
    def total_pages(self) -> int:
        return self._total_pages

    @property
    def free_pages(self) -> int:
        return self._free_pages

    @property
    def allocated_pages(self) -> int:
        """Pages held by domains (dying ones included), shadow pools not counted."""
        return sum(d.tot_pages for d in self._domains.values())

    @property
    def shadow_pages(self) -> int:
        """Pages in the domains' shadow/HAP pools."""
        return sum(d.shadow_mib for d in self._domains.values()) * _PAGES_PER_MIB

    def get_shadow_allocation(self, domid: int) -> int:
        """The domain's shadow/HAP pool in MiB (XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION)."""
        return self._get(domid).shadow_mib

    def domids(self) -> list[int]:
        """Every domain that exists, dying ones included, in domid order."""
        return sorted(self._domains)

    def getinfolist(self, first: int = 0, max_domains: int = 1024) -> list[DomainInfo]:
        if first < 0 or max_domains < 0:
            raise InvalidArgument(
                f"getinfolist needs first >= 0 and max_domains >= 0, got {first}, {max_domains}")
        ids = [d for d in sorted(self._domains) if d >= first][:max_domains]
        return [self._domains[d].info(d == 0) for d in ids]

    def getinfo(self, domid: int) -> DomainInfo:
        return self._get(domid).info(domid == 0)

    def find_by_handle(self, handle: uuid.UUID) -> list[DomainInfo]:
        return [self._domains[d].info(d == 0) for d in sorted(self._domains)
                if self._domains[d].handle == handle]

    # --- toolstack operations ------------------------------------------------------------------

    def create(self, spec: DomainSpec) -> tuple[int, list[HypervisorEvent]]:
        """Create a paused domain holding ``spec.memory_kib``; returns its domid and events."""
        pages = spec.memory_pages
        if pages > self._free_pages:
            raise OutOfMemory(
                f"cannot create a domain of {spec.memory_kib} KiB: only "
                f"{self._free_pages * PAGE_KIB} KiB free of {self._total_pages * PAGE_KIB} KiB")
        domid = self._next_domid()
        self._rover = domid
        self._domains[domid] = SimDomain(
            domid, spec.handle, hvm=spec.hvm, hap=spec.hap, ssidref=spec.ssidref,
            vcpus=spec.max_vcpus, tot_pages=pages, max_pages=spec.max_pages, pause_count=1,
            hvm_params=dict(_PARAM_DEFAULTS) if spec.hvm else {})
        self._free_pages -= pages
        return domid, [DomainCreated(domid, spec.handle)]

    def pause(self, domid: int) -> list[HypervisorEvent]:
        dom = self._get_guest(domid, "pause")
        self._refuse_dying(dom, "pause")
        if dom.pause_count >= _MAX_PAUSE_COUNT:
            raise HypervisorError(
                f"pause of domain {domid} failed: already paused {_MAX_PAUSE_COUNT} times",
                errno=_errno.EOVERFLOW)
        dom.pause_count += 1
        return [DomainPaused(domid, dom.pause_count)]

    def unpause(self, domid: int) -> list[HypervisorEvent]:
        dom = self._get_guest(domid, "unpause")
        self._refuse_dying(dom, "unpause")
        if dom.pause_count == 0:
            raise InvalidArgument(f"unpause of domain {domid} failed: it is not paused")
        dom.pause_count -= 1
        dom.ran = dom.ran or dom.pause_count == 0
        return [DomainUnpaused(domid, dom.pause_count)]

    def shutdown(self, domid: int, reason: ShutdownReason | int) -> list[HypervisorEvent]:
        """Shut the domain down on the toolstack's behalf (SCHEDOP_remote_shutdown)."""
        return self._shutdown(domid, reason, by_guest=False)

    def destroy(self, domid: int) -> list[HypervisorEvent]:
        dom = self._get_guest(domid, "destroy")
        if dom.dying:
            return []
        dom.dying = True
        released = self.pci.release_domain(domid)
        self._free_pages += dom.shadow_mib * _PAGES_PER_MIB  # domain_kill frees the pool
        dom.shadow_mib = 0
        events: list[HypervisorEvent] = [DomainDying(domid)]
        events += [PciChanged(f"release of domain {domid}")] if released else []
        if dom.holds == 0:
            events += self._remove(dom)
        return events

    def setmaxmem(self, domid: int, kib: int) -> list[HypervisorEvent]:
        dom = self._get(domid)
        if isinstance(kib, bool) or not isinstance(kib, int) or kib < 0:
            raise InvalidArgument(f"setmaxmem of domain {domid}: bad size {kib!r} KiB")
        dom.max_pages = kib // PAGE_KIB
        return [MaxMemChanged(domid, dom.max_pages)]

    def set_handle(self, domid: int, handle: uuid.UUID) -> list[HypervisorEvent]:
        dom = self._get(domid)
        if not isinstance(handle, uuid.UUID):
            raise InvalidArgument(f"set_handle of domain {domid}: {handle!r} is not a UUID")
        dom.handle = handle
        return [HandleChanged(domid, handle)]

    def set_target(self, domid: int, target: int) -> list[HypervisorEvent]:
        """XEN_DOMCTL_set_target: ``domid`` (a stub domain) gets privilege over ``target`` (an
        HVM guest) and holds a reference on it until ``domid`` is gone."""
        what = f"set_target of domain {domid} to {target}"
        dom = self._get_guest(domid, "set_target")
        self._refuse_dying(dom, "set_target")
        served = self._get(target)
        if served is dom or dom.target is not None:
            raise InvalidArgument(f"{what}: " + ("the same domain" if served is dom else
                                                 f"it already serves domain {dom.target}"))
        if not served.hvm:
            raise HypervisorError(f"{what}: domain {target} is not HVM",
                                  errno=_errno.EOPNOTSUPP)
        served.holds += 1
        dom.target = target
        return []

    # --- domain build --------------------------------------------------------------------------

    def max_vcpus(self, domid: int, vcpus: int) -> list[HypervisorEvent]:
        """Set the vcpu count (1..128) while the domain never ran; later only the same count."""
        what = f"max_vcpus of domain {domid}"
        dom = self._get_guest(domid, "max_vcpus")
        check_range(what, "vcpu count", vcpus, 1, _HVM_MAX_VCPUS)
        if vcpus != dom.vcpus and (dom.ran or dom.dying):
            raise InvalidArgument(
                f"{what}: cannot change its {dom.vcpus} vcpus to {vcpus}: it "
                f"{'is dying' if dom.dying else 'has run'} (Xen fixes the count at create)")
        dom.vcpus = vcpus
        return []

    def shadow_allocation(self, domid: int, mib: int) -> tuple[int, list[HypervisorEvent]]:
        """Size the domain's shadow/HAP pool to ``mib`` MiB; returns the size and events."""
        what = f"shadow_allocation of domain {domid}"
        dom = self._get_guest(domid, "shadow_allocation")
        check_range(what, "size in MiB", mib, 0, MAX_SHADOW_MIB)
        if dom.dying:
            return mib, []
        growth = (mib - dom.shadow_mib) * _PAGES_PER_MIB
        if growth > self._free_pages:
            raise OutOfMemory(
                f"{what}: cannot grow the shadow pool from {dom.shadow_mib} to {mib} MiB: only "
                f"{self._free_pages * PAGE_KIB} KiB free")
        self._free_pages -= growth
        dom.shadow_mib = mib
        return mib, []

    def set_hvm_param(self, domid: int, param: HvmParam | int, value: int
                      ) -> list[HypervisorEvent]:
        """Set an HVM parameter of an HVM domain (see the module rules)."""
        dom, index, what = self._hvm_domain(domid, param, "set_hvm_param")
        check_set(what, index, value, dom.hvm_params.get(index, 0))
        dom.hvm_params[index] = value
        return []

    def get_hvm_param(self, domid: int, param: HvmParam | int) -> int:
        """An HVM parameter of an HVM domain (0 unless set; HPET_ENABLED starts at 1)."""
        dom, index, what = self._hvm_domain(domid, param, "get_hvm_param")
        check_get(what, index)
        return dom.hvm_params.get(index, 0)

    # --- guest and backend hooks ---------------------------------------------------------------

    def guest_shutdown(self, domid: int, reason: ShutdownReason | int) -> list[HypervisorEvent]:
        """The guest shuts itself down with ``reason`` (SCHEDOP_shutdown)."""
        return self._shutdown(domid, reason, by_guest=True)

    def guest_crash(self, domid: int) -> list[HypervisorEvent]:
        """The guest crashes (domain_crash: a shutdown with code crash)."""
        return self._shutdown(domid, ShutdownReason.CRASH, by_guest=True)

    def guest_set_busy(self, domid: int, busy: bool) -> list[HypervisorEvent]:
        """Busy guests show ``running``, idle ones ``blocked`` (while unpaused and alive)."""
        self._get_guest(domid, "guest_set_busy").busy = bool(busy)
        return []

    def guest_set_memory(self, domid: int, kib: int) -> list[HypervisorEvent]:
        """The guest balloons to ``kib`` (rounded up to pages), within maxmem and free memory."""
        dom = self._get_guest(domid, "guest_set_memory")
        self._refuse_dying(dom, "guest_set_memory")
        if isinstance(kib, bool) or not isinstance(kib, int) or kib < 0:
            raise InvalidArgument(f"guest_set_memory of domain {domid}: bad size {kib!r} KiB")
        pages = -(-kib // PAGE_KIB)
        if pages > dom.tot_pages and pages > dom.max_pages:
            raise InvalidArgument(
                f"domain {domid} cannot grow to {kib} KiB: its maxmem is "
                f"{dom.max_pages * PAGE_KIB} KiB")
        growth = pages - dom.tot_pages
        if growth > self._free_pages:
            raise OutOfMemory(
                f"domain {domid} cannot grow by {growth * PAGE_KIB} KiB: only "
                f"{self._free_pages * PAGE_KIB} KiB free")
        dom.tot_pages = pages
        self._free_pages -= growth
        return [MemoryChanged(domid, pages)]

    def hold(self, domid: int) -> list[HypervisorEvent]:
        """A backend maps the domain's pages: once destroyed it stays dying until `unhold`."""
        self._get_guest(domid, "hold").holds += 1
        return []

    def unhold(self, domid: int) -> list[HypervisorEvent]:
        """Release one `hold`; a dying domain with no holds left is gone."""
        dom = self._get_guest(domid, "unhold")
        if dom.holds == 0:
            raise InvalidArgument(f"unhold of domain {domid}: nothing holds it")
        dom.holds -= 1
        if dom.dying and dom.holds == 0:
            return self._remove(dom)
        return []

    # --- internals -----------------------------------------------------------------------------

    def _get(self, domid: int) -> SimDomain:
        check_domid(domid)
        dom = self._domains.get(domid)
        if dom is None:
            raise NoSuchDomain(f"no domain {domid}")
        return dom

    def check_guest(self, domid: int, what: str, *, live: bool) -> None:
        """`NoSuchDomain`, or `InvalidArgument` for dom0 or (``live``) a dying domain."""
        dom = self._get_guest(domid, what)
        if live:
            self._refuse_dying(dom, what)

    def _get_guest(self, domid: int, what: str) -> SimDomain:
        dom = self._get(domid)
        if domid == 0:
            raise InvalidArgument(f"{what} of domain 0 refused: it is the control domain")
        return dom

    def _hvm_domain(self, domid: int, param: HvmParam | int, op: str
                    ) -> tuple[SimDomain, HvmParam, str]:
        index = check_hvm_param(f"{op} of domain {domid}", param)
        what = f"{op} {index.name} of domain {domid}"
        dom = self._get(domid)
        if not dom.hvm:
            raise InvalidArgument(f"{what}: it is a PV domain (HVM params need an HVM domain)")
        return dom, index, what

    @staticmethod
    def _refuse_dying(dom: SimDomain, what: str) -> None:
        if dom.dying:
            raise InvalidArgument(f"{what} of domain {dom.domid} refused: it is dying")

    def _shutdown(
        self, domid: int, reason: ShutdownReason | int, *, by_guest: bool
    ) -> list[HypervisorEvent]:
        dom = self._get_guest(domid, "shutdown")
        try:
            code = ShutdownReason(reason)
        except ValueError:
            raise InvalidArgument(
                f"shutdown of domain {domid}: unknown reason {reason!r} (expected 0..5)"
            ) from None
        if dom.is_shut_down or dom.dying:
            return []
        dom.is_shut_down = True
        dom.shutdown_code = int(code)
        return [DomainShutdown(domid, code, by_guest)]

    def _remove(self, dom: SimDomain) -> list[HypervisorEvent]:
        del self._domains[dom.domid]
        self._free_pages += dom.tot_pages
        served = self._domains.get(dom.target) if dom.target is not None else None
        if served is None:  # set_target's reference is dropped with the domain
            return [DomainGone(dom.domid)]
        return [DomainGone(dom.domid), *self.unhold(served.domid)]

    def _next_domid(self) -> int:
        domid = self._rover
        for _ in range(DOMID_FIRST_RESERVED):
            domid += 1
            if domid >= DOMID_FIRST_RESERVED:
                domid = 1
            if domid not in self._domains:
                return domid
        raise OutOfMemory(f"no free domain id: all {DOMID_FIRST_RESERVED - 1} are in use")
