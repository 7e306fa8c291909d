"""The monitor's ``set-config`` task: the whole config replaced at once while no domain exists,
pending for the next start while one does; a bad config or another VM's is refused untouched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.xen_fixtures import XenTree, vm_config, xen_tree
from xen.xenvm import TaskError

pytestmark = pytest.mark.integration


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[XenTree]:
    with xen_tree(tmp_path) as t:
        yield t


def test_set_config_replaces_the_config_of_a_stopped_vm(tree: XenTree) -> None:
    vm = tree.add_vm(vm_config("alpha", memory=64))
    tree.task(vm, "set-config", config=vm_config("beta", memory=96, vcpus="2"))
    assert tree.task(vm, "get", field="name") == "beta"
    assert tree.task(vm, "get", field="memory") == "96"
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    assert tree.hv.getinfo(domid).tot_kib == 96 * 1024
    tree.task(vm, "destroy")


def test_set_config_while_running_is_pending_until_the_next_start(tree: XenTree) -> None:
    vm = tree.add_vm(vm_config("alpha", memory=64))
    tree.task(vm, "start")
    tree.task(vm, "set-config", config=vm_config("alpha", memory=80))
    assert tree.task(vm, "get", field="memory") == "80"  # the pending value
    assert tree.hv.getinfo(int(tree.task(vm, "get-domid"))).tot_kib == 64 * 1024
    tree.task(vm, "destroy")
    tree.task(vm, "start")
    assert tree.hv.getinfo(int(tree.task(vm, "get-domid"))).tot_kib == 80 * 1024
    tree.task(vm, "destroy")


def test_a_bad_config_is_refused_and_changes_nothing(tree: XenTree) -> None:
    vm = tree.add_vm(vm_config("alpha", memory=64))
    with pytest.raises(TaskError, match="set-config"):
        tree.task(vm, "set-config", config="memory = lots\n")
    other = "00000000-0000-0000-0000-0000000000aa"
    with pytest.raises(TaskError, match="not " + vm):
        tree.task(vm, "set-config", config=f"uuid = {other}\n" + vm_config("x"))
    assert tree.task(vm, "get", field="name") == "alpha"
    assert tree.task(vm, "get", field="memory") == "64"
