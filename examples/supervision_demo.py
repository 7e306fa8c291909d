"""A live supervision tree that crashes on purpose, to watch the supervisors handle it.

Run with ``make run`` (or ``python examples/supervision_demo.py --state DIR``). The tree::

    /  (one_for_one, 10 restarts in 10 s)
    ├── clock        permanent, resume: a counter that survives crashes and restarts of the demo
    ├── flaky        permanent: crashes now and then (an exception under tell)
    ├── storage      rest_for_one: journal -> writer (a crash of journal restarts writer too)
    └── vms          simple_one_for_one, resume: four "vm" workers added at run time; one of
                     them crashes in storms until its supervisor escalates and is restarted

Every supervision event is printed as it happens and the tree is drawn every few seconds. Ctrl-C
(or ``--duration``) stops the tree in order. Run it again: the clock and the VMs resume from
their snapshots under ``--state``.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import actors
from actors import Actor, handles
from supervision import (
    Backoff,
    ChildKind,
    ChildSpec,
    Restart,
    RestartMode,
    StartChild,
    Strategy,
    Supervisor,
    SupFlags,
    WhichChildren,
    describe_tree,
    render_tree,
    start_actor,
)


@dataclass(frozen=True, slots=True)
class Tick:
    """Periodic work."""


class Clock(Actor):
    """Counts ticks; the count survives restarts (resume mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.ticks = 0

    def on_start(self) -> None:
        if self.resume_snapshot:
            self.ticks = int(self.resume_snapshot["ticks"])
        self.send_every(0.5, Tick())

    @handles(Tick)
    def _tick(self, _msg: Tick) -> None:
        self.ticks += 1
        self.save_snapshot()

    def snapshot(self) -> dict[str, Any]:
        return {"ticks": self.ticks}


class Flaky(Actor):
    """Crashes with probability ``p`` at each tick."""

    def __init__(self, p: float, period: float) -> None:
        super().__init__()
        self.p, self.period = p, period

    def on_start(self) -> None:
        self.send_every(self.period, Tick())

    @handles(Tick)
    def _tick(self, _msg: Tick) -> None:
        if random.random() < self.p:
            raise RuntimeError("flaky worker hit a bug")


class Vm(Actor):
    """A stand-in for a VM monitor: remembers its boots; 'vm-storm' crashes in bursts."""

    def __init__(self, uuid: str) -> None:
        super().__init__()
        self.uuid = uuid
        self.boots = 0

    def on_start(self) -> None:
        self.boots = int((self.resume_snapshot or {}).get("boots", 0)) + 1
        self.save_snapshot()
        if self.uuid == "vm-storm":
            self.send_every(0.7, Tick(), first=2.0)

    @handles(Tick)
    def _tick(self, _msg: Tick) -> None:
        raise RuntimeError(f"{self.uuid}: monitor crashed")

    def snapshot(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "boots": self.boots}


def build_tree() -> list[ChildSpec]:
    """The demo tree's child specs."""
    storage = [
        ChildSpec("journal", start_actor(Flaky, 0.05, 1.0)),
        ChildSpec("writer", start_actor(Flaky, 0.0, 1.0)),
    ]
    vms = [ChildSpec("vm", start_actor(Vm), restart=Restart.TRANSIENT, mode=RestartMode.RESUME)]
    return [
        ChildSpec("clock", start_actor(Clock), mode=RestartMode.RESUME),
        ChildSpec("flaky", start_actor(Flaky, 0.15, 1.0)),
        ChildSpec("storage", start_actor(Supervisor, SupFlags(Strategy.REST_FOR_ONE, 5, 10),
                                         storage), kind=ChildKind.SUPERVISOR),
        ChildSpec("vms", start_actor(Supervisor, SupFlags(Strategy.SIMPLE_ONE_FOR_ONE, 2, 5,
                                                          backoff=Backoff(0.2, 2.0)), vms),
                  kind=ChildKind.SUPERVISOR),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the demo until Ctrl-C or ``--duration`` seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=Path("state/demo"),
                        help="where resume snapshots live (default: state/demo)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--tree-every", type=float, default=5.0,
                        help="seconds between tree drawings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # the event log below says it all

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    escalated = threading.Event()

    from supervision import EventLog
    events = EventLog()
    root = Supervisor.start_root(SupFlags(intensity=10, period=10), build_tree(), events=events,
                                 snapshot_dir=args.state,
                                 on_escalate=lambda _r: (escalated.set(), stop.set()))
    present = {c.id for c in actors.ask("/vms", WhichChildren(), timeout=5)}
    for uuid in ("vm-1", "vm-2", "vm-3", "vm-storm"):
        if uuid not in present:
            actors.ask("/vms", StartChild(uuid, (uuid,)), timeout=5)
    print(f"supervision demo: snapshots in {args.state}; Ctrl-C stops the tree in order.\n",
          flush=True)

    sup = actors.actor_of(root)
    seen = 0
    started = time.monotonic()
    next_tree = started
    while not stop.is_set():
        for event in events.since(seen):
            seen = event.seq
            print(event, flush=True)
        now = time.monotonic()
        if now >= next_tree:
            print("\n" + render_tree(describe_tree(sup)) + "\n", flush=True)
            next_tree = now + args.tree_every
        if args.duration and now - started >= args.duration:
            break
        stop.wait(0.2)
    root.stop(block=True, timeout=30)
    for event in events.since(seen):
        print(event, flush=True)
    print("tree stopped" + (" (root escalated)" if escalated.is_set() else ""), flush=True)
    return 1 if escalated.is_set() else 0


if __name__ == "__main__":
    raise SystemExit(main())
