"""The VM operations beyond start and stop: suspend and restore, config and device changes.

Each follows the machine's rules (check first, operation marker, rollback on failure).

* **Suspend** asks the guest to suspend (``control/shutdown`` = ``suspend``), waits for it to
  shut down with reason *suspend*, writes the image atomically, then destroys the domain.
  The image is this toolstack's own format (:data:`IMAGE_MAGIC`, then a versioned msgpack
  record with the VM's uuid and config): on the simulated host there is no guest memory to
  save; on real Xen saving needs libxenguest (not bound yet, a clear ``Unsupported``).
* **Restore** checks the image (magic, version, uuid), builds the domain with the config it
  carries, plugs devices, unpauses unless asked not to, and deletes the image unless asked
  not to. A failure destroys what was built and the VM stays ``suspended``.
* **Config changes** (``set``) go to the pending config when a domain exists and are applied
  at the next start; with no domain they apply at once. Device changes (``disk-add``,
  ``nic-add``, ...) change the config and, when the VM runs, plug or unplug the device now.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import xen.xenvm._lifecycle as lc
from actors import CodecError, decode, encode
from xen.hypervisor import HypervisorError, ShutdownReason, Unsupported
from xen.xenops import (
    DeviceSpec,
    Plan,
    PlanFailed,
    WaitDomain,
    observe_domain,
    plan_device_add,
    plan_device_remove,
    plan_set_memory_target,
    plan_shutdown_request,
)
from xen.xenvm._config import VmConfig, add_entry, config_from_dict, config_to_dict, set_field
from xen.xenvm._config_values import ConfigError
from xen.xenvm._env import SimBuilder
from xen.xenvm._specs import resolve_macs, vif_specs
from xen.xenvm._tasks import TaskError

if TYPE_CHECKING:
    from xen.xenvm._machine import VmMachine

__all__ = ["IMAGE_MAGIC", "add_device", "remove_device", "restore", "set_config",
           "set_mem_target", "suspend"]

logger = logging.getLogger("xenvm")

IMAGE_MAGIC = b"OXTSavedDomain\n"
_IMAGE_VERSION = 1


# ------------------------------------------------------------------ suspend / restore

def suspend(vm: VmMachine, file: str, timeout: float = 30.0) -> None:
    """Save the domain to ``file`` and destroy it (see the module docstring)."""
    vm._check(lc.Suspend())
    if not isinstance(vm.env.builder, SimBuilder):
        raise TaskError("suspend: " + str(Unsupported(
            "not implemented: saving a domain on the xc backend needs libxenguest")))
    target = Path(file)
    if not target.parent.is_dir():
        raise TaskError(f"suspend: directory {target.parent} does not exist")
    vm._begin("suspend", file=str(target), written=False)
    vm._go(lc.Suspend())
    domid = vm.domid
    try:
        plan = plan_shutdown_request(domid, ShutdownReason.SUSPEND, hvm=vm.config.hvm,
                                     wait_ack=not vm.config.hvm, timeouts=vm.env.timeouts)
        ex = vm.env.executor()
        ex.run(plan, vm.cancel)
        ex.run(Plan("wait-suspend", (WaitDomain(domid, "dead", timeout, poll=0.05),)),
               vm.cancel)
        info = vm.info()
        if info is None or info.shutdown_reason is not ShutdownReason.SUSPEND:
            raise HypervisorError("the domain did not shut down for a suspend")
        _write_image(target, vm)
    except (PlanFailed, HypervisorError, OSError) as exc:
        vm._go(lc.SuspendFailed())
        vm._end()
        raise TaskError(f"suspend failed: {exc}") from exc
    vm.op = {**(vm.op or {}), "written": True}
    vm.on_change()
    vm._destroy_domain(domid)
    vm._go(lc.Saved())
    vm._end()


def _write_image(target: Path, vm: VmMachine) -> None:
    record = {"v": _IMAGE_VERSION, "uuid": vm.uuid, "config": config_to_dict(vm.config)}
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(IMAGE_MAGIC + encode(record))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


def _read_image(file: Path, uuid: str) -> VmConfig:
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise TaskError(f"restore: cannot read {file}: {exc.strerror}") from None
    if not data.startswith(IMAGE_MAGIC):
        raise TaskError(f"restore: {file} is not a saved domain image")
    try:
        record = decode(data[len(IMAGE_MAGIC):])
        if not isinstance(record, dict) or record.get("v") != _IMAGE_VERSION:
            raise CodecError("unknown image version")
        if record.get("uuid") != uuid:
            raise TaskError(f"restore: {file} holds VM {record.get('uuid')}, not {uuid}")
        return config_from_dict(record["config"])
    except (CodecError, ConfigError, KeyError) as exc:
        raise TaskError(f"restore: {file} is damaged: {exc}") from None


def restore(vm: VmMachine, file: str, paused: bool = False, delete: bool = True) -> None:
    """Start the domain from ``file`` (see the module docstring)."""
    vm._check(lc.Restore())
    image = Path(file)
    cfg = _read_image(image, vm.uuid)
    vm._begin("restore", file=str(image))
    vm._go(lc.Restore())
    try:
        vm.config = cfg
        vm._build(cfg)
        vm._plug_devices(cfg)
        vm._go(lc.DevicesAdded())
        if not paused:
            vm.env.hypervisor().unpause(vm.domid)
            vm._go(lc.Unpaused())
    except Exception as exc:
        vm._destroy_domain(vm.domid)
        vm._go(lc.StartAborted())
        vm._end()
        raise TaskError(f"restore failed: {exc}") from exc
    vm._end()
    if delete:
        image.unlink(missing_ok=True)


# ------------------------------------------------------------------ config and devices

def set_config(vm: VmMachine, field: str, value: str) -> None:
    """Change one config field (pending while a domain exists)."""
    base = vm.next_config or vm.config
    try:
        changed = set_field(base, field, value)
    except ConfigError as exc:
        raise TaskError(f"set: {exc}") from None
    if vm.state.has_domain:
        vm.next_config = changed
    else:
        vm.config, vm.next_config = changed, None
    vm.on_change()


def add_device(vm: VmMachine, key: str, entry: str) -> None:
    """Add a ``disk`` or ``nic`` entry; plug it now when the VM runs."""
    try:
        changed = add_entry(vm.config, key, entry)
    except ConfigError as exc:
        raise TaskError(f"{key}-add: {exc}") from None
    if vm.state.has_domain and vm.domid >= 0:
        cfg = resolve_macs(changed, vm.uuid)
        spec: DeviceSpec
        if key == "disk":
            spec = vm._vbd(cfg, cfg.disks[-1])
        else:
            old = {n.nic_id for n in vm.config.nics}
            new = [s for s, n in zip(vif_specs(cfg, vm.domid, vm.uuid), cfg.nics, strict=False)
                   if n.nic_id not in old]
            spec = new[0]
        try:
            vm.env.executor().run(plan_device_add(spec, vm.env.timeouts))
        except PlanFailed as exc:
            raise TaskError(f"{key}-add: plugging failed: {exc}") from exc
    vm.config = changed
    if vm.next_config is not None:
        try:
            vm.next_config = add_entry(vm.next_config, key, entry)
        except ConfigError:
            vm.next_config = None
    vm.on_change()


def remove_device(vm: VmMachine, key: str, ident: str) -> None:
    """Remove a disk (by guest device name) or nic (by id); unplug it when the VM runs."""
    if key == "disk":
        keep = tuple(d for d in vm.config.disks if d.virtpath != ident)
        if len(keep) == len(vm.config.disks):
            raise TaskError(f"disk-del: no disk {ident!r}")
        changed = dataclasses.replace(vm.config, disks=keep)
    else:
        keep_nics = tuple(n for n in vm.config.nics if str(n.nic_id) != ident)
        if len(keep_nics) == len(vm.config.nics):
            raise TaskError(f"nic-del: no nic {ident!r}")
        changed = dataclasses.replace(vm.config, nics=keep_nics)
    if vm.state.has_domain and vm.domid >= 0:
        observed = observe_domain(vm.env.xenstore(), vm.domid, hvm=vm.config.hvm)
        want = _frontend_name(vm, key, ident)
        for dev in observed.devices:
            fe = dev.device.frontend
            if (fe.kind.value, fe.devid) == want:
                vm.env.executor().run(plan_device_remove(dev, "clean", hvm=vm.config.hvm,
                                                         timeouts=vm.env.timeouts))
    vm.config = changed
    vm.on_change()


def _frontend_name(vm: VmMachine, key: str, ident: str) -> tuple[str, int]:
    if key == "disk":
        from xen.xenops import name_to_devid
        return ("vbd", name_to_devid(ident))
    return ("vif", int(ident))


def set_mem_target(vm: VmMachine, mb: int) -> None:
    """Write the balloon target of the running domain."""
    if not vm.state.has_domain or vm.domid < 0:
        raise TaskError(f"set-mem-target is not allowed in state {vm.state.value}")
    if mb <= 0:
        raise TaskError(f"set-mem-target: bad size {mb} MiB")
    vm.env.executor().run(plan_set_memory_target(vm.domid, mb * 1024))
