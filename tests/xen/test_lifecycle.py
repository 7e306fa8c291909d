"""The VM lifecycle table: every (state, event) pair is either in the table or refused."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from xen.xenvm import _lifecycle as lc
from xen.xenvm._config_values import Action
from xen.xenvm._lifecycle import (
    TRANSITIONS,
    DeathCause,
    IllegalTransition,
    State,
    next_state,
    reaction,
    render_table,
)

ROOT = Path(__file__).resolve().parents[2]
EVENTS = sorted({e for row in TRANSITIONS.values() for e in row}, key=lambda e: e.__name__)


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.__name__)
def test_every_pair_is_in_the_table_or_refused(state: State, event: type) -> None:
    if event in TRANSITIONS[state]:
        assert next_state(state, event()) is TRANSITIONS[state][event]
    else:
        with pytest.raises(IllegalTransition, match=f"not allowed in state {state.value}"):
            next_state(state, event())


def test_key_paths() -> None:
    s = State.SHUTDOWN
    for event in (lc.Start(), lc.DomainBuilt(), lc.DevicesAdded(), lc.Unpaused()):
        s = next_state(s, event)
    assert s is State.RUNNING
    assert next_state(State.RUNNING, lc.Shutdown()) is State.SHUTTING_DOWN
    assert next_state(State.SHUTTING_DOWN, lc.DomainReleased()) is State.SHUTDOWN
    assert next_state(State.SHUTTING_DOWN, lc.ShutdownFailed()) is State.RUNNING
    assert next_state(State.RUNNING, lc.DomainRebooted()) is State.REBOOTED
    assert next_state(State.REBOOTED, lc.Start()) is State.CREATING_DOMAIN
    with pytest.raises(IllegalTransition):
        next_state(State.SHUTDOWN, lc.Pause())
    with pytest.raises(IllegalTransition):
        next_state(State.CREATING_DOMAIN, lc.Start())


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        (DeathCause.POWEROFF, (Action.DESTROY, lc.DomainReleased, False)),
        (DeathCause.REBOOT, (Action.RESTART, lc.DomainRebooted, True)),
        (DeathCause.CRASH, (Action.PRESERVE, lc.DomainPreserved, False)),
        (DeathCause.WATCHDOG, (Action.PRESERVE, lc.DomainPreserved, False)),
        (DeathCause.DESTROYED, (None, lc.DomainReleased, False)),
        (DeathCause.SUSPEND, (None, lc.DomainReleased, False)),
    ],
)
def test_reaction(cause: DeathCause, expected: tuple[object, type, bool]) -> None:
    got = reaction(cause, Action.DESTROY, Action.RESTART, Action.PRESERVE)
    assert (got.action, type(got.event), got.restart) == expected


def test_docs_table_is_generated_from_the_code() -> None:
    doc = (ROOT / "docs" / "xenvm.md").read_text()
    assert render_table() in doc, "docs/xenvm.md is out of date: paste render_table()"


def test_no_state_comparisons_outside_the_lifecycle_module() -> None:
    """STYLE point 4: only the table decides transitions."""
    pattern = re.compile(r"(==|!=|\bis|\bis not|\bin)\s*\(?State\.|State\.\w+\s*(==|!=)")
    for path in (ROOT / "xen").rglob("*.py"):
        if path.name == "_lifecycle.py":
            continue
        text = path.read_text()
        ast.parse(text)
        for n, line in enumerate(text.splitlines(), 1):
            assert not pattern.search(line), f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
