"""HVM guests whose device model runs in a stub domain, on the simulated host over its real
sockets: start, stop, crash of the guest, crash of the stub domain, a monitor crash with both
running, nothing left in xenstore after destroy; a dom0 dm-agent; a missing stub kernel."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.integration.xen_fixtures import XenTree, sim_tree, vm_config

pytestmark = pytest.mark.integration

STUB = "5e1f0c0e-3b8a-4c1d-9a57-0d7f8f2b1c11"
HVM = ("hvm = true\nqemu-dm-timeout = 10\nstubdom-memory = 32\n"
       "disk = /dev/null:phy:hda:w:disk:none\nnic = id=0,bridge=xenbr0\n")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[XenTree, Any]]:
    with sim_tree(tmp_path) as pair:
        yield pair


def stub_config(name: str, **extra: str) -> str:
    return vm_config(name, **extra) + HVM + f"stubdom = {STUB}\n"


def status(tree: XenTree, vm: str) -> str:
    return tree.task(vm, "get-status")


def domains(tree: XenTree, uuid: str) -> list[int]:
    return [i.domid for i in tree.hv.find_by_handle(uuidlib.UUID(uuid))]


def live(tree: XenTree, uuid: str) -> list[int]:
    return [i.domid for i in tree.hv.find_by_handle(uuidlib.UUID(uuid))
            if not i.dying and not i.shutdown]


def leftovers(tree: XenTree, *domids: int) -> list[str]:
    """Xenstore nodes that name any of ``domids`` (beyond dom0's own tree)."""
    found: list[str] = []
    xs = tree.xs
    for d in domids:
        for path in (f"/local/domain/{d}", f"/local/domain/0/backend/vbd/{d}",
                     f"/local/domain/0/backend/vif/{d}", f"/local/domain/0/backend/console/{d}",
                     f"/local/domain/0/device-model/{d}", f"/local/domain/0/dm-agent/dms/{d}",
                     f"/xapi/{d}"):
            if xs.exists(path):
                found.append(path)
    for uuid in (STUB,):
        if xs.exists(f"/vm/{uuid}"):
            found.append(f"/vm/{uuid}")
    return found


def started(tree: XenTree, vm: str) -> tuple[int, int]:
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    stub = int(tree.task(vm, "get-stubdomid"))
    return domid, stub


def test_start_and_stop_with_a_stub_domain(env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(stub_config("stubbed"))
    domid, stub = started(tree, vm)
    assert status(tree, vm) == "running" and stub > 0 and stub != domid
    xs = tree.xs
    assert xs.read(f"/local/domain/{domid}/image/device-model-domid") == str(stub)
    assert xs.read(f"/local/domain/{stub}/target") == str(domid)
    assert xs.read(f"/local/domain/{stub}/name") == f"stubdom-{domid}"
    assert domains(tree, STUB) == [stub]
    info = tree.hv.getinfo(stub)
    assert not info.hvm and info.max_vcpu_id == 0 and info.tot_pages >= 32 * 256
    # the guest's disk re-exported to the stub domain, its nic with the flipped MAC, a console
    back = f"/local/domain/0/backend/vbd/{stub}/768"
    assert (xs.read(f"{back}/type"), xs.read(f"{back}/params")) == ("phy", "/dev/hda")
    assert xs.read(f"/local/domain/0/backend/vbd/{domid}/768/params") == "/dev/null"
    guest_mac = xs.read(f"/local/domain/0/backend/vif/{domid}/0/mac")
    stub_mac = xs.read(f"/local/domain/0/backend/vif/{stub}/0/mac")
    assert int(stub_mac[:2], 16) == int(guest_mac[:2], 16) ^ 0x02
    assert xs.exists(f"/local/domain/0/backend/console/{stub}/0")
    # the stub domain's dm-agent runs the device model
    dms = f"/local/domain/{stub}/dm-agent/dms/{domid}/0"
    assert xs.read(f"{dms}/status") == "running"
    assert xs.read(f"{dms}/infos/drive0/file") == "/dev/hda"
    assert xs.read(f"/local/domain/0/device-model/{domid}/state") == "running"
    wait_until(lambda: host.guest_status(stub) == "running")
    tree.task(vm, "destroy")
    assert status(tree, vm) == "shutdown"
    assert int(tree.task(vm, "get-stubdomid")) == -1
    wait_until(lambda: not domains(tree, vm) and not domains(tree, STUB), timeout=10)
    assert leftovers(tree, domid, stub) == []
