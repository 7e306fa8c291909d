"""VM dependencies (pure): nic backends by uuid, by name, the default backend; order; cycles."""

from __future__ import annotations

from typing import Any

import pytest

from xen.xenmgr._depgraph import DependencyCycle, direct_dependencies, start_order


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
