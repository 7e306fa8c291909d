"""A PVH VM (``pvh = true``) through its monitor on the simulated host: created as an HVM
container, built as PVH (the kernel booted straight in, no firmware), PV devices and the PV
shutdown protocol, no device model; adopted by a restarted monitor; nothing left after its
end. The pure mapping is in tests/xen/test_vm_pvh_config.py."""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import actors
from tests.helpers import wait_until
from tests.integration.xen_fixtures import XenTree, sim_tree, vm_config
from xen.hypervisor import HvmParam, SimBackend

pytestmark = pytest.mark.integration

DEVICES = "disk = /dev/null:phy:xvda:w:disk:none\nnic = id=0,bridge=xenbr0\n"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[XenTree, Any]]:
    with sim_tree(tmp_path) as pair:
        yield pair


def live(tree: XenTree, vm: str) -> list[int]:
    return [i.domid for i in tree.hv.find_by_handle(uuidlib.UUID(vm))
            if not i.dying and not i.shutdown]


def started(tree: XenTree, host: Any, name: str) -> tuple[str, int]:
    # the emulated platform's timer keys are an HVM guest's: ignored for PVH, as libxl does
    vm = tree.add_vm(vm_config(name) + "pvh = true\nhpet = 0\ntimer-mode = 2\nvpt-align = 1\n"
                     + DEVICES)
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    assert tree.task(vm, "get-status") == "running"
    info = tree.hv.getinfo(domid)
    assert info.hvm, "a PVH guest's domain is an HVM container"
    assert [tree.hv.get_hvm_param(domid, p) for p in (
        HvmParam.HPET_ENABLED, HvmParam.TIMER_MODE, HvmParam.VPT_ALIGN)] == [1, 0, 0]
    dom = f"/local/domain/{domid}"
    assert tree.xs.try_read(f"{dom}/hvmloader/bios") is None  # no firmware
    assert tree.xs.try_read(f"{dom}/image/device-model-domid") is None
    assert not tree.xs.exists(f"/local/domain/0/device-model/{domid}")
    # PV devices only: the frontends connect (no emulated disk for a device model)
    wait_until(lambda: {("vbd", domid), ("vif", domid)} <= {
        (kind, fe) for kind, fe, _ in host.backends_connected()}, timeout=10)
    return vm, domid


def test_a_pvh_vm_starts_runs_and_shuts_down_cleanly(env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm, domid = started(tree, host, "pvh1")
    tree.task(vm, "pause")
    assert tree.task(vm, "get-status") == "paused" and tree.hv.getinfo(domid).paused
    tree.task(vm, "unpause")
    wait_until(lambda: host.guest_status(domid) == "running")
    tree.task(vm, "shutdown")  # the PV protocol: the guest acknowledges, then powers off
    assert tree.task(vm, "get-status") == "shutdown"
    wait_until(lambda: not tree.hv.find_by_handle(uuidlib.UUID(vm)), timeout=10)
    assert not [c for c in host.backends_connected() if c[1] == domid]
    assert not tree.xs.exists(f"/local/domain/{domid}")


def test_a_restarted_monitor_adopts_its_pvh_domain(env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm, domid = started(tree, host, "pvh2")
    seq = tree.events.last_seq
    actors.tell(f"/vms/{vm}", actors.InjectCrash())
    assert tree.events.wait_for(lambda e: e.kind == "restarted" and e.path == f"/vms/{vm}",
                                10, since=seq)
    assert tree.task(vm, "get-status") == "running"
    assert int(tree.task(vm, "get-domid")) == domid and live(tree, vm) == [domid]
    tree.task(vm, "destroy")
    wait_until(lambda: not tree.hv.find_by_handle(uuidlib.UUID(vm)), timeout=10)
    assert not tree.xs.exists(f"/local/domain/{domid}")


def test_xenmgr_pvh(tmp_path: Path) -> None:
    """``config/virt-type = pvh`` through xenmgr: our monitor's ``pvh = true``, an HVM domain."""
    from tests.integration.xenmgr_fixtures import xenmgr_dom0

    with xenmgr_dom0(tmp_path) as dom0:  # a short path: the bus socket must fit
        made = dom0.xec("create-vm-with-template-and-json", "new-vm-empty", json.dumps(
            {"name": "pvh-xec", "config": {"virt-type": "pvh", "memory": "128",
                                           "kernel": "/etc/hostname"}}))
        assert made.returncode == 0, made.stderr
        vm = made.stdout.strip().rsplit("/", 1)[-1].replace("_", "-")
        assert dom0.xec_vm("-u", vm, "start", timeout=60).returncode == 0
        domid = int(dom0.xec_vm("-u", vm, "get", "domid").stdout)
        assert dom0.xec_vm("-u", vm, "get", "state").stdout.strip() == "running"
        assert dom0.host is not None
        with SimBackend(str(dom0.host.hypervisor_path)) as hv:
            assert hv.getinfo(domid).hvm
        assert dom0.xec_vm("-u", vm, "destroy", timeout=60).returncode == 0
        assert dom0.xec_vm("-u", vm, "get", "state").stdout.strip() == "stopped"
