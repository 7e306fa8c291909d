"""What each task of the table does: operations on the machine, queries of the view.

:mod:`xen.xenvm._tasks` names the tasks and checks their arguments (pure); here each name gets
its handler. :data:`OPERATIONS` maps every ``op`` task to a function ``(machine, call) ->
answer`` that the monitor runs in its own thread, one at a time; :data:`QUERIES` maps every
``query`` task to a function ``(view, call) -> answer`` that reads only the immutable
:class:`~xen.xenvm._snapshot.VmView`, from any thread. Together they cover exactly the task
table, each name with the kind the table gives it. Answers are strings (empty when a task has
nothing to say); refusals and failures are ``TaskError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from xen.xenops import PhysType
from xen.xenvm._config import format_config, get_field
from xen.xenvm._config_values import ConfigError
from xen.xenvm._tasks import TaskCall, TaskError, help_text

if TYPE_CHECKING:
    from xen.xenvm._machine import VmMachine
    from xen.xenvm._snapshot import VmView

__all__ = ["OPERATIONS", "QUERIES", "OperationHandler", "QueryHandler"]

OperationHandler = Callable[["VmMachine", TaskCall], str]
QueryHandler = Callable[["VmView", TaskCall], str]


# ------------------------------------------------------------------ operations


def _start(vm: VmMachine, call: TaskCall) -> str:
    vm.start(paused=call.flag("paused"))
    return ""


def _shutdown(vm: VmMachine, call: TaskCall) -> str:
    vm.shutdown(force=call.flag("forced"), timeout=call.number("timeout") or 30.0,
                destroy_after=call.flag("destroy-after"))
    return ""


def _reboot(vm: VmMachine, call: TaskCall) -> str:
    vm.shutdown(reboot=True, force=call.flag("forced"), timeout=call.number("timeout") or 30.0,
                auto_start=call.flag("auto-start"))
    return ""


def _destroy(vm: VmMachine, _call: TaskCall) -> str:
    vm.destroy()
    return ""


def _pause(vm: VmMachine, _call: TaskCall) -> str:
    vm.pause()
    return ""


def _unpause(vm: VmMachine, _call: TaskCall) -> str:
    vm.unpause()
    return ""


def _suspend(vm: VmMachine, call: TaskCall) -> str:
    vm.suspend(call.text("file"))
    return ""


def _restore(vm: VmMachine, call: TaskCall) -> str:
    vm.restore(call.text("file"), paused=call.flag("paused"), delete=call.flag("delete"))
    return ""


def _set(vm: VmMachine, call: TaskCall) -> str:
    vm.set_config(call.text("field"), call.text("value"))
    return ""


def _set_config(vm: VmMachine, call: TaskCall) -> str:
    vm.replace_config(call.text("config"))
    return ""


def _disk_add(vm: VmMachine, call: TaskCall) -> str:
    fields = (call.text(k) for k in ("path", "type", "device", "mode", "devtype"))
    vm.add_device("disk", ":".join((*fields, "none")))
    return ""


def _disk_del(vm: VmMachine, call: TaskCall) -> str:
    vm.remove_device("disk", call.text("device"))
    return ""


def _nic_add(vm: VmMachine, call: TaskCall) -> str:
    parts = [f"{k}={call.text(k)}" for k in ("bridge", "mac", "model", "network")
             if call.text(k)]
    if call.integer("id") >= 0:
        parts.append(f"id={call.integer('id')}")
    if call.integer("backend-domid"):  # a driver domain's netback (a network VM)
        parts.append(f"backend-domid={call.integer('backend-domid')}")
    if call.flag("wireless"):
        parts.append("wireless=true")
    vm.add_device("nic", ",".join(parts))
    return ""


def _nic_del(vm: VmMachine, call: TaskCall) -> str:
    vm.remove_device("nic", str(call.integer("id")))
    return ""


def _bdf(call: TaskCall) -> str:
    parts = [call.integer(k) for k in ("domain", "bus", "slot", "func")]
    limits = (0xFFFF, 0xFF, 0x1F, 0x7)
    if any(not 0 <= v <= high for v, high in zip(parts, limits, strict=True)):
        raise TaskError(f"{call.name}: bad PCI address {parts} (domain 0..0xffff, bus 0..0xff, "
                        f"slot 0..0x1f, func 0..7)")
    return "{:04x}:{:02x}:{:02x}.{:x}".format(*parts)


def _pci_state_check(vm: VmMachine, call: TaskCall) -> None:
    """PCI changes touch a live domain or only the config; a dead domain kept for inspection
    (preserved) or a state mid-operation takes neither: refused before anything changes."""
    if vm.state.keeps_dead_domain or vm.state.mid_operation:
        raise TaskError(f"{call.name} is not allowed in state {vm.state.value}")


def _pci_add(vm: VmMachine, call: TaskCall) -> str:
    _pci_state_check(vm, call)
    parts = [str(call.integer("id"))] + (["bind"] if call.flag("bind") else []) + [_bdf(call)]
    parts += [f"{k}={call.integer(k)}" for k in ("msitranslate", "power_mgmt")
              if call.integer(k) >= 0]
    vm.add_device("pci", ",".join(parts))
    return ""


def _pci_del(vm: VmMachine, call: TaskCall) -> str:
    _pci_state_check(vm, call)
    vm.remove_device("pci", _bdf(call))
    return ""


def _cd_media(phystype: PhysType | None) -> OperationHandler:
    def change(vm: VmMachine, call: TaskCall) -> str:
        path = call.text("physpath") if phystype is not None else ""
        vm.change_media(call.text("virtpath"), phystype, path)
        return ""
    return change


def _set_mem_target(vm: VmMachine, call: TaskCall) -> str:
    vm.set_mem_target(call.integer("mb"))
    return ""


def _quit(vm: VmMachine, _call: TaskCall) -> str:
    vm.quit()
    return ""


OPERATIONS: Mapping[str, OperationHandler] = MappingProxyType({
    "start": _start,
    "shutdown": _shutdown,
    "halt": _shutdown,
    "reboot": _reboot,
    "destroy": _destroy,
    "pause": _pause,
    "unpause": _unpause,
    "suspend": _suspend,
    "restore": _restore,
    "set": _set,
    "set-config": _set_config,
    "disk-add": _disk_add,
    "disk-del": _disk_del,
    "nic-add": _nic_add,
    "nic-del": _nic_del,
    "pci-add": _pci_add,
    "pci-del": _pci_del,
    "cd-insert-file": _cd_media(PhysType.FILE),
    "cd-insert-real": _cd_media(PhysType.PHY),
    "cd-eject": _cd_media(None),
    "set-mem-target": _set_mem_target,
    "quit": _quit,
})


# ------------------------------------------------------------------ queries


def _get(view: VmView, call: TaskCall) -> str:
    try:
        return get_field(view.current_config, call.text("field"))
    except ConfigError as exc:
        raise TaskError(f"get: {exc}") from None


def _disk_list(view: VmView, _call: TaskCall) -> str:
    return "\n".join(f"{d.virtpath} {d.phystype.value}:{d.physpath} {d.mode} {d.devtype}"
                     for d in view.config.disks)


def _nic_list(view: VmView, _call: TaskCall) -> str:
    return "\n".join(f"{n.nic_id} {n.mac or 'auto'} {n.bridge or n.network or ''}".rstrip()
                     for n in view.config.nics)


def _pci_list(view: VmView, _call: TaskCall) -> str:
    cfg = view.config
    return "\n".join(
        f"{p.group} {p.bdf} msitranslate="
        f"{cfg.pci_msitranslate if p.msitranslate is None else p.msitranslate} power_mgmt="
        f"{cfg.pci_power_management if p.power_mgmt is None else p.power_mgmt}"
        f"{' bind' if p.bind else ''}" for p in cfg.pcis)


QUERIES: Mapping[str, QueryHandler] = MappingProxyType({
    "get-domid": lambda view, _call: str(view.domid),
    "get-stubdomid": lambda view, _call: str(view.stubdom_domid),
    "get-status": lambda view, _call: view.state.value,
    "get-vnc": lambda _view, _call: "",
    "get": _get,
    "get-config": lambda view, _call: format_config(view.config),
    "disk-list": _disk_list,
    "nic-list": _nic_list,
    "pci-list": _pci_list,
    "help": lambda _view, _call: help_text(),
})
