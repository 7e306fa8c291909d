"""Why an actor stopped: the exit reasons a supervisor reacts to.

Every actor built on :class:`actors.Actor` ends with exactly one exit reason, reported once to
each of its monitors. The reasons map onto Erlang/OTP's: ``Normal`` (the actor stopped itself or
was stopped by a plain ``stop()``), ``Shutdown`` (its supervisor stopped it), and the abnormal
ones: ``Crashed`` (an exception escaped a handler under ``tell``, or ``on_stop`` failed),
``StartFailed`` (``on_start`` raised, which pykka does not report through ``on_failure``),
``Killed`` (it ignored a graceful stop and was forced), ``ThreadDied`` (its thread ended without
reporting, seen by the supervisor's liveness check) and ``Escalated`` (a supervisor that went past
its restart intensity).

Reasons are immutable values and msgpack-friendly through :func:`reason_to_dict`.
"""

from __future__ import annotations

import traceback as _traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "Crashed",
    "Escalated",
    "ExitReason",
    "Killed",
    "Normal",
    "Shutdown",
    "StartFailed",
    "ThreadDied",
    "is_abnormal",
    "reason_from_exception",
    "reason_to_dict",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


@dataclass(frozen=True, slots=True)
class Normal:
    """The actor stopped because it was asked to (``stop()``) or stopped itself."""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """The actor was stopped by its supervisor (strategy, tree stop or terminate request)."""


@dataclass(frozen=True, slots=True)
class Crashed:
    """An exception escaped: ``error`` is ``Type: message``, ``traceback`` the formatted text."""

    error: str
    traceback: str = ""
    where: str = "handler"


@dataclass(frozen=True, slots=True)
class StartFailed:
    """``on_start`` raised (or did not finish within the start timeout)."""

    error: str
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class Killed:
    """The actor did not stop within its shutdown timeout and was forced out."""

    after: float = 0.0


@dataclass(frozen=True, slots=True)
class ThreadDied:
    """The actor's thread ended without reporting an exit reason."""


@dataclass(frozen=True, slots=True)
class Escalated:
    """A supervisor went past its restart intensity, stopped its children and gave up."""

    restarts: int
    period: float


ExitReason = Normal | Shutdown | Crashed | StartFailed | Killed | ThreadDied | Escalated


def is_abnormal(reason: ExitReason) -> bool:
    """True for every reason except ``Normal`` and ``Shutdown`` (OTP's definition)."""
    return not isinstance(reason, Normal | Shutdown)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def reason_from_exception(
    exc: BaseException, tb: TracebackType | None, *, where: str = "handler"
) -> Crashed:
    """Build a :class:`Crashed` reason from an exception and its traceback."""
    text = "".join(_traceback.format_exception(type(exc), exc, tb))
    return Crashed(error=_describe(exc), traceback=text, where=where)


def reason_to_dict(reason: ExitReason) -> dict[str, Any]:
    """A msgpack-able description: ``{"reason": "crashed", "error": ..., ...}``."""
    out: dict[str, Any] = {"reason": type(reason).__name__.lower()}
    for name in getattr(reason, "__dataclass_fields__", {}):
        out[name] = getattr(reason, name)
    return out
