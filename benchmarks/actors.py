"""Benchmark the actor runtime and the supervisor against plain pykka, in the same run.

Figures (issue 2's targets in brackets):

* tell throughput through our base actor vs a plain ``pykka.ThreadingActor`` [>= 0.8x];
* ask round trip vs plain pykka [>= 0.8x, as throughput];
* crash -> replacement ready latency, median [<= 0.5 ms, issue 16];
* 1,000 supervised children: start time, and memory per child [<= 50 KB].

Rounds alternate ours/baseline and the median round is reported, because these machines are
shared and noisy. Run: ``.venv/bin/python benchmarks/actors.py [--quick]``. Everything runs in
this process; interrupted (Ctrl-C, SIGTERM), it ends at once (benchmarks/_cleanup.py).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import actors
from actors import Actor, handles
from benchmarks._cleanup import cleaning_up, run
from supervision import (
    ChildSpec,
    EventLog,
    StartChild,
    Strategy,
    Supervisor,
    SupFlags,
    start_actor,
)


@dataclass(frozen=True, slots=True)
class Msg:
    n: int


class Plain(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        return self.count


class Ours(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    @handles(Msg)
    def _msg(self, _m: Msg) -> int:
        self.count += 1
        return self.count


def tell_rate(cls: type, n: int) -> float:
    ref = cls.start()
    msg = Msg(0)
    ref.ask(msg, timeout=5)
    t0 = time.perf_counter()
    for _ in range(n):
        ref.tell(msg)
    ref.ask(msg, timeout=60)
    elapsed = time.perf_counter() - t0
    ref.stop(block=True, timeout=5)
    return n / elapsed


def ask_rate(cls: type, n: int, ours: bool) -> float:
    ref = cls.start()
    msg = Msg(0)
    ref.ask(msg, timeout=5)
    t0 = time.perf_counter()
    if ours:
        for _ in range(n):
            actors.ask(ref, msg, timeout=5)
    else:
        for _ in range(n):
            ref.ask(msg)
    elapsed = time.perf_counter() - t0
    ref.stop(block=True, timeout=5)
    return n / elapsed


def paired(fn_ours: Any, fn_base: Any, rounds: int) -> tuple[float, float]:
    ours, base = [], []
    for _ in range(rounds):
        ours.append(fn_ours())
        base.append(fn_base())
    return statistics.median(ours), statistics.median(base)


def crash_latency(n: int) -> list[float]:
    events = EventLog()
    root = Supervisor.start_root(SupFlags(intensity=n * 2, period=3600, health_interval=0),
                                 [ChildSpec("w", start_actor(Ours))], events=events)
    samples = []
    for _ in range(n):
        seq = events.last_seq
        t0 = time.perf_counter()
        actors.tell("/w", actors.InjectCrash())
        ev = events.wait_for(lambda e: e.kind == "restarted", 5.0, since=seq)
        samples.append(time.perf_counter() - t0)
        assert ev is not None
    root.stop(block=True, timeout=10)
    return samples


def rss_kb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * 4096 / 1024


def thousand_children(n: int) -> tuple[float, float, float]:
    gc.collect()
    before = rss_kb()
    t0 = time.perf_counter()
    root = Supervisor.start_root(
        SupFlags(Strategy.SIMPLE_ONE_FOR_ONE, health_interval=1.0),
        [ChildSpec("w", start_actor(Ours))])
    for i in range(n):
        actors.ask(root, StartChild(f"w{i}"), timeout=10)
    start_time = time.perf_counter() - t0
    gc.collect()
    after = rss_kb()
    t1 = time.perf_counter()
    root.stop(block=True, timeout=60)
    stop_time = time.perf_counter() - t1
    return start_time, (after - before) / n, stop_time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    n = 20_000 if args.quick else 100_000
    rounds = 3 if args.quick else 5

    with cleaning_up():
        tell_ours, tell_base = paired(lambda: tell_rate(Ours, n), lambda: tell_rate(Plain, n),
                                      rounds)
        ask_n = n // 10
        ask_ours, ask_base = paired(lambda: ask_rate(Ours, ask_n, True),
                                    lambda: ask_rate(Plain, ask_n, False), rounds)
        crashes = crash_latency(50 if args.quick else 300)
        start_time, kb_per_child, stop_time = thousand_children(1000)

    crash_med = statistics.median(crashes) * 1000
    figures = {
        "tell_msgs_per_s": {"ours": tell_ours, "pykka": tell_base,
                            "ratio": tell_ours / tell_base, "target": ">= 0.8"},
        "ask_per_s": {"ours": ask_ours, "pykka": ask_base,
                      "ratio": ask_ours / ask_base, "target": ">= 0.8"},
        "crash_to_ready_ms": {"median": crash_med,
                              "p90": statistics.quantiles(crashes, n=10)[-1] * 1000,
                              "target": "median <= 0.5"},
        "children_1000": {"start_s": start_time, "stop_s": stop_time,
                          "kb_per_child": kb_per_child, "target": "<= 50 KB/child"},
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"tell throughput   ours {tell_ours:>10,.0f}/s  pykka {tell_base:>10,.0f}/s  "
          f"ratio {tell_ours / tell_base:.2f}  (target >= 0.80)")
    print(f"ask round trips   ours {ask_ours:>10,.0f}/s  pykka {ask_base:>10,.0f}/s  "
          f"ratio {ask_ours / ask_base:.2f}  (target >= 0.80)")
    print(f"crash -> ready    median {crash_med:.3f} ms  p90 "
          f"{figures['crash_to_ready_ms']['p90']:.3f} ms  (target median <= 0.5 ms)")
    print(f"1,000 children    start {start_time * 1000:.0f} ms  stop {stop_time * 1000:.0f} ms"
          f"  memory {kb_per_child:.1f} KB/child  (target <= 50 KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
