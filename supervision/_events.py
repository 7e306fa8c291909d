"""The supervision event log: what happened in the tree, in order, with timestamps.

Kinds: ``started``, ``start_failed``, ``exited`` (normal/shutdown exits), ``crashed`` (abnormal
exits, with reason and traceback), ``restarting`` (with the delay when backing off),
``restarted``, ``escalated``, ``stopped``, ``killed``, ``added`` and ``removed`` (dynamic
children). The log is a bounded ring buffer shared by a whole tree; each event has a sequence
number so a reader can follow it (:meth:`EventLog.wait_since`) without missing or repeating
events, as long as it keeps up with the buffer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["EventLog", "SupervisionEvent"]


@dataclass(frozen=True, slots=True)
class SupervisionEvent:
    """One event: ``path`` is the child's name in the tree (``/xen/xenstore``)."""

    seq: int
    at: float
    kind: str
    path: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A msgpack-able dict."""
        return asdict(self)

    def __str__(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.at))
        extra = " ".join(f"{k}={v}" for k, v in self.detail.items() if k != "traceback")
        return f"{stamp}.{int(self.at * 1000) % 1000:03d} {self.kind:<11} {self.path} {extra}"


class EventLog:
    """A bounded, thread-safe, followable log of :class:`SupervisionEvent`."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._events: deque[SupervisionEvent] = deque(maxlen=capacity)
        self._cond = threading.Condition()
        self._seq = 0

    def append(self, kind: str, path: str, **detail: Any) -> SupervisionEvent:
        """Add an event now; returns it."""
        with self._cond:
            self._seq += 1
            event = SupervisionEvent(self._seq, time.time(), kind, path, detail)
            self._events.append(event)
            self._cond.notify_all()
        return event

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest event (0 when empty)."""
        return self._seq

    def tail(self, n: int = 50, *, path_prefix: str = "") -> list[SupervisionEvent]:
        """The last ``n`` events, oldest first, optionally under ``path_prefix``."""
        with self._cond:
            events = [e for e in self._events if e.path.startswith(path_prefix)]
        return events[-n:] if n > 0 else []

    def since(self, seq: int) -> list[SupervisionEvent]:
        """Events with a sequence number above ``seq``, oldest first."""
        with self._cond:
            return self._newer(seq)

    def wait_since(self, seq: int, timeout: float) -> list[SupervisionEvent]:
        """Like :meth:`since`, but wait up to ``timeout`` s for at least one event."""
        with self._cond:
            if self._seq <= seq:
                self._cond.wait_for(lambda: self._seq > seq, timeout)
            return self._newer(seq)

    def _newer(self, seq: int) -> list[SupervisionEvent]:
        """The events above ``seq`` (the lock held): read from the newest end, as the buffer
        is in sequence order, so a follower that keeps up pays for the new events only."""
        newer: list[SupervisionEvent] = []
        for event in reversed(self._events):
            if event.seq <= seq:
                break
            newer.append(event)
        newer.reverse()
        return newer

    def wait_for(self, predicate: Any, timeout: float, since: int = 0) -> SupervisionEvent | None:
        """Wait up to ``timeout`` s for an event after ``since`` matching ``predicate``."""
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            remaining = deadline - time.monotonic()
            for event in self.wait_since(seen, max(0.0, remaining)):
                seen = event.seq
                if predicate(event):
                    return event
            if remaining <= 0:
                return None
