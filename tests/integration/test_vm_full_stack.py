"""An HVM guest with everything of issue 14 at once, on the simulated host over its real
sockets: its device model in a stub domain, two PCI devices passed through and a vTPM. Start,
stop, crash of the guest, crash of the stub domain, a monitor crash and a SIGKILL of the
supervisor's process with all of them running (adopted, nothing duplicated, nothing assigned,
reset or granted twice), and after every teardown nothing left in xenstore or in the simulated
PCI state."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import actors
from tests.helpers import wait_until
from tests.integration.tree_procs import kill, run_vm_tree
from tests.integration.xen_fixtures import XenTree, sim_tree, vm_config
from xen.hypervisor import SimBackend
from xen.sim import SimHost
from xen.xenvm._tasks import TaskError

pytestmark = pytest.mark.integration

STUB = "5e1f0c0e-3b8a-4c1d-9a57-0d7f8f2b1c11"
NIC, USB = "0000:04:00.0", "0000:00:14.0"  # the simulated host's pciback NIC and xhci USB
FULL = ("hvm = true\nqemu-dm-timeout = 10\nstubdom-memory = 32\n"
        f"stubdom = {STUB}\nvtpm-instance = 3\n"
        "disk = /dev/null:phy:hda:w:disk:none\nnic = id=0,bridge=xenbr0\n"
        f"pci = 0,{NIC}\npci = 1,bind,{USB}\n")


def full_config(name: str, **extra: str) -> str:
    return vm_config(name, **extra) + FULL


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[XenTree, Any]]:
    with sim_tree(tmp_path) as pair:
        yield pair


def live(hv: Any, uuid: str) -> list[int]:
    return [i.domid for i in hv.find_by_handle(uuidlib.UUID(uuid))
            if not i.dying and not i.shutdown]


def leftovers(xs: Any, *domids: int) -> list[str]:
    """Xenstore nodes that name any of ``domids``, and the stub domain's ``/vm`` tree."""
    kinds = ("vbd", "vif", "console", "pci", "vtpm", "vfb", "vkbd")
    found = [path for d in domids for path in (
        f"/local/domain/{d}", *(f"/local/domain/0/backend/{k}/{d}" for k in kinds),
        f"/local/domain/0/device-model/{d}", f"/local/domain/0/dm-agent/dms/{d}",
        f"/xapi/{d}") if xs.exists(path)]
    return found + [f"/vm/{STUB}"] * xs.exists(f"/vm/{STUB}")


def assert_pci_released(host: Any) -> None:
    state = host.pci_state()
    assert all(d["assigned"] is None for d in state["devices"].values())
    assert not any(d["permissive"] for d in state["devices"].values())  # restrictive again
    assert state["grants"] == {}


def only_dom0(hv: Any) -> bool:
    return [i.domid for i in hv.getinfolist()] == [0]


def started(tree: XenTree, host: Any, vm: str, pcis: tuple[str, ...] = (NIC, USB)
            ) -> tuple[int, int]:
    tree.task(vm, "start")
    domid, stub = int(tree.task(vm, "get-domid")), int(tree.task(vm, "get-stubdomid"))
    assert tree.task(vm, "get-status") == "running" and stub > 0
    state = host.pci_state()
    devices = state["devices"]
    # the stub domain's copies: PV-PCI, not assigned, pciback permissive, the BARs and IRQs
    # granted to the stub's device model too
    assert all(devices[b]["assigned"] == domid and devices[b]["permissive"] for b in pcis)
    assert state["grants"][str(stub)]["irq"] == state["grants"][str(domid)]["irq"]
    back = f"/local/domain/0/backend/pci/{stub}/0"
    assert tree.xs.read(f"{back}/dev-0") == NIC and tree.xs.read(f"{back}/state") in "1234"
    assert tree.xs.read(f"/local/domain/0/backend/vtpm/{domid}/0/pref_instance") == "3"
    assert tree.xs.read(f"/local/domain/{domid}/image/device-model-domid") == str(stub)
    infos = f"/local/domain/{stub}/dm-agent/dms/{domid}/0/infos"
    assert [tree.xs.read(f"{infos}/xen_pci_pt{i}/hostaddr") for i in range(len(pcis))] == \
        list(pcis)  # the device model in the stub passes them through
    wait_until(lambda: host.guest_status(stub) == "running")
    return domid, stub


