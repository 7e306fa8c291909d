"""Pure parts of the simulated host (xen/sim/_control.py): behaviours from the control area,
answers to control/shutdown, and the xenbus rules of simulated frontends and backends."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from xen.hypervisor import ShutdownReason
from xen.sim._control import (
    BackendEffect,
    BackendStep,
    BackendView,
    Behaviour,
    BehaviourError,
    answer_shutdown,
    backend_next,
    behaviour_dirs,
    clamp_state,
    frontend_next,
    frontend_ring_keys,
    parse_state,
    resolve_behaviour,
    seed_entries,
    status_path,
)
from xen.xenops import XenbusState as S

E = BackendEffect
ROOT = Path(__file__).resolve().parents[2]
STATES = list(S)





# --- behaviours --------------------------------------------------------------------------------


def test_defaults_do_nothing_special() -> None:
    behaviour, errors = resolve_behaviour([])
    assert errors == [] and behaviour == Behaviour()
    assert behaviour.shutdown_delay == 0.05 and not behaviour.hang
    assert behaviour.frontend_stop_for("vbd") is None and not behaviour.backend_fails("vif")


def test_every_key_parses() -> None:
    behaviour, errors = resolve_behaviour([{
        "crash": "1.5", "reboot": "0", "hang": "true", "ignore-shutdown": "1",
        "shutdown-delay": "0.2", "shutdown-as": "crash", "frontend-stop": "initialised",
        "frontend-stop-vif": "2", "backend-stop": "InitWait", "backend-fail": "vbd, vif",
        "hotplug-fail": "all", "hotplug-delay": "0.3"}])
    assert errors == []
    assert behaviour.crash_after == 1.5 and behaviour.reboot_after == 0.0
    assert behaviour.hang and behaviour.ignore_shutdown
    assert behaviour.shutdown_delay == 0.2 and behaviour.shutdown_as is ShutdownReason.CRASH
    assert behaviour.frontend_stop_for("vbd") is S.INITIALISED
    assert behaviour.frontend_stop_for("vif") is S.INIT_WAIT
    assert behaviour.backend_stop is S.INIT_WAIT
    assert behaviour.backend_fails("vbd") and behaviour.backend_fails("vif")
    assert not behaviour.backend_fails("console")
    assert behaviour.hotplug_fails("tap") and behaviour.hotplug_delay == 0.3


def test_later_layers_win_key_by_key() -> None:
    behaviour, _ = resolve_behaviour([{"hang": "1", "crash": "3"}, {"hang": "0"}])
    assert not behaviour.hang and behaviour.crash_after == 3.0


@pytest.mark.parametrize(("key", "value", "fragment"), [
    ("crash", "soon", "seconds"),
    ("reboot", "-1", "0..86400"),
    ("hang", "maybe", "1/0/true/false"),
    ("shutdown-as", "explode", "one of"),
    ("frontend-stop", "9", "not a xenbus state"),
    ("backend-stop", "connecting", "not a xenbus state"),
    ("backend-fail", "vbd;vif", "device kinds"),
    ("colour", "blue", "unknown behaviour key 'colour'"),
])
def test_bad_values_are_named_and_the_rest_kept(key: str, value: str, fragment: str) -> None:
    behaviour, errors = resolve_behaviour([{key: value, "ignore-shutdown": "1"}])
    assert len(errors) == 1 and fragment in str(errors[0])
    assert isinstance(errors[0], ValueError)
    assert behaviour.ignore_shutdown


def test_parse_state_by_number_and_name() -> None:
    assert parse_state("4") is S.CONNECTED
    assert parse_state("init-wait") is S.INIT_WAIT
    assert parse_state("Closing") is S.CLOSING
    with pytest.raises(BehaviourError):
        parse_state("7")


def test_paths() -> None:
    assert behaviour_dirs(5, "vm1", "u-1") == [
        "/sim/behaviour/default", "/sim/behaviour/name/vm1", "/sim/behaviour/uuid/u-1",
        "/sim/behaviour/domain/5"]
    assert behaviour_dirs(5, None, None) == ["/sim/behaviour/default", "/sim/behaviour/domain/5"]
    assert status_path(7) == "/sim/status/7/guest"


def test_seed_entries() -> None:
    entries = seed_entries({"default": {"hang": False, "backend-fail": ["vbd", "vif"]},
                            "name": {"vm-1": {"crash": 2}}, "domain": {"3": {"reboot": 1.5}}})
    assert entries == [
        ("/sim/behaviour/default/backend-fail", "vbd,vif"),
        ("/sim/behaviour/default/hang", "0"),
        ("/sim/behaviour/name/vm-1/crash", "2"),
        ("/sim/behaviour/domain/3/reboot", "1.5"),
    ]


@pytest.mark.parametrize(("doc", "fragment"), [
    ({"everyone": {}}, "unknown behaviour scope"),
    ({"default": {"crash": "x"}}, "seconds"),
    ({"name": {"a/b": {"hang": 1}}}, "not a xenstore node name"),
    ({"name": {"vm1": 3}}, "must be an object"),
    ({"default": 1}, "must be an object"),
])
def test_seed_entries_refuse_bad_documents(doc: dict[str, object], fragment: str) -> None:
    with pytest.raises(BehaviourError, match=fragment):
        seed_entries(doc)


# --- control/shutdown --------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "reason"), [
    ("poweroff", ShutdownReason.POWEROFF), ("halt", ShutdownReason.POWEROFF),
    ("reboot", ShutdownReason.REBOOT), ("suspend", ShutdownReason.SUSPEND),
    ("hibernate", ShutdownReason.POWEROFF), ("s3", None), ("frobnicate", None),
])
def test_requests_are_acknowledged(value: str, reason: ShutdownReason | None) -> None:
    answer = answer_shutdown(value, Behaviour(shutdown_delay=0.1))
    assert answer.ack and answer.reason is reason and answer.delay == 0.1


def test_empty_ignored_and_overridden() -> None:
    assert not answer_shutdown("", Behaviour()).ack
    assert answer_shutdown("poweroff", Behaviour(ignore_shutdown=True)).ack is False
    crash = answer_shutdown("reboot", Behaviour(shutdown_as=ShutdownReason.CRASH))
    assert crash.ack and crash.reason is ShutdownReason.CRASH
    assert answer_shutdown("s3", Behaviour(shutdown_as=ShutdownReason.CRASH)).reason is None


# --- xenbus rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "target", "stop", "expected"), [
    (S.INITIALISING, S.INITIALISED, None, S.INITIALISED),
    (S.INITIALISING, S.INITIALISING, None, None),
    (S.INITIALISING, None, None, None),
    (S.INITIALISING, S.CONNECTED, S.INITIALISED, S.INITIALISED),   # net: no further than stop
    (S.INITIALISED, S.CONNECTED, S.INITIALISED, None),              # reached: stays
    (S.INITIALISING, S.INITIALISED, S.INITIALISING, None),
    (S.CONNECTED, S.CLOSED, S.CONNECTED, None),                     # never closes
    (S.CLOSED, S.INITIALISED, S.CONNECTED, S.INITIALISED),
    (S.CLOSING, S.CLOSED, S.INITIALISED, None),                     # past the stop: stays
])
def test_clamp_state(current: S, target: S | None, stop: S | None, expected: S | None) -> None:
    assert clamp_state(current, target, stop) is expected


@pytest.mark.parametrize("kind", ["vbd", "vif", "vwif", "console"])
def test_frontend_rules_are_total_and_move(kind: str) -> None:
    for fe, be in itertools.product(STATES, [*STATES, None]):
        target = frontend_next(kind, fe, be)
        assert target is None or target != fe
    assert frontend_next(kind, S.CONNECTED, None) is None


def test_frontend_flavours() -> None:
    assert frontend_next("vbd", S.INITIALISING, S.INIT_WAIT) is S.INITIALISED
    assert frontend_next("vbd", S.INITIALISED, S.CONNECTED) is S.CONNECTED
    assert frontend_next("vif", S.INITIALISING, S.INIT_WAIT) is S.CONNECTED
    assert frontend_next("vif", S.CONNECTED, S.CLOSING) is S.CLOSED
    assert frontend_next("console", S.CLOSED, S.INIT_WAIT) is S.INITIALISED
    assert frontend_next("vbd", S.INITIALISING, S.INITIALISING) is None
    assert frontend_next("vbd", S.INITIALISING, S.INIT_WAIT, S.INITIALISING) is None


def test_ring_keys() -> None:
    assert dict(frontend_ring_keys("vif", 3, 0)).keys() >= {"tx-ring-ref", "rx-ring-ref",
                                                            "event-channel"}
    assert dict(frontend_ring_keys("vbd", 3, 51712)).keys() >= {"ring-ref", "event-channel"}
    assert dict(frontend_ring_keys("console", 3, 1)).keys() == {"ring-ref", "port"}


def test_backend_rules_hold_their_invariants() -> None:
    for kind, state, fe, online, hotplug, connected, fail in itertools.product(
            ["vbd", "vif"], [*STATES, None], [*STATES, None], [True, False], [True, False],
            [True, False], [True, False]):
        view = BackendView(kind, state, fe, online, hotplug, connected)
        step = backend_next(view, fail=fail)
        assert isinstance(step, BackendStep)
        if E.CONNECT in step.effects:
            assert hotplug and not fail and step.state is S.CONNECTED
        if E.FAIL in step.effects:
            assert fail and step.state is S.CLOSING
        if E.DISCONNECT in step.effects:
            assert connected
        if state is None or fe is None:
            assert E.UNREGISTER in step.effects
        if step.state is not None:
            assert step.state != state


def test_backend_waits_for_hotplug_and_netfront() -> None:
    assert backend_next(BackendView("vbd", S.INITIALISING, S.INITIALISING)).state is S.INIT_WAIT
    waiting = BackendView("vbd", S.INIT_WAIT, S.INITIALISED, hotplug_done=False)
    assert backend_next(waiting) == BackendStep()
    assert backend_next(BackendView("vif", S.INIT_WAIT, S.INITIALISED)) == BackendStep()
    step = backend_next(BackendView("vif", S.INIT_WAIT, S.CONNECTED))
    assert step == BackendStep(S.CONNECTED, (E.CONNECT,))


def test_backend_closes_and_unregisters_when_offline() -> None:
    closing = BackendView("vbd", S.CLOSING, S.CLOSED, online=False, connected=True)
    assert backend_next(closing) == BackendStep(S.CLOSED, (E.DISCONNECT, E.UNREGISTER))
    still_online = BackendView("vbd", S.CLOSING, S.CLOSED, online=True, connected=True)
    assert backend_next(still_online) == BackendStep(S.CLOSED, (E.DISCONNECT,))
    closed = BackendView("vbd", S.CLOSED, S.CLOSED, online=False)
    assert backend_next(closed) == BackendStep(None, (E.UNREGISTER,))
    gone = BackendView("vif", S.CONNECTED, None, connected=True)
    assert backend_next(gone) == BackendStep(S.CLOSED, (E.DISCONNECT, E.UNREGISTER))
    hung_frontend = BackendView("vbd", S.CLOSING, S.CONNECTED, online=False, connected=True)
    assert backend_next(hung_frontend) == BackendStep()


def test_backend_stop_holds_effects_back() -> None:
    view = BackendView("vbd", S.INIT_WAIT, S.INITIALISED)
    assert backend_next(view, stop=S.INIT_WAIT) == BackendStep()
    view = BackendView("vbd", S.INITIALISING, S.INITIALISING)
    assert backend_next(view, stop=S.INITIALISING) == BackendStep()


def _run_pair(kind: str, fe: S, be: S, *, online: bool = True, fe_stop: S | None = None,
              be_stop: S | None = None, fail: bool = False, connected: bool = False,
              ) -> tuple[S, S, list[E]]:
    """Alternate the two ends until neither moves (what the sim's threads do, without I/O)."""
    effects: list[E] = []
    for _ in range(20):
        moved = False
        step = backend_next(BackendView(kind, be, fe, online, True, connected), fail=fail,
                            stop=be_stop)
        if step.state is not None:
            be, moved = step.state, True
        for effect in step.effects:
            effects.append(effect)
            connected = {E.CONNECT: True, E.DISCONNECT: False}.get(effect, connected)
        if E.UNREGISTER in step.effects:
            return fe, be, effects
        target = frontend_next(kind, fe, be, fe_stop)
        if target is not None:
            fe, moved = target, True
        if not moved:
            return fe, be, effects
    raise AssertionError("the handshake does not settle")


@pytest.mark.parametrize("kind", ["vbd", "tap", "vif", "console"])
def test_handshake_connects_then_closes(kind: str) -> None:
    fe, be, effects = _run_pair(kind, S.INITIALISING, S.INITIALISING)
    assert (fe, be, effects) == (S.CONNECTED, S.CONNECTED, [E.CONNECT])
    fe, be, effects = _run_pair(kind, fe, S.CLOSING, online=False, connected=True)
    assert (fe, be) == (S.CLOSED, S.CLOSED)
    assert effects == [E.DISCONNECT, E.UNREGISTER]


def test_handshake_stops_mid_way_and_fails() -> None:
    assert _run_pair("vbd", S.INITIALISING, S.INITIALISING, fe_stop=S.INITIALISING)[:2] == \
        (S.INITIALISING, S.INIT_WAIT)
    assert _run_pair("vif", S.INITIALISING, S.INITIALISING, fe_stop=S.INITIALISED)[:2] == \
        (S.INITIALISED, S.INIT_WAIT)
    assert _run_pair("vbd", S.INITIALISING, S.INITIALISING, be_stop=S.INIT_WAIT)[:2] == \
        (S.INITIALISED, S.INIT_WAIT)
    fe, be, effects = _run_pair("vbd", S.INITIALISING, S.INITIALISING, fail=True)
    assert (fe, be, effects) == (S.CLOSED, S.CLOSED, [E.FAIL])
