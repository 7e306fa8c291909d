"""VM monitors with simulated guests and backends: clean shutdown and reboot through the
guest, devices through the xenbus handshake, and guests that crash, hang, ignore shutdown,
reboot by themselves, or stop mid-handshake."""

from __future__ import annotations

import threading
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.integration.xen_fixtures import XenTree, sim_tree, vm_config
from xen.hypervisor import ShutdownReason
from xen.xenops import name_to_devid
from xen.xenvm._tasks import TaskError

pytestmark = pytest.mark.integration

DEVICES = ("disk = /dev/null:phy:xvda:w:disk:none\n"
           "disk = /srv/cd.iso:file:xvdc:r:cdrom:none\n"
           "nic = id=0,bridge=xenbr0\n")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[XenTree, Any]]:
    with sim_tree(tmp_path) as pair:
        yield pair


def status(tree: XenTree, vm: str) -> str:
    return tree.task(vm, "get-status")


def live(tree: XenTree, vm: str) -> list[int]:
    return [i.domid for i in tree.hv.find_by_handle(uuidlib.UUID(vm))
            if not i.dying and not i.shutdown]


def gone(tree: XenTree, vm: str) -> bool:
    return not tree.hv.find_by_handle(uuidlib.UUID(vm))


def test_start_with_devices_and_clean_shutdown(env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("guest1") + DEVICES)
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    assert status(tree, vm) == "running"
    def connected() -> set[tuple[str, int]]:
        return {(kind, fe) for kind, fe, _ in host.backends_connected()}

    # the guest's frontends connect once it runs: both ends reach Connected
    wait_until(lambda: {("vbd", domid), ("vif", domid)} <= connected(), timeout=5)
    wait_until(lambda: host.guest_status(domid) == "running")
    tree.task(vm, "shutdown")
    assert status(tree, vm) == "shutdown"
    wait_until(lambda: gone(tree, vm), timeout=5)  # backends closed, so the domain went
    assert not [c for c in host.backends_connected() if c[1] == domid]


def test_reboot_through_the_guest(env: tuple[XenTree, Any]) -> None:
    tree, _host = env
    vm = tree.add_vm(vm_config("guest2") + DEVICES)
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    tree.task(vm, "reboot")
    assert status(tree, vm) == "running"
    assert int(tree.task(vm, "get-domid")) != domid
    assert len(live(tree, vm)) == 1


def test_guest_that_ignores_shutdown(env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("stubborn"))
    host.set_behaviour("ignore-shutdown", True, uuid=vm)
    tree.task(vm, "start")
    with pytest.raises(TaskError, match="did not shut down"):
        tree.task(vm, "shutdown", timeout="1")
    assert status(tree, vm) == "running"
    tree.task(vm, "shutdown", timeout="0.5", **{"destroy-after": "true"})
    assert status(tree, vm) == "shutdown"


def test_a_guest_paused_from_outside_during_a_failed_shutdown_is_paused_after_it(
        env: tuple[XenTree, Any]) -> None:
    """The domain is paused from outside while the monitor waits for a shutdown the guest
    ignores (a pause fires no domain event): when the wait fails the monitor looks at the
    domain, and the VM is ``paused`` (its domain is), not ``running``."""
    tree, host = env
    vm = tree.add_vm(vm_config("paused-meanwhile"))
    host.set_behaviour("ignore-shutdown", True, uuid=vm)
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    pauser = threading.Timer(0.3, tree.hv.pause, (domid,))
    pauser.start()
    try:
        with pytest.raises(TaskError, match="did not shut down"):
            tree.task(vm, "shutdown", timeout="1.5")
    finally:
        pauser.join(5)
    assert tree.hv.getinfo(domid).paused
    assert status(tree, vm) == "paused"
    tree.task(vm, "unpause")
    assert status(tree, vm) == "running" and not tree.hv.getinfo(domid).paused
    host.clear_behaviour("ignore-shutdown", uuid=vm)


def test_guest_that_hangs(env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("hung"))
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    host.set_behaviour("hang", True, domid=domid)
    wait_until(lambda: host.guest_status(domid) == "hung")
    with pytest.raises(TaskError):
        tree.task(vm, "shutdown", timeout="0.5")
    assert status(tree, vm) == "running"
    tree.task(vm, "shutdown", forced="true")  # a hard shutdown needs no guest
    assert status(tree, vm) == "shutdown"


