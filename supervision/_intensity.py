"""Restart intensity and backoff: pure functions of restart times and ``time.monotonic``.

A supervisor keeps the times of its recent restarts. :func:`add_restart` adds one at ``now``,
drops those older than ``period`` seconds, and says whether the count now *exceeds*
``intensity`` (OTP: intensity 1 means a second restart within the period escalates).
"""

from __future__ import annotations

from supervision._spec import Backoff

__all__ = ["add_restart", "backoff_delay", "restarts_in_window"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


def restarts_in_window(restarts: tuple[float, ...], now: float, period: float) -> tuple[float, ...]:
    """The restart times within ``period`` seconds before ``now`` (inclusive of the edge).

    ``restarts`` are in time order, as :func:`add_restart` keeps them: the window is their
    newest part, found from the oldest end (a supervisor allowed many restarts in a long
    period no longer looks at every one of them at each restart)."""
    for index, t in enumerate(restarts):
        if now - t <= period:
            return restarts[index:]
    return ()


def add_restart(
    restarts: tuple[float, ...], now: float, intensity: int, period: float
) -> tuple[tuple[float, ...], bool]:
    """Record a restart at ``now`` (not before the last one); return the new window, in time
    order, and whether intensity is exceeded."""
    window = (*restarts_in_window(restarts, now, period), now)
    return window, len(window) > intensity


def backoff_delay(backoff: Backoff | None, restarts_in_period: int) -> float:
    """Delay before the ``restarts_in_period``-th restart of the window (0 without backoff)."""
    if backoff is None or restarts_in_period <= 0:
        return 0.0
    delay = backoff.initial * backoff.factor ** (restarts_in_period - 1)
    return min(backoff.maximum, delay)
