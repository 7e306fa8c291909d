"""Plans that take devices and domains apart: device unplug/release and domain destroy.

Pure: the caller observes xenstore first (which devices a domain has, each backend's state,
loop devices, PCI BDFs, dm-agents, the stubdomain, qemu and helper pids) and passes that in as
ObservedDevice / ObservedDomain; the functions return Plans (see _atomics).

Where the original decided inside a transaction whether the backend was Connected, the plan
branches on the observed state and keeps the write guarded (WriteIfEquals Connected ->
Closing in the transaction), so a state change in between cannot produce a wrong write; at
worst a wait times out, quickly.

Destroy order (the original's Domain.destroy, asserted in tests/xen/test_plan.py): PCI
backends released first (devices back in dom0 before anyone sees the death), domain destroy,
dm-agents, stubdomain (halt request, short wait, then destroyed the same way without FLR),
qemu and helpers, other devices, FLR, hotplug release, trees, wait for the domain to be gone.
Destroy plans are best-effort: each failure is logged and the rest still runs.

Failure: a bad mode raises PlanError; malformed observations raise LayoutError/PlanError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xen.hypervisor import ShutdownReason
from xen.xenops._atomics import (
    Appears,
    Atomic,
    Becomes,
    Disappears,
    IfAllSucceed,
    Plan,
    Rm,
    Transaction,
    WaitDomain,
    WaitFor,
    Write,
    WriteIfEquals,
    XsOp,
)
from xen.xenops._calls import (
    DestroyDomain,
    InputDetachVkbd,
    KillProcess,
    LoopDetach,
    PciFlr,
    PciRelease,
)
from xen.xenops._checks import PlanError
from xen.xenops._devid import XenbusState
from xen.xenops._dmagent import dm_stop_steps
from xen.xenops._layout import Device, Kind, domain_path, private_path
from xen.xenops._plan import DEFAULT_TIMEOUTS, Timeouts, device_name

__all__ = [
    "ObservedDevice",
    "ObservedDomain",
    "plan_device_remove",
    "plan_domain_destroy",
    "stuck_handle",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_CONNECTED = XenbusState.CONNECTED.to_xenstore()
_CLOSING = XenbusState.CLOSING.to_xenstore()
_CLOSED = XenbusState.CLOSED.to_xenstore()


@dataclass(frozen=True, slots=True)
class ObservedDevice:
    """A device as found in xenstore before removal.

    backend_state is None when the backend directory is missing. pci_bdfs are the BDFs
    (dddd:bb:ss.f, without the `@slot` a `dev-<i>` value may carry) of a PCI backend;
    loop_device the loop device recorded under hotplug-extra.
    """

    device: Device
    backend_state: XenbusState | None = XenbusState.CONNECTED
    loop_device: str | None = None
    pci_bdfs: tuple[str, ...] = ()


def _rm_device_state(dev: Device) -> list[Atomic]:
    return [Rm(dev.frontend_path), Rm(dev.backend_path), Rm(dev.error_dir)]


def _request_closure(obs: ObservedDevice, write_offline: bool) -> Transaction:
    dev = obs.device
    ops: list[XsOp] = [Write(dev.backend_online_path, "0")] if write_offline else []
    ops.append(WriteIfEquals(dev.backend_state_path, _CONNECTED, _CLOSING))
    return Transaction(tuple(ops))


def _is_vif(dev: Device) -> bool:
    return dev.backend.kind is Kind.VIF or dev.frontend.kind is Kind.VWIF


def _is_vbd(dev: Device) -> bool:
    return dev.backend.kind in (Kind.VBD, Kind.TAP)


def _pci_release(obs: ObservedDevice, hvm: bool, assigned: bool = True) -> list[Atomic]:
    domid = obs.device.frontend.domid
    return [PciRelease(domid, bdf, hvm=hvm, assigned=assigned, ignore_errors=True)
            for bdf in obs.pci_bdfs]


def _clean_shutdown(obs: ObservedDevice, t: Timeouts, hvm: bool) -> list[Atomic]:
    dev = obs.device
    if dev.backend.kind is Kind.PCI:
        return _pci_release(obs, hvm)
    if dev.backend.kind is Kind.VKBD:
        return [InputDetachVkbd(dev.frontend.domid)]
    if not (_is_vbd(dev) or _is_vif(dev)):
        return []
    if obs.backend_state is None:
        return _rm_device_state(dev)
    if _is_vif(dev) and obs.backend_state is not XenbusState.CONNECTED:
        # no frontend to close with (a guest without netfront, a plug cut short): the closure
        # request changes nothing and the hotplug script would never be told to remove it
        return _hard_shutdown(obs, t, hvm)
    steps: list[Atomic] = [_request_closure(obs, write_offline=True)]
    if _is_vbd(dev):
        if obs.backend_state is XenbusState.CONNECTED:
            steps.append(WaitFor(Becomes(dev.backend_state_path, _CLOSED), t.device_close,
                                 f"close of {device_name(dev)}", error=Appears(dev.error_path),
                                 remove_error_node=True))
    else:
        steps.append(WaitFor(Disappears(dev.hotplug_status_path), t.hotplug,
                             f"hotplug remove of {device_name(dev)}",
                             error=Appears(dev.error_path)))
    return steps + _rm_device_state(dev)


def _hard_shutdown(obs: ObservedDevice, t: Timeouts, hvm: bool) -> list[Atomic]:
    dev = obs.device
    unplugged = WaitFor(Disappears(dev.hotplug_status_path), t.hotplug,
                        f"hotplug remove of {device_name(dev)}")
    if dev.backend.kind is Kind.PCI:
        return _pci_release(obs, hvm)
    if dev.backend.kind is Kind.VKBD:
        return [InputDetachVkbd(dev.frontend.domid)]
    # The backend goes before the wait: Linux's blkback and netback (6.1, in the lab) let a
    # device go when its backend directory is removed, not when the frontend's is.
    if _is_vif(dev):
        steps: list[Atomic] = []
        if obs.backend_state is not None:
            steps.append(Write(dev.backend_online_path, "0"))
        steps += [Rm(dev.frontend_path), Rm(dev.backend_path)]
        if obs.backend_state is not None:
            steps.append(unplugged)
        return [*steps, Rm(dev.udev_path)]
    if _is_vbd(dev):
        if obs.backend_state is None:
            return []
        steps = [_request_closure(obs, write_offline=False)]
        if obs.backend_state is XenbusState.CONNECTED:
            steps += [Write(dev.backend_online_path, "0"), Rm(dev.frontend_path),
                      Rm(dev.backend_path), unplugged]
        return steps + _rm_device_state(dev)
    return []  # vfb, vsnd, v4v, console, vtpm: nothing to shut down


def _release(obs: ObservedDevice, t: Timeouts) -> list[Atomic]:
    """Hotplug release: wait for the script's removal, free loop devices, drop private dirs."""
    dev = obs.device
    steps: list[Atomic] = []
    if _is_vbd(dev):
        steps.append(Rm(dev.backend_path))  # makes blkback/blktap fire the udev remove
    steps.append(WaitFor(Disappears(dev.hotplug_status_path), t.hotplug,
                         f"hotplug release of {device_name(dev)}"))
    if obs.loop_device is not None:
        steps.append(LoopDetach(obs.loop_device))
    steps += [Rm(dev.hotplug_extra_path), Rm(dev.hotplug_path)]
    if _is_vbd(dev) and dev.frontend.domid == 0:
        steps.append(WaitFor(Disappears(dev.frontend_hotplug_path), t.hotplug,
                             f"frontend release of {device_name(dev)}"))
    return steps


