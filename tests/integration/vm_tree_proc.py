"""The xen and vms supervisors in their own process, for SIGKILL tests of VM monitors.

Usage: ``python vm_tree_proc.py STATE N create|resume``. The simulated host's sockets are under
STATE (run by the test process, so domains outlive this one). ``create`` adds N VMs and starts
them; ``resume`` adds nothing and waits for the N monitors to come back from their snapshots.
Then it prints one line ``READY <json>`` ({uuid: [status, domid]}) and waits to be killed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid as uuidlib
from pathlib import Path

import actors
from supervision import EventLog, StartChild, WhichChildren
from tests.integration.xen_fixtures import start, vm_config
from xen.xenvm import VmStart, vm_task


def main() -> None:
    state, n, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    start(state, EventLog())
    if mode == "create":
        for i in range(n):
            vm = str(uuidlib.UUID(int=i + 1))
            cfg = vm_config(f"vm{i}", on_crash="restart", on_poweroff="destroy",
                            on_reboot="restart")
            actors.ask("/vms", StartChild(vm, (VmStart(vm, cfg),)), timeout=30)
            vm_task(vm, "start", timeout=30)
    deadline = time.monotonic() + 30
    while len(actors.ask("/vms", WhichChildren(), timeout=10)) < n:
        if time.monotonic() > deadline:
            raise SystemExit("monitors did not come back")
        time.sleep(0.05)
    report = {}
    for child in actors.ask("/vms", WhichChildren(), timeout=10):
        report[child.id] = [vm_task(child.id, "get-status"), int(vm_task(child.id, "get-domid"))]
    print("READY", json.dumps(report), flush=True)
    threading.Event().wait(120)


if __name__ == "__main__":
    main()
