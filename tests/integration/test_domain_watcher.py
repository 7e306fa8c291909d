"""The domain watcher coalesces a burst of domain events without losing the final state."""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path

import pytest

import actors
from actors import GetSnapshot
from tests.helpers import wait_until
from tests.integration.xen_fixtures import xen_tree
from xen.hypervisor import DomainSpec

pytestmark = pytest.mark.integration

MIB = 1024


def watcher_state() -> dict[str, object]:
    state = actors.ask("/xen/watcher", GetSnapshot(), timeout=10)
    assert isinstance(state, dict)
    return state


def test_a_burst_of_domains_coming_and_going_ends_in_the_true_list(tmp_path: Path) -> None:
    with xen_tree(tmp_path) as tree:
        hv = tree.hv
        domids = [hv.create(DomainSpec(handle=uuidlib.uuid4(), memory_kib=4 * MIB))
                  for _ in range(12)]
        tree.xenstored.fire_special_watch("@introduceDomain")  # as xs_introduce would
        wait_until(lambda: sorted(int(d) for d in watcher_state()["domains"]) == sorted(domids),
                   timeout=15)
        for domid in domids[:8]:  # eight go at once, four stay
            hv.destroy(domid)
        wait_until(lambda: sorted(int(d) for d in watcher_state()["domains"])
                   == sorted(domids[8:]), timeout=15)
        state = watcher_state()
        events, scans = state["events"], state["scans"]
        assert isinstance(events, int) and isinstance(scans, int)
        assert 1 <= scans <= events  # every scan was asked for by an event; none lost
