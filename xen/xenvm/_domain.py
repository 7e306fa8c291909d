"""What a VM's operations do to its domain, as xenops plans: the machine decides, this acts.

:class:`DomainActions` turns a :class:`~xen.xenvm._config.VmConfig` into the xenops plans and
hypervisor calls of one VM's domain, through the VM's :class:`~xen.xenvm._env.XenEnv`
(resolved at each use, so the current connections are used after a restart of theirs). It
keeps no state of its own: the lifecycle, the domid and the operation in flight are the
machine's (:mod:`xen.xenvm._machine`). Semantics:

* :meth:`~DomainActions.build` creates the domain, tells the caller its domid at once (so a
  crash after it can be rolled back), writes its xenstore tree, sizes it, has the builder
  load it (or restore it from a save file's memory section), marks its vcpus online (with the
  store and console keys, as libxl) and introduces it.
  :meth:`~DomainActions.plug_devices` plugs every device of the config in the original's
  order, then starts the device model of an HVM guest.
* :meth:`~DomainActions.destroy` is best effort and idempotent: it reads the domain's devices
  back from xenstore (never from what was created) and runs the destroy plan.
* :meth:`~DomainActions.shutdown` asks the guest (``control/shutdown``, acknowledged by a PV
  guest) or, when forced, the hypervisor, then waits for the death; :meth:`~DomainActions.save`
  writes a save file through a temporary file, fsync'd and renamed into place (the builder
  calls back to suspend the guest).
* Every wait is bounded (the environment's timeouts or the caller's); plans run under the
  caller's cancel token and raise ``PlanFailed`` (``HypervisorError`` for direct calls).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import replace
from typing import IO, TYPE_CHECKING

from xen.hypervisor import DomainInfo, HypervisorError, NoSuchDomain, ShutdownReason
from xen.xenops import (
    CancelToken,
    DeviceSpec,
    Kind,
    PhysType,
    Plan,
    PlanFailed,
    VbdSpec,
    WaitDomain,
    domain_create_call,
    name_to_devid,
    observe_domain,
    order_devices,
    plan_build_post,
    plan_build_pre,
    plan_device_add,
    plan_device_remove,
    plan_domain_destroy,
    plan_io_grants,
    plan_set_memory_target,
    plan_shutdown_request,
    start_device_model,
    stubdom_name,
)
from xen.xenvm._config_devices import DiskConfig, NicConfig, PciConfig
from xen.xenvm._lifecycle import DeathCause
from xen.xenvm._media import write_media
from xen.xenvm._pcihost import check_pci, replug_group, unplug_group
from xen.xenvm._prune import prune_device_dirs
from xen.xenvm._specs import (
    boot_image,
    config_build_memory,
    dm_info,
    domain_spec,
    pci_specs,
    pv_device_specs,
    resolve_macs,
    vbd_spec,
    vif_specs,
    vtpm_specs,
)
from xen.xenvm._stubdom import (
    StubdomActions,
    check_device_model,
    dm_mode,
    replug_stub_drive,
    start_dm_agent,
    stub_config,
)
from xen.xenvm._tasks import TaskError

if TYPE_CHECKING:
    from pathlib import Path

    from xen.xenvm._config import VmConfig
    from xen.xenvm._env import XenEnv

__all__ = ["DomainActions", "death_cause"]

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


class DomainActions:
    """The domain side of VM ``uuid``'s operations (see the module docstring)."""

    def __init__(self, uuid: str, env: XenEnv) -> None:
        self.uuid = uuid
        self.env = env
        self._handle = uuidlib.UUID(uuid)

    # ------------------------------------------------------------------ observation

    def info(self, domid: int) -> DomainInfo | None:
        """The domain's info, or None when there is no such domain."""
        if domid < 0:
            return None
        try:
            return self.env.hypervisor().getinfo(domid)
        except NoSuchDomain:
            return None

    def own_info(self, domid: int) -> DomainInfo | None:
        """The info of ``domid`` while it is this VM's domain (it carries the VM's uuid); None
        when there is no such domain, or when it carries another uuid: a domid recorded before
        a restart that Xen has given to another domain since (a host reboot, a domid wrap)."""
        info = self.info(domid)
        return info if info is not None and info.handle == self._handle else None

    def live_domains(self) -> list[DomainInfo]:
        """Domains carrying the VM's uuid that are neither dying nor shut down."""
        infos = self.env.hypervisor().find_by_handle(self._handle)
        return [i for i in infos if not i.dying and not i.shutdown]

    def with_live_nic_backends(self, cfg: VmConfig) -> VmConfig:
        """``cfg`` with each nic whose backend domain is gone (its network VM stopped since the
        config was written: a guest rebooting by itself boots the config of its last start)
        served by dom0 instead, logged, as xenmgr serves a nic whose backend VM does not run.
        Disks keep their backend (a disk's path is its backend's own)."""
        gone = {nic.backend_domid for nic in cfg.nics
                if nic.backend_domid and not self._alive(nic.backend_domid)}
        if not gone:
            return cfg
        nics = []
        for nic in cfg.nics:
            if nic.backend_domid in gone:
                logger.warning("%s: nic %s: backend domain %d is gone: served by dom0",
                               self.uuid, nic.nic_id, nic.backend_domid)
                nic = replace(nic, backend_domid=0)
            nics.append(nic)
        return replace(cfg, nics=tuple(nics))

    def _alive(self, domid: int) -> bool:
        info = self.info(domid)
        return info is not None and not info.dying and not info.shutdown

    @staticmethod
    def image_complete(path: Path) -> bool:
        """Whether a suspend's image at ``path`` was written (a file, not empty)."""
        try:
            return path.is_file() and path.stat().st_size > 0
        except OSError:
            return False

    def free_kib(self) -> int:
        """The host's free memory."""
        return self.env.hypervisor().physinfo().free_kib

    # ------------------------------------------------------------------ bringing up

    def build(self, cfg: VmConfig, cancel: CancelToken, created: Callable[[int], None],
              source: IO[bytes] | None = None) -> int:
        """Create and build (or restore from ``source``) the domain of ``cfg``; its domid.
        ``created(domid)`` is called as soon as the domain exists. The device model's config
        is checked first (ConfigError, nothing built)."""
        check_device_model(cfg, self.env)  # before anything exists (a stub's kernel, say)
        ex = self.env.executor()
        memory = config_build_memory(cfg)
        spec = domain_spec(cfg, self.uuid)
        call = domain_create_call(spec, vcpus=cfg.vcpus,
                                  memory_kib=memory.target_kib,
                                  max_memory_kib=memory.xen_max_kib)
        result = ex.run(Plan("domain-create", (call,)), cancel)
        assert result.domid is not None
        domid = result.domid
        created(domid)
        # the emulated platform's timer params are an HVM guest's only: libxl sets none for
        # PV or PVH, and a PVH domain has no PIT, HPET or RTC for them to shape
        timers = (dict(timer_mode=cfg.timer_mode, hpet=cfg.hpet, vpt_align=cfg.vpt_align)
                  if cfg.hvm else {})
        # maxmem: the create set it (max_memory_kib), one hypervisor call less than libxl
        ex.run(plan_build_pre(domid, memory, timeouts=self.env.timeouts, maxmem=False,
                              **timers), cancel)
        builder = self.env.builder
        built = (builder.build(domid, boot_image(cfg), memory) if source is None
                 else builder.restore(domid, source, memory))
        # the domain's xenstore tree and the build's keys in one transaction (libxl and the
        # original write the tree first, in its own: docs/compatibility.md)
        ex.run(plan_build_post(domid, self.uuid, memory, built, tree=spec,
                               timeoffset=cfg.time_offset or "0", firmware=cfg.hvm), cancel)
        return domid

    def stubdom_of(self, domid: int) -> int:
        """The stub domain ``domid``'s xenstore names (-1: none)."""
        text = self.env.xenstore().try_read(f"/local/domain/{domid}/image/device-model-domid")
        return int(text) if text is not None and text.isdigit() else -1

    def plug_devices(self, domid: int, cfg: VmConfig, cancel: CancelToken,
                     stub_created: Callable[[int], None] | None = None) -> None:
        """Plug every device of ``cfg``, start an HVM guest's device model
        (in dom0, or in a stub domain: ``stub_created(stub)`` as soon as that exists)."""
        ex = self.env.executor()
        cfg = resolve_macs(cfg, self.uuid)
        specs: list[DeviceSpec] = [self._vbd(domid, cfg, disk) for disk in cfg.disks]
        specs += list(vif_specs(cfg, domid, self.uuid))
        specs += list(pv_device_specs(cfg, domid))
        specs += list(vtpm_specs(cfg, domid, self.uuid))
        specs += list(pci_specs(cfg, domid))
        for spec in order_devices(specs):
            ex.run(plan_device_add(spec, self.env.timeouts), cancel)
        if cfg.passthrough_io or cfg.passthrough_mmio:
            ex.run(plan_io_grants(domid, cfg.passthrough_io, cfg.passthrough_mmio), cancel)
        mode = dm_mode(cfg)
        if mode == "stubdom":
            scfg = stub_config(cfg, domid)
            assert scfg.uuid is not None
            stub = DomainActions(scfg.uuid, self.env).build(
                scfg, cancel, stub_created or (lambda _stub: None))
            StubdomActions(self.uuid, self.env).attach(cfg, domid, stub, cancel)
        elif mode == "dm-agent":
            start_dm_agent(self.env, cfg, self.uuid, domid, 0, cancel)
        elif mode == "direct":
            start_device_model(self.env.host_actions, self.env.xenstore(), domid,
                               dm_info(cfg, self.uuid), float(cfg.qemu_dm_timeout),
                               qemu_dm_path=cfg.qemu_dm_path, power_mgmt=cfg.power_management,
                               oem_features=cfg.oem_features, inject_sci=cfg.inject_sci)

    def _vbd(self, domid: int, cfg: VmConfig, disk: DiskConfig) -> VbdSpec:
        """A disk's spec; a PV file-backed disk is attached to a loop device first."""
        if disk.phystype is PhysType.FILE and not cfg.hvm:
            device, major, minor = self.env.host_actions.attach_file(disk.physpath)
            return vbd_spec(cfg, disk, domid, loop_device=device,
                            physical_device=(major, minor))
        return vbd_spec(cfg, disk, domid)

    def check_pci(self, cfg: VmConfig, own_domid: int = -1) -> None:
        """Refuse (TaskError) PCI devices of ``cfg`` that cannot be passed through now."""
        check_pci(self.env, cfg, own_domid=own_domid)

    def plug(self, domid: int, cfg: VmConfig,
             device: DiskConfig | NicConfig | PciConfig) -> None:
        """Plug one device of ``cfg`` (a disk, nic or PCI device it holds) into a running
        domain (a PCI device's whole group, re-plugged if the domain has it)."""
        if isinstance(device, PciConfig):
            replug_group(self.env, domid, device.group, cfg)
            return
        cfg = resolve_macs(cfg, self.uuid)
        spec: DeviceSpec
        if isinstance(device, DiskConfig):
            spec = self._vbd(domid, cfg, device)
        else:
            spec = next(s for s in vif_specs(cfg, domid, self.uuid) if s.devid == device.nic_id)
        self.env.executor().run(plan_device_add(spec, self.env.timeouts))

    def write_media(self, domid: int, drive: DiskConfig, phystype: PhysType | None) -> None:
        """Write CD drive ``drive``'s medium into the running domain's backend, in one
        transaction (``_media``: refused if the drive is not plugged or is locked)."""
        write_media(self.env.xenstore(), domid, name_to_devid(drive.virtpath), phystype,
                    drive.physpath)

    def replug_stub_drive(self, domid: int, drive: DiskConfig,
                          phystype: PhysType | None) -> None:
        """After a medium went in (``phystype`` not None), re-plug the stub domain's copy of
        the drive, if the domain has a stub domain (``_stubdom``)."""
        stub = self.stubdom_of(domid)
        if phystype is not None and stub >= 0:
            try:
                replug_stub_drive(self.env, stub, drive)
            except PlanFailed as exc:
                raise TaskError(f"the stub domain's copy of CD drive {drive.virtpath} was "
                                f"not re-plugged: {exc}") from exc

    def unplug(self, domid: int, kind: Kind, devid: int, *, hvm: bool,
               config: VmConfig | None = None) -> None:
        """Unplug the device whose frontend is (``kind``, ``devid``), if the domain has it;
        a PCI group gets back what ``config`` still has in it."""
        if kind is Kind.PCI and config is not None:
            unplug_group(self.env, domid, devid, config)
            return
        for dev in observe_domain(self.env.xenstore(), domid, hvm=hvm).devices:
            if (dev.device.frontend.kind, dev.device.frontend.devid) == (kind, devid):
                self.env.executor().run(plan_device_remove(dev, "clean", hvm=hvm,
                                                           timeouts=self.env.timeouts))
                prune_device_dirs(self.env.xenstore(), dev.device)  # no empty kind dirs

    # ------------------------------------------------------------------ running

    def pause(self, domid: int) -> None:
        """Pause the domain."""
        self.env.hypervisor().pause(domid)

    def unpause(self, domid: int) -> None:
        """Unpause the domain."""
        self.env.hypervisor().unpause(domid)

    def observe_death(self, domid: int, stub: int
                      ) -> tuple[DomainInfo | None, DeathCause | None]:
        """The guest's info and why it died (None: it lives). If its stub domain ``stub``
        (>= 0) died while the guest runs, the guest is crashed first (hypervisor shutdown,
        reason crash), so that its ``on_crash`` applies once by the usual path of a death."""
        info = self.own_info(domid)
        if death_cause(info) is not None or stub < 0 or death_cause(self.info(stub)) is None:
            return info, death_cause(info)
        logger.warning("%s: stub domain %d died under domain %d: the guest is crashed",
                       self.uuid, stub, domid)
        try:
            self.env.hypervisor().shutdown(domid, ShutdownReason.CRASH)
        except HypervisorError as exc:
            logger.error("%s: crashing domain %d failed: %s", self.uuid, domid, exc)
        info = self.own_info(domid)
        return info, death_cause(info)

    def set_memory_target(self, domid: int, kib: int) -> None:
        """Write the balloon target."""
        self.env.executor().run(plan_set_memory_target(domid, kib))

    # ------------------------------------------------------------------ taking down

    def shutdown(self, domid: int, reason: ShutdownReason, *, force: bool, hvm: bool,
                 timeout: float, cancel: CancelToken) -> None:
        """Ask for a shutdown for ``reason`` (the guest, or with ``force`` the hypervisor),
        then wait up to ``timeout`` s for the domain to die. A PV guest's acknowledgement is
        awaited at most ``timeout`` s too (and at most the environment's ``shutdown_ack``)."""
        if force:
            self.env.hypervisor().shutdown(domid, reason)
        else:
            timeouts = self.env.timeouts
            ack = min(timeouts.shutdown_ack, max(0.1, timeout))
            self.env.executor().run(plan_shutdown_request(
                domid, reason, hvm=hvm, wait_ack=not hvm,
                timeouts=replace(timeouts, shutdown_ack=ack)), cancel)
        name = "wait-suspend" if reason is ShutdownReason.SUSPEND else "wait-death"
        self.env.executor().run(Plan(name, (
            WaitDomain(domid, "dead", max(0.1, timeout), poll=0.05),)), cancel)

    def destroy(self, domid: int, *, hvm: bool, keep_vm_tree: bool = False,
                stub: int = -1) -> None:
        """Destroy the VM's domain and clean its xenstore state up, best effort. The plan
        follows the guest's stub domain from xenstore; ``stub`` (>= 0), the one recorded, is
        destroyed too if it still exists afterwards and is named ``stubdom-<domid>`` (a start
        that failed before the link was written). A domain ``domid`` that carries another uuid
        is not the VM's (see `own_info`): it is left alone."""
        info = self.info(domid)
        if info is not None and info.handle != self._handle:
            logger.warning("%s: domain %d carries uuid %s, not this VM's: left alone",
                           self.uuid, domid, info.handle)
            return
        self._teardown(domid, hvm=hvm, keep_vm_tree=keep_vm_tree, stub=stub)

    def destroy_strays(self, *, hvm: bool, stub_uuid: str | None) -> None:
        """Destroy what a start or restore cut short may have left: every live domain carrying
        the VM's uuid, and every domain carrying its stub domain's uuid ``stub_uuid`` (one
        made before its domid was recorded). Only after the VM's own domain is gone."""
        for info in self.live_domains():  # ours by their handle: no second look (destroy's)
            self._teardown(info.domid, hvm=hvm)
        stubs = self.env.hypervisor().find_by_handle(uuidlib.UUID(stub_uuid)) if stub_uuid else []
        for info in stubs:
            if not info.dying:
                logger.info("%s: destroying stub domain %d left by a start cut short",
                            self.uuid, info.domid)
                self._teardown(info.domid, hvm=False)

    def _teardown(self, domid: int, *, hvm: bool, keep_vm_tree: bool = False,
                  stub: int = -1) -> None:
        observed = observe_domain(self.env.xenstore(), domid, hvm=hvm)
        # a dm-agent whose domain is dead (a crashed stub domain) cannot answer: not asked
        agents = tuple(a for a in observed.dm_agents
                       if a == 0 or death_cause(self.info(a)) is None)
        observed = dataclasses.replace(observed, dm_agents=agents)
        self.env.executor().run(plan_domain_destroy(observed, preserve_vm=keep_vm_tree,
                                                    timeouts=self.env.timeouts))
        if stub >= 0 and stub != domid and self.info(stub) is not None and \
                self.env.xenstore().try_read(f"/local/domain/{stub}/name") == stubdom_name(domid):
            logger.info("%s: destroying stub domain %d left by domain %d", self.uuid, stub,
                        domid)
            self._teardown(stub, hvm=False)

    def save(self, domid: int, target: Path, header: bytes,
             suspend: Callable[[], None]) -> None:
        """Write the save file ``target``: ``header``, then the builder's memory section
        (the builder calls ``suspend()``); durable and in place once this returns."""
        tmp = target.with_name(target.name + ".tmp")
        try:
            with open(tmp, "wb") as out:
                out.write(header)
                self.env.builder.save(domid, out, suspend)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
