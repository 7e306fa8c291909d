"""A tree with resume-mode children, run as its own process by test_resume_sigkill.

Usage: ``python resume_tree.py STATE_DIR N_DYNAMIC INCREMENTS``. Prints one line
``READY <json>`` with each child's count after resuming, then increments each counter
INCREMENTS times (each increment durable before the next) and prints ``DONE``, then waits to be
killed.
"""

from __future__ import annotations

import json
import sys
import threading

import actors
from supervision import RestartMode, StartChild, Strategy, Supervisor, SupFlags, WhichChildren
from tests.supervision.workers import GetCount, Incr, sup, worker


def main() -> None:
    state, n_dynamic, increments = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    specs = [
        worker("counter", mode=RestartMode.RESUME),
        sup("vms", SupFlags(Strategy.SIMPLE_ONE_FOR_ONE),
            [worker("vm", mode=RestartMode.RESUME)]),
    ]
    Supervisor.start_root(SupFlags(), specs, snapshot_dir=state)
    present = {c.id for c in actors.ask("/vms", WhichChildren(), timeout=5)}
    for n in range(n_dynamic):
        if f"vm{n}" not in present:
            actors.ask("/vms", StartChild(f"vm{n}"), timeout=5)
    paths = ["/counter", *[f"/vms/vm{n}" for n in range(n_dynamic)]]
    counts = {p: actors.ask(p, GetCount(), timeout=5) for p in paths}
    print("READY", json.dumps({"counts": counts, "resumed": sorted(present)}), flush=True)
    for _ in range(increments):
        for p in paths:
            actors.ask(p, Incr(), timeout=5)
    print("DONE", flush=True)
    threading.Event().wait(60)


if __name__ == "__main__":
    main()
