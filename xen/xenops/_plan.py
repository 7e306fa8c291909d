"""Plans for domain and device operations: pure functions from specs and observations to Plans.

Each function returns a Plan (see _atomics) and does no I/O. Values produced by earlier I/O
(the new domid, the builder's store/console rings, the devices found under a domain) are
arguments, so each phase of an operation is planned when its inputs are known:

1. `domain_create_call(spec, vcpus=, memory_kib=)` -> the CreateDomain call; then
   `plan_domain_create(spec, domid)` lays out /local/domain/<d>, /vm/<uuid> and /vss/<uuid>
   (one transaction, as the original).
2. `plan_build_pre(...)` -> memory wait, HVM params, vcpus, maxmem, shadow; the builder runs;
   then `plan_build_post(...)` writes memory/store/console keys and introduces the domain.
   A VM start passes `tree=spec` there instead of step 1's transaction: one transaction
   lays out the whole tree, rings included, before INTRODUCE.
3. `plan_device_add(spec)` per device: one transaction that recreates both ends and the
   hotplug dir, then waits for the hotplug script (and for vifs, the post-plug writes).
4. Shutdown requests here (`xen.hypervisor.ShutdownReason`; the word written to
   control/shutdown is its `control_word`); device removal and domain destroy in _teardown.

Ordering rules (asserted in tests/xen/test_plan.py):
- `order_devices`: read-write disks are plugged before read-only ones (ours, from xenopsd: a
  shared image is opened writable first); vbds before vifs before PCI. PCI backends are
  written *before* the device model starts (the original's order: qemu and dm-agent read the
  PCI backend at start), not after as in xenopsd.

Timeouts come from one Timeouts value with short defaults (the original waited 20 minutes for
hotplug scripts and qemu, 30 minutes for shutdown).

Failure: bad specs raise LayoutError or PlanError (ValueErrors) at planning time.
"""

from __future__ import annotations

import math
import uuid as uuidlib
from dataclasses import dataclass, fields

from xen.hypervisor import DomainSpec as HvDomainSpec
from xen.hypervisor import HvmParam, InvalidArgument, ShutdownReason
from xen.xenops._atomics import (
    Appears,
    Atomic,
    Cleared,
    Introduce,
    Mkdir,
    Plan,
    Rm,
    Transaction,
    WaitFor,
    WaitFreeMemory,
    Write,
    XsOp,
)
from xen.xenops._calls import (
    CreateDomain,
    PciAdd,
    PciBind,
    SetHvmParam,
    SetMaxMem,
    SetMaxVcpus,
    ShadowAllocation,
    ShutdownDomain,
    SurfmanSetPvDisplay,
)
from xen.xenops._checks import PlanError
from xen.xenops._devspec import (
    DeviceSpec,
    PciSpec,
    PvDeviceSpec,
    VbdSpec,
    VifSpec,
    device_layout,
)
from xen.xenops._layout import (
    Device,
    Kind,
    Perms,
    domain_path,
    ro_perms,
    rw_perms,
    vm_path,
    vss_path,
)
from xen.xenops._memory import BuildMemory, balloon_target_kib, kib_of_mib

