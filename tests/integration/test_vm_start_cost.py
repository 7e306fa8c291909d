"""What a PV start costs in saves, xenstore round trips and hypervisor calls, and that what it
saves is still every state a restarted monitor may need: the operation before the first side
effect, the domid as soon as it exists, created before the unpause, the end (the rest is
published, and saved with the next change; the step from creating-domain to creating-devices
too, as no recovery tells the two apart)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.xen_fixtures import XenTree, vm_config, xen_tree
from xen.xenvm import VmView, vm_task
from xen.xenvm._lifecycle import State, allowed_events, next_state
from xen.xenvm._monitor import VmMonitor
from xen.xenvm._reconcile import RECONCILE, World, observe
from xen.xenvm._snapshot import Starting

pytestmark = pytest.mark.integration


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[XenTree]:
    with xen_tree(tmp_path) as t:
        yield t


def test_a_start_saves_four_times_and_takes_eight_round_trips(
        tree: XenTree, monkeypatch: pytest.MonkeyPatch) -> None:
    vm = tree.add_vm(vm_config("cost", memory=32))
    saved: list[VmView] = []
    original = VmMonitor.save_snapshot

    def recording(self: VmMonitor) -> None:
        if self.machine is not None and self.uuid == vm:
            saved.append(self.machine.view())
        original(self)

    monkeypatch.setattr(VmMonitor, "save_snapshot", recording)
    before, hv_before = tree.xs.counters(), tree.hv.calls
    vm_task(vm, "start")
    sent, trips = (a - b for a, b in zip(tree.xs.counters(), before, strict=True))
    hv_calls = tree.hv.calls - hv_before
    assert [(v.state, v.op is not None, v.domid >= 0) for v in saved] == [
        (State.CREATING_DOMAIN, True, False),  # the operation, before anything is made
        (State.CREATING_DOMAIN, True, True),  # the domid, as soon as it exists
        (State.CREATED, True, True),
        (State.RUNNING, False, True),  # running, and the operation over, in one save
    ]
    # pipelined: 8 round trips (the create transaction's 46 requests in one), and maybe a
    # domain watcher's read of the new domain on the same client
    assert trips <= 9 and sent >= 60, (sent, trips)
    # free memory before the create and before the build, create, vcpus, max memory, unpause;
    # and maybe the domain watcher's look at the new domain and the monitor's state check
    assert 6 <= hv_calls <= 8, hv_calls
    vm_task(vm, "destroy")


@pytest.mark.parametrize("world", [w for w in World if w is not World.IMAGE_COMPLETE])
def test_creating_domain_and_creating_devices_recover_alike(world: World) -> None:
    # Why the start does not save creating-devices: a restarted monitor decides the same.
    decisions = []
    for state in (State.CREATING_DOMAIN, State.CREATING_DEVICES):
        seen = observe(state, alive=world in (World.ALIVE_DONE, World.ALIVE_MID),
                       exists=world is not World.GONE, image_complete=False)
        decision = RECONCILE[(Starting, seen)]
        after = state
        for event in decision.events:  # each where the table allows it, as the monitor does
            if type(event) in allowed_events(after):
                after = next_state(after, event)
        decisions.append((seen, decision.cleanup, decision.then, after))
    assert decisions[0] == decisions[1]
