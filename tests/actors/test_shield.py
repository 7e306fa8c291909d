"""A kill waits for the end of an uninterruptible section, and is delivered there."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

import actors
from actors import Actor, handles, uninterruptible
from actors._shield import current_guard
from tests.helpers import wait_until


@dataclass(frozen=True)
class Work:
    pass


class Worker(Actor):
    """Takes a lock inside a section, waits for the test, releases it; then spins."""

    def __init__(self, lock: threading.Lock, inside: threading.Event, go: threading.Event,
                 steps: list[str]) -> None:
        super().__init__()
        self.lock, self.inside, self.go, self.steps = lock, inside, go, steps

    @handles(Work)
    def _work(self, _msg: Work) -> None:
        with uninterruptible():
            self.lock.acquire()
            self.inside.set()
            while not self.go.wait(0.001):  # Python code the kill would otherwise cut
                pass
            self.lock.release()
            self.steps.append("section done")
        self.steps.append("after the section")  # never: the kill comes first
        with uninterruptible():
            self.steps.append("second section")


def test_a_kill_inside_a_section_waits_for_its_end() -> None:
    lock, inside, go = threading.Lock(), threading.Event(), threading.Event()
    steps: list[str] = []
    ref = Worker.start(lock, inside, go, steps)
    ref.tell(Work())
    assert inside.wait(5)
    actor = actors.actor_of(ref)
    actor.kill()
    assert actor.thread_alive  # still in its section
    go.set()
    wait_until(lambda: not actor.thread_alive, timeout=5)
    assert steps == ["section done"]  # finished the section, nothing after it
    assert lock.acquire(timeout=1)  # and left the lock free


class Stop(BaseException):
    pass


def test_the_kill_is_raised_at_the_outermost_end_and_at_the_next_entry() -> None:
    guard = current_guard()
    steps: list[str] = []
    try:
        with pytest.raises(Stop), uninterruptible():
            with uninterruptible():
                guard.kill = Stop  # as interrupt() does while the thread is inside
                steps.append("inner")
            steps.append("outer")  # the inner end did not raise
        with pytest.raises(Stop), uninterruptible():
            steps.append("never")
        assert guard.depth == 0
    finally:
        guard.kill = None
    assert steps == ["inner", "outer"]


def test_a_shielded_call_keeps_the_sections_rules() -> None:
    """`shielded` (the section written out): a kill set inside is raised at the outermost
    end, an error passes through without it, a call after the kill raises on entry."""
    guard = current_guard()
    steps: list[str] = []

    @actors.shielded
    def inner() -> str:
        guard.kill = Stop  # as interrupt() does while the thread is inside
        steps.append("inner")
        return "value"

    @actors.shielded
    def outer() -> str:
        result = inner()  # the inner end does not raise
        steps.append("outer")
        return result

    @actors.shielded
    def failing() -> None:
        raise ValueError("the call's own error")

    try:
        with pytest.raises(Stop):
            outer()
        assert guard.depth == 0
        with pytest.raises(Stop):
            failing()  # entered after the kill: raises at once
        guard.kill = None
        with pytest.raises(ValueError):
            failing()
        assert guard.depth == 0
    finally:
        guard.kill = None
    assert steps == ["inner", "outer"]