__all__ = [
    "DEFAULT_TIMEOUTS",
    "BuildResult",
    "DomainSpec",
    "Timeouts",
    "device_name",
    "domain_create_call",
    "domain_create_flags",
    "order_devices",
    "plan_build_post",
    "plan_build_pre",
    "plan_device_add",
    "plan_domain_create",
    "plan_hard_shutdown",
    "plan_set_memory_target",
    "plan_shutdown_request",
    "plan_vcpus",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_GUEST_RO_DIRS = ("cpu", "memory")
_GUEST_RW_DIRS = ("device", "error", "drivers", "control", "attr", "data", "messages")
_CONSOLE_LIMIT = "65536"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Every wait of the plans, in seconds. Defaults are short; the original's in comments."""

    hotplug: float = 10.0           # hotplug script add/remove (original 20 min)
    device_close: float = 10.0      # backend reaching Closed on clean unplug (original 20 min)
    shutdown_ack: float = 30.0      # PV guest deleting control/shutdown (xenvm 30 s)
    dm_agent_stop: float = 10.0     # dm-agent removing dms/<domid> (original 20 s)
    stubdom_death: float = 10.0     # stubdomain dying after a halt request (original 60 s)
    device_model_stop: float = 10.0  # qemu exiting after SIGTERM (original 20 min)
    domain_gone: float = 10.0       # destroyed domain leaving the hypervisor (original 30 s)
    domain_gone_poll: float = 0.5   # poll interval for the above (original 5 s)
    free_memory: float = 64.0       # host memory to become free (original 64 s)

    def __post_init__(self) -> None:
        for item in fields(self):
            name, value = item.name, getattr(self, item.name)
            if not isinstance(value, int | float) or not 0 < value < math.inf:
                raise PlanError(f"timeout {name} must be > 0, got {value!r}")


DEFAULT_TIMEOUTS = Timeouts()


# ------------------------------------------------------------------ domain create/build


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """What Domain.make needs: identity, type and platform data."""

    uuid: str
    name: str = ""
    hvm: bool = False
    hap: bool = True
    ssidref: int = 0
    platform: tuple[tuple[str, str], ...] = ()
    xsdata: tuple[tuple[str, str], ...] = ()


def domain_create_flags(spec: DomainSpec) -> tuple[str, ...]:
    """Create flags: PV none; HVM `hvm` plus `hap` (platform `hap`=true/false overrides)."""
    if not spec.hvm:
        return ()
    override = dict(spec.platform).get("hap")
    if override == "false":
        return ("hvm",)
    if override == "true":
        return ("hvm", "hap")
    return ("hvm", "hap") if spec.hap else ("hvm",)


def domain_create_call(
    spec: DomainSpec, *, vcpus: int, memory_kib: int, max_memory_kib: int | None = None
) -> CreateDomain:
    """The hypervisor call that creates the domain (the executor gets the domid back): the
    VM's UUID as handle, `domain_create_flags`, the ssidref, ``vcpus``, the memory the domain
    holds once created and its initial maxmem (default: ``memory_kib``). PlanError names a
    bad UUID or value."""
    try:
        handle = uuidlib.UUID(spec.uuid)
    except (TypeError, ValueError):
        raise PlanError(f"DomainSpec.uuid must be a UUID, got {spec.uuid!r}") from None
    flags = domain_create_flags(spec)
    try:
        hv_spec = HvDomainSpec(handle=handle, hvm="hvm" in flags, hap="hap" in flags,
                               ssidref=spec.ssidref, max_vcpus=vcpus, memory_kib=memory_kib,
                               max_memory_kib=max_memory_kib)
    except InvalidArgument as exc:
        raise PlanError(f"domain create: {exc}") from None
    return CreateDomain(hv_spec)


def plan_domain_create(spec: DomainSpec, domid: int) -> Plan:
    """The xenstore tree of a newly created domain (Domain.make after xc_domain_create), in
    one transaction. A start can instead lay it out with the build's keys
    (``plan_build_post(..., tree=spec)``)."""
    return Plan("domain-create", (Transaction(tuple(_domain_tree(spec, domid))),))


def _domain_tree(spec: DomainSpec, domid: int) -> list[XsOp]:
    """``plan_domain_create``'s requests: /local/domain/<d>, /vm/<uuid>, /vss/<uuid>."""
    dom, vm, vss = domain_path(domid), vm_path(spec.uuid), vss_path(spec.uuid)
    name = spec.name or f"Domain-{domid}"
    ro, rw = ro_perms(domid), rw_perms(domid)
    ops: list[XsOp] = [
        Rm(dom), Mkdir(dom, ro),
        Rm(vm), Mkdir(vm, ro),
        Rm(vss), Mkdir(vss, rw),
        Write(f"{dom}/vm", vm), Write(f"{dom}/vss", vss), Write(f"{dom}/name", name),
    ]
    ops += [Mkdir(f"{dom}/{sub}", ro) for sub in _GUEST_RO_DIRS]
    ops += [Mkdir(f"{dom}/{sub}", rw) for sub in _GUEST_RW_DIRS]
    # The original writes the rest after its transaction; in it, the tree appears whole (as
    # libxl does) and the executor pipelines it all (docs/compatibility.md).
    ops += [Write(f"{vm}/uuid", spec.uuid), Write(f"{vm}/name", name)]
    ops += [Write(f"{dom}/{k}", v) for k, v in spec.xsdata]
    ops += [Write(f"{dom}/platform/{k}", v) for k, v in spec.platform]
    ops.append(Write(f"{dom}/control/platform-feature-multiprocessor-suspend", "1"))
    return ops


def plan_build_pre(
    domid: int,
    memory: BuildMemory,
    *,
    timer_mode: int | None = None,
    hpet: int | None = None,
    vpt_align: int | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    maxmem: bool = True,
) -> Plan:
    """Before the builder: wait for memory, HVM params (errors ignored), vcpus, maxmem, and for
    an HVM guest its shadow/HAP pool. A PV guest gets no pool here: it only serves log-dirty
    tracking (live migration), libxl sets none for PV, and a Xen built without shadow paging
    (Debian's 4.17) refuses it for PV with EINVAL (docs/xenlab.md, findings). ``maxmem=False``
    leaves maxmem out: the create set it already (``domain_create_call(..., max_memory_kib=
    memory.xen_max_kib)``, as a VM start does; docs/compatibility.md)."""
    steps: list[Atomic] = [
        WaitFreeMemory(kib_of_mib(memory.required_host_free_mib), timeouts.free_memory)
    ]
    for param, value in ((HvmParam.TIMER_MODE, timer_mode), (HvmParam.HPET_ENABLED, hpet),
                         (HvmParam.VPT_ALIGN, vpt_align)):
        if value is not None:
            steps.append(SetHvmParam(domid, param, value, ignore_errors=True))
    steps.append(SetMaxVcpus(domid, memory.vcpus))
    if maxmem:
        steps.append(SetMaxMem(domid, memory.xen_max_kib))
    if memory.hvm:
        steps.append(ShadowAllocation(domid, memory.shadow_mib))
    return Plan("build-pre", tuple(steps))


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What the domain builder returns: the store and console rings and their ports."""

    store_mfn: int
    store_port: int
    console_mfn: int
    console_port: int


def plan_build_post(
    domid: int, uuid: str, memory: BuildMemory, built: BuildResult, *, timeoffset: str = "0",
    firmware: bool | None = None, tree: DomainSpec | None = None,
) -> Plan:
    """After the builder: memory, store and console keys and every vcpu's availability (all
    online, as libxl writes them here) in one transaction, then INTRODUCE. With ``tree``, the
    domain's whole tree (``plan_domain_create``'s requests) goes first in the same
    transaction: the tree appears whole, rings included, just before INTRODUCE, in 3 round
    trips instead of 6 (docs/compatibility.md).

    The console keys are what xenconsoled reads for a domain's first console
    (``console/ring-ref``, ``console/port``, and ``console/type`` = ``xenconsoled``, as libxl
    writes); INTRODUCE makes xenstored map the store ring and fire ``@introduceDomain``, on
    which xenconsoled (and our domain watcher) look the new domain up. ``firmware`` (default:
    an HVM domain has it) writes hvmloader's keys; a PVH guest, HVM without firmware, has none."""
    dom = domain_path(domid)
    entries = [
        ("memory/static-max", str(memory.static_max_kib)),
        ("memory/target", str(memory.target_kib)),
        ("domid", str(domid)),
        ("store/port", str(built.store_port)),
        ("store/ring-ref", str(built.store_mfn)),
        ("serial/0/limit", _CONSOLE_LIMIT),
        ("console/limit", _CONSOLE_LIMIT),
        ("console/port", str(built.console_port)),
        ("console/ring-ref", str(built.console_mfn)),
        ("console/type", "xenconsoled"),
    ]
    entries += _vcpu_availability(memory.vcpus, memory.vcpus)
    if (memory.hvm if firmware is None else firmware):
        entries += [("hvmloader/bios", "seabios"), ("hvmloader/seabios-legacy-load-roms", "1")]
    if tree is not None and tree.uuid != uuid:
        raise PlanError(f"build-post: the tree's uuid {tree.uuid} is not the VM's {uuid}")
    ops: list[XsOp] = _domain_tree(tree, domid) if tree is not None else []
    ops += [Write(f"{dom}/{k}", v) for k, v in entries]
    if memory.hvm:
        ops.append(Write(f"{vm_path(uuid)}/rtc/timeoffset", timeoffset))
    return Plan("build-post", (Transaction(tuple(ops)),
                               Introduce(domid, built.store_mfn, built.store_port)))


