"""VM dependencies and network backends on the running host (the rules: ``_depgraph``).

* :func:`dependency_paths`: the ``dependencies`` property: the object paths of every VM the VM
  depends on, transitively, each after its own dependencies (a cycle is an error naming it).
* :func:`refuse_cycle`: a set of a nic's ``backend-uuid``, ``backend-name`` or ``enabled``, or of
  a VM's ``name`` or ``provides-default-network-backend``, that would make the VMs depend on
  each other in a cycle is refused before anything is written (the original found the cycle at
  the next start only); when the VMs already have a cycle (a db edit), sets are let through,
  one of them may be the fix.
* :func:`nic_backend_domids`: at a start, the domain of each nic's backend VM when that VM
  runs; a nic whose backend VM does not run is served by dom0 (logged) until the backend VM
  starts.
* :func:`relocate_nics`: when a VM reaches ``running``, every nic of the other running VMs
  that it serves and that is not already in its domain is moved there, and every nic of its
  own whose backend VM runs and that is not in that VM's domain is moved there (a guest
  resumed from hibernation comes back with the nics it was saved with: served by dom0, or by
  a network VM's domain gone since): the VM monitor's ``nic-del`` then ``nic-add`` with the
  new ``backend-domid`` (the original's ``xl network-detach``/``network-attach``). Failures
  are logged, one nic at a time.

Each monitor task is bounded by the settings' task timeout; nothing here waits otherwise.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from xen.xenmgr._binding import Binding
from xen.xenmgr._dbclient import DbClient
from xen.xenmgr._depgraph import (
    BackendIndex,
    DependencyCycle,
    find_cycle,
    nic_backends,
    start_order,
)
from xen.xenmgr._errors import XenmgrError, plain
from xen.xenmgr._monitors import monitor_view, run_task
from xen.xenmgr._properties import DbOp, Write
from xen.xenmgr._settings import ManagerSettings
from xen.xenmgr._states import from_monitor_state, is_running
from xen.xenmgr._uuids import vm_object_path

__all__ = ["apply_op", "dependency_paths", "nic_backend_domids", "refuse_cycle", "relocate_nics"]

logger = logging.getLogger("xenmgr")

#: The properties whose change can add a dependency (interface suffix, name).
_DEPENDENCY_PROPS = frozenset({("vmnic", "backend-uuid"), ("vmnic", "backend-name"),
                               ("vmnic", "enabled"), ("vm", "name"),
                               ("vm", "provides-default-network-backend")})


def dependency_paths(db: DbClient, uuid: str) -> list[str]:
    """The ``dependencies`` property of VM ``uuid`` (module docstring)."""
    try:
        return [vm_object_path(dep) for dep in start_order(uuid, db.cached_vms())]
    except DependencyCycle as exc:
        raise plain(f"VM {uuid}: {exc}") from None


def refuse_cycle(db: DbClient, b: Binding, ops: Iterable[DbOp]) -> None:
    """Refuse the writes ``ops`` of a set of ``b`` when they would make a dependency cycle."""
    if (b.interface.rsplit(".", 1)[-1], b.name) not in _DEPENDENCY_PROPS:
        return
    ops = list(ops)
    if not ops:
        return
    current = db.cached_vms()
    if find_cycle(current) is not None:
        return  # a cycle made behind our back: any set may be the one that breaks it
    vms = copy.deepcopy(current)
    for op in ops:
        apply_op(vms, op.path, op.value if isinstance(op, Write) else None)
    cycle = find_cycle(vms)
    if cycle is not None:
        raise plain(f"property {b.name}: refused, the VMs would depend on each other: "
                    + " -> ".join(cycle))


def apply_op(vms: dict[str, Any], path: str, value: str | None) -> None:
    """Write (``value``) or remove (None) the absolute db ``path`` in a copy of ``/vm``."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 3 or parts[0] != "vm":
        return
    node = vms
    for part in parts[1:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            if value is None:
                return
            child = node[part] = {}
        node = child
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def _running_domid(uuid: str, *, has_domain: bool = False) -> int | None:
    """VM ``uuid``'s domain when it runs (``has_domain``: when it has one at all)."""
    view = monitor_view(uuid)
    if view is None or view.domid <= 0:
        return None
    if not has_domain and not is_running(from_monitor_state(view.state.value)):
        return None
    return view.domid


def nic_backend_domids(uuid: str, vms: Mapping[str, Any]) -> dict[int, int]:
    """Nic id -> the domain of its running backend VM (module docstring)."""
    out: dict[int, int] = {}
    for nic, backend in sorted(nic_backends(uuid, vms).items()):
        domid = _running_domid(backend)
        if domid is None:
            logger.info("VM %s: nic %d: its backend VM %s does not run; dom0 serves it",
                        uuid, nic, backend)
        else:
            out[nic] = domid
    return out


def relocate_nics(settings: ManagerSettings, db: DbClient, vm: str) -> int:
    """VM ``vm`` reached ``running``: move the nics it serves into its domain, and its own nics
    into their running backend VMs' domains (module docstring); how many moved."""
    domid = _running_domid(vm, has_domain=True)
    if domid is None:
        return 0
    vms = db.cached_vms()  # read only
    index = BackendIndex(vms)  # one pass over the VMs, not one per VM
    own = {nic: be_domid for nic, be in index.nic_backends(vm).items()
           if (be_domid := _running_domid(be)) is not None}
    moved = _move_nics(settings, vm, own) if own else 0
    for uuid in sorted(vms):
        if uuid == vm:
            continue
        served = [nic for nic, be in index.nic_backends(uuid).items() if be == vm]
        if served and _running_domid(uuid, has_domain=True) is not None:
            moved += _move_nics(settings, uuid, dict.fromkeys(served, domid))
    return moved


def _move_nics(settings: ManagerSettings, uuid: str, wanted: Mapping[int, int]) -> int:
    """Move each nic of VM ``uuid`` in ``wanted`` (nic id -> backend domain) that its monitor
    has elsewhere into that domain: the monitor's ``nic-del`` then ``nic-add``; how many
    moved (a failure is logged and the next nic tried)."""
    view = monitor_view(uuid)
    if view is None:
        return 0
    moved = 0
    for nic in view.config.nics:
        domid = wanted.get(nic.nic_id or 0)
        if domid is None or nic.backend_domid == domid:
            continue
        params = {"id": str(nic.nic_id), "network": nic.network, "bridge": nic.bridge,
                  "model": nic.model, "mac": nic.mac, "backend-domid": str(domid),
                  "wireless": "true" if nic.wireless else "false"}
        try:
            run_task(settings, uuid, "nic-del", {"id": str(nic.nic_id)})
            run_task(settings, uuid, "nic-add", params)
        except XenmgrError as exc:
            logger.warning("VM %s: nic %s: moving it to domain %d failed: %s",
                           uuid, nic.nic_id, domid, exc.message)
            continue
        logger.info("VM %s: nic %s moved to its backend's domain %d", uuid, nic.nic_id, domid)
        moved += 1
    return moved
