"""A restarted VM monitor reconciles its last snapshot with the world (the table below).

The snapshot (written after every change) holds the lifecycle state, the domid, the applied
and pending config, the operation in flight and any ``on_*`` action recorded but not yet done.
:func:`resume` restores it into a :class:`~xen.xenvm._machine.VmMachine` and decides, from
what the hypervisor says *now*, what to do. Quick decisions are applied at once; operations
that take time are returned as follow-ups that the monitor queues to itself, so its start stays
short.

| snapshot | world | decision |
|---|---|---|
| pending on_* action | any | carry it out again (it is idempotent): applied exactly once |
| op `start` | start had finished (running/created, domain alive) | keep the domain, clear the op |
| op `start` | part-built domain, or none | destroy what exists, state `shutdown`, start again |
| op `shutdown`/`reboot` | domain alive | back to `running`, ask again |
| op `shutdown` | domain dead or gone | clean up, `shutdown` |
| op `reboot` | domain dead or gone | clean up, `rebooted`, start again |
| op `destroy` | any | destroy again (idempotent), `shutdown` |
| op `suspend` | domain alive | `running` (the image is not trusted) |
| op `suspend` | domain gone, image complete | `suspended` |
| op `restore` | any | destroy what exists, back to `suspended` |
| no op, state with a domain | domain alive | adopt it untouched (pause state followed) |
| no op, state with a domain | domain dead | its on_* action, once |
| no op, state with a domain | domain gone | `shutdown` (destroyed from outside: no action) |
| no op, state without a domain | a live domain has our uuid | adopt it |
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xen.xenvm._lifecycle as lc
from xen.xenvm._config import config_from_dict, config_to_dict
from xen.xenvm._lifecycle import IllegalTransition, State, next_state
from xen.xenvm._machine import death_cause

if TYPE_CHECKING:
    from collections.abc import Mapping

    from xen.xenvm._machine import VmMachine

__all__ = ["SNAPSHOT_VERSION", "FollowUp", "resume", "snapshot_of"]

logger = logging.getLogger("xenvm")

SNAPSHOT_VERSION = 1
FollowUp = tuple[str, dict[str, str]]


def snapshot_of(vm: VmMachine) -> dict[str, Any]:
    """The msgpack-able snapshot of a machine."""
    return {
        "v": SNAPSHOT_VERSION,
        "uuid": vm.uuid,
        "state": vm.state.value,
        "domid": vm.domid,
        "stubdom_domid": vm.stubdom_domid,
        "config": config_to_dict(vm.config),
        "next_config": config_to_dict(vm.next_config) if vm.next_config else None,
        "op": dict(vm.op) if vm.op else None,
        "pending_action": dict(vm.pending_action) if vm.pending_action else None,
    }


def _force(vm: VmMachine, event: lc.Event) -> None:
    """Apply ``event`` if the table allows it from the current state (else leave the state)."""
    try:
        next_state(vm.state, event)
    except IllegalTransition:
        return
    vm._go(event)


def resume(vm: VmMachine, snap: Mapping[str, Any]) -> list[FollowUp]:
    """Restore ``snap`` into ``vm`` and reconcile (see the module docstring)."""
    if snap.get("v") != SNAPSHOT_VERSION or snap.get("uuid") != vm.uuid:
        logger.error("%s: ignoring a snapshot of another version or VM", vm.uuid)
        vm.check_state()
        return []
    vm.state = State(snap["state"])
    vm.domid = int(snap.get("domid", -1))
    vm.stubdom_domid = int(snap.get("stubdom_domid", -1))
    vm.config = config_from_dict(snap["config"])
    vm.next_config = config_from_dict(snap["next_config"]) if snap.get("next_config") else None
    vm.pending_action = dict(snap["pending_action"]) if snap.get("pending_action") else None
    op = dict(snap["op"]) if snap.get("op") else None
    vm.op = None
    logger.info("%s: resuming in state %s, domid %d, op %s", vm.uuid, vm.state.value, vm.domid,
                op["name"] if op else "none")
    if vm.pending_action is not None:
        vm.check_state()  # carries the recorded action out
        return []
    if op is None:
        vm.check_state()
        return []
    return _finish_or_roll_back(vm, op)


def _finish_or_roll_back(vm: VmMachine, op: dict[str, Any]) -> list[FollowUp]:
    name = op["name"]
    info = vm.info()
    alive = death_cause(info) is None
    if name == "start":
        if alive and not vm.state.mid_operation and vm.state.has_domain:
            vm.on_change()
            return []
        vm._destroy_domain(vm.domid)
        for stray in vm.live_domains():
            vm._destroy_domain(stray.domid)
        _force(vm, lc.StartAborted())
        _force(vm, lc.DomainReleased())
        return [("start", {"paused": str(bool(op.get("paused", False))).lower()})]
    if name in ("shutdown", "reboot"):
        if alive:
            _force(vm, lc.ShutdownFailed())
            params = {"forced": str(bool(op.get("force", False))).lower()}
            return [(name, params)]
        vm._destroy_domain(vm.domid)
        if name == "reboot":
            _force(vm, lc.DomainRebooted())
            return [("start", {})] if op.get("auto_start", True) else []
        _force(vm, lc.DomainReleased())
        return []
    if name == "destroy":
        vm._destroy_domain(vm.domid)
        _force(vm, lc.Destroy())
        return []
    if name == "suspend":
        image = Path(str(op.get("file", "")))
        if alive:
            _force(vm, lc.SuspendFailed())
            return []
        vm._destroy_domain(vm.domid)
        if image.is_file() and image.stat().st_size > 0 and op.get("written"):
            _force(vm, lc.Saved())
        else:
            _force(vm, lc.DomainReleased())
        return []
    if name == "restore":
        vm._destroy_domain(vm.domid)
        _force(vm, lc.StartAborted())
        return []
    logger.warning("%s: unknown operation %r in snapshot; checking the domain", vm.uuid, name)
    vm.check_state()
    return []