def plan_vcpus(domid: int, vcpus: int, online: int | None = None) -> Plan:
    """`cpu/<i>/availability` for each vcpu: the first `online` (default all) are online."""
    if vcpus < 1:
        raise PlanError(f"vcpus must be >= 1, got {vcpus}")
    dom = domain_path(domid)
    return Plan("vcpus", tuple(Write(f"{dom}/{key}", value) for key, value in
                               _vcpu_availability(vcpus, vcpus if online is None else online)))


def _vcpu_availability(vcpus: int, online: int) -> list[tuple[str, str]]:
    """``cpu/<i>/availability`` under a domain's path for each vcpu: the first ``online``
    online, the rest offline."""
    return [(f"cpu/{i}/availability", "online" if i < online else "offline")
            for i in range(vcpus)]


def plan_set_memory_target(domid: int, target_kib: int) -> Plan:
    """Balloon: write `memory/target` in KiB, rounded down to a page."""
    target = str(balloon_target_kib(target_kib))
    return Plan("set-memory-target", (Write(f"{domain_path(domid)}/memory/target", target),))


# ---------------------------------------------------------------------------- devices


def order_devices(specs: list[DeviceSpec] | tuple[DeviceSpec, ...]) -> tuple[DeviceSpec, ...]:
    """Plug order: read-write vbds, read-only vbds, vifs, PCI, then the rest (stable)."""

    def rank(spec: DeviceSpec) -> int:
        if isinstance(spec, VbdSpec):
            return 0 if spec.mode == "w" else 1
        if isinstance(spec, VifSpec):
            return 2
        if isinstance(spec, PciSpec):
            return 3
        return 4

    return tuple(sorted(specs, key=rank))


