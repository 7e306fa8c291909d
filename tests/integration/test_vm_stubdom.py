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
from xen.xenvm._tasks import TaskError

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


def leftovers(tree: XenTree, *domids: int, stub_runs: bool = False) -> list[str]:
    """Xenstore nodes that name any of ``domids`` (and ``/vm/<stub uuid>`` unless a stub
    domain still runs)."""
    found: list[str] = []
    xs = tree.xs
    for d in domids:
        for path in (f"/local/domain/{d}", f"/local/domain/0/backend/vbd/{d}",
                     f"/local/domain/0/backend/vif/{d}", f"/local/domain/0/backend/console/{d}",
                     f"/local/domain/0/device-model/{d}", f"/local/domain/0/dm-agent/dms/{d}",
                     f"/xapi/{d}"):
            if xs.exists(path):
                found.append(path)
    if not stub_runs and xs.exists(f"/vm/{STUB}"):
        found.append(f"/vm/{STUB}")
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
    dmargs = xs.read(f"/vm/{STUB}/image/dmargs").split()  # direct mode's, without -M xenfv
    assert dmargs[:2] == ["-d", str(domid)] and "-M" not in dmargs and "-net" in dmargs
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


def only_dom0(tree: XenTree) -> bool:
    return [i.domid for i in tree.hv.getinfolist()] == [0]


@pytest.mark.parametrize("on_crash", ["destroy", "restart"])
def test_a_guest_crash_takes_its_stub_domain_down(env: tuple[XenTree, Any], on_crash: str
                                                  ) -> None:
    tree, _host = env
    vm = tree.add_vm(stub_config("crashy", on_crash=on_crash))
    domid, stub = started(tree, vm)
    tree.hypervisor.crash(domid)
    if on_crash == "destroy":
        wait_until(lambda: status(tree, vm) == "shutdown", timeout=10)
        wait_until(lambda: only_dom0(tree), timeout=10)
        assert leftovers(tree, domid, stub) == []
        return
    wait_until(lambda: int(tree.task(vm, "get-domid")) not in (domid, -1)
               and status(tree, vm) == "running", timeout=15)
    new_stub = int(tree.task(vm, "get-stubdomid"))
    assert new_stub not in (stub, -1)
    wait_until(lambda: live(tree, vm) == [int(tree.task(vm, "get-domid"))]
               and live(tree, STUB) == [new_stub], timeout=10)
    assert leftovers(tree, domid, stub, stub_runs=True) == []
    tree.task(vm, "destroy")
    wait_until(lambda: only_dom0(tree), timeout=10)


@pytest.mark.parametrize("on_crash", ["destroy", "restart"])
def test_a_stub_domain_that_dies_alone_crashes_its_guest_once(env: tuple[XenTree, Any],
                                                              on_crash: str) -> None:
    tree, host = env
    vm = tree.add_vm(stub_config("orphaned", on_crash=on_crash))
    domid, stub = started(tree, vm)
    wait_until(lambda: host.guest_status(stub) == "running")
    host.set_behaviour("crash", 0.05, domid=stub)
    if on_crash == "destroy":
        wait_until(lambda: status(tree, vm) == "shutdown", timeout=10)
        wait_until(lambda: only_dom0(tree), timeout=10)
    else:
        wait_until(lambda: int(tree.task(vm, "get-domid")) not in (domid, -1)
                   and status(tree, vm) == "running", timeout=15)
        new_stub = int(tree.task(vm, "get-stubdomid"))
        assert new_stub not in (stub, -1)
        # once: exactly one guest and one stub domain live, and they stay so
        wait_until(lambda: len(live(tree, vm)) == 1 and live(tree, STUB) == [new_stub],
                   timeout=10)
        assert int(tree.task(vm, "get-domid")) == live(tree, vm)[0]
        tree.task(vm, "destroy")
        wait_until(lambda: only_dom0(tree), timeout=10)
    host.clear_behaviour("crash", domid=stub)
    assert leftovers(tree, domid, stub) == []


def test_a_restarted_monitor_adopts_the_guest_and_its_stub_domain(env: tuple[XenTree, Any]
                                                                  ) -> None:
    import actors

    tree, _host = env
    vm = tree.add_vm(stub_config("adopted"))
    domid, stub = started(tree, vm)
    seq = tree.events.last_seq
    actors.tell(f"/vms/{vm}", actors.InjectCrash())
    assert tree.events.wait_for(lambda e: e.kind == "restarted" and e.path == f"/vms/{vm}",
                                10, since=seq)
    assert status(tree, vm) == "running"
    assert (int(tree.task(vm, "get-domid")), int(tree.task(vm, "get-stubdomid"))) == (domid,
                                                                                      stub)
    assert live(tree, vm) == [domid] and live(tree, STUB) == [stub]
    tree.task(vm, "destroy")
    wait_until(lambda: only_dom0(tree), timeout=10)
    assert leftovers(tree, domid, stub) == []


def test_a_missing_stub_kernel_is_named_and_nothing_is_built(env: tuple[XenTree, Any],
                                                             tmp_path: Path) -> None:
    tree, _host = env
    missing = tmp_path / "no-such-stubdom-bzImage"
    vm = tree.add_vm(stub_config("kernelless", stubdom_kernel=str(missing)))
    with pytest.raises(TaskError, match=f"stubdom-kernel.*{missing.name}.*does not exist"):
        tree.task(vm, "start")
    assert status(tree, vm) == "shutdown"
    assert only_dom0(tree)
    assert [d for d in tree.xs.directory("/local/domain") if d != "0"] == []