@pytest.mark.parametrize(("key", "expect"), [("crash", "running"), ("reboot", "running")])
def test_guest_that_crashes_or_reboots_by_itself(env: tuple[XenTree, Any], key: str,
                                                 expect: str) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("selfish", on_crash="restart", on_reboot="restart"))
    host.set_behaviour(key, 0.2, uuid=vm)
    tree.task(vm, "start")
    first = int(tree.task(vm, "get-domid"))
    wait_until(lambda: int(tree.task(vm, "get-domid")) not in (first, -1)
               and status(tree, vm) == expect, timeout=10)
    host.clear_behaviour(key, uuid=vm)


def test_guest_stuck_mid_handshake_fails_the_start(env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("halfway") + DEVICES)
    host.set_behaviour("hotplug-fail", "vbd", uuid=vm)
    with pytest.raises(TaskError, match="start failed"):
        tree.task(vm, "start")
    assert status(tree, vm) == "shutdown"
    wait_until(lambda: gone(tree, vm), timeout=5)


def test_hvm_guest_gets_a_device_model(env: tuple[XenTree, Any]) -> None:
    tree, _host = env
    cfg = vm_config("hvm1") + ("hvm = true\nqemu-dm-path = /usr/lib/xen/bin/qemu-dm\n"
                               "qemu-dm-timeout = 10\nnic = id=0,bridge=xenbr0\n")
    vm = tree.add_vm(cfg)
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    pid = int(tree.xs.read(f"/local/domain/{domid}/qemu-pid"))
    assert Path(f"/proc/{pid}").exists()
    assert tree.xs.exists(f"/local/domain/{domid}/device-misc/dm-ready")
    tree.task(vm, "destroy")
    wait_until(lambda: not Path(f"/proc/{pid}").exists() or
               "zombie" in Path(f"/proc/{pid}/status").read_text().lower(), timeout=10)


def test_suspend_to_a_file_and_restore(env: tuple[XenTree, Any], tmp_path: Path) -> None:
    tree, _host = env
    vm = tree.add_vm(vm_config("sleepy") + DEVICES)
    tree.task(vm, "start")
    before = int(tree.task(vm, "get-domid"))
    image = tmp_path / "sleepy.img"
    tree.task(vm, "suspend", file=str(image))   # the guest acks and shuts down "suspend"
    assert status(tree, vm) == "suspended" and image.stat().st_size > 0
    wait_until(lambda: gone(tree, vm), timeout=5)
    with pytest.raises(TaskError, match="not allowed in state suspended"):
        tree.task(vm, "pause")
    with pytest.raises(TaskError, match="not a saved domain image"):
        bad = tmp_path / "bad.img"
        bad.write_bytes(b"nonsense")
        tree.task(vm, "restore", file=str(bad))
    tree.task(vm, "restore", file=str(image))
    assert status(tree, vm) == "running"
    assert int(tree.task(vm, "get-domid")) != before
    assert not image.exists()  # delete defaults to true, as the original


def test_config_changes_made_while_suspended_wait_for_the_next_start(
        env: tuple[XenTree, Any], tmp_path: Path) -> None:
    """The restored guest gets the memory and devices it was saved with; what was changed
    meanwhile is pending and the next start (a reboot) takes it."""
    tree, _host = env
    vm = tree.add_vm(vm_config("changed", memory=64) + DEVICES)
    tree.task(vm, "start")
    saved = tree.hv.getinfo(int(tree.task(vm, "get-domid"))).max_pages
    image = tmp_path / "changed.img"
    tree.task(vm, "suspend", file=str(image))
    tree.task(vm, "set", field="memory", value="96")
    tree.task(vm, "nic-add", bridge="xenbr1", id="7")
    tree.task(vm, "restore", file=str(image))
    domid = int(tree.task(vm, "get-domid"))
    assert tree.hv.getinfo(domid).max_pages == saved  # as saved
    assert "7" not in tree.xs.directory(f"/local/domain/{domid}/device/vif")
    assert tree.task(vm, "get", field="memory") == "96"  # pending
    tree.task(vm, "reboot")
    domid = int(tree.task(vm, "get-domid"))
    assert tree.hv.getinfo(domid).max_pages == saved + 32 * 256  # 32 MiB more
    assert "7" in tree.xs.directory(f"/local/domain/{domid}/device/vif")
    tree.task(vm, "destroy")


