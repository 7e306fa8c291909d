"""check_childspecs: each invalid field and each bad combination, without starting anything."""

from __future__ import annotations

import pytest

from supervision import (
    INFINITY,
    ChildKind,
    ChildSpec,
    Restart,
    SupFlags,
    check_childspecs,
    start_actor,
)
from tests.supervision.workers import Worker

GOOD = ChildSpec("w", start_actor(Worker))


def tags(specs: list[ChildSpec], flags: SupFlags | None = None) -> list[str]:
    return [e.tag for e in check_childspecs(specs, flags)]


def test_valid_specs_and_defaults() -> None:
    assert check_childspecs([GOOD], SupFlags()) == []
    assert GOOD.restart is Restart.PERMANENT and GOOD.shutdown_timeout == 5.0
    sup = ChildSpec("s", start_actor(Worker), kind=ChildKind.SUPERVISOR)
    assert sup.shutdown_timeout == INFINITY
    flags = SupFlags()
    assert (flags.intensity, flags.period) == (1, 5.0)


@pytest.mark.parametrize(
    ("spec", "tag"),
    [
        (ChildSpec("", start_actor(Worker)), "bad_id"),
        (ChildSpec("a/b", start_actor(Worker)), "bad_id"),
        (ChildSpec("x", "not callable"), "bad_start"),  # type: ignore[arg-type]
        (ChildSpec("x", start_actor(Worker), restart="permanent"), "bad_restart"),  # type: ignore[arg-type]
        (ChildSpec("x", start_actor(Worker), kind="worker"), "bad_kind"),  # type: ignore[arg-type]
        (ChildSpec("x", start_actor(Worker), mode="resume"), "bad_mode"),  # type: ignore[arg-type]
        (ChildSpec("x", start_actor(Worker), shutdown=-1), "bad_shutdown"),
        (ChildSpec("x", start_actor(Worker), start_timeout=0), "bad_start_timeout"),
        (ChildSpec("x", start_actor(Worker), start_timeout=INFINITY), "bad_start_timeout"),
    ],
)
def test_each_invalid_field(spec: ChildSpec, tag: str) -> None:
    assert tags([spec]) == [tag]


@pytest.mark.parametrize(
    ("flags", "tag"),
    [
        (SupFlags(intensity=-1), "bad_intensity"),
        (SupFlags(intensity=True), "bad_intensity"),
        (SupFlags(period=0), "bad_period"),
        (SupFlags(strategy="one_for_one"), "bad_strategy"),  # type: ignore[arg-type]
        (SupFlags(health_interval=-1), "bad_health_interval"),
    ],
)
def test_each_invalid_flag(flags: SupFlags, tag: str) -> None:
    assert tags([GOOD], flags) == [tag]


def test_combinations() -> None:
    assert tags([GOOD, GOOD]) == ["duplicate_id"]
    from supervision import Strategy
    simple = SupFlags(Strategy.SIMPLE_ONE_FOR_ONE)
    assert tags([], simple) == ["simple_one_for_one_template"]
    assert tags([GOOD, ChildSpec("v", start_actor(Worker))], simple) == \
        ["simple_one_for_one_template"]
    assert tags(["junk"]) == ["not_a_spec"]  # type: ignore[list-item]
    errors = check_childspecs([ChildSpec("", "x")])  # type: ignore[arg-type]
    assert len(errors) == 2 and "child ''" in str(errors[0])