def plan_device_remove(
    observed: ObservedDevice,
    mode: Literal["clean", "hard"],
    *,
    hvm: bool = False,
    release: bool = True,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> Plan:
    """Unplug a device. Clean asks the backend to close and fails on a device error or
    timeout; hard removes the frontend under the backend and is best-effort. With release,
    the hotplug release follows (as a domain destroy does for each device)."""
    if mode == "clean":
        steps = _clean_shutdown(observed, timeouts, hvm)
    elif mode == "hard":
        steps = _hard_shutdown(observed, timeouts, hvm)
    else:
        raise PlanError(f"device remove mode must be clean or hard, got {mode!r}")
    if release:
        steps += _release(observed, timeouts)
    return Plan(f"device-remove-{mode} {device_name(observed.device)}", tuple(steps),
                best_effort=(mode == "hard"))




@dataclass(frozen=True, slots=True)
class ObservedDomain:
    """What a destroy needs to know about a domain, read from xenstore beforehand.

    vm_path/vss_path are the values of `<dom>/vm` and `<dom>/vss` (None if missing);
    dm_agents the domids X that have `/local/domain/X/dm-agent/dms/<domid>`; backend_dirs
    every existing `<be>/backend/<kind>/<domid>`; qemu_pid and dm_helper_pids from
    `<dom>/qemu-pid` and `/local/domain/0/device-model/<domid>/dm-helpers`.
    """

    domid: int
    hvm: bool = False
    devices: tuple[ObservedDevice, ...] = ()
    vm_path: str | None = None
    vss_path: str | None = None
    dm_agents: tuple[int, ...] = ()
    stubdom: ObservedDomain | None = None
    qemu_pid: int | None = None
    dm_helper_pids: tuple[int, ...] = ()
    backend_dirs: tuple[str, ...] = ()


def stuck_handle(domid: int) -> str:
    """The handle given to a domain stuck dying, so it no longer claims the VM's UUID."""
    return f"deadbeef-dead-beef-dead-beef0000{domid & 0xFFFF:04x}"


def _destroy_steps(
    obs: ObservedDomain, t: Timeouts, *, preserve_vm: bool, do_flr: bool
) -> list[Atomic]:
    domid, dom = obs.domid, domain_path(obs.domid)
    pci = [d for d in obs.devices if d.device.backend.kind is Kind.PCI]
    other = [d for d in obs.devices if d.device.backend.kind is not Kind.PCI]
    steps: list[Atomic] = []
    for device in pci:  # 2. PCI back to dom0 (a stub domain's copies were never assigned)
        steps += _pci_release(device, obs.hvm, assigned=do_flr)
    steps.append(DestroyDomain(domid))                               # 3.
    for agent in obs.dm_agents:                                      # 4. dm-agents
        steps += dm_stop_steps(agent, domid, t.dm_agent_stop)
    if obs.stubdom is not None:                                      # 5. stubdomain
        stub = obs.stubdom.domid
        steps += [Write(f"{domain_path(stub)}/control/shutdown",
                        ShutdownReason.HALT.control_word),
                  WaitDomain(stub, "dead", t.stubdom_death, ignore_errors=True)]
        steps += _destroy_steps(obs.stubdom, t, preserve_vm=False, do_flr=False)
    dm = f"{domain_path(0)}/device-model/{domid}"                    # 6. qemu and helpers
    if obs.qemu_pid is not None:
        steps += [KillProcess(obs.qemu_pid, t.device_model_stop), Rm(f"{dom}/qemu-pid")]
    for pid in obs.dm_helper_pids:
        steps += [KillProcess(pid, t.device_model_stop), Rm(f"{dm}/dm-helpers/{pid}")]
    steps.append(Rm(dm))
    for device in other:                                             # 7. other devices
        steps += _hard_shutdown(device, t, obs.hvm)
    if do_flr:                                                       # 8. FLR
        steps += [PciFlr(bdf) for d in pci for bdf in d.pci_bdfs]
    releases: list[Atomic] = []                                      # 9. hotplug release
    for device in obs.devices:
        releases += _release(device, t)
    tail: list[Atomic] = []                                          # 10. trees
    if not preserve_vm:
        tail += [Rm(p) for p in (obs.vm_path, obs.vss_path) if p is not None]
    tail.append(Rm(dom))
    backend_dirs = list(obs.backend_dirs)
    for device in obs.devices:
        be = device.device.backend
        parent = f"{domain_path(be.domid)}/backend/{be.kind.value}/{domid}"
        if parent not in backend_dirs:
            backend_dirs.append(parent)
    tail += [Rm(p) for p in backend_dirs]
    # /xapi/<domid> is kept for debugging and later cleanup unless every release succeeded.
    steps.append(IfAllSucceed(tuple(releases), (Rm(private_path(domid)),)))
    return steps + tail


def plan_domain_destroy(
    observed: ObservedDomain,
    *,
    preserve_vm: bool = False,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> Plan:
    """Destroy a domain and everything around it, best-effort, in the original's order:

    1. (the caller observed the devices) 2. hard-shutdown PCI backends; 3. domain_destroy;
    4. ask each dm-agent to drop the domain and wait; 5. the stubdomain: halt request, wait
    for its death, then the same plan for it (no FLR); 6. qemu and helpers; 7. hard-shutdown
    the other devices; 8. FLR the PCI devices; 9. hotplug release of every device, and
    /xapi/<domid> removed only if they all succeeded; 10. /vm and /vss (unless preserve_vm),
    the domain tree, the backend dirs; 11. wait (short) for the domain to be gone, renaming its
    handle if it is stuck dying.
    """
    steps = _destroy_steps(observed, timeouts, preserve_vm=preserve_vm, do_flr=True)
    steps.append(WaitDomain(observed.domid, "gone", timeouts.domain_gone,
                            poll=timeouts.domain_gone_poll,
                            stuck_handle=stuck_handle(observed.domid)))
    return Plan(f"domain-destroy {observed.domid}", tuple(steps), best_effort=True)

