"""One VM's lifecycle against the hypervisor and xenstore: the operations and the reactions.

:class:`VmMachine` holds a VM's state (lifecycle state, domid, applied and pending config,
the operation in flight, a pending ``on_*`` action) and performs the operations; it is owned
and driven by one :class:`~xen.xenvm._monitor.VmMonitor` actor (one thread), which persists
its snapshot after every change. Rules:

* **Check first, act second.** Every operation validates its first transition with the table
  (:mod:`xen.xenvm._lifecycle`) before any side effect; a refused one is a ``TaskError``
  "X is not allowed in state Y" and touches nothing.
* **Operation in flight.** Before its first side effect an operation records itself
  (``op``); the marker is cleared when it ends. A restarted monitor uses it to finish or roll
  back (``_reconcile``).
* **Failures roll back.** A start that fails part way destroys what it built (``StartAborted``);
  a shutdown the guest does not honour in time leaves the VM running (``ShutdownFailed``) or,
  when asked, destroys it.
* **Deaths.** :meth:`check_state` looks at the hypervisor (events only mean "look again"): a
  domain that died with no operation expecting it gets its ``on_*`` action exactly once: the
  action is recorded (``pending_action``) before it is carried out and cleared after, and
  carrying it out again is harmless. A domain destroyed from outside gets no action.
* **Reboots keep run-time changes**: a restart uses the config in memory (applied plus any
  pending change), never a file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import xen.xenvm._lifecycle as lc
from xen.hypervisor import DomainInfo, HypervisorError, NoSuchDomain, ShutdownReason
from xen.xenops import (
    CancelToken,
    DeviceSpec,
    PhysType,
    Plan,
    PlanFailed,
    VbdSpec,
    WaitDomain,
    domain_create_call,
    observe_domain,
    order_devices,
    plan_build_post,
    plan_build_pre,
    plan_device_add,
    plan_domain_create,
    plan_domain_destroy,
    plan_shutdown_request,
    plan_vcpus,
    start_device_model,
)
from xen.xenvm._config import VmConfig, required_to_boot_kib
from xen.xenvm._config_devices import DiskConfig
from xen.xenvm._lifecycle import DeathCause, IllegalTransition, State, next_state, reaction
from xen.xenvm._specs import (
    config_build_memory,
    dm_info,
    domain_spec,
    pv_device_specs,
    resolve_macs,
    vbd_spec,
    vif_specs,
)
from xen.xenvm._tasks import TaskError

if TYPE_CHECKING:
    from xen.xenvm._env import XenEnv

__all__ = ["VmMachine", "death_cause"]

logger = logging.getLogger("xenvm")

_CAUSES = {
    ShutdownReason.POWEROFF: DeathCause.POWEROFF,
    ShutdownReason.REBOOT: DeathCause.REBOOT,
    ShutdownReason.SUSPEND: DeathCause.SUSPEND,
    ShutdownReason.CRASH: DeathCause.CRASH,
    ShutdownReason.WATCHDOG: DeathCause.WATCHDOG,
}


def death_cause(info: DomainInfo | None) -> DeathCause | None:
    """None while the domain lives; else why it died (dying without a reason = destroyed)."""
    if info is None:
        return DeathCause.DESTROYED
    if info.shutdown:
        reason = info.shutdown_reason
        return _CAUSES.get(reason, DeathCause.CRASH) if reason is not None else DeathCause.CRASH
    if info.dying:
        return DeathCause.DESTROYED
    return None


class VmMachine:
    """A VM's state and operations (see the module docstring)."""

    def __init__(self, uuid: str, config: VmConfig, env: XenEnv,
                 on_change: Callable[[], None] = lambda: None,
                 notify: Callable[[str], None] = lambda _text: None) -> None:
        self.uuid = uuid
        self.config = config
        self.next_config: VmConfig | None = None
        self.env = env
        self.state = State.SHUTDOWN
        self.domid = -1
        self.stubdom_domid = -1
        self.op: dict[str, Any] | None = None
        self.pending_action: dict[str, Any] | None = None
        self.on_change = on_change
        self.notify = notify
        self.cancel = CancelToken()

    # ------------------------------------------------------------------ state changes

    def _check(self, event: lc.Event) -> State:
        try:
            return next_state(self.state, event)
        except IllegalTransition as exc:
            raise TaskError(str(exc)) from None

    def _go(self, event: lc.Event) -> None:
        old = self.state
        self.state = next_state(self.state, event)
        if self.state is not old:
            logger.info("%s: %s -> %s (%s)", self.uuid, old.value, self.state.value,
                        type(event).__name__)
            self.notify(f"vm:state:{self.state.value}")
        self.on_change()

    def _begin(self, name: str, **params: Any) -> None:
        self.op = {"name": name, **params}
        self.cancel = CancelToken()
        self.on_change()

    def _end(self) -> None:
        self.op = None
        self.on_change()

    # ------------------------------------------------------------------ observation

    def info(self) -> DomainInfo | None:
        """Our domain's info, or None when it is gone."""
        if self.domid < 0:
            return None
        try:
            return self.env.hypervisor().getinfo(self.domid)
        except NoSuchDomain:
            return None

    def live_domains(self) -> list[DomainInfo]:
        """Domains carrying this VM's uuid that are not dying."""
        import uuid as uuidlib
        infos = self.env.hypervisor().find_by_handle(uuidlib.UUID(self.uuid))
        return [i for i in infos if not i.dying and not i.shutdown]

    # ------------------------------------------------------------------ start

    def start(self, paused: bool = False) -> None:
        """Create, build, plug devices, unpause (see the module docstring for failures)."""
        self._check(lc.Start())
        if self.domid >= 0:  # a preserved dead domain, or a leftover
            self._destroy_domain(self.domid)
        if self.next_config is not None:
            self.config, self.next_config = self.next_config, None
        cfg = self.config
        if not cfg.no_mem_check:
            need = required_to_boot_kib(cfg)
            free = self.env.hypervisor().physinfo().free_kib
            if free < need:
                raise TaskError(f"not enough memory: {need} KiB needed, {free} KiB free")
        self._begin("start", paused=paused)
        self._go(lc.Start())
        try:
            self._build(cfg)
            self._go(lc.DomainBuilt())
            self._plug_devices(cfg)
            self._go(lc.DevicesAdded())
            if not paused:
                self.env.hypervisor().unpause(self.domid)
                self._go(lc.Unpaused())
        except Exception as exc:
            logger.error("%s: start failed: %s", self.uuid, exc)
            self._destroy_domain(self.domid)
            self._go(lc.StartAborted())
            self._end()
            raise TaskError(f"start failed: {exc}") from exc
        self._end()

    def _build(self, cfg: VmConfig) -> None:
        ex = self.env.executor()
        memory = config_build_memory(cfg)
        call = domain_create_call(domain_spec(cfg, self.uuid), vcpus=cfg.vcpus,
                                  memory_kib=memory.target_kib, max_memory_kib=memory.xen_max_kib)
        result = ex.run(Plan("domain-create", (call,)), self.cancel)
        assert result.domid is not None
        self.domid = result.domid
        self.on_change()
        ex.run(plan_domain_create(domain_spec(cfg, self.uuid), self.domid), self.cancel)
        ex.run(plan_build_pre(self.domid, memory, timer_mode=cfg.timer_mode, hpet=cfg.hpet,
                              vpt_align=cfg.vpt_align, timeouts=self.env.timeouts),
               self.cancel)
        built = self.env.builder.build(self.domid, cfg, memory)
        ex.run(plan_build_post(self.domid, self.uuid, memory, built,
                               timeoffset=cfg.time_offset or "0"), self.cancel)

    def _plug_devices(self, cfg: VmConfig) -> None:
        ex = self.env.executor()
        cfg = resolve_macs(cfg, self.uuid)
        specs: list[DeviceSpec] = [self._vbd(cfg, disk) for disk in cfg.disks]
        specs += list(vif_specs(cfg, self.domid, self.uuid))
        specs += list(pv_device_specs(cfg, self.domid))
        for spec in order_devices(specs):
            ex.run(plan_device_add(spec, self.env.timeouts), self.cancel)
        ex.run(plan_vcpus(self.domid, cfg.vcpus), self.cancel)
        if cfg.hvm and cfg.qemu_dm_path:
            start_device_model(self.env.host_actions, self.env.xenstore(), self.domid,
                               dm_info(cfg, self.uuid), float(cfg.qemu_dm_timeout),
                               qemu_dm_path=cfg.qemu_dm_path, power_mgmt=cfg.power_management,
                               oem_features=cfg.oem_features, inject_sci=cfg.inject_sci)

    def _vbd(self, cfg: VmConfig, disk: DiskConfig) -> VbdSpec:
        """A disk's spec; a PV file-backed disk is attached to a loop device first."""
        if disk.phystype is PhysType.FILE and not cfg.hvm:
            device, major, minor = self.env.host_actions.attach_file(disk.physpath)
            return vbd_spec(cfg, disk, self.domid, loop_device=device,
                            physical_device=(major, minor))
        return vbd_spec(cfg, disk, self.domid)

    # ------------------------------------------------------------------ stop

    def _destroy_domain(self, domid: int, *, keep_vm_tree: bool = False) -> None:
        """Destroy ``domid`` and clean its xenstore state up, best effort.

        Does not publish: every caller applies a transition next, which does (so nobody ever
        sees a "running" VM without a domain).
        """
        if domid < 0:
            return
        xs = self.env.xenstore()
        observed = observe_domain(xs, domid, hvm=self.config.hvm)
        self.env.executor().run(plan_domain_destroy(observed, preserve_vm=keep_vm_tree,
                                                    timeouts=self.env.timeouts))
        self.domid = -1
        self.stubdom_domid = -1

    def destroy(self) -> None:
        """Destroy the domain now."""
        self._check(lc.Destroy())
        self._begin("destroy")
        self._destroy_domain(self.domid)
        self._go(lc.Destroy())
        self._end()

    def shutdown(self, *, reboot: bool = False, force: bool = False, timeout: float = 30.0,
                 destroy_after: bool = False, auto_start: bool = True) -> None:
        """Ask the guest to power off (or reboot), wait for its death, clean up."""
        request: lc.Event = lc.Reboot(force) if reboot else lc.Shutdown(force)
        self._check(request)
        self._begin("reboot" if reboot else "shutdown", force=force,
                    auto_start=auto_start)
        self._go(request)
        domid = self.domid
        reason = ShutdownReason.REBOOT if reboot else ShutdownReason.POWEROFF
        try:
            if force:
                self.env.hypervisor().shutdown(domid, reason)
            else:
                plan = plan_shutdown_request(
                    domid, reason,
                    hvm=self.config.hvm, wait_ack=not self.config.hvm,
                    timeouts=self.env.timeouts)
                self.env.executor().run(plan, self.cancel)
            self.env.executor().run(Plan("wait-death", (WaitDomain(
                domid, "dead", max(0.1, timeout), poll=0.05),)), self.cancel)
        except (PlanFailed, HypervisorError) as exc:
            if destroy_after:
                logger.warning("%s: %s; destroying", self.uuid, exc)
                self._destroy_domain(domid)
                self._go(lc.DomainReleased())
                self._end()
                return
            self._go(lc.ShutdownFailed())
            self._end()
            raise TaskError(f"guest did not {'reboot' if reboot else 'shut down'}: "
                            f"{exc}") from exc
        self._destroy_domain(domid)
        if reboot:
            self._go(lc.DomainRebooted())
            self._end()
            if auto_start:
                self.start()
            return
        self._go(lc.DomainReleased())
        self._end()

    def pause(self) -> None:
        """Pause the domain."""
        self._check(lc.Pause())
        self.env.hypervisor().pause(self.domid)
        self._go(lc.Pause())

    def unpause(self) -> None:
        """Unpause the domain."""
        self._check(lc.Unpause())
        self.env.hypervisor().unpause(self.domid)
        self._go(lc.Unpause())

    # ------------------------------------------------------------------ deaths

    def check_state(self) -> None:
        """Look at the hypervisor and react (see the module docstring)."""
        if self.op is not None:
            return  # an operation owns the domain; it looks for itself
        if self.pending_action is not None:
            self._carry_out(self.pending_action)
            return
        if not self.state.has_domain:
            live = self.live_domains()
            if live:
                self._adopt(live[0])
            return
        info = self.info()
        cause = death_cause(info)
        if cause is None:
            assert info is not None
            self._sync_pause(info)
            return
        if self.state.keeps_dead_domain:
            if info is None:
                self.domid = -1
                self._go(lc.DomainReleased())
            return
        react = reaction(cause, self.config.on_poweroff, self.config.on_reboot,
                         self.config.on_crash)
        if cause is DeathCause.CRASH:
            self.notify("error:crashed")
        logger.info("%s: domain %d died (%s); action %s", self.uuid, self.domid, cause.value,
                    react.action.value if react.action else "none")
        self.pending_action = {"domid": self.domid, "cause": cause.value,
                               "action": react.action.value if react.action else "none",
                               "event": type(react.event).__name__}
        self.on_change()
        self._carry_out(self.pending_action)

    def _carry_out(self, pending: dict[str, Any]) -> None:
        """Perform a recorded on_* action; doing it twice changes nothing more."""
        event_name = pending["event"]
        if event_name == "DomainPreserved":
            if self.state.has_domain and not self.state.keeps_dead_domain:
                self._go(lc.DomainPreserved())
        else:
            domid = int(pending["domid"])
            if domid >= 0:
                self.domid = domid
                self._destroy_domain(domid)
            if event_name == "DomainRebooted":
                if self.state.has_domain:
                    self._go(lc.DomainRebooted())
            elif self.state.has_domain:
                self._go(lc.DomainReleased())
        self.pending_action = None
        self.on_change()
        if event_name == "DomainRebooted" and not self.live_domains():
            try:
                self.start()
            except TaskError as exc:
                logger.error("%s: restart after reboot failed: %s", self.uuid, exc)

    def _adopt(self, info: DomainInfo) -> None:
        self.domid = info.domid
        self._go(lc.Adopted())
        self._sync_pause(info)
        logger.info("%s: adopted running domain %d", self.uuid, info.domid)

    def _sync_pause(self, info: DomainInfo) -> None:
        """Follow a pause or unpause done outside the toolstack."""
        event: lc.Event = lc.Pause() if info.paused else lc.Unpaused()
        try:
            target = next_state(self.state, event)
        except IllegalTransition:
            return
        if target is not self.state:
            self._go(event)

    def wait_dead(self, timeout: float) -> bool:
        """Poll until our domain is dead or gone (used by tests and the reconciler)."""
        deadline = time.monotonic() + timeout
        while death_cause(self.info()) is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True