def test_a_device_added_live_that_the_pending_config_has_keeps_that_config(
        env: tuple[XenTree, Any]) -> None:
    """The pending config (here from set-config while running) already lists the disk a
    disk-add plugs now: it stays as it is (it was once dropped whole, its memory too)."""
    tree, _host = env
    cfg = vm_config("pending", memory=64) + DEVICES
    vm = tree.add_vm(cfg)
    tree.task(vm, "start")
    saved = tree.hv.getinfo(int(tree.task(vm, "get-domid"))).max_pages
    extra = "disk = /dev/null:phy:xvdd:w:disk:none\n"
    tree.task(vm, "set-config", config=cfg.replace("memory = 64", "memory = 96") + extra)
    tree.task(vm, "disk-add", path="/dev/null", device="xvdd")
    with pytest.raises(TaskError, match="xvdd is taken by another disk"):
        tree.task(vm, "disk-add", path="/srv/other", device="xvdd")
    tree.task(vm, "reboot")
    domid = int(tree.task(vm, "get-domid"))
    assert tree.hv.getinfo(domid).max_pages == saved + 32 * 256
    assert str(name_to_devid("xvdd")) in tree.xs.directory(f"/local/domain/{domid}/device/vbd")
    tree.task(vm, "destroy")



def test_a_guest_that_does_not_run_is_not_asked_to_stop(env: tuple[XenTree, Any],
                                                        tmp_path: Path) -> None:
    """A paused guest, or a created one that never ran, cannot answer a shutdown, reboot or
    suspend request: refused at once (they once waited out the timeout, and the VM then said
    running while its domain stayed paused). Forced, or with destroy-after, it goes."""
    tree, _host = env
    vm = tree.add_vm(vm_config("halted"))
    tree.task(vm, "start")
    tree.task(vm, "pause")
    for task, params in (("shutdown", {}), ("reboot", {}),
                         ("suspend", {"file": str(tmp_path / "x.img")})):
        with pytest.raises(TaskError, match=rf"^{task}: the VM is paused: its guest cannot"):
            tree.task(vm, task, **params)
        assert status(tree, vm) == "paused"
    domid = int(tree.task(vm, "get-domid"))
    assert tree.hv.getinfo(domid).paused and not (tmp_path / "x.img").exists()
    tree.task(vm, "shutdown", **{"destroy-after": "true"})  # at once, as asked
    assert status(tree, vm) == "shutdown" and gone(tree, vm)
    tree.task(vm, "start", paused="true")
    with pytest.raises(TaskError, match=r"^shutdown: the VM is created: its guest cannot"):
        tree.task(vm, "shutdown")
    tree.task(vm, "shutdown", forced="true")
    assert status(tree, vm) == "shutdown"
    wait_until(lambda: gone(tree, vm), timeout=5)


def _guest_of_a_network_vm(tree: XenTree, host: Any, name: str) -> tuple[str, str, int]:
    """A running "network VM" and a running guest whose nic it serves: (net, guest, guest's
    domid), the vif connected in the network VM's domain."""
    net = tree.add_vm(vm_config(f"{name}-net"))
    tree.task(net, "start")
    net_domid = int(tree.task(net, "get-domid"))
    vm = tree.add_vm(vm_config(name, on_reboot="restart")
                     + f"nic = id=0,backend-domid={net_domid}\n")
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    wait_until(lambda: ("vif", domid, 0) in host.backends_connected(net_domid), timeout=10)
    return net, vm, domid


def test_a_guest_rebooting_after_its_network_vm_stopped_gets_its_nic_from_dom0(
        env: tuple[XenTree, Any]) -> None:
    """The monitor reboots the guest with the config of its last start, whose nic names the
    network VM's domain, gone since: the nic is served by dom0 (as xenmgr serves a nic whose
    backend VM does not run), not a start that waits out the hotplug timeout and fails."""
    tree, host = env
    net, vm, domid = _guest_of_a_network_vm(tree, host, "served")
    tree.task(net, "destroy")
    tree.hv.shutdown(domid, ShutdownReason.REBOOT)  # the guest reboots itself, once
    wait_until(lambda: int(tree.task(vm, "get-domid")) not in (domid, -1)
               and status(tree, vm) == "running", timeout=20)
    new = int(tree.task(vm, "get-domid"))
    wait_until(lambda: ("vif", new, 0) in host.backends_connected(0), timeout=10)
    assert "backend-domid" not in tree.task(vm, "get-config")  # what it runs with


def test_a_guest_restored_after_its_network_vm_stopped_gets_its_nic_from_dom0(
        env: tuple[XenTree, Any], tmp_path: Path) -> None:
    tree, host = env
    net, vm, _domid = _guest_of_a_network_vm(tree, host, "saved")
    image = tmp_path / "saved.img"
    tree.task(vm, "suspend", file=str(image))
    tree.task(net, "destroy")
    tree.task(vm, "restore", file=str(image))
    domid = int(tree.task(vm, "get-domid"))
    wait_until(lambda: ("vif", domid, 0) in host.backends_connected(0), timeout=10)
    assert status(tree, vm) == "running"
