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

import sys
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
    "format_traceback",
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


_FRAME_CACHE_SIZE = 4096
_frame_text: dict[tuple[Any, int], str] = {}


def format_traceback(exc: BaseException, tb: TracebackType | None) -> str:
    """``"".join(traceback.format_exception(type(exc), exc, tb))``, with each frame's text
    (file, line, source, position markers) kept per code position, so the crash of an actor
    does not read and parse the same source lines again at every restart.

    The cached text is the standard library's for that frame; chained exceptions, exception
    groups, a ``sys.tracebacklimit`` and runs of one repeated frame (recursion) are formatted
    by the standard library in full.
    """
    if (exc.__cause__ is not None
            or (exc.__context__ is not None and not exc.__suppress_context__)
            or isinstance(exc, BaseExceptionGroup) or hasattr(sys, "tracebacklimit")):
        return "".join(_traceback.format_exception(type(exc), exc, tb))
    parts: list[str] = []
    previous: tuple[str, int, str] | None = None
    entry = tb
    while entry is not None:
        code = entry.tb_frame.f_code
        where = (code.co_filename, entry.tb_lineno, code.co_name)
        if where == previous:  # the standard library folds repeats: let it
            return "".join(_traceback.format_exception(type(exc), exc, tb))
        previous = where
        key = (code, entry.tb_lasti)
        text = _frame_text.get(key)
        if text is None:
            text = "".join(_traceback.extract_tb(entry, limit=1).format())
            if len(_frame_text) >= _FRAME_CACHE_SIZE:
                _frame_text.clear()
            _frame_text[key] = text
        parts.append(text)
        entry = entry.tb_next
    head = ["Traceback (most recent call last):\n"] if parts else []
    return "".join([*head, *parts, _last_line(exc)])


def _last_line(exc: BaseException) -> str:
    """``"".join(traceback.format_exception_only(type(exc), exc))``: for the common case (no
    syntax error, no notes) the same text built directly, without a ``TracebackException``."""
    cls = type(exc)
    if issubclass(cls, SyntaxError) or getattr(exc, "__notes__", None) is not None:
        return "".join(_traceback.format_exception_only(cls, exc))
    name = cls.__qualname__
    module = cls.__module__
    if module not in ("__main__", "builtins"):
        name = f"{module if isinstance(module, str) else '<unknown>'}.{name}"
    try:
        text = str(exc)
    except Exception:
        text = "<exception str() failed>"
    return f"{name}: {text}\n" if text else f"{name}\n"


def reason_from_exception(
    exc: BaseException, tb: TracebackType | None, *, where: str = "handler"
) -> Crashed:
    """Build a :class:`Crashed` reason from an exception and its traceback."""
    return Crashed(error=_describe(exc), traceback=format_traceback(exc, tb), where=where)


def reason_to_dict(reason: ExitReason) -> dict[str, Any]:
    """A msgpack-able description: ``{"reason": "crashed", "error": ..., ...}``."""
    out: dict[str, Any] = {"reason": type(reason).__name__.lower()}
    for name in getattr(reason, "__dataclass_fields__", {}):
        out[name] = getattr(reason, name)
    return out
