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


def test_a_domain_that_ran_without_a_target_is_read_once(tmp_path: Path) -> None:
    """A domain's ``target`` is read once it has run; a paused one's again (a stub's target
    is written before its first unpause), and a stub found then is remembered."""
    with xen_tree(tmp_path) as tree:
        hv, xs = tree.hv, tree.xs
        guest = hv.create(DomainSpec(handle=uuidlib.uuid4(), memory_kib=4 * MIB))
        stub = hv.create(DomainSpec(handle=uuidlib.uuid4(), memory_kib=4 * MIB))
        tree.xenstored.fire_special_watch("@introduceDomain")
        wait_until(lambda: len(watcher_state()["domains"]) == 2, timeout=15)
        reads = watcher_state()["target_reads"]
        assert reads == 2  # both paused: nothing remembered yet
        xs.write(f"/local/domain/{stub}/target", str(guest))
        for domid in (guest, stub):
            hv.unpause(domid)
        tree.xenstored.fire_special_watch("@introduceDomain")
        wait_until(lambda: watcher_state()["target_reads"] == 4, timeout=15)
        for _ in range(3):  # pause and unpause: each change is seen, no more reads
            for domid in (guest, stub):
                hv.pause(domid)
            tree.xenstored.fire_special_watch("@introduceDomain")
            wait_until(lambda: all(k[1] for k in watcher_state()["domains"].values()),
                       timeout=15)
            for domid in (guest, stub):
                hv.unpause(domid)
            tree.xenstored.fire_special_watch("@introduceDomain")
            wait_until(lambda: not any(k[1] for k in watcher_state()["domains"].values()),
                       timeout=15)
        assert watcher_state()["target_reads"] == 4
