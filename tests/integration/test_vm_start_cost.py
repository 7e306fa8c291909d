"""What a PV start costs in saves, xenstore round trips and hypervisor calls, and that what it
saves is still every state a restarted monitor may need: the operation before the first side
effect, created before the unpause, the end. The rest is published and saved with the next
change: the domid (a restart finds a domain the start made by its uuid, a *stray*, and
destroys it: the same decision as with the domid saved), and the step from creating-domain to
creating-devices (no recovery tells the two apart)."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import actors
from tests.helpers import wait_until
from tests.integration.xen_fixtures import (
    XenTree,
    first_call_hangs,
    kill_monitor,
    vm_config,
    xen_tree,
)
from xen.xenops import SimBuilder
from xen.xenvm import TaskError, VmHandle, VmView, parse_task, vm_path, vm_task
from xen.xenvm._domain import DomainActions
from xen.xenvm._lifecycle import State, allowed_events, next_state
from xen.xenvm._monitor import VmMonitor
from xen.xenvm._reconcile import RECONCILE, World, observe
from xen.xenvm._snapshot import Starting

pytestmark = pytest.mark.integration


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[XenTree]:
    with xen_tree(tmp_path) as t:
        yield t


def test_a_start_saves_three_times_and_takes_four_round_trips(
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
        (State.CREATED, True, True),
        (State.RUNNING, False, True),  # running, and the operation over, in one save
    ]
    # pipelined: 4 round trips (start, the tree and the build's keys, commit, INTRODUCE),
    # and maybe a domain watcher's read of the new domain on the same client
    assert trips <= 5 and sent >= 60, (sent, trips)
    # free memory before the create and before the build, create, vcpus, unpause (the create
    # set maxmem); and maybe the domain watcher's look at the new domain and the monitor's
    # state check
    assert 5 <= hv_calls <= 7, hv_calls
    vm_task(vm, "destroy")


def test_a_crash_before_the_domid_is_saved_destroys_the_stray_and_starts_again(
        tree: XenTree, monkeypatch: pytest.MonkeyPatch) -> None:
    vm = tree.add_vm(vm_config("stray", memory=32))
    # the first start's build hangs: the domain exists, its domid is not saved
    hangs, building, first = first_call_hangs(SimBuilder.build)
    monkeypatch.setattr(SimBuilder, "build", hangs)
    seq = tree.events.last_seq
    handle = actors.service(vm_path(vm), VmHandle)
    submitted = handle.submit(parse_task("start", {}))
    assert building.wait(10)
    queued = handle.submit(parse_task("pause", {}))  # waits behind the start
    kill_monitor(tree, vm, seq)
    # the new instance found the domain by its uuid, destroyed it and started again
    wait_until(lambda: vm_task(vm, "get-status") == "running", timeout=10)
    live = [i.domid for i in tree.hv.find_by_handle(uuidlib.UUID(vm)) if not i.dying]
    made = first[0][1]  # build(self, domid, ...)
    assert len(live) == 1 and live[0] != made, (live, made)
    failed = submitted.exception(1)  # the first caller is told, not left waiting
    assert isinstance(failed, TaskError) and "interrupted" in str(failed), failed
    not_run = queued.exception(1)
    assert isinstance(not_run, TaskError) and "pause was not run" in str(not_run), not_run
    vm_task(vm, "destroy")


@pytest.mark.parametrize("unpaused", [False, True], ids=["before-unpause", "after-unpause"])
def test_a_crash_after_created_was_saved_finishes_the_start(
        tree: XenTree, monkeypatch: pytest.MonkeyPatch, unpaused: bool) -> None:
    """The last save before the end says "created": a restart keeps the domain and finishes
    the start (it unpauses a domain still paused; it follows one the start had unpaused),
    instead of reporting "created" for a running guest."""
    vm = tree.add_vm(vm_config("late", memory=32))
    hangs, reached, first = first_call_hangs(DomainActions.unpause, after=unpaused)
    monkeypatch.setattr(DomainActions, "unpause", hangs)
    seq = tree.events.last_seq
    submitted = actors.service(vm_path(vm), VmHandle).submit(parse_task("start", {}))
    assert reached.wait(10)
    made = [first[0][1]]  # unpause(self, domid)
    assert tree.hv.getinfo(made[0]).paused is not unpaused
    kill_monitor(tree, vm, seq)
    wait_until(lambda: vm_task(vm, "get-status") == "running", timeout=10)
    live = [i for i in tree.hv.find_by_handle(uuidlib.UUID(vm)) if not i.dying]
    assert [(i.domid, i.paused) for i in live] == [(made[0], False)]  # kept, not rebuilt
    assert int(vm_task(vm, "get-domid")) == made[0]
    failed = submitted.exception(1)
    assert isinstance(failed, TaskError) and "interrupted" in str(failed), failed
    with pytest.raises(TaskError, match="not allowed in state running"):
        vm_task(vm, "unpause")  # the state tells the truth: refused, not a hypervisor error
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
