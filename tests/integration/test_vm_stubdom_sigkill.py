"""SIGKILL the process that runs the monitor of a VM whose device model runs in a stub domain,
start it again: the guest and its stub domain are adopted, nothing duplicated; a stub domain
that died meanwhile crashes the guest once (on_crash = restart: one new pair)."""

from __future__ import annotations

import subprocess
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.tree_procs import kill, run_vm_tree
from tests.integration.xen_fixtures import vm_config
from xen.hypervisor import SimBackend
from xen.sim import SimHost

pytestmark = pytest.mark.integration

STUB = "5e1f0c0e-3b8a-4c1d-9a57-0d7f8f2b1c11"
VM = "0b9e7f3c-1d2a-4e5f-8a6b-7c8d9e0f1a2b"
CONFIG = vm_config("killed", on_crash="restart") + (
    "hvm = true\nqemu-dm-timeout = 10\nstubdom-memory = 32\n"
    f"disk = /dev/null:phy:hda:w:disk:none\nnic = id=0,bridge=xenbr0\nstubdom = {STUB}\n")


def run_tree(state: Path, host: SimHost, mode: str) -> tuple[subprocess.Popen[str], list[object]]:
    """The tree process for the VM with a stub domain; [status, domid, stub domid]."""
    config = state / "vm.cfg"
    config.write_text(CONFIG)
    proc, status, domid, stub = run_vm_tree(state, host, mode, VM, config)
    return proc, [status, domid, stub]


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[SimHost, SimBackend]]:
    with SimHost(tmp_path / "host") as sim:
        hv = SimBackend(sim.hypervisor_path)
        try:
            yield sim, hv
        finally:
            hv.close()


def live(hv: SimBackend, uuid: str) -> list[int]:
    return [i.domid for i in hv.find_by_handle(uuidlib.UUID(uuid))
            if not i.dying and not i.shutdown]


def test_sigkill_with_a_guest_and_its_stub_domain_running(host: tuple[SimHost, SimBackend],
                                                          tmp_path: Path) -> None:
    sim, hv = host
    proc, (state, domid, stub) = run_tree(tmp_path, sim, "create")
    try:
        assert state == "running" and stub > 0
        kill(proc)
        proc, again = run_tree(tmp_path, sim, "resume")
        assert again == ["running", domid, stub]            # both adopted
        assert live(hv, VM) == [domid] and live(hv, STUB) == [stub]  # nothing duplicated
        # the stub domain dies while nobody watches: the next monitor crashes the guest once
        kill(proc)
        sim.set_behaviour("crash", 0.01, domid=stub)
        wait_until(lambda: live(hv, STUB) == [], timeout=10)
        proc, _report = run_tree(tmp_path, sim, "resume")
        wait_until(lambda: len(live(hv, VM)) == 1 and live(hv, VM) != [domid]
                   and len(live(hv, STUB)) == 1, timeout=15)
        assert live(hv, STUB) != [stub]
    finally:
        kill(proc)
