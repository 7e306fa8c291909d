"""The xen and vms supervisors in their own process, over a simulated host run by the test,
for SIGKILL tests of a VM with a stub domain (test_vm_stubdom_sigkill).

Usage: ``python stubdom_tree_proc.py STATE HOST_DIR VM_UUID create|resume``. ``create`` adds
the VM (HVM with a stub domain, its uuid in ``stubdom``) and starts it; ``resume`` waits for
its monitor to come back from its snapshot. Then it prints ``READY <json>`` ([status, domid,
stub domid]) and waits to be killed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import actors
from supervision import EventLog, StartChild, Supervisor, SupFlags, WhichChildren
from tests.integration.xen_fixtures import FAST, vm_config
from xen.tree import vms_spec, xen_spec
from xen.xenops import SimHostActions
from xen.xenvm import TreeEnv, VmStart, vm_task

STUB = "5e1f0c0e-3b8a-4c1d-9a57-0d7f8f2b1c11"
CONFIG = vm_config("killed", on_crash="restart") + (
    "hvm = true\nqemu-dm-timeout = 10\nstubdom-memory = 32\n"
    f"disk = /dev/null:phy:hda:w:disk:none\nnic = id=0,bridge=xenbr0\nstubdom = {STUB}\n")


def main() -> None:
    state, host, vm, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    xs, hv = host / "xenstored" / "socket", host / "hypervisor" / "socket"
    env = TreeEnv(timeouts=FAST, state_dir=state, host=SimHostActions(xenstore_path=xs))
    Supervisor.start_root(
        SupFlags(intensity=10, period=10),
        [xen_spec(backend="sim", hypervisor_socket=str(hv), xenstore_socket=str(xs)),
         vms_spec(env=env)],
        events=EventLog(), snapshot_dir=state / "snapshots")
    if mode == "create":
        actors.ask("/vms", StartChild(vm, (VmStart(vm, CONFIG),)), timeout=30)
        vm_task(vm, "start", timeout=30)
    deadline = time.monotonic() + 30
    while not actors.ask("/vms", WhichChildren(), timeout=10):
        if time.monotonic() > deadline:
            raise SystemExit("the monitor did not come back")
        time.sleep(0.05)
    report = [vm_task(vm, "get-status"), int(vm_task(vm, "get-domid")),
              int(vm_task(vm, "get-stubdomid"))]
    print("READY", json.dumps(report), flush=True)
    threading.Event().wait(120)


if __name__ == "__main__":
    main()
