"""What a PV start costs in saves and xenstore round trips, and that what it saves is still
every state a restarted monitor may need: the operation before the first side effect, the domid
as soon as it exists, the end (the rest is published, and saved with the next change)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.xen_fixtures import XenTree, vm_config, xen_tree
from xen.xenvm import VmView, vm_task
from xen.xenvm._lifecycle import State
from xen.xenvm._monitor import VmMonitor

pytestmark = pytest.mark.integration


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[XenTree]:
    with xen_tree(tmp_path) as t:
        yield t


def test_a_start_saves_five_times_and_takes_ten_round_trips(
        tree: XenTree, monkeypatch: pytest.MonkeyPatch) -> None:
    vm = tree.add_vm(vm_config("cost", memory=32))
    saved: list[VmView] = []
    original = VmMonitor.save_snapshot

    def recording(self: VmMonitor) -> None:
        if self.machine is not None and self.uuid == vm:
            saved.append(self.machine.view())
        original(self)

    monkeypatch.setattr(VmMonitor, "save_snapshot", recording)
    before = tree.xs.counters()
    vm_task(vm, "start")
    sent, trips = (a - b for a, b in zip(tree.xs.counters(), before, strict=True))
    assert [(v.state, v.op is not None, v.domid >= 0) for v in saved] == [
        (State.CREATING_DOMAIN, True, False),  # the operation, before anything is made
        (State.CREATING_DOMAIN, True, True),  # the domid, as soon as it exists
        (State.CREATING_DEVICES, True, True),
        (State.CREATED, True, True),
        (State.RUNNING, False, True),  # running, and the operation over, in one save
    ]
    assert trips <= 12 and sent >= 60, (sent, trips)  # pipelined: about 10 round trips
    vm_task(vm, "destroy")
