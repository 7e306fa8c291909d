"""The autostart order: start_on_boot and ready VMs, priority descending, slot ascending."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xen.xenmgr import autostart_order


def test_candidates_and_order() -> None:
    vms = {
        "a": {"start_on_boot": "true", "start_on_boot_priority": "10", "slot": "3"},
        "b": {"start_on_boot": "true", "start_on_boot_priority": "100", "slot": "0"},
        "c": {"start_on_boot": "true", "start_on_boot_priority": "10", "slot": "1"},
        "d": {"start_on_boot": "false", "start_on_boot_priority": "1000"},
        "e": {"start_on_boot": "true", "ready": "false"},
        "f": {"start_on_boot": "yes"},
        "g": {"start_on_boot": "true", "start_on_boot_priority": "10"},
    }
    assert autostart_order(vms) == ["b", "c", "a", "g", "f"]


def test_broken_values_read_as_defaults() -> None:
    vms = {"x": {"start_on_boot": "maybe"}, "y": {"start_on_boot": "1",
                                                   "start_on_boot_priority": "high",
                                                   "slot": "-"}, "z": "not a tree"}
    assert autostart_order(vms) == ["y"]


@given(st.dictionaries(st.uuids().map(str), st.fixed_dictionaries({
    "start_on_boot": st.sampled_from(["true", "false", "1", "0", "junk"]),
    "start_on_boot_priority": st.integers(-5, 5).map(str),
    "slot": st.integers(-1, 9).map(str)}), max_size=12))
def test_order_is_by_priority_then_slot(vms: dict[str, dict[str, str]]) -> None:
    order = autostart_order(vms)
    assert set(order) == {u for u, t in vms.items() if t["start_on_boot"] in ("true", "1")}
    keys = [(-int(vms[u]["start_on_boot_priority"]), int(vms[u]["slot"]), u) for u in order]
    assert keys == sorted(keys)
