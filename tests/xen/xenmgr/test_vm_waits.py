"""Waiting on VM state notifications (xen.xenmgr._vm_waits): woken by a notification, bounded,
one last check at the bound."""

from __future__ import annotations

import threading
import time

from xen.xenmgr._states import InternalState
from xen.xenmgr._vm_waits import StateChanges


def test_a_notification_wakes_the_waiter_long_before_its_bound() -> None:
    states = StateChanges()
    threading.Timer(0.1, states.changed, ("u1", InternalState.SHUTDOWN)).start()
    began = time.monotonic()
    assert states.wait_until(lambda: states.last("u1") is InternalState.SHUTDOWN, 60)
    assert time.monotonic() - began < 30
    assert states.last("u1") is InternalState.SHUTDOWN


def test_the_bound_ends_the_wait_with_one_last_check() -> None:
    states = StateChanges()
    assert not states.wait_until(lambda: False, 0.05)
    calls: list[int] = []

    def late() -> bool:  # false until the bound has passed (a change nobody notified)
        calls.append(1)
        return len(calls) > 1
    assert states.wait_until(late, 0.05)


def test_the_latest_state_wins_and_a_stopped_monitor_is_forgotten() -> None:
    states = StateChanges()
    states.changed("u1", InternalState.SHUTDOWN)
    states.changed("u1", InternalState.RUNNING)
    assert states.last("u1") is InternalState.RUNNING
    states.forget("u1")
    assert states.last("u1") is None
