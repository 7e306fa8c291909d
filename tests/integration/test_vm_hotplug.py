"""Disks and nics plugged into and out of a running VM on the simulated host (disk-add,
disk-del, nic-add, nic-del): the device appears and goes, and once a domain's last device of
a kind is out, no empty directory of that kind is left (backend, frontend, hotplug)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.integration.xen_fixtures import XenTree, sim_tree, vm_config
from xen.xenops import name_to_devid
from xen.xenvm._tasks import TaskError

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[XenTree, Any]]:
    with sim_tree(tmp_path) as pair:
        yield pair


def dirs(domid: int, kind: str) -> tuple[str, ...]:
    """The per-domain directories of a device kind."""
    return (f"/local/domain/0/backend/{kind}/{domid}", f"/local/domain/{domid}/device/{kind}",
            f"/xapi/{domid}/hotplug/{kind}")


def test_unplugging_the_last_disk_and_nic_leaves_no_empty_directory(
        env: tuple[XenTree, Any]) -> None:
    tree, _host = env
    vm = tree.add_vm(vm_config("hot") + "disk = /dev/null:phy:xvda:w:disk:none\n"
                     "nic = id=0,bridge=xenbr0\n")
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    xs = tree.xs
    xvdb = name_to_devid("xvdb")
    tree.task(vm, "disk-add", path="/dev/zero", device="xvdb")
    wait_until(lambda: xs.try_read(f"/local/domain/0/backend/vbd/{domid}/{xvdb}/state") == "4",
               timeout=5)
    tree.task(vm, "disk-del", device="xvda")
    assert xs.directory(f"/local/domain/0/backend/vbd/{domid}") == [str(xvdb)]  # one left
    tree.task(vm, "disk-del", device="xvdb")
    tree.task(vm, "nic-del", id="0")
    assert [p for k in ("vbd", "vif") for p in dirs(domid, k) if xs.exists(p)] == []
    assert tree.task(vm, "get-status") == "running"
    tree.task(vm, "nic-add", bridge="xenbr0", id="1")  # a kind can come back
    assert xs.exists(f"/local/domain/0/backend/vif/{domid}/1")
    tree.task(vm, "destroy")
    wait_until(lambda: [i.domid for i in tree.hv.getinfolist()] == [0], timeout=10)
    assert [p for k in ("vbd", "vif") for p in dirs(domid, k) if xs.exists(p)] == []


def test_a_paused_guest_keeps_its_devices_until_it_runs(env: tuple[XenTree, Any]) -> None:
    """A paused guest cannot close a device's frontend, so a removal is refused at once (it
    once waited out the close timeout), leaving the device and the config as they were; a
    device can still be added; once unpaused, the removal goes through."""
    tree, _host = env
    vm = tree.add_vm(vm_config("still") + "disk = /dev/null:phy:xvda:w:disk:none\n"
                     "disk = /dev/null:phy:xvdb:w:disk:none\nnic = id=0,bridge=xenbr0\n")
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    xvdb = name_to_devid("xvdb")
    state = f"/local/domain/0/backend/vbd/{domid}/{xvdb}/state"
    wait_until(lambda: tree.xs.try_read(state) == "4", timeout=5)  # the guest is using it
    tree.task(vm, "pause")
    for task, params in (("disk-del", {"device": "xvdb"}), ("nic-del", {"id": "0"})):
        with pytest.raises(TaskError, match=f"^{task}: the VM is paused"):
            tree.task(vm, task, **params)
    assert tree.xs.read(state) == "4" and "xvdb" in tree.task(vm, "disk-list")
    assert tree.task(vm, "nic-list").startswith("0 ")
    tree.task(vm, "disk-add", path="/dev/zero", device="xvdc")
    tree.task(vm, "unpause")
    tree.task(vm, "disk-del", device="xvdb")
    tree.task(vm, "nic-del", id="0")
    assert "xvdb" not in tree.task(vm, "disk-list") and tree.task(vm, "nic-list") == ""
    assert not tree.xs.exists(state)
    tree.task(vm, "destroy")
