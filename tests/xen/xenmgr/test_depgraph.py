"""VM dependencies (pure): nic backends by uuid, by name, the default backend; order; cycles."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from xen.xenmgr._depgraph import (
    BackendIndex,
    DependencyCycle,
    direct_dependencies,
    find_cycle,
    nic_backends,
    start_order,
)
from xen.xenmgr._vm_deps import apply_op


def vm(name: str, *nics: dict[str, str], **top: str) -> dict[str, Any]:
    return {"name": name, **top, "config": {"nic": {
        str(i): {"id": str(i), **nic} for i, nic in enumerate(nics)}}}


NET = "00000000-0000-0000-0000-000000000002"
A, B, C, D = (f"{n}{n}{n}{n}{n}{n}{n}{n}-0000-4000-8000-000000000000" for n in "abcd")
X, Y = "eeeeeeee-0000-4000-8000-000000000000", "ffffffff-0000-4000-8000-000000000000"
NOBODY = "12345678-0000-4000-8000-000000000000"
VMS = {
    NET: vm("Network", **{"provides-default-network-backend": "true"}),
    A: vm("A", {}),                                       # default backend: NET
    B: vm("B", {"backend-name": "A"}, {"backend-uuid": NET}),
    C: vm("C", {"backend-uuid": B}, {"backend-name": "A", "enable": "false"}),
    D: vm("D", {"backend-uuid": NOBODY}, {"backend-name": "D"}),
}


def test_one_index_answers_for_every_vm_as_a_fresh_lookup_does() -> None:
    index = BackendIndex(VMS)
    for uuid in [*VMS, NOBODY]:
        assert index.nic_backends(uuid) == nic_backends(uuid, VMS)
        assert direct_dependencies(uuid, VMS, index) == direct_dependencies(uuid, VMS)
    assert index.nic_backends(B) == {0: A, 1: NET}


def test_direct_dependencies() -> None:
    assert direct_dependencies(A, VMS) == [NET]
    assert direct_dependencies(B, VMS) == sorted([A, NET])
    assert direct_dependencies(C, VMS) == [B]  # the disabled nic adds nothing
    assert direct_dependencies(D, VMS) == []  # unknown backend, itself: no edge
    assert direct_dependencies(NET, VMS) == []  # the default backend does not serve itself
    assert direct_dependencies("missing", VMS) == []


def test_start_order_puts_each_after_its_dependencies() -> None:
    assert start_order(C, VMS) == [NET, A, B]
    assert start_order(NET, VMS) == []


def test_cycles_are_named() -> None:
    vms = {X: vm("X", {"backend-uuid": Y}), Y: vm("Y", {"backend-name": "X"})}
    with pytest.raises(DependencyCycle) as info:
        start_order(X, vms)
    assert info.value.cycle == [X, Y, X] and f"{X} -> {Y} -> {X}" in str(info.value)


def test_nic_backends_names_the_vm_of_each_enabled_nic() -> None:
    assert nic_backends(B, VMS) == {0: A, 1: NET}
    assert nic_backends(C, VMS) == {0: B}  # nic 1 is disabled
    assert nic_backends(D, VMS) == {}
    assert nic_backends("missing", VMS) == {}


def test_find_cycle_over_all_vms() -> None:
    assert find_cycle(VMS) is None
    looped = {**VMS, NET: vm("Network", {"backend-uuid": C},
                             **{"provides-default-network-backend": "true"})}
    cycle = find_cycle(looped)
    assert cycle is not None and cycle[0] == cycle[-1] and NET in cycle and C in cycle


def test_a_set_that_would_make_a_cycle_is_seen_before_it_is_written() -> None:
    vms = copy.deepcopy(VMS)
    apply_op(vms, f"/vm/{NET}/config/nic/0/backend-uuid", C)  # what the setter would write
    assert find_cycle(vms) is not None
    assert find_cycle(VMS) is None  # the original is untouched
    apply_op(vms, f"/vm/{NET}/config/nic/0/backend-uuid", None)  # removing it: no cycle
    assert find_cycle(vms) is None
