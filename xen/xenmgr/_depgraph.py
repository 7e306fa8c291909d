"""VM dependencies (pure): which VMs must run before a VM can (its network backends).

A VM depends on the VM serving each of its enabled nics: the nic's ``backend-uuid`` if set,
else the VM whose ``name`` is the nic's ``backend-name``, else the VM with
``provides-default-network-backend`` true (the original asked the network daemon first; this
project has none). A backend that names no VM, or the VM itself, adds no edge.

:func:`nic_backends` gives the backend VM of each of a VM's nics (nic id -> uuid; nics served
by dom0 absent; :class:`BackendIndex` answers it for many VMs of one set);
:func:`direct_dependencies` a VM's direct dependencies (sorted); :func:`start_order` all its
dependencies, transitively, in an order where each comes after what it depends on (ties by
uuid); a cycle raises :class:`DependencyCycle` naming it; :func:`find_cycle` the first cycle
among all the VMs (None: there is none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xen.xenmgr._dbview import DbView
from xen.xenmgr._devices import read_nics

__all__ = ["BackendIndex", "DependencyCycle", "direct_dependencies", "find_cycle", "nic_backends",
           "start_order"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


class DependencyCycle(ValueError):
    """The VMs depend on each other in a cycle (``cycle`` lists it, first repeated last)."""

    def __init__(self, cycle: list[str]) -> None:
        super().__init__("VM dependency cycle: " + " -> ".join(cycle))
        self.cycle = cycle


def _true(value: object) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("true", "yes", "1")


class BackendIndex:
    """What finding a nic's backend needs from all the VMs, gathered once for ``vms``: the
    default network backends and the VMs by name (asking for every VM's nics costs one pass
    over ``vms``, not one per VM)."""

    def __init__(self, vms: Mapping[str, Any]) -> None:
        self.vms = vms
        self.default = sorted(u for u, t in vms.items() if isinstance(t, dict)
                              and _true(t.get("provides-default-network-backend")))
        self.by_name = {t.get("name"): u for u, t in sorted(vms.items()) if isinstance(t, dict)}

    def nic_backends(self, uuid: str) -> dict[int, str]:
        """The VM serving each enabled nic of ``uuid``: nic id -> its uuid."""
        tree = self.vms.get(uuid)
        if not isinstance(tree, dict):
            return {}
        try:
            nics = read_nics(DbView(tree))
        except ValueError:
            return {}
        out: dict[int, str] = {}
        for nic in nics:
            if not nic.enabled:
                continue
            if nic.backend_uuid:
                backend = nic.backend_uuid if nic.backend_uuid in self.vms else None
            elif nic.backend_name:
                backend = self.by_name.get(nic.backend_name)
            else:
                backend = self.default[0] if self.default else None
            if backend is not None and backend != uuid:
                out[nic.id] = backend
        return out


def nic_backends(uuid: str, vms: Mapping[str, Any]) -> dict[int, str]:
    """The VM serving each enabled nic of ``uuid`` (module docstring): nic id -> its uuid.
    For many VMs of one ``vms``, build one :class:`BackendIndex` instead."""
    return BackendIndex(vms).nic_backends(uuid)


def direct_dependencies(uuid: str, vms: Mapping[str, Any],
                        index: BackendIndex | None = None) -> list[str]:
    """The VMs ``uuid`` depends on directly (module docstring)."""
    return sorted(set((index or BackendIndex(vms)).nic_backends(uuid).values()))


def start_order(uuid: str, vms: Mapping[str, Any],
                index: BackendIndex | None = None) -> list[str]:
    """Every VM ``uuid`` depends on, each after its own dependencies (module docstring)."""
    index = index or BackendIndex(vms)
    order: list[str] = []
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        if node in path:
            raise DependencyCycle([*path[path.index(node):], node])
        if node in done:
            return
        path.append(node)
        for dep in direct_dependencies(node, vms, index):
            visit(dep)
        path.pop()
        done.add(node)
        if node != uuid:
            order.append(node)

    visit(uuid)
    return order


def find_cycle(vms: Mapping[str, Any]) -> list[str] | None:
    """The first dependency cycle among ``vms`` (by uuid order), or None."""
    index = BackendIndex(vms)
    for uuid in sorted(vms):
        try:
            start_order(uuid, vms, index)
        except DependencyCycle as exc:
            return exc.cycle
    return None