def plan_device_add(spec: DeviceSpec, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> Plan:
    """Add a device: recreate both ends and the hotplug dir in one transaction, then wait."""
    layout = device_layout(spec)
    dev = layout.device
    fe_dom, be_dom = dev.frontend.domid, dev.backend.domid
    steps: list[Atomic] = []
    if isinstance(spec, PciSpec):
        if spec.bind:
            steps += [PciBind(pci.bdf) for pci in spec.devs]
        steps += [PciAdd(fe_dom, pci.bdf, assign=spec.assign, permissive=spec.permissive,
                         flr=spec.flr, hvm=spec.hvm, pvpci=spec.pvpci) for pci in spec.devs]
    if isinstance(spec, VbdSpec) and spec.loop_device is not None and not spec.hvm:
        steps.append(Write(f"{dev.hotplug_extra_path}/loop-device", spec.loop_device))
    ops: list[XsOp] = [
        Rm(dev.frontend_path),
        Rm(dev.backend_path),
        Mkdir(dev.frontend_path, Perms(fe_dom, "n", ((be_dom, "r"),))),
        Mkdir(dev.backend_path, Perms(be_dom, "n", ((fe_dom, "r"),))),
        Rm(dev.hotplug_path),
        Mkdir(dev.hotplug_path, Perms(be_dom)),
        Write(f"{dev.frontend_path}/backend", dev.backend_path),
    ]
    ops += [Write(f"{dev.frontend_path}/{k}", v) for k, v in layout.frontend]
    ops.append(Write(f"{dev.backend_path}/frontend", dev.frontend_path))
    ops += [Write(f"{dev.backend_path}/{k}", v) for k, v in layout.backend]
    steps.append(Transaction(tuple(ops)))
    if isinstance(spec, VbdSpec | VifSpec):
        steps.append(WaitFor(Appears(dev.hotplug_status_path), timeouts.hotplug,
                             f"hotplug add of {device_name(dev)}"))
    if isinstance(spec, VbdSpec) and fe_dom == 0:
        steps.append(WaitFor(Appears(dev.frontend_hotplug_path), timeouts.hotplug,
                             f"frontend hotplug of {device_name(dev)}",
                             error=Appears(dev.tapdisk_error_path)))
    if isinstance(spec, VifSpec):
        if spec.network is not None:
            steps.append(Write(f"{dev.backend_path}/bridge", spec.network))
        steps.append(Write(dev.hotplug_connected_path, "connected"))
    if isinstance(spec, PvDeviceSpec) and spec.kind is Kind.VFB:
        steps.append(SurfmanSetPvDisplay(fe_dom))
    return Plan(f"device-add {device_name(dev)}", tuple(steps))


def device_name(dev: Device) -> str:
    fe = dev.frontend
    return f"{fe.kind.value}/{fe.devid} of domain {fe.domid}"


# -------------------------------------------------------------------- shutdown/destroy


def _control_word(reason: ShutdownReason) -> str:
    try:
        return reason.control_word
    except ValueError as exc:
        raise PlanError(str(exc)) from None


def plan_shutdown_request(
    domid: int,
    reason: ShutdownReason,
    *,
    hvm: bool,
    has_pv_driver: bool = False,
    acpi_s_state: int = 0,
    powerbutton_enabled: bool = False,
    wait_ack: bool = True,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> Plan:
    """A clean shutdown request: write `reason.control_word` to control/shutdown; HVM guests
    without a PV driver get the ACPI power button (qemu, via control/hvm-shutdown) or, when
    sleeping or without the power button, the hypercall. PV guests must acknowledge by
    clearing the node. PlanError for a reason no guest is asked for (SOFT_RESET)."""
    word = _control_word(reason)
    control = f"{domain_path(domid)}/control"
    steps: list[Atomic] = [Write(f"{control}/shutdown", word)]
    if hvm:
        if (not has_pv_driver and acpi_s_state != 0) or not powerbutton_enabled:
            steps.append(ShutdownDomain(domid, reason))
        elif not has_pv_driver:
            steps.append(Write(f"{control}/hvm-shutdown", word))
    elif wait_ack:
        steps.append(WaitFor(Cleared(f"{control}/shutdown"), timeouts.shutdown_ack,
                             f"domain {domid} to acknowledge {word}"))
    return Plan(f"shutdown-request {word}", tuple(steps))


def plan_hard_shutdown(domid: int, reason: ShutdownReason) -> Plan:
    """Shut the domain down by hypercall, whatever the guest does. PlanError for a reason a
    toolstack never imposes (SOFT_RESET, the guest's own request)."""
    return Plan(f"hard-shutdown {_control_word(reason)}", (ShutdownDomain(domid, reason),))
