"""Test workers for supervision tests: they record starts and stops, and misbehave on demand."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from actors import Actor, handles
from supervision import (
    ChildKind,
    ChildSpec,
    Restart,
    RestartMode,
    Supervisor,
    SupFlags,
    start_actor,
)


class Journal:
    """A thread-safe list of ``(event, name)`` entries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, str]] = []

    def add(self, event: str, name: str) -> None:
        with self._lock:
            self.entries.append((event, name))

    def of(self, event: str) -> list[str]:
        with self._lock:
            return [n for e, n in self.entries if e == event]

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()


@dataclass(frozen=True, slots=True)
class Stop:
    """Ask the worker to stop itself normally."""


@dataclass(frozen=True, slots=True)
class Incr:
    """Add one to the counter (and save a snapshot)."""


@dataclass(frozen=True, slots=True)
class GetCount:
    pass


class Worker(Actor):
    """Records start/stop in a journal; can fail to start or ignore stop."""

    def __init__(self, journal: Journal | None = None, *, fail_start: bool = False,
                 ignore_stop: threading.Event | None = None) -> None:
        super().__init__()
        self.journal = journal
        self.fail_start = fail_start
        self.ignore_stop = ignore_stop
        self.count = 0

    def on_start(self) -> None:
        if self.fail_start:
            raise RuntimeError("refusing to start")
        snap = self.resume_snapshot
        if snap is not None:
            self.count = int(snap.get("count", 0))
        if self.journal is not None:
            self.journal.add("start", self.name)

    def on_stop(self) -> None:
        if self.journal is not None:
            self.journal.add("stop", self.name)
        if self.ignore_stop is not None:
            self.ignore_stop.wait(30)  # a child that ignores stop until the test releases it

    @handles(Stop)
    def _stop_self(self, _msg: Stop) -> None:
        self.actor_ref.stop(block=False)

    @handles(Incr)
    def _incr(self, _msg: Incr) -> int:
        self.count += 1
        self.save_snapshot()
        return self.count

    @handles(GetCount)
    def _get(self, _msg: GetCount) -> int:
        return self.count

    def snapshot(self) -> dict[str, Any]:
        return {"count": self.count}


def worker(cid: str, journal: Journal | None = None, *,
           restart: Restart = Restart.PERMANENT, mode: RestartMode = RestartMode.FRESH,
           shutdown: float | None = None, **kwargs: Any) -> ChildSpec:
    return ChildSpec(cid, start_actor(Worker, journal, **kwargs), restart=restart,
                     mode=mode, shutdown=shutdown)


def sup(cid: str, flags: SupFlags, specs: list[ChildSpec], **kwargs: Any) -> ChildSpec:
    return ChildSpec(cid, start_actor(Supervisor, flags, specs), kind=ChildKind.SUPERVISOR,
                     **kwargs)
