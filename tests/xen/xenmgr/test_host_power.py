"""The host shutdown order (pure part of xen.xenmgr._host_power)."""

from __future__ import annotations

from xen.xenmgr._host_power import shutdown_groups


def test_groups_by_priority_descending_uuid_order_within() -> None:
    got = shutdown_groups({"c": "10", "a": "10", "b": "0", "d": "", "e": "x", "f": "-5",
                           "g": "20"})
    assert got == [["g"], ["a", "c"], ["b", "d", "e"], ["f"]]


def test_no_running_vm_no_group() -> None:
    assert shutdown_groups({}) == []
