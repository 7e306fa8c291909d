"""Timers for actors: one scheduler thread shared by the process.

``schedule(delay, callback, period=None)`` runs ``callback`` on the scheduler thread after
``delay`` seconds, then every ``period`` seconds if given, until the returned :class:`Timer` is
cancelled. Callbacks must be quick and must not block: actors use them only to ``tell``
themselves a message, so the work happens in the actor's own thread, in mailbox order.

The scheduler thread is started on the first schedule and ends by itself as soon as no timer is
pending, so a process (or a test) whose actors cancelled their timers has no timer thread left.
A callback that raises is logged and, if periodic, cancelled. Timing is best effort: a callback
runs no earlier than its deadline; a periodic timer that falls behind skips the missed ticks
instead of bursting.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Timer", "pending_timers", "schedule"]

logger = logging.getLogger(__name__)


class Timer:
    """Handle of one scheduled callback; :meth:`cancel` is idempotent and thread-safe."""

    __slots__ = ("_cancelled", "callback", "deadline", "period")

    def __init__(self, deadline: float, callback: Callable[[], None], period: float | None):
        self.deadline = deadline
        self.callback = callback
        self.period = period
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called (or a periodic callback raised)."""
        return self._cancelled

    def cancel(self) -> None:
        """Stop the timer; a callback already running finishes."""
        self._cancelled = True
        _SCHEDULER.poke()


class _Scheduler:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, timer: Timer) -> None:
        with self._cond:
            heapq.heappush(self._heap, (timer.deadline, next(self._seq), timer))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="actor-timers", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def poke(self) -> None:
        with self._cond:
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return sum(1 for _, _, t in self._heap if not t.cancelled)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._thread = None
                        return
                    deadline, _, timer = self._heap[0]
                    now = time.monotonic()
                    if deadline <= now:
                        heapq.heappop(self._heap)
                        break
                    self._cond.wait(deadline - now)
            self._fire(timer)

    def _fire(self, timer: Timer) -> None:
        if timer.cancelled:
            return
        try:
            timer.callback()
        except Exception:
            logger.exception("timer callback %r failed; timer cancelled", timer.callback)
            timer._cancelled = True
            return
        if timer.period is not None and not timer.cancelled:
            now = time.monotonic()
            nxt = timer.deadline + timer.period
            if nxt <= now:  # fell behind: skip missed ticks
                nxt = now + timer.period
            timer.deadline = nxt
            self.add(timer)


_SCHEDULER = _Scheduler()


def schedule(delay: float, callback: Callable[[], None], period: float | None = None) -> Timer:
    """Run ``callback`` after ``delay`` seconds (then every ``period`` seconds if given)."""
    if delay < 0:
        raise ValueError(f"timer delay must be >= 0, got {delay}")
    if period is not None and period <= 0:
        raise ValueError(f"timer period must be > 0, got {period}")
    timer = Timer(time.monotonic() + delay, callback, period)
    _SCHEDULER.add(timer)
    return timer


def pending_timers() -> int:
    """How many timers are scheduled and not cancelled (for tests and inspection)."""
    return _SCHEDULER.pending()
