"""One domain of the simulated hypervisor's model (`xen.sim.hypervisor._model`): its counters
and flags, and its `DomainInfo` as xc_domain_getinfolist reports it. Pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from xen.hypervisor import INVALID_MAX_VCPU_ID, SHUTDOWN_CODE_NONE, DomainInfo, HvmParam

__all__ = ["SimDomain"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


@dataclass(slots=True)
class SimDomain:
    """One domain of the model (`SimHypervisor`); `info` is its xc_domaininfo_t view."""

    domid: int
    handle: uuid.UUID
    hvm: bool
    hap: bool
    ssidref: int
    vcpus: int
    tot_pages: int
    max_pages: int
    pause_count: int = 0
    shutdown_code: int = SHUTDOWN_CODE_NONE
    is_shut_down: bool = False
    dying: bool = False
    holds: int = 0
    busy: bool = False
    ran: bool = False  # unpaused to count 0 at least once
    shadow_mib: int = 0
    hvm_params: dict[HvmParam, int] = field(default_factory=dict)
    target: int | None = None  # set_target: the domain this one serves (holds one of its holds)

    def info(self, is_dom0: bool) -> DomainInfo:
        live = not (self.is_shut_down or self.dying or self.pause_count)
        has_vcpus = self.vcpus > 0
        return DomainInfo(
            domid=self.domid,
            handle=self.handle,
            dying=self.dying,
            hvm=self.hvm,
            shutdown=self.is_shut_down,
            paused=self.pause_count > 0,
            blocked=has_vcpus and live and not self.busy and not is_dom0,
            running=has_vcpus and live and (self.busy or is_dom0),
            hap=self.hvm and self.hap,
            shutdown_code=self.shutdown_code,
            tot_pages=self.tot_pages,
            max_pages=self.max_pages,
            shared_info_frame=0x100000 + self.domid,
            nr_online_vcpus=self.vcpus,
            max_vcpu_id=self.vcpus - 1 if has_vcpus else INVALID_MAX_VCPU_ID,
            ssidref=self.ssidref,
        )
