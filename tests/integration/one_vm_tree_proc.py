"""The xen and vms supervisors in their own process, over a simulated host's sockets, with one
VM of any config (PCI passthrough, a stub domain...), for the SIGKILL tests
(``tree_procs.run_vm_tree``).

Usage: ``python one_vm_tree_proc.py STATE XENSTORE_SOCKET HYPERVISOR_SOCKET create|resume VM
CONFIG_FILE``. ``create`` adds the VM and starts it; ``resume`` adds nothing and waits for its
monitor to come back from its snapshot; ``destroy`` does the same, then destroys the VM. Then
it prints ``READY <status> <domid> <stub domain's domid, -1 when none>`` and waits
(bounded) to be killed.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import actors
from supervision import EventLog, StartChild, Supervisor, SupFlags, WhichChildren
from tests.integration.xen_fixtures import FAST
from xen.tree import vms_spec, xen_spec
from xen.xenops import SimHostActions
from xen.xenvm import TreeEnv, VmStart, vm_task


def main() -> None:
    state, xs, hv, mode, vm, config = sys.argv[1:7]
    env = TreeEnv(timeouts=FAST, state_dir=Path(state),
                  host=SimHostActions(xenstore_path=xs, hypervisor_path=hv))
    Supervisor.start_root(
        SupFlags(intensity=10, period=10),
        [xen_spec(backend="sim", hypervisor_socket=hv, xenstore_socket=xs),
         vms_spec(env=env)],
        events=EventLog(), snapshot_dir=Path(state) / "snapshots")
    if mode == "create":
        actors.ask("/vms", StartChild(vm, (VmStart(vm, Path(config).read_text()),)), timeout=30)
        vm_task(vm, "start", timeout=30)
    deadline = time.monotonic() + 30
    while not actors.ask("/vms", WhichChildren(), timeout=10):
        if time.monotonic() > deadline:
            raise SystemExit("the monitor did not come back")
        time.sleep(0.05)
    if mode == "destroy":
        vm_task(vm, "destroy", timeout=30)
    print("READY", vm_task(vm, "get-status", timeout=30), vm_task(vm, "get-domid"),
          vm_task(vm, "get-stubdomid"), flush=True)
    threading.Event().wait(120)


if __name__ == "__main__":
    main()
