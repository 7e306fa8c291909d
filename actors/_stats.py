"""Per-actor statistics, read from any thread without going through the actor's mailbox.

A stuck actor cannot answer an ``ask``, so inspection never asks: the numbers below are plain
attributes the actor's loop updates and any thread may read (each read is atomic in CPython;
a set of reads may straddle one message, which is fine for inspection).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["ActorStats"]


@dataclass(frozen=True, slots=True)
class ActorStats:
    """A point-in-time view of one actor.

    ``busy_for`` is how long the message being handled now has been running (0.0 when idle),
    ``idle_for`` how long since the actor last started a message (or started at all).
    """

    name: str
    urn: str
    actor_class: str
    alive: bool
    mailbox_depth: int
    processed: int
    ask_errors: int
    current_message: str | None
    busy_for: float
    idle_for: float
    uptime: float
    last_activity: float

    def to_dict(self) -> dict[str, Any]:
        """A msgpack-able dict of the fields (every one a plain value: nothing to copy)."""
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(f.name for f in fields(ActorStats))


def wall_clock_of(monotonic_stamp: float) -> float:
    """Convert a ``time.monotonic()`` stamp to wall-clock seconds since the epoch."""
    return time.time() - (time.monotonic() - monotonic_stamp)
