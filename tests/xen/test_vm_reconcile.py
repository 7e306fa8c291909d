"""Reconciliation on resume, row by row, against a recording backend (no simulated host):
for each (operation in flight, world) the machine ends in the expected state, destroys exactly
the expected domains and asks for the expected follow-ups; the table in docs/xenvm.md is the
code's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.xen.recording import UUID, RecordingHypervisor, RecordingXenstore, config, env
from xen.hypervisor import ShutdownReason
from xen.xenvm._lifecycle import State
from xen.xenvm._machine import VmMachine
from xen.xenvm._reconcile import RECONCILE, FollowUp, World, observe, render_table
from xen.xenvm._snapshot import (
    OPERATION_TYPES,
    Destroying,
    Operation,
    Rebooting,
    Restoring,
    ShuttingDown,
    Starting,
    Suspending,
    VmView,
)

ROOT = Path(__file__).resolve().parents[2]
S = State
DOMID, STRAY = 5, 9


@dataclass(frozen=True)
class Case:
    """One row: the snapshot (operation, state), the world, and what must follow."""

    op: Operation
    world: World
    state: State
    then: State
    destroyed: tuple[int, ...]
    follow: tuple[FollowUp, ...] = ()
    paused: bool = False  # the live domain is paused (also where the state is paused)


START = FollowUp("start", (("paused", "true"),))
SHUTDOWN = FollowUp("shutdown", (("forced", "true"),))
REBOOT = FollowUp("reboot", (("forced", "false"), ("auto-start", "true")))
A, M, D, G, IMG = (World.ALIVE_DONE, World.ALIVE_MID, World.DEAD, World.GONE,
                   World.IMAGE_COMPLETE)
IMAGE = "image.sav"  # replaced by a path under tmp_path

CASES = [
    Case(Starting(paused=True), A, S.RUNNING, S.RUNNING, ()),
    Case(Starting(paused=True), M, S.CREATING_DEVICES, S.SHUTDOWN, (DOMID,), (START,)),
    Case(Starting(paused=True), D, S.CREATED, S.SHUTDOWN, (DOMID,), (START,)),
    Case(Starting(paused=True), G, S.CREATING_DOMAIN, S.SHUTDOWN, (DOMID, STRAY), (START,)),
    Case(ShuttingDown(force=True), A, S.RUNNING, S.RUNNING, (), (SHUTDOWN,)),
    Case(ShuttingDown(force=True), M, S.SHUTTING_DOWN, S.RUNNING, (), (SHUTDOWN,)),
    Case(ShuttingDown(force=True), D, S.SHUTTING_DOWN, S.SHUTDOWN, (DOMID,)),
    Case(ShuttingDown(force=True), G, S.SHUTTING_DOWN, S.SHUTDOWN, (DOMID,)),
    Case(Rebooting(), A, S.PAUSED, S.PAUSED, (), (REBOOT,)),
    Case(Rebooting(), M, S.REBOOTING, S.RUNNING, (), (REBOOT,)),
    Case(Rebooting(), D, S.REBOOTING, S.REBOOTED, (DOMID,), (FollowUp("start"),)),
    Case(Rebooting(auto_start=False), G, S.REBOOTING, S.REBOOTED, (DOMID,)),
    Case(Destroying(), A, S.RUNNING, S.SHUTDOWN, (DOMID,)),
    Case(Destroying(), M, S.CREATING_DEVICES, S.SHUTDOWN, (DOMID,)),
    Case(Destroying(), D, S.RUNNING, S.SHUTDOWN, (DOMID,)),
    Case(Destroying(), G, S.SHUTDOWN, S.SHUTDOWN, (DOMID,)),
    Case(Suspending(IMAGE), A, S.RUNNING, S.RUNNING, ()),
    Case(Suspending(IMAGE), M, S.SUSPENDING, S.RUNNING, ()),
    Case(Suspending(IMAGE), D, S.SUSPENDING, S.SHUTDOWN, (DOMID,)),
    Case(Suspending(IMAGE, written=True), G, S.SUSPENDING, S.SHUTDOWN, (DOMID,)),
    Case(Suspending(IMAGE, written=True), IMG, S.SUSPENDING, S.SUSPENDED, (DOMID,)),
    Case(Restoring(IMAGE), A, S.RUNNING, S.RUNNING, ()),
    Case(Restoring(IMAGE), M, S.RESTORING, S.SUSPENDED, (DOMID,)),
    Case(Restoring(IMAGE), D, S.CREATED, S.SHUTDOWN, (DOMID,)),
    Case(Restoring(IMAGE), G, S.RESTORING, S.SUSPENDED, (DOMID, STRAY)),
    # a kept start or restore saved "created" last; it may have got further (unfinished)
    Case(Starting(), A, S.CREATED, S.RUNNING, ()),  # unpaused before the restart: it runs
    Case(Starting(), A, S.CREATED, S.CREATED, (), (FollowUp("unpause"),), paused=True),
    Case(Starting(paused=True), A, S.CREATED, S.CREATED, (), paused=True),  # as asked
    Case(Restoring(IMAGE), A, S.CREATED, S.RUNNING, ()),
    Case(Restoring(IMAGE), A, S.CREATED, S.CREATED, (), (FollowUp("unpause"),), paused=True),
    Case(Restoring(IMAGE, paused=True), A, S.CREATED, S.CREATED, (), paused=True),
]


def _with_image(op: Operation, tmp_path: Path) -> Operation:
    if isinstance(op, Suspending):
        return Suspending(str(tmp_path / op.file), op.written)
    if isinstance(op, Restoring):
        return Restoring(str(tmp_path / op.file), op.paused)
    return op


def _world(hv: RecordingHypervisor, case: Case, tmp_path: Path) -> None:
    """Make the world the case names."""
    suspend = isinstance(case.op, Suspending)
    if case.world in (World.ALIVE_DONE, World.ALIVE_MID):
        hv.add(DOMID, paused=case.paused or case.state is S.PAUSED)
    elif case.world in (World.DEAD, World.IMAGE_COMPLETE):
        hv.add(DOMID, reason=ShutdownReason.SUSPEND if suspend else ShutdownReason.POWEROFF)
    elif isinstance(case.op, Starting | Restoring):  # gone, and a stray of an interrupted create
        hv.add(STRAY)
    if suspend:  # an image on disk: complete only where the row says so
        (tmp_path / IMAGE).write_bytes(b"image" if case.world is World.IMAGE_COMPLETE else b"")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{type(c.op).__name__}-{c.world.name}"
                                                      f"-{c.state.name}{'-p' if c.paused else ''}")
def test_each_row_on_a_recording_backend(case: Case, tmp_path: Path) -> None:
    hv, xs = RecordingHypervisor(), RecordingXenstore()
    _world(hv, case, tmp_path)
    xs.nodes[f"/local/domain/{DOMID}/name"] = "rec"
    op = _with_image(case.op, tmp_path)
    changes: list[VmView] = []
    vm = VmMachine(UUID, config(), env(hv, xs), on_change=lambda: changes.append(vm.view()))
    follow = vm.resume(VmView(UUID, case.state, DOMID, -1, config(), None, op, None))
    assert vm.state is case.then
    assert tuple(hv.destroyed) == case.destroyed
    assert follow == case.follow
    assert vm.op is None and changes[-1] == vm.view()  # the cleared op is published
    if case.destroyed:
        assert vm.domid == -1
        assert ("rm", f"/local/domain/{DOMID}") in xs.calls  # cleaned up, not just killed
    else:
        assert vm.domid == DOMID and xs.calls == []
    assert [op for op, _d in hv.calls if op != "destroy"] == []  # nothing else was touched


def test_every_row_of_the_table_has_a_case_and_every_case_a_row() -> None:
    tested = {(type(c.op), c.world) for c in CASES}
    assert tested == set(RECONCILE)
    possible = {(op, w) for op in OPERATION_TYPES for w in World
                if w is not World.IMAGE_COMPLETE or op is Suspending}
    assert set(RECONCILE) == possible


@pytest.mark.parametrize(("state", "alive", "exists", "image", "world"), [
    (S.RUNNING, True, True, False, World.ALIVE_DONE),
    (S.PAUSED, True, True, True, World.ALIVE_DONE),  # alive wins over an image
    (S.CREATING_DEVICES, True, True, False, World.ALIVE_MID),
    (S.SHUTDOWN, True, True, False, World.ALIVE_MID),  # op begun, transition not yet applied
    (S.SUSPENDING, False, True, True, World.IMAGE_COMPLETE),
    (S.SUSPENDING, False, False, True, World.IMAGE_COMPLETE),
    (S.RUNNING, False, True, False, World.DEAD),
    (S.RUNNING, False, False, False, World.GONE),
])
def test_observe(state: State, alive: bool, exists: bool, image: bool, world: World) -> None:
    assert observe(state, alive=alive, exists=exists, image_complete=image) is world


def test_a_pending_action_is_carried_out_once_whatever_the_op(tmp_path: Path) -> None:
    from xen.xenvm._config_values import Action
    from xen.xenvm._lifecycle import DeathCause, DomainReleased
    from xen.xenvm._snapshot import PendingAction
    hv, xs = RecordingHypervisor(), RecordingXenstore()
    hv.add(DOMID, reason=ShutdownReason.CRASH)
    vm = VmMachine(UUID, config(), env(hv, xs))
    pending = PendingAction(DOMID, DeathCause.CRASH, Action.DESTROY, DomainReleased())
    assert vm.resume(VmView(UUID, S.RUNNING, DOMID, -1, config(), None, None, pending)) == ()
    assert vm.state is S.SHUTDOWN and vm.pending_action is None and hv.destroyed == [DOMID]
    vm.check_state()  # nothing more to do
    assert hv.destroyed == [DOMID]


def test_no_op_and_a_live_domain_is_adopted_untouched() -> None:
    hv, xs = RecordingHypervisor(), RecordingXenstore()
    hv.add(DOMID, paused=True)
    vm = VmMachine(UUID, config(), env(hv, xs))
    assert vm.resume(VmView(UUID, S.RUNNING, DOMID, -1, config(), None, None, None)) == ()
    assert (vm.state, vm.domid, hv.calls) == (S.PAUSED, DOMID, [])  # the pause followed


def test_docs_table_is_generated_from_the_code() -> None:
    doc = (ROOT / "docs" / "xenvm.md").read_text()
    assert render_table() in doc, "docs/xenvm.md is out of date: paste render_table()"


OTHER = "11111111-2222-4333-8444-555555555555"


@pytest.mark.parametrize("op", [None, Destroying(), ShuttingDown(force=True), Starting()])
def test_a_recorded_domid_now_another_vms_is_left_alone(op: Operation | None) -> None:
    """After a host reboot (or a domid wrap) the domid a snapshot recorded can belong to
    another VM's domain: the monitor must neither adopt it nor destroy it."""
    hv, xs = RecordingHypervisor(), RecordingXenstore()
    hv.add(DOMID, OTHER)
    vm = VmMachine(UUID, config(), env(hv, xs))
    state = S.SHUTTING_DOWN if isinstance(op, ShuttingDown) else S.RUNNING
    vm.resume(VmView(UUID, state, DOMID, -1, config(), None, op, None))
    assert vm.state is S.SHUTDOWN and vm.domid == -1, (vm.state, vm.domid)
    assert hv.calls == [] and DOMID in hv.domains  # not destroyed, not touched
