"""An HVM guest's device model: in dom0 (direct or dm-agent mode) or in a stub domain.

How a VM picks (:func:`dm_mode`; ours, documented in docs/xenvm.md):

* with ``stubdom`` (the stub domain's uuid) the device model runs in a PV stub domain, always
  through the dm-agent inside it (``dm-mode = direct`` with a stub domain is a config error);
* without, ``dm-mode = dm-agent`` asks dom0's dm-agent, anything else (the default) runs
  qemu-dm directly (``qemu-dm-path``), as before. The original's default was the dm-agent, and
  direct mode only with ``/config/dm-wrapper``: our direct mode is the tested dom0 path, and a
  dom0 without a dm-agent daemon is common, so it stays the default (docs/compatibility.md).

Bringing a stub domain up (:meth:`StubdomActions.attach`), after the guest is built and its own
devices plugged, in the original's order: the stub's images are checked first
(:func:`check_device_model`, before the guest exists, so a missing kernel builds nothing); the
stub is created and built as a PV domain of 1 vcpu named ``stubdom-<target>`` with the config's
``stubdom-memory``/``-kernel``/``-initrd`` and ``-cmdline`` + ``guest_agent=dmagent
guest_domid=<target>``; the links and permissions of ``xen.xenops._stubdom`` (with the
hypervisor's set_target) and xenstored's SET_TARGET; ``/vm/<stub uuid>/image/dmargs``
(:func:`stub_dmargs`); the guest's disks re-exported to it (vbd ``phy``, params
``/dev/<virtpath>``), its nics (the MAC's locally-administered bit flipped, same backend), its
PCI groups (PV-PCI, not assigned, pciback permissive:
:func:`~xen.xenvm._specs.stub_pci_specs`), its console (backend in dom0, output
``file:/var/log/xen/qemu-dm-<stub>``); then the stub is unpaused and the dm-agent in it asked
for the device model (:func:`start_dm_agent`: wait for its capabilities, one transaction of
infos, wait for ``status`` = running; every wait bounded by ``qemu-dm-timeout``). The caller
records the stub's domid as soon as it exists (``created``), so a failure anywhere is rolled
back by the guest's destroy, which follows ``image/device-model-domid``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from xen.xenops import (
    Appears,
    CancelToken,
    ConsoleSpec,
    DmDevice,
    Kind,
    PhysType,
    Plan,
    VbdSpec,
    WaitFor,
    Write,
    assign,
    capabilities_path,
    list_dir,
    observe_domain,
    order_devices,
    parse_capabilities,
    plan_device_add,
    plan_device_remove,
    plan_dm_start,
    plan_stubdom_links,
    qemu_args,
    stubdom_cmdline,
    stubdom_dm_args,
    stubdom_mac,
    stubdom_name,
)
from xen.xenvm._config_values import ConfigError
from xen.xenvm._specs import dm_info, resolve_macs, stub_pci_specs, vif_specs

if TYPE_CHECKING:
    from xen.xenops import DeviceSpec
    from xen.xenvm._config import VmConfig
    from xen.xenvm._config_devices import DiskConfig
    from xen.xenvm._env import XenEnv

__all__ = ["StubdomActions", "check_device_model", "dm_devices", "dm_mode",
           "replug_stub_drive", "start_dm_agent", "stub_config", "stub_dmargs", "stub_vbd"]

logger = logging.getLogger("xenvm")

_MODES = ("", "direct", "dm-agent")


def dm_mode(cfg: VmConfig) -> str | None:
    """``stubdom``, ``dm-agent``, ``direct`` or None (no device model: PV, or no
    ``qemu-dm-path`` in direct mode); ConfigError for a mode that cannot be."""
    mode = cfg.dm_mode
    if mode not in _MODES:
        raise ConfigError("dm-mode", mode, "must be direct or dm-agent")
    if not cfg.hvm:
        return None
    if cfg.stubdom is not None:
        if mode == "direct":
            raise ConfigError("dm-mode", mode, "a stub domain runs its device model through "
                              "its dm-agent")
        return "stubdom"
    if mode == "dm-agent":
        return "dm-agent"
    return "direct" if cfg.qemu_dm_path else None


def check_device_model(cfg: VmConfig, env: XenEnv) -> None:
    """Before anything is built: the mode must be possible (:func:`dm_mode`) and a stub
    domain's kernel and ramdisk must be there (the builder says); ConfigError naming the key
    and the value."""
    if dm_mode(cfg) != "stubdom":
        return
    for key, path in (("stubdom-kernel", cfg.stubdom_kernel),
                      ("stubdom-initrd", cfg.stubdom_initrd)):
        if path is None:
            continue
        reason = env.builder.check_file(path)
        if reason is not None:
            raise ConfigError(key, path, reason)


def stub_config(cfg: VmConfig, target: int) -> VmConfig:
    """The stub domain of ``cfg``'s guest ``target`` as a PV domain's config."""
    assert cfg.stubdom is not None
    return dataclasses.replace(
        cfg.__class__(), uuid=cfg.stubdom, name=stubdom_name(target), hvm=False,
        memory=cfg.stubdom_memory, vcpus=1, kernel=cfg.stubdom_kernel,
        initrd=cfg.stubdom_initrd, cmdline=stubdom_cmdline(cfg.stubdom_cmdline, target))


def dm_devices(cfg: VmConfig, vm_uuid: str, *, in_stubdom: bool) -> tuple[DmDevice, ...]:
    """The devices the guest's device model emulates (§5.8): PV ``xenfb``, ``input``; HVM
    ``xenmou``, ``xen_acpi_pm``, the graphics (``svga`` unless extra-hvm names ``xengfx``,
    ``vgpu`` or ``gfx_passthru``), ``acpi``, ``audio``, ``serial``, one ``net`` per nic it
    serves, one ``xen_pci_pt`` per PCI device passed through (``hostaddr`` = its BDF), one
    ``drive`` or ``cdrom`` per disk (``file`` = ``/dev/<virtpath>`` in a stub domain, whose
    disks are its own vbds)."""
    if not cfg.hvm:
        return (DmDevice("xenfb"), DmDevice("input"))
    extras = dict(cfg.extra_hvm)
    gfx = next((name for key, name in (("xengfx", "xengfx"), ("vgpu", "vgpu"),
                                       ("gfx_passthru", "gfx")) if key in extras), "svga")
    devs = [DmDevice("xenmou"), DmDevice("xen_acpi_pm"), DmDevice(gfx)]
    if cfg.acpi:
        devs.append(DmDevice("acpi"))
    if cfg.sound:
        devs.append(DmDevice("audio", (("device", cfg.sound), ("recorder", "0"))))
    if cfg.serial not in ("none",):
        devs.append(DmDevice("serial", (("device", cfg.serial or "pty"),)))
    cfg = resolve_macs(cfg, vm_uuid)
    for i, vif in enumerate(vif_specs(cfg, 0, vm_uuid)):
        if in_stubdom or vif.backend_domid == 0:
            nic = next(n for n in cfg.nics if (n.nic_id or 0) == vif.devid)
            devs.append(DmDevice(f"net{i}", (
                ("model", nic.model or "rtl8139"), ("mac", vif.mac), ("bridge", nic.bridge),
                ("id", str(vif.devid)), ("name", f"{'vwif' if vif.wireless else 'vif'}{i}"))))
    devs += [DmDevice(f"xen_pci_pt{i}", (("hostaddr", pci.bdf),))
             for i, pci in enumerate(cfg.pcis)]
    for i, disk in enumerate(cfg.disks):
        kind = "cdrom" if disk.devtype == "cdrom" else "drive"
        path = f"/dev/{disk.virtpath}" if in_stubdom else disk.physpath
        devs.append(DmDevice(f"{kind}{i}", (
            ("file", path), ("media", disk.devtype), ("format", "raw"), ("index", str(i)),
            ("readonly", "1" if disk.mode == "r" else "0"))))
    return tuple(devs)


def start_dm_agent(env: XenEnv, cfg: VmConfig, vm_uuid: str, domid: int, agent: int,
                   cancel: CancelToken) -> None:
    """Ask dm-agent ``agent`` for ``domid``'s device model and wait (bounded) until it runs
    (see the module docstring); PlanFailed or DmAgentError naming what was missing."""
    timeout = float(cfg.qemu_dm_timeout)
    xs = env.xenstore()
    caps_path = capabilities_path(agent)
    env.executor().run(Plan(f"dm-agent-wait {agent}", (
        WaitFor(Appears(caps_path), timeout, f"dm-agent {agent} capabilities"),)), cancel)
    # the device names and their depends only: 2 + one read per device
    caps = parse_capabilities(agent, {
        dm: {dev: {"depends": xs.try_read(f"{caps_path}/{dm}/{dev}/depends") or ""}
             for dev in list_dir(xs, f"{caps_path}/{dm}")}
        for dm in list_dir(xs, caps_path)})
    assignments = assign(dm_devices(cfg, vm_uuid, in_stubdom=agent != 0), [caps])
    env.executor().run(plan_dm_start(domid, assignments, timeout), cancel)
    logger.info("domain %d: device model running on dm-agent %d (%d devices)", domid, agent,
                sum(len(a.devices) for a in assignments))


def stub_dmargs(cfg: VmConfig, vm_uuid: str, target: int) -> str:
    """The device model's arguments as the stub domain's ``/vm/<stub uuid>/image/dmargs``:
    direct mode's qemu arguments for the guest, without ``-M xenfv`` (the original's; the
    dm-agent in the stub takes its devices from its ``infos``, not from these)."""
    return " ".join(stubdom_dm_args(qemu_args(dm_info(resolve_macs(cfg, vm_uuid), vm_uuid),
                                              target)))


def stub_vbd(disk: DiskConfig, stub: int) -> VbdSpec:
    """The stub domain ``stub``'s copy of the guest's disk ``disk``: a ``phy`` vbd whose
    ``params`` is ``/dev/<virtpath>``; a CD drive's copy is read-only."""
    return VbdSpec(frontend_domid=stub, virtpath=disk.virtpath, physpath=disk.physpath,
                   phystype=PhysType.PHY, mode="r" if disk.devtype == "cdrom" else disk.mode,
                   device_type=disk.devtype, backend_domid=disk.backend_domid,
                   use_stubdom=True)


