"""Restart intensity and backoff, with a fake clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from supervision import Backoff, add_restart, backoff_delay, restarts_in_window


def test_otp_default_one_in_five_seconds() -> None:
    window, exceeded = add_restart((), now=100.0, intensity=1, period=5)
    assert window == (100.0,) and not exceeded
    window, exceeded = add_restart(window, now=104.0, intensity=1, period=5)
    assert exceeded  # a second restart within 5 s
    window, exceeded = add_restart((100.0,), now=105.5, intensity=1, period=5)
    assert window == (105.5,) and not exceeded  # the first one left the window


def test_intensity_zero_escalates_at_first_restart() -> None:
    assert add_restart((), 0.0, 0, 5)[1]


def test_window_edges_are_inclusive() -> None:
    assert restarts_in_window((0.0, 1.0, 5.0), now=5.0, period=5.0) == (0.0, 1.0, 5.0)
    assert restarts_in_window((0.0, 1.0, 5.0), now=5.5, period=5.0) == (1.0, 5.0)


def test_backoff_sequence_and_cap() -> None:
    b = Backoff(initial=0.1, maximum=1.0, factor=2.0)
    assert [backoff_delay(b, n) for n in range(6)] == [0.0, 0.1, 0.2, 0.4, 0.8, 1.0]
    assert backoff_delay(None, 5) == 0.0


@given(
    times=st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=40).map(sorted),
    intensity=st.integers(0, 10),
    period=st.floats(0.1, 100),
)
def test_exceeded_iff_more_than_intensity_in_period(
    times: list[float], intensity: int, period: float
) -> None:
    window: tuple[float, ...] = ()
    for n, now in enumerate(times):
        window, exceeded = add_restart(window, now, intensity, period)
        recent = [t for t in times[: n + 1] if now - t <= period]
        assert exceeded == (len(recent) > intensity)
        assert len(window) == len(recent)
        assert all(now - t <= period for t in window)


@given(st.integers(1, 30), st.floats(0.001, 1), st.floats(1, 60), st.floats(1, 4))
def test_backoff_is_monotonic_and_bounded(n: int, initial: float, maximum: float,
                                          factor: float) -> None:
    b = Backoff(initial, max(initial, maximum), factor)
    assert backoff_delay(b, n) <= backoff_delay(b, n + 1) <= b.maximum


@given(st.lists(st.floats(0, 1e6, allow_nan=False), max_size=40), st.floats(0, 1e6),
       st.floats(0, 1e4))
def test_the_window_is_the_filter_of_times_in_order(times: list[float], now: float,
                                                      period: float) -> None:
    """Found from the oldest end, the window is exactly the times within the period."""
    restarts = tuple(sorted(t for t in times if t <= now))
    assert restarts_in_window(restarts, now, period) == tuple(
        t for t in restarts if now - t <= period)
