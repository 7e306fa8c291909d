"""The host shutdown order (pure part of xen.xenmgr._host_power) and the idle shutdown's cap."""

from __future__ import annotations

import threading

from xen.xenmgr._host_power import IdleCap, shutdown_groups


def test_groups_by_priority_descending_uuid_order_within() -> None:
    got = shutdown_groups({"c": "10", "a": "10", "b": "0", "d": "", "e": "x", "f": "-5",
                           "g": "20"})
    assert got == [["g"], ["a", "c"], ["b", "d", "e"], ["f"]]


def test_no_running_vm_no_group() -> None:
    assert shutdown_groups({}) == []


def test_the_idle_cap_fires_once_armed_and_not_once_cancelled() -> None:
    forced = threading.Event()
    cap = IdleCap()
    assert cap.arm(0.01, forced.set)
    assert forced.wait(10) and cap.fired.is_set()
    late = threading.Event()
    assert cap.arm(60, late.set)
    assert not cap.arm(60, late.set)  # one idle shutdown at a time
    cap.close()
    assert not late.is_set() and not cap.fired.is_set()
    assert cap.arm(60, late.set)  # a new one may start
    cap.close()