def gone(tree: XenTree, host: Any, *domids: int) -> None:
    """Wait (bounded) for only dom0 to remain, then check nothing of ``domids`` is left."""
    wait_until(lambda: only_dom0(tree.hv), timeout=10)
    wait_until(lambda: host.pci_state()["grants"] == {}, timeout=5)
    assert_pci_released(host)
    assert leftovers(tree.xs, *domids) == []


@pytest.mark.parametrize("stop", ["destroy", "shutdown"])
def test_start_and_stop(env: tuple[XenTree, Any], stop: str) -> None:
    tree, host = env
    vm = tree.add_vm(full_config("full"))
    domid, stub = started(tree, host, vm)
    resets = host.pci_state()["devices"][USB]["resets"]
    tree.task(vm, stop)
    assert tree.task(vm, "get-status") == "shutdown"
    gone(tree, host, domid, stub)
    assert host.pci_state()["devices"][USB]["resets"] == resets + 1  # FLR after the destroy


def test_a_guest_crash_releases_everything(env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(full_config("fullcrash", on_crash="destroy"))
    domid, stub = started(tree, host, vm)
    tree.hypervisor.crash(domid)
    wait_until(lambda: tree.task(vm, "get-status") == "shutdown", timeout=10)
    gone(tree, host, domid, stub)


def test_a_stub_domain_crash_restarts_the_guest_once_with_its_devices(
        env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(full_config("fullstub", on_crash="restart"))
    domid, stub = started(tree, host, vm)
    host.set_behaviour("crash", 0.05, domid=stub)
    try:
        wait_until(lambda: int(tree.task(vm, "get-domid")) not in (domid, -1)
                   and tree.task(vm, "get-status") == "running", timeout=15)
        new, new_stub = int(tree.task(vm, "get-domid")), int(tree.task(vm, "get-stubdomid"))
        wait_until(lambda: live(tree.hv, vm) == [new] and live(tree.hv, STUB) == [new_stub],
                   timeout=10)
        devices = host.pci_state()["devices"]
        assert devices[NIC]["assigned"] == new and devices[USB]["assigned"] == new
        assert set(host.pci_state()["grants"]) == {str(new), str(new_stub)}
        assert tree.xs.exists(f"/local/domain/0/backend/vtpm/{new}/0")
        assert [p for p in leftovers(tree.xs, domid, stub) if not p.startswith("/vm/")] == []
        tree.task(vm, "destroy")
        gone(tree, host, domid, stub, new, new_stub)
    finally:
        host.clear_behaviour("crash", domid=stub)


def test_a_monitor_crash_adopts_all_of_them_once(env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(full_config("fulladopt"))
    domid, stub = started(tree, host, vm)
    before = host.pci_state()
    vtpm = tree.xs.read(f"/local/domain/{domid}/device/vtpm/0/backend")
    seq = tree.events.last_seq
    actors.tell(f"/vms/{vm}", actors.InjectCrash())
    assert tree.events.wait_for(lambda e: e.kind == "restarted" and e.path == f"/vms/{vm}",
                                10, since=seq)
    assert tree.task(vm, "get-status") == "running"
    assert (int(tree.task(vm, "get-domid")), int(tree.task(vm, "get-stubdomid"))) == (domid,
                                                                                      stub)
    assert live(tree.hv, vm) == [domid] and live(tree.hv, STUB) == [stub]
    assert host.pci_state() == before  # nothing assigned, reset or granted again
    assert tree.xs.directory(f"/local/domain/{domid}/device/vtpm") == ["0"]
    assert tree.xs.read(f"/local/domain/{domid}/device/vtpm/0/backend") == vtpm
    tree.task(vm, "destroy")
    gone(tree, host, domid, stub)


def test_pci_add_and_del_while_running_follow_in_the_stub_domain(
        env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(full_config("fullhot").replace(f"pci = 1,bind,{USB}\n", ""))
    domid, stub = started(tree, host, vm, (NIC,))
    dm = f"/local/domain/0/device-model/{domid}"
    tree.task(vm, "pci-add", id="1", domain="0", bus="0", slot="20", func="0")  # binds
    # the device model hears of it (no answer, as the original)
    assert (tree.xs.read(f"{dm}/command"), tree.xs.read(f"{dm}/parameter")) == ("pci-ins", USB)
    state = host.pci_state()
    assert state["devices"][USB]["assigned"] == domid and state["devices"][USB]["permissive"]
    assert tree.xs.read(f"/local/domain/0/backend/pci/{stub}/1/dev-0") == USB
    assert 16 in state["grants"][str(stub)]["irq"]
    tree.task(vm, "pci-del", domain="0", bus="0", slot="20", func="0")
    assert (tree.xs.read(f"{dm}/command"), tree.xs.read(f"{dm}/parameter")) == ("pci-rem", USB)
    state = host.pci_state()
    assert state["devices"][USB]["assigned"] is None and not state["devices"][USB]["permissive"]
    assert 16 not in state["grants"][str(stub)]["irq"]
    assert not tree.xs.exists(f"/local/domain/0/backend/pci/{stub}/1")
    assert state["devices"][NIC]["assigned"] == domid  # group 0 untouched
    # a device added to group 0 re-plugs it in both domains (the stub's copy of the NIC is
    # not taken for another holder of it)
    audio = "0000:00:1f.3"
    tree.task(vm, "pci-add", id="0", domain="0", bus="0", slot="31", func="3")
    for fe in (domid, stub):
        back = f"/local/domain/0/backend/pci/{fe}/0"
        assert (tree.xs.read(f"{back}/num_devs"), tree.xs.read(f"{back}/dev-1")) == ("2", audio)
    assert host.pci_state()["devices"][audio]["assigned"] == domid
    tree.task(vm, "pci-del", domain="0", bus="0", slot="31", func="3")
    tree.task(vm, "pci-del", domain="0", bus="4", slot="0", func="0")  # the last group
    for fe in (domid, stub):  # no empty directory is left
        assert not tree.xs.exists(f"/local/domain/0/backend/pci/{fe}")
        assert not tree.xs.exists(f"/local/domain/{fe}/device/pci")
    assert host.pci_state()["grants"].get(str(stub), {}).get("irq", []) == []
    tree.task(vm, "destroy")
    gone(tree, host, domid, stub)


@pytest.mark.parametrize(("change", "error"), [
    ((f"pci = 0,{NIC}", "pci = 0,0000:07:00.0"), "no PCI device 0000:07:00.0 on this host"),
    ((f"pci = 0,{NIC}", "pci = 0,0000:03:00.0"),
     "pci 0000:03:00.0 is bound to the dom0 driver e1000e, not pciback"),
    (("stubdom-memory = 32", "stubdom-memory = 32\nstubdom-kernel = /no/such/bzImage"),
     r"stubdom-kernel.* = ./no/such/bzImage.: does not exist"),
])
def test_a_bad_config_is_named_and_nothing_is_built(env: tuple[XenTree, Any],
                                                    change: tuple[str, str], error: str) -> None:
    tree, host = env
    before = host.pci_state()
    vm = tree.add_vm(full_config("fullbad").replace(*change))
    with pytest.raises(TaskError, match=error):
        tree.task(vm, "start")
    assert tree.task(vm, "get-status") == "shutdown" and only_dom0(tree.hv)
    assert [d for d in tree.xs.directory("/local/domain") if d != "0"] == []
    assert host.pci_state() == before  # nothing bound, assigned, reset or granted


# ------------------------------------------------------------------ SIGKILL of the process


def test_sigkill_with_all_of_them_running(tmp_path: Path) -> None:
    vm = str(uuidlib.uuid4())
    config = tmp_path / "vm.cfg"
    config.write_text(full_config("fullkill"))
    state = tmp_path / "tree"
    with SimHost(tmp_path / "host", memory_mib=2048) as host, \
            SimBackend(host.hypervisor_path) as hv:
        proc, status, domid, _stub = run_vm_tree(state, host, "create", vm, config)
        try:
            assert status == "running"
            xs = host.xenstore
            stub = int(xs.read(f"/local/domain/{domid}/image/device-model-domid"))
            vtpm = xs.read(f"/local/domain/0/backend/vtpm/{domid}/0/uuid")
            before = host.pci_state()
            kill(proc)
            proc, status, again, _stub = run_vm_tree(state, host, "resume", vm, config)
            assert (status, again) == ("running", domid)  # adopted
            assert live(hv, vm) == [domid] and live(hv, STUB) == [stub]  # nothing duplicated
            assert host.pci_state() == before  # nothing assigned, reset or granted twice
            assert xs.read(f"/local/domain/0/backend/vtpm/{domid}/0/uuid") == vtpm
            kill(proc)
            proc, status, none, _stub = run_vm_tree(state, host, "destroy", vm, config)
            assert (status, none) == ("shutdown", -1)
            wait_until(lambda: only_dom0(hv), timeout=10)
            wait_until(lambda: host.pci_state()["grants"] == {}, timeout=5)
            assert_pci_released(host)
            assert leftovers(xs, domid, stub) == []
        finally:
            kill(proc)
