"""Which children to restart: pure functions of the strategy, restart types and exit reason.

* :func:`should_restart` is OTP's matrix: ``permanent`` always; ``transient`` only after an
  abnormal exit (anything but ``Normal`` and ``Shutdown``); ``temporary`` never.
* :func:`restart_plan` gives, for a failed child, which running siblings to stop (in reverse
  start order) and which children to start again (in start order): one_for_one and
  simple_one_for_one touch only the failed child; one_for_all all of them; rest_for_one the
  failed child and those started after it. Temporary siblings taken down are not restarted
  (OTP: they are removed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from actors import ExitReason, is_abnormal
from supervision._spec import Restart, Strategy

__all__ = ["RestartPlan", "restart_plan", "should_restart"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


def should_restart(restart: Restart, reason: ExitReason) -> bool:
    """OTP's restart matrix."""
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return is_abnormal(reason)
    return False


@dataclass(frozen=True, slots=True)
class RestartPlan:
    """``stop`` in the order to stop them; ``start`` in the order to start them."""

    stop: tuple[str, ...]
    start: tuple[str, ...]
    forget: tuple[str, ...]


def restart_plan(
    strategy: Strategy,
    order: Sequence[str],
    restart_types: dict[str, Restart],
    failed: str,
) -> RestartPlan:
    """Plan the restart after ``failed`` exited and must be restarted.

    ``order`` is the children's start order (the failed one included); siblings listed are
    assumed running. Temporary siblings that are stopped go to ``forget``.
    """
    if strategy in (Strategy.ONE_FOR_ONE, Strategy.SIMPLE_ONE_FOR_ONE):
        return RestartPlan((), (failed,), ())
    if failed not in order:
        raise ValueError(f"unknown child {failed!r}")
    if strategy is Strategy.ONE_FOR_ALL:
        affected = list(order)
    else:  # REST_FOR_ONE
        affected = list(order[order.index(failed):])
    siblings = [c for c in affected if c != failed]
    stop = tuple(reversed(siblings))
    forget = tuple(c for c in siblings if restart_types[c] is Restart.TEMPORARY)
    start = tuple(c for c in affected if c == failed or c not in forget)
    return RestartPlan(stop, start, forget)
