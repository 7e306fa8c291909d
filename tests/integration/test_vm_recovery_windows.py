"""Windows where a killed VM monitor once left a VM wrong (found by killing the monitor after
each of its hypervisor calls, xenstore exchanges and saves):

- a reboot's restart survives a kill between the old domain's end and the new one's first
  save: the reboot (or the guest's own reboot with ``on_reboot = restart``) stays recorded
  until the start records itself, so the next monitor starts the VM instead of leaving it
  ``rebooted``;
- a restore killed after its create, before anything saved the domid: the next monitor
  destroys the domain it made (a stray with the VM's uuid), as for a start, and the VM is
  ``suspended`` with its image, ready to restore again;
- a hot-added disk is in the config before it is plugged: removable after a kill."""

from __future__ import annotations

import threading
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import actors
from tests.helpers import wait_until
from tests.integration.xen_fixtures import (
    XenTree,
    first_call_hangs,
    kill_monitor,
    sim_tree,
    vm_config,
    xen_tree,
)
from xen.hypervisor import ShutdownReason
from xen.xenops import SimBuilder
from xen.xenvm import TaskError, VmHandle, parse_task, vm_path, vm_task
from xen.xenvm._domain import DomainActions
from xen.xenvm._machine import VmMachine

pytestmark = pytest.mark.integration


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[XenTree]:
    with xen_tree(tmp_path) as t:
        yield t


def _first_restart_hangs(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """The first start after a reboot hangs on entry (until a kill ends its thread)."""
    original = VmMachine.start
    hangs, reached, _first = first_call_hangs(original)

    def start(self: VmMachine, paused: bool = False) -> None:
        (hangs if self.state.value == "rebooted" else original)(self, paused)

    monkeypatch.setattr(VmMachine, "start", start)
    return reached


@pytest.mark.parametrize("by", ["toolstack", "guest"])
def test_a_monitor_killed_before_the_restart_after_a_reboot_starts_the_vm(
        tree: XenTree, monkeypatch: pytest.MonkeyPatch, by: str) -> None:
    vm = tree.add_vm(vm_config("reboots", memory=32, on_reboot="restart"))
    vm_task(vm, "start")
    old = int(vm_task(vm, "get-domid"))
    reached = _first_restart_hangs(monkeypatch)
    seq = tree.events.last_seq
    asked = None
    if by == "toolstack":
        asked = actors.service(vm_path(vm), VmHandle).submit(
            parse_task("reboot", {"forced": "true"}))
    else:
        tree.hypervisor.guest_shutdown(old, ShutdownReason.REBOOT)
    assert reached.wait(10)
    kill_monitor(tree, vm, seq)
    wait_until(lambda: vm_task(vm, "get-status") == "running", timeout=10)
    live = [i.domid for i in tree.hv.find_by_handle(uuidlib.UUID(vm)) if not i.dying]
    assert len(live) == 1 and live[0] != old and int(vm_task(vm, "get-domid")) == live[0]
    if asked is not None:  # the caller is told, not left waiting
        failed = asked.exception(1)
        assert isinstance(failed, TaskError) and "interrupted" in str(failed), failed
    vm_task(vm, "destroy")


@pytest.fixture
def guests(tmp_path: Path) -> Iterator[XenTree]:
    """A full simulated host: its guests acknowledge a suspend."""
    with sim_tree(tmp_path / "host") as (t, _host):
        yield t


def test_a_restore_killed_before_its_domid_is_saved_leaves_no_domain(
        guests: XenTree, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tree = guests
    vm = tree.add_vm(vm_config("restores", memory=32))
    image = tmp_path / "vm.img"
    vm_task(vm, "start")
    vm_task(vm, "suspend", {"file": str(image)})
    assert vm_task(vm, "get-status") == "suspended" and image.exists()
    # the first restore's build hangs: its domain exists, nothing saved its domid
    hangs, reached, _first = first_call_hangs(SimBuilder.restore)
    monkeypatch.setattr(SimBuilder, "restore", hangs)
    seq = tree.events.last_seq
    asked = actors.service(vm_path(vm), VmHandle).submit(
        parse_task("restore", {"file": str(image), "delete": "false"}))
    assert reached.wait(10)
    kill_monitor(tree, vm, seq)
    wait_until(lambda: not [i for i in tree.hv.find_by_handle(uuidlib.UUID(vm))
                            if not i.dying], timeout=10)  # the stray is gone
    assert vm_task(vm, "get-status") == "suspended" and image.exists()
    failed = asked.exception(1)
    assert isinstance(failed, TaskError) and "interrupted" in str(failed), failed
    vm_task(vm, "restore", {"file": str(image)})  # and it restores
    assert vm_task(vm, "get-status") == "running"
    vm_task(vm, "destroy")


def test_a_disk_plugged_by_a_killed_monitor_is_in_the_config_and_removable(
        guests: XenTree, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hot-added device is saved in the config before it is plugged: a monitor killed right
    after the plug leaves a device the config lists, which ``disk-del`` then removes (it used
    to stay plugged with no config entry: "no disk 'xvdb'")."""
    tree = guests
    vm = tree.add_vm(vm_config("hotplug", memory=32))
    vm_task(vm, "start")
    domid = int(vm_task(vm, "get-domid"))
    hangs, reached, _first = first_call_hangs(DomainActions.plug, after=True)
    monkeypatch.setattr(DomainActions, "plug", hangs)
    seq = tree.events.last_seq
    actors.service(vm_path(vm), VmHandle).submit(
        parse_task("disk-add", {"path": "/dev/null", "device": "xvdb"}))
    assert reached.wait(10)
    backend = f"/local/domain/0/backend/vbd/{domid}"
    assert tree.xs.directory(backend)  # plugged
    kill_monitor(tree, vm, seq)
    assert "xvdb" in vm_task(vm, "disk-list") and vm_task(vm, "get-status") == "running"
    vm_task(vm, "disk-del", {"device": "xvdb"})
    assert "xvdb" not in vm_task(vm, "disk-list")
    wait_until(lambda: not tree.xs.exists(backend) or not tree.xs.directory(backend),
               timeout=10)
    vm_task(vm, "destroy")