def replug_stub_drive(env: XenEnv, stub: int, drive: DiskConfig,
                      cancel: CancelToken | None = None) -> None:
    """A medium went into CD drive ``drive`` of the guest served by stub domain ``stub``:
    the stub's copy of the drive is unplugged (clean, if the stub has it) and plugged again,
    read-only, so the device model in the stub opens the new medium (the original re-plugged
    a read-only cdrom vbd). PlanFailed if a step fails (the guest's own drive already has
    the medium)."""
    spec = stub_vbd(drive, stub)
    ex = env.executor()
    for dev in observe_domain(env.xenstore(), stub).devices:
        front = dev.device.frontend
        if (front.kind, front.devid) == (Kind.VBD, spec.devid):
            ex.run(plan_device_remove(dev, "clean", hvm=False, timeouts=env.timeouts), cancel)
    ex.run(plan_device_add(spec, env.timeouts), cancel)
    logger.info("stub domain %d: its copy of CD drive %s re-plugged", stub, drive.virtpath)


class StubdomActions:
    """Brings up the stub domain of one guest (see the module docstring)."""

    def __init__(self, vm_uuid: str, env: XenEnv) -> None:
        self.vm_uuid = vm_uuid
        self.env = env

    def attach(self, cfg: VmConfig, target: int, stub: int, cancel: CancelToken) -> None:
        """Link and plug the built stub domain ``stub`` of ``target``, unpause it and have its
        dm-agent run the device model (the stub was built from :func:`stub_config`)."""
        ex = self.env.executor()
        ex.run(plan_stubdom_links(target, stub, self.vm_uuid), cancel)
        self.env.xenstore().set_target(stub, target)
        assert cfg.stubdom is not None
        ex.run(Plan(f"stubdom-dmargs {stub}", (Write(f"/vm/{cfg.stubdom}/image/dmargs",
                                                       stub_dmargs(cfg, self.vm_uuid, target)),)),
               cancel)
        for spec in order_devices(self._devices(cfg, target, stub)):
            ex.run(plan_device_add(spec, self.env.timeouts), cancel)
        self.env.hypervisor().unpause(stub)
        logger.info("domain %d: stub domain %d runs", target, stub)
        start_dm_agent(self.env, cfg, self.vm_uuid, target, stub, cancel)

    def _devices(self, cfg: VmConfig, target: int, stub: int) -> list[DeviceSpec]:
        specs: list[DeviceSpec] = [stub_vbd(disk, stub) for disk in cfg.disks]
        cfg = resolve_macs(cfg, self.vm_uuid)
        specs += [dataclasses.replace(vif, frontend_domid=stub, mac=stubdom_mac(vif.mac))
                  for vif in vif_specs(cfg, stub, self.vm_uuid)]
        specs += stub_pci_specs(cfg, target, stub)
        xs = self.env.xenstore()
        port = xs.try_read(f"/local/domain/{stub}/console/port") or "0"
        ref = xs.try_read(f"/local/domain/{stub}/console/ring-ref") or "0"
        specs.append(ConsoleSpec(stub, 0, output=f"file:/var/log/xen/qemu-dm-{stub}",
                                 domain_name=stubdom_name(target), ring=(port, ref)))
        return specs

