"""``top``'s model and its drawing (pure: samples in, frames and text out).

:class:`TopModel` is fed successive samples, each the ``actors`` result and the ``tree``
result taken at one ``time.monotonic()`` instant. The first sample is the baseline; every
later one yields a :class:`TopFrame` with, per actor: its mailbox depth, the growth of its
mailbox since the previous sample (recon's ``proc_window``: catches a mailbox that is
filling), its throughput in messages per second (the delta of ``processed`` over the
interval), and its restarts (total, and new since the previous sample, from the tree). An actor
whose URN changed (it was restarted) or whose counter went down is measured from its own start:
``processed / min(interval, uptime)``, and its growth is its whole mailbox. Actors that
appeared or vanished between samples are simply present or absent. Nothing here can fail on a
missing field: such a value counts as zero.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from supervision.shell._view import fmt_duration, render_table

__all__ = ["TopFrame", "TopModel", "TopRow", "render_top", "restarts_by_path"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def restarts_by_path(tree: Mapping[str, Any]) -> dict[str, int]:
    """Total restarts of every child in the ``tree`` result, by path."""
    out: dict[str, int] = {}
    for child in tree.get("children") or ():
        if child.get("path"):
            out[str(child["path"])] = _int(child.get("restarts"))
        sub = child.get("tree")
        if isinstance(sub, Mapping):
            out.update(restarts_by_path(sub))
    return out


@dataclass(frozen=True, slots=True)
class TopRow:
    """One actor in one frame."""

    path: str
    actor_class: str
    mailbox: int
    growth: int
    rate: float
    restarts: int
    new_restarts: int
    busy_for: float
    current: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {"path": self.path, "class": self.actor_class, "mailbox": self.mailbox,
                "growth": self.growth, "rate": round(self.rate, 3),
                "restarts": self.restarts, "new_restarts": self.new_restarts,
                "busy_for": round(self.busy_for, 3), "current": self.current}


@dataclass(frozen=True, slots=True)
class TopFrame:
    """One refresh of ``top``."""

    at: float
    interval: float
    rows: tuple[TopRow, ...]

    @property
    def total_rate(self) -> float:
        """Messages per second handled by the whole tree."""
        return sum(r.rate for r in self.rows)

    @property
    def new_restarts(self) -> int:
        """Restarts since the previous frame."""
        return sum(r.new_restarts for r in self.rows)

    def by_mailbox(self, n: int) -> list[TopRow]:
        """The ``n`` deepest mailboxes (ties: busiest first, then by path)."""
        return sorted(self.rows, key=lambda r: (-r.mailbox, -r.rate, r.path))[:n]

    def by_growth(self, n: int) -> list[TopRow]:
        """The ``n`` mailboxes that grew most over the interval (only those that grew)."""
        grown = [r for r in self.rows if r.growth > 0]
        return sorted(grown, key=lambda r: (-r.growth, -r.mailbox, r.path))[:n]

    def by_rate(self, n: int) -> list[TopRow]:
        """The ``n`` actors handling the most messages per second (only active ones)."""
        active = [r for r in self.rows if r.rate > 0]
        return sorted(active, key=lambda r: (-r.rate, r.path))[:n]

    def to_dict(self, n: int) -> dict[str, Any]:
        """A JSON-able summary: totals and the three top-``n`` lists."""
        return {"at": self.at, "interval": round(self.interval, 3), "actors": len(self.rows),
                "rate": round(self.total_rate, 3), "new_restarts": self.new_restarts,
                "by_mailbox": [r.to_dict() for r in self.by_mailbox(n)],
                "by_growth": [r.to_dict() for r in self.by_growth(n)],
                "by_rate": [r.to_dict() for r in self.by_rate(n)]}


@dataclass(frozen=True, slots=True)
class _Sample:
    urn: str
    processed: int
    mailbox: int
    restarts: int


class TopModel:
    """Turns successive samples into frames (see the module docstring)."""

    def __init__(self) -> None:
        self._prev: dict[str, _Sample] = {}
        self._prev_at: float | None = None

    def feed(self, actors: Sequence[Mapping[str, Any]], tree: Mapping[str, Any],
             now: float, wall: float | None = None) -> TopFrame | None:
        """Add a sample taken at monotonic ``now``; None for the first (the baseline)."""
        restarts = restarts_by_path(tree)
        samples: dict[str, _Sample] = {}
        rows: list[TopRow] = []
        interval = now - self._prev_at if self._prev_at is not None else 0.0
        for actor in actors:
            path = str(actor.get("path", "?"))
            cur = _Sample(str(actor.get("urn", "")), _int(actor.get("processed")),
                          _int(actor.get("mailbox_depth")), restarts.get(path, 0))
            samples[path] = cur
            prev = self._prev.get(path)
            if self._prev_at is None:
                continue
            if prev is not None and prev.urn == cur.urn and cur.processed >= prev.processed:
                rate = (cur.processed - prev.processed) / interval if interval > 0 else 0.0
                growth = cur.mailbox - prev.mailbox
            else:
                span = min(interval, _float(actor.get("uptime"))) or interval
                rate = cur.processed / span if span > 0 else 0.0
                growth = cur.mailbox
            new = max(0, cur.restarts - prev.restarts) if prev is not None else 0
            rows.append(TopRow(path, str(actor.get("actor_class", "?")), cur.mailbox, growth,
                               rate, cur.restarts, new, _float(actor.get("busy_for")),
                               actor.get("current_message") or None))
        first = self._prev_at is None
        self._prev, self._prev_at = samples, now
        if first:
            return None
        return TopFrame(wall if wall is not None else time.time(), interval, tuple(rows))


def _rows(rows: Sequence[TopRow]) -> list[tuple[Any, ...]]:
    out = []
    for r in rows:
        growth = f"+{r.growth}" if r.growth > 0 else str(r.growth)
        restarts = f"{r.restarts} (+{r.new_restarts})" if r.new_restarts else str(r.restarts)
        busy = (f"busy {fmt_duration(r.busy_for)} in {r.current}" if r.current else "idle")
        out.append((r.path, r.actor_class, r.mailbox, growth, f"{r.rate:.1f}", restarts, busy))
    return out


_HEADERS = ("PATH", "CLASS", "MBOX", "GROWTH", "MSG/S", "RESTARTS", "ACTIVITY")


def render_top(frame: TopFrame, n: int) -> str:
    """Text of one frame: a header, then top-``n`` by mailbox and by mailbox growth."""
    stamp = time.strftime("%H:%M:%S", time.localtime(frame.at))
    head = (f"top {stamp}  actors {len(frame.rows)}  {frame.total_rate:.1f} msg/s  "
            f"restarts +{frame.new_restarts}  (over {frame.interval:.1f}s)")
    parts = [head, "", f"by mailbox depth (top {n}):",
             render_table(_HEADERS, _rows(frame.by_mailbox(n)), numeric=(2, 3, 4))]
    grown = frame.by_growth(n)
    parts.append("")
    if grown:
        parts += [f"by mailbox growth (top {n}):",
                  render_table(_HEADERS, _rows(grown), numeric=(2, 3, 4))]
    else:
        parts.append("by mailbox growth: no mailbox grew")
    return "\n".join(parts)
