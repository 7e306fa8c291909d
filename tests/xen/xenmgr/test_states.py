"""VM states: internal -> public strings, locked, running, ACPI state, notify texts, hooks, and
the mapping from our VM monitor's states."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.idl import load_package
from xen.xenmgr import (
    MONITOR_STATES,
    PUBLIC_STATES,
    AcpiNotice,
    HookCalls,
    InternalState,
    RtcNotice,
    StateError,
    StateNotice,
    acpi_state,
    crypto_mount_point,
    from_monitor_notify,
    from_monitor_state,
    host_public_state,
    is_running,
    login_required,
    mounted_paths,
    notify_text,
    parse_internal_state,
    parse_notify,
    public_state,
    state_hooks,
)
from xen.xenvm._lifecycle import State as MonitorState

S = InternalState

PUBLIC = {
    "pre-create": "creating", "creating-domain": "creating", "creating-devices": "creating",
    "created": "creating", "running": "running", "shutdowning": "stopping",
    "shutdown": "stopped", "rebooting": "rebooting", "rebooted": "rebooted",
    "suspending": "suspending", "suspended": "suspended", "restoring": "restoring",
    "paused": "paused",
}


@pytest.mark.parametrize(("internal", "public"), sorted(PUBLIC.items()))
def test_internal_states_map_to_public_strings(internal: str, public: str) -> None:
    state = parse_internal_state(internal)
    assert state.value == internal
    assert public_state(state) == public


def test_the_thirteen_internal_states_are_all_there() -> None:
    assert {s.value for s in InternalState} == set(PUBLIC)


def test_a_missing_state_node_is_shutdown_and_an_unknown_string_an_error() -> None:
    assert parse_internal_state(None) is S.SHUTDOWN
    with pytest.raises(StateError, match="'halted'"):
        parse_internal_state("halted")
    with pytest.raises(StateError):
        parse_internal_state("")


def test_public_states_are_the_interface_files_enum_in_order() -> None:
    enum = next(e for e in load_package()["xenmgr"].enums if e.name == "VM_STATE")
    assert tuple(v.value for v in enum.values) == PUBLIC_STATES
    assert set(PUBLIC.values()) | {"locked"} == set(PUBLIC_STATES)


def test_locked_only_for_a_stopped_vm_whose_crypto_user_is_not_logged_in() -> None:
    assert crypto_mount_point("alice") == "/config/sec/s-alice"
    assert login_required("alice", set())
    assert not login_required("alice", {"/config/sec/s-alice"})
    assert not login_required(None, set())
    assert not login_required("", set())
    assert public_state(S.SHUTDOWN, login_required=True) == "locked"
    assert public_state(S.SHUTDOWN, login_required=False) == "stopped"
    assert public_state(S.RUNNING, login_required=True) == "running"
    assert public_state(S.REBOOTED, login_required=True) == "rebooted"


def test_mounted_paths_reads_proc_mounts_whole_mount_points() -> None:
    text = ("proc /proc proc rw 0 0\n"
            "/dev/mapper/s-alice /config/sec/s-alice ext4 rw 0 0\n"
            "/dev/sdb1 /media/my\\040disk vfat rw 0 0\n"
            "garbage\n")
    mounted = mounted_paths(text)
    assert mounted == {"/proc", "/config/sec/s-alice", "/media/my disk"}
    assert not login_required("alice", mounted)
    assert login_required("al", mounted)  # no prefix match, unlike the original's grep
    assert login_required("alice2", mounted)


@pytest.mark.parametrize("state", list(InternalState))
def test_running_is_anything_but_shutdown_and_rebooted(state: InternalState) -> None:
    assert is_running(state) == (state not in (S.SHUTDOWN, S.REBOOTED))


@pytest.mark.parametrize(("state", "pv", "hibernated", "hyp", "expected"), [
    (S.SHUTDOWN, False, False, None, 5),
    (S.SHUTDOWN, True, False, None, 5),
    (S.SHUTDOWN, False, True, None, 4),
    (S.SHUTDOWN, True, True, None, 4),
    (S.REBOOTED, False, False, None, 5),
    (S.REBOOTED, True, True, None, 0),   # the original's rule: only shutdown maps to 4
    (S.REBOOTED, False, True, None, 0),
    (S.RUNNING, True, False, 3, 0),      # PV: 0 while running, the hypervisor is not asked
    (S.RUNNING, False, False, 3, 3),
    (S.RUNNING, False, False, 0, 0),
    (S.RUNNING, False, False, -1, 0),
    (S.RUNNING, False, False, None, 0),
    (S.PAUSED, False, True, 3, 3),
    (S.SUSPENDED, False, False, 3, 3),
])
def test_acpi_state(state: InternalState, pv: bool, hibernated: bool, hyp: int | None,
                    expected: int) -> None:
    assert acpi_state(state, pv=pv, hibernated=hibernated, hypervisor_acpi=hyp) == expected


def test_notify_texts_announce_rebooted_as_shutdown() -> None:
    assert notify_text(S.RUNNING) == "vm:state:running"
    assert notify_text(S.SHUTTING_DOWN) == "vm:state:shutdowning"
    assert notify_text(S.REBOOTED) == "vm:state:shutdown"


@given(st.sampled_from(list(InternalState)))
def test_notify_round_trip(state: InternalState) -> None:
    expected = S.SHUTDOWN if state is S.REBOOTED else state
    assert parse_notify(notify_text(state)) == StateNotice(expected)


def test_parse_notify() -> None:
    assert parse_notify("power-state:3") == AcpiNotice(3)
    assert parse_notify("rtc:-3600") == RtcNotice(-3600)
    assert parse_notify("something-else") is None
    assert parse_notify("error:crashed") is None
    assert parse_notify("vm:other:x") is None
    with pytest.raises(StateError, match="bogus"):
        parse_notify("vm:state:bogus")
    with pytest.raises(StateError, match="power-state"):
        parse_notify("power-state:three")
    with pytest.raises(StateError):
        parse_notify("rtc:")


@pytest.mark.parametrize(("state", "calls"), [
    (S.CREATING_DOMAIN, HookCalls(None, None)),
    (S.CREATING_DEVICES, HookCalls(None, None)),
    (S.CREATED, HookCalls(None, None)),
    (S.PRE_CREATE, HookCalls("creating", None)),
    (S.RUNNING, HookCalls("running", 0)),
    (S.SUSPENDED, HookCalls("suspended", 3)),
    (S.SHUTDOWN, HookCalls("stopped", 5)),
    (S.PAUSED, HookCalls("paused", None)),
    (S.REBOOTED, HookCalls("rebooted", None)),
])
def test_state_hooks(state: InternalState, calls: HookCalls) -> None:
    assert state_hooks(state) == calls


def test_every_monitor_state_has_a_xenmgr_state() -> None:
    assert set(MONITOR_STATES) == {s.value for s in MonitorState}
    for state in MonitorState:
        mapped = from_monitor_state(state.value)
        if state is MonitorState.PRESERVED:
            assert mapped is S.SHUTDOWN
        else:
            assert mapped.value == state.value  # the original's strings, kept
        assert from_monitor_notify(f"vm:state:{state.value}") is mapped


def test_monitor_notifications_that_are_not_states() -> None:
    assert from_monitor_notify("error:crashed") is None
    with pytest.raises(StateError, match="'exploded'"):
        from_monitor_notify("vm:state:exploded")
    with pytest.raises(StateError):
        from_monitor_state("pre-create")  # the monitor never says it


def test_host_states() -> None:
    assert [host_public_state(s) for s in (
        "idle", "shutting-down", "rebooting", "going-to-sleep", "going-to-hibernate")] == [
        "idle", "shutdowning", "rebooting", "sleeping", "hibernating"]
    assert host_public_state(None) == "idle"
    assert host_public_state("nonsense") == "idle"
