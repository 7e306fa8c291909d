"""A bounded message trace of one actor (like Erlang's ``sys:trace`` with recon's limits).

A trace records each message the actor handles (time, type, short repr, duration, outcome) in
a ring buffer and switches itself off after ``max_messages`` messages or ``max_seconds``
seconds, whichever comes first, so it is safe to leave on by mistake.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["MessageTrace", "TraceEntry", "Traced"]

_REPR_LIMIT = 200


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One handled message."""

    at: float
    message_type: str
    message: str
    duration: float
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        """A msgpack-able dict of the fields."""
        return asdict(self)


class MessageTrace:
    """Records up to ``max_messages`` entries during at most ``max_seconds`` seconds."""

    def __init__(self, max_messages: int = 100, max_seconds: float = 60.0) -> None:
        if max_messages <= 0 or max_seconds <= 0:
            raise ValueError("a trace needs max_messages > 0 and max_seconds > 0")
        self.max_messages = max_messages
        self.deadline = time.monotonic() + max_seconds
        self._entries: deque[TraceEntry] = deque(maxlen=max_messages)
        self._count = 0
        self._lock = threading.Lock()
        self.finished = threading.Event()

    def record(self, message: Any, started: float, outcome: str) -> bool:
        """Add one entry; return False once the trace is finished (the actor drops it)."""
        now = time.monotonic()
        if now > self.deadline or self._count >= self.max_messages:
            self.finished.set()
            return False
        text = repr(message)
        if len(text) > _REPR_LIMIT:
            text = text[: _REPR_LIMIT - 3] + "..."
        entry = TraceEntry(time.time(), type(message).__name__, text, now - started, outcome)
        with self._lock:
            self._entries.append(entry)
            self._count += 1
        if self._count >= self.max_messages:
            self.finished.set()
            return False
        return True

    def entries(self) -> list[TraceEntry]:
        """The entries recorded so far, oldest first."""
        with self._lock:
            return list(self._entries)

    @property
    def active(self) -> bool:
        """False once the message or time limit was reached."""
        if time.monotonic() > self.deadline:
            self.finished.set()
        return not self.finished.is_set()


class Traced:
    """An actor's trace controls (:class:`actors.Actor` has them); its loop records into
    ``_trace`` while one runs."""

    _trace: MessageTrace | None
    _last_trace: MessageTrace | None

    def start_trace(self, max_messages: int = 100, max_seconds: float = 60.0) -> MessageTrace:
        """Record the next messages handled, up to the limits; returns the trace."""
        trace = MessageTrace(max_messages, max_seconds)
        self._last_trace = trace
        self._trace = trace
        return trace

    def stop_trace(self) -> MessageTrace | None:
        """Stop tracing now; returns the last trace (finished or not)."""
        self._trace = None
        if self._last_trace is not None:
            self._last_trace.finished.set()
        return self._last_trace

    @property
    def last_trace(self) -> MessageTrace | None:
        """The most recent trace, finished or not."""
        return self._last_trace
