"""OTP's restart matrix and the per-strategy restart plans (pure)."""

from __future__ import annotations

import pytest

from actors import Crashed, Escalated, Killed, Normal, Shutdown, StartFailed, ThreadDied
from supervision import Restart, Strategy, restart_plan, should_restart

ABNORMAL = [Crashed("x"), StartFailed("x"), Killed(1.0), ThreadDied(), Escalated(2, 5.0)]


@pytest.mark.parametrize("reason", [Normal(), Shutdown(), *ABNORMAL])
def test_restart_matrix(reason: object) -> None:
    abnormal = not isinstance(reason, Normal | Shutdown)
    assert should_restart(Restart.PERMANENT, reason) is True  # type: ignore[arg-type]
    assert should_restart(Restart.TRANSIENT, reason) is abnormal  # type: ignore[arg-type]
    assert should_restart(Restart.TEMPORARY, reason) is False  # type: ignore[arg-type]


ORDER = ["a", "b", "c", "d"]
PERM = dict.fromkeys(ORDER, Restart.PERMANENT)


def test_one_for_one_and_simple() -> None:
    for strategy in (Strategy.ONE_FOR_ONE, Strategy.SIMPLE_ONE_FOR_ONE):
        plan = restart_plan(strategy, ORDER, PERM, "b")
        assert (plan.stop, plan.start, plan.forget) == ((), ("b",), ())


def test_one_for_all() -> None:
    plan = restart_plan(Strategy.ONE_FOR_ALL, ORDER, PERM, "b")
    assert plan.stop == ("d", "c", "a")
    assert plan.start == ("a", "b", "c", "d")


def test_rest_for_one() -> None:
    plan = restart_plan(Strategy.REST_FOR_ONE, ORDER, PERM, "b")
    assert plan.stop == ("d", "c") and plan.start == ("b", "c", "d")
    last = restart_plan(Strategy.REST_FOR_ONE, ORDER, PERM, "d")
    assert last.stop == () and last.start == ("d",)


def test_temporary_siblings_are_forgotten() -> None:
    types = {**PERM, "c": Restart.TEMPORARY}
    plan = restart_plan(Strategy.ONE_FOR_ALL, ORDER, types, "a")
    assert "c" in plan.stop and plan.forget == ("c",) and "c" not in plan.start


def test_unknown_child() -> None:
    with pytest.raises(ValueError):
        restart_plan(Strategy.ONE_FOR_ALL, ORDER, PERM, "zz")
