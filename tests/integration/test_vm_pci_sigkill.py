"""SIGKILL the process that runs a VM monitor whose VM has PCI devices passed through, start it
again: the domain is adopted with its devices assigned once (nothing assigned, reset or granted
again), and its destroy then gives everything back."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.integration.tree_procs import kill, run_vm_tree
from tests.integration.xen_fixtures import vm_config
from xen.hypervisor import SimBackend
from xen.sim import SimHost

pytestmark = pytest.mark.integration

NIC, USB = "0000:04:00.0", "0000:00:14.0"


@pytest.fixture
def host(tmp_path: Path) -> Iterator[SimHost]:
    with SimHost(tmp_path / "host", memory_mib=2048) as sim:
        yield sim


def test_sigkill_keeps_the_devices_assigned_once(tmp_path: Path, host: SimHost) -> None:
    vm = str(uuidlib.uuid4())
    config = tmp_path / "vm.cfg"
    config.write_text(vm_config("pcikill") + f"pci = 0,{NIC}\npci = 1,bind,{USB}\n")
    state = tmp_path / "tree"
    proc, status, domid, _stub = run_vm_tree(state, host, "create", vm, config)
    kill(proc)
    assert status == "running"
    before: dict[str, Any] = host.pci_state()
    assert {before["devices"][b]["assigned"] for b in (NIC, USB)} == {domid}
    proc, status, again, _stub = run_vm_tree(state, host, "resume", vm, config)
    try:
        assert (status, again) == ("running", domid)  # adopted
        assert host.pci_state() == before  # nothing assigned, reset or granted twice
        with SimBackend(host.hypervisor_path) as hv:
            assert [i.domid for i in hv.find_by_handle(uuidlib.UUID(vm))] == [domid]
    finally:
        kill(proc)
    # a third life destroys it: everything comes back
    proc, status, gone, _stub = run_vm_tree(state, host, "destroy", vm, config)
    try:
        assert (status, gone) == ("shutdown", -1)
        wait_until(lambda: host.pci_state()["grants"] == {}, timeout=5)
        devices = host.pci_state()["devices"]
        assert devices[NIC]["assigned"] is None and devices[USB]["assigned"] is None
        assert devices[USB]["resets"] == before["devices"][USB]["resets"] + 1  # FLR after
        assert not host.xenstore.exists(f"/local/domain/0/backend/pci/{domid}")
        assert not host.xenstore.exists(f"/local/domain/{domid}")
    finally:
        kill(proc)