def test_direct_mode_cannot_serve_a_stub_domain(env: tuple[XenTree, Any]) -> None:
    tree, _host = env
    vm = tree.add_vm(stub_config("confused", dm_mode="direct"))
    with pytest.raises(TaskError, match="dm-mode"):
        tree.task(vm, "start")
    assert only_dom0(tree)


def test_dom0_dm_agent_runs_the_device_model(env: tuple[XenTree, Any]) -> None:
    tree, _host = env
    vm = tree.add_vm(vm_config("agented", dm_mode="dm-agent") + HVM)
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    assert int(tree.task(vm, "get-stubdomid")) == -1
    dms = f"/local/domain/0/dm-agent/dms/{domid}"
    xs = tree.xs
    assert xs.read(f"{dms}/0/status") == "running"
    assert xs.read(f"{dms}/0/infos/drive0/file") == "/dev/null"  # dom0 opens the disk itself
    assert xs.read(f"{dms}/0/infos/net0/bridge") == "xenbr0"
    assert not xs.exists(f"/local/domain/{domid}/qemu-pid")
    tree.task(vm, "destroy")
    wait_until(lambda: only_dom0(tree), timeout=10)
    assert not xs.exists(dms) and leftovers(tree, domid) == []


def test_a_reboot_brings_a_new_stub_domain_and_pause_leaves_it_alone(env: tuple[XenTree, Any]
                                                                     ) -> None:
    tree, _host = env
    vm = tree.add_vm(stub_config("rebooter"))
    domid, stub = started(tree, vm)
    tree.task(vm, "pause")
    assert tree.hv.getinfo(domid).paused and not tree.hv.getinfo(stub).paused
    tree.task(vm, "unpause")
    tree.task(vm, "reboot")
    assert status(tree, vm) == "running"
    new, new_stub = int(tree.task(vm, "get-domid")), int(tree.task(vm, "get-stubdomid"))
    assert new != domid and new_stub not in (stub, -1)
    wait_until(lambda: live(tree, vm) == [new] and live(tree, STUB) == [new_stub], timeout=10)
    assert tree.xs.read(f"/local/domain/{new}/image/device-model-domid") == str(new_stub)
    assert leftovers(tree, domid, stub, stub_runs=True) == []
    tree.task(vm, "shutdown")
    wait_until(lambda: only_dom0(tree), timeout=10)
    assert leftovers(tree, new, new_stub) == []


def test_suspend_and_restore_with_a_stub_domain(env: tuple[XenTree, Any], tmp_path: Path
                                                ) -> None:
    tree, _host = env
    vm = tree.add_vm(stub_config("sleeper"))
    domid, stub = started(tree, vm)
    image = tmp_path / "sleeper.img"
    tree.task(vm, "suspend", file=str(image))
    assert status(tree, vm) == "suspended" and int(tree.task(vm, "get-stubdomid")) == -1
    wait_until(lambda: only_dom0(tree), timeout=10)
    assert leftovers(tree, domid, stub) == []
    tree.task(vm, "restore", file=str(image))
    assert status(tree, vm) == "running"
    new_stub = int(tree.task(vm, "get-stubdomid"))
    assert new_stub > 0 and live(tree, STUB) == [new_stub]
    tree.task(vm, "destroy")
    wait_until(lambda: only_dom0(tree), timeout=10)


def test_a_stub_domain_whose_agent_never_answers_fails_the_start_and_leaves_nothing(
        env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(stub_config("silent").replace("qemu-dm-timeout = 10", "qemu-dm-timeout = 1"))
    host.set_behaviour("hang", True, uuid=STUB)
    try:
        with pytest.raises(TaskError, match=r"dm-agent .* capabilities"):
            tree.task(vm, "start")
        assert status(tree, vm) == "shutdown"
        assert int(tree.task(vm, "get-stubdomid")) == -1
        wait_until(lambda: only_dom0(tree), timeout=10)
        assert [d for d in tree.xs.directory("/local/domain") if d != "0"] == []
        assert not tree.xs.exists(f"/vm/{STUB}")
    finally:
        host.clear_behaviour("hang", uuid=STUB)


@pytest.mark.parametrize("where", ["stubdom", "dom0"])
def test_device_model_commands_reach_a_device_model_run_by_a_dm_agent(
        env: tuple[XenTree, Any], where: str) -> None:
    from xen.xenops._dm import DeviceModelError, device_model_command

    tree, _host = env
    config = (stub_config("commanded") if where == "stubdom"
              else vm_config("commanded", dm_mode="dm-agent") + HVM)
    vm = tree.add_vm(config)
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    state = f"/local/domain/0/device-model/{domid}/state"
    device_model_command(tree.xs, domid, "save", timeout=10)
    assert tree.xs.read(state) == "paused"
    device_model_command(tree.xs, domid, "continue", timeout=10)
    assert tree.xs.read(state) == "running"
    device_model_command(tree.xs, domid, "pci-ins", timeout=10, parameter="0000:04:00.0")
    assert tree.xs.read(state) == "running"  # no answer, as the original
    tree.task(vm, "destroy")
    with pytest.raises(DeviceModelError, match="did not answer save"):  # nobody left
        device_model_command(tree.xs, domid, "save", timeout=0.5)
    wait_until(lambda: only_dom0(tree), timeout=10)
