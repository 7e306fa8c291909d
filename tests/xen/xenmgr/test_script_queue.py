"""The testing interface's script queue: FIFO, waiting callers served in order, bounds."""

from __future__ import annotations

import time
from typing import Any

import pytest

from rpc.dbus import DEFERRED
from tests.helpers import wait_until
from xen.xenmgr._errors import XenmgrError
from xen.xenmgr._testing import ScriptQueue


class Answer:
    """Records how a deferred call was answered (stands for ``rpc.dbus.Call``)."""

    def __init__(self) -> None:
        self.answered = False
        self.value: Any = None
        self.error: BaseException | None = None

    def reply(self, value: Any = None) -> None:
        assert not self.answered
        self.answered, self.value = True, value

    def fail(self, exc: BaseException) -> None:
        assert not self.answered
        self.answered, self.error = True, exc


def test_waiting_callers_are_served_first_come_first_served() -> None:
    q = ScriptQueue(wait=10)
    first, second = Answer(), Answer()
    assert q.take(first) is DEFERRED and q.take(second) is DEFERRED  # type: ignore[arg-type]
    q.put("a")
    q.put("b")
    q.put("c")
    assert (first.value, second.value) == ("a", "b")
    assert len(q) == 1 and q.take(Answer()) == "c"  # type: ignore[arg-type]


def test_a_wait_is_bounded_and_loses_nothing() -> None:
    q = ScriptQueue(wait=0.2)
    late = Answer()
    start = time.monotonic()
    assert q.take(late) is DEFERRED  # type: ignore[arg-type]
    wait_until(lambda: late.answered, timeout=5)
    assert time.monotonic() - start >= 0.2
    assert isinstance(late.error, XenmgrError) and "within 0.2 s" in str(late.error)
    q.put("kept")  # nobody waits any more: kept for the next caller
    assert q.take(Answer()) == "kept"  # type: ignore[arg-type]


def test_bounds_and_close() -> None:
    q = ScriptQueue(wait=10, max_waiters=1, max_scripts=1)
    waiting = Answer()
    q.take(waiting)  # type: ignore[arg-type]
    with pytest.raises(XenmgrError, match="too many callers"):
        q.take(Answer())  # type: ignore[arg-type]
    q.close()
    assert isinstance(waiting.error, XenmgrError) and "stopping" in str(waiting.error)
    q.put("one")
    with pytest.raises(XenmgrError, match="queue is full"):
        q.put("two")
