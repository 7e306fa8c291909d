"""PCI passthrough through the VM monitors on a simulated host (its real sockets): start and
destroy with devices, guest crash, monitor crash (adopted, assigned once), pci-add/del/list
running and stopped, and bad configs refused before any side effect; after every teardown
nothing is left in xenstore or in the simulated PCI state."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import actors
from tests.helpers import wait_until
from tests.integration.xen_fixtures import XenTree, sim_tree, vm_config
from xen.xenvm._tasks import TaskError

pytestmark = pytest.mark.integration

USB = "0000:00:14.0"      # xhci_hcd at boot, class 0x0c0330 (reset), BAR 0xf7f00000+64K, irq 16
NIC = "0000:04:00.0"      # pciback at boot, class 0x020000 (never reset), mem + io BARs, irq 19
HOST_NIC = "0000:03:00.0"  # e1000e at boot
PCI = f"pci = 0,{NIC}\npci = 1,bind,{USB}\n"
USB_NODE = "0000-00-14-0"  # its name under /sim/pci


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[XenTree, Any]]:
    with sim_tree(tmp_path) as pair:
        yield pair


def devices(host: Any) -> dict[str, dict[str, Any]]:
    return host.pci_state()["devices"]  # type: ignore[no-any-return]


def grants(host: Any) -> dict[str, Any]:
    return host.pci_state()["grants"]  # type: ignore[no-any-return]


def domid_of(tree: XenTree, vm: str) -> int:
    return int(tree.task(vm, "get-domid"))


def live(tree: XenTree, vm: str) -> list[int]:
    return [i.domid for i in tree.hv.find_by_handle(uuidlib.UUID(vm))
            if not i.dying and not i.shutdown]


def assert_released(tree: XenTree, host: Any, domid: int) -> None:
    """Nothing of ``domid`` is left: no assignment, grant or pirq, no xenstore node."""
    assert all(d["assigned"] is None for d in devices(host).values())
    assert grants(host) == {}
    xs = tree.xs
    assert not xs.exists(f"/local/domain/{domid}")
    assert not xs.exists(f"/local/domain/0/backend/pci/{domid}")
    assert not xs.exists(f"/xapi/{domid}")


def destroy_and_check(tree: XenTree, host: Any, vm: str, domid: int) -> None:
    """Destroy the VM, wait (bounded) for its domain to go, check nothing of it is left."""
    tree.task(vm, "destroy")
    wait_until(lambda: not tree.hv.find_by_handle(uuidlib.UUID(vm)), timeout=5)
    assert_released(tree, host, domid)


def test_start_passes_devices_through_and_destroy_gives_them_back(
        env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("pci1") + PCI)
    tree.task(vm, "start")
    domid = domid_of(tree, vm)
    devs = devices(host)
    assert devs[NIC]["assigned"] == domid and devs[USB]["assigned"] == domid
    assert devs[USB]["driver"] == "pciback"       # bound: unbound from xhci_hcd, new_slot, bind
    assert devs[USB]["resets"] == 1 and devs[NIC]["resets"] == 0  # a NIC is never reset
    mine = grants(host)[str(domid)]
    assert [0xF7F00, 16] in mine["iomem"] and [0xF7A00, 32] in mine["iomem"]
    assert mine["ioport"] == [[0xD000, 0x20]]
    assert mine["irq"] == [16, 19] and mine["pirq"] == {"16": 16, "19": 19}
    be = f"/local/domain/0/backend/pci/{domid}/1"
    assert tree.xs.read(f"{be}/dev-0") == USB and tree.xs.read(f"{be}/num_devs") == "1"
    # PV-PCI (no stubdom): pciback and pcifront walk the xenbus states to Connected
    wait_until(lambda: tree.xs.try_read(f"{be}/state") == "4", timeout=5)
    wait_until(lambda: tree.xs.try_read(f"/local/domain/{domid}/device/pci/1/state") == "4",
               timeout=5)
    assert tree.task(vm, "pci-list") == (f"0 {NIC} msitranslate=1 power_mgmt=1\n"
                                         f"1 {USB} msitranslate=1 power_mgmt=1 bind")
    # the simulated host mirrors its bus into /sim/pci
    wait_until(lambda: tree.xs.try_read(f"/sim/pci/{USB_NODE}/assigned") == str(domid), timeout=5)
    assert tree.xs.read(f"/sim/pci/{USB_NODE}/driver") == "pciback"
    assert tree.xs.read(f"/sim/pci/grants/{domid}/pirq") == "16:16 19:19"
    tree.task(vm, "destroy")
    assert tree.task(vm, "get-status") == "shutdown"
    wait_until(lambda: not tree.hv.find_by_handle(uuidlib.UUID(vm)), timeout=5)
    assert_released(tree, host, domid)
    assert devices(host)[USB]["resets"] == 2  # FLR after the destroy
    assert devices(host)[USB]["driver"] == "pciback"  # stays with pciback, ready for a start
    wait_until(lambda: tree.xs.try_read(f"/sim/pci/{USB_NODE}/resets") == "2", timeout=5)
    assert tree.xs.read(f"/sim/pci/{USB_NODE}/assigned") == ""
    assert not tree.xs.exists("/sim/pci/grants")


def test_a_crash_of_the_guest_releases_the_devices(env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("pci2", on_crash="destroy") + PCI)
    tree.task(vm, "start")
    domid = domid_of(tree, vm)
    host.hypervisor.crash(domid)
    wait_until(lambda: tree.task(vm, "get-status") == "shutdown", timeout=10)
    wait_until(lambda: not tree.hv.find_by_handle(uuidlib.UUID(vm)), timeout=5)
    assert_released(tree, host, domid)


def test_a_crash_with_restart_passes_the_devices_to_the_new_domain(
        env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("pci3", on_crash="restart") + PCI)
    tree.task(vm, "start")
    old = domid_of(tree, vm)
    host.hypervisor.crash(old)
    wait_until(lambda: live(tree, vm) and live(tree, vm)[0] != old, timeout=10)
    new = live(tree, vm)[0]
    wait_until(lambda: tree.task(vm, "get-status") == "running", timeout=10)
    assert {d["assigned"] for b, d in devices(host).items() if b in (NIC, USB)} == {new}
    assert str(old) not in grants(host)


def test_a_monitor_crash_adopts_the_domain_with_its_devices_assigned_once(
        env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("pci4") + PCI)
    tree.task(vm, "start")
    domid = domid_of(tree, vm)
    before = host.pci_state()
    seq = tree.events.last_seq
    actors.tell(f"/vms/{vm}", actors.InjectCrash())
    assert tree.events.wait_for(lambda e: e.kind == "restarted" and e.path == f"/vms/{vm}",
                                10, since=seq)
    assert tree.task(vm, "get-status") == "running" and domid_of(tree, vm) == domid
    assert host.pci_state() == before  # nothing assigned again, reset or granted twice
    destroy_and_check(tree, host, vm, domid)


def test_pci_add_del_list_while_stopped_change_the_config_only(
        env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("pci5"))
    before = host.pci_state()
    tree.task(vm, "pci-add", id="2", domain="0", bus="0", slot="31", func="3")
    tree.task(vm, "pci-add", id="2", domain="0", bus="4", slot="0", func="0", bind="false",
              msitranslate="0")
    assert tree.task(vm, "pci-list") == ("2 0000:00:1f.3 msitranslate=1 power_mgmt=1 bind\n"
                                         f"2 {NIC} msitranslate=0 power_mgmt=1")
    assert "pci = 2,bind,0000:00:1f.3" in tree.task(vm, "get-config")
    with pytest.raises(TaskError, match="already in the config"):
        tree.task(vm, "pci-add", id="3", domain="0", bus="4", slot="0", func="0")
    tree.task(vm, "pci-del", domain="0", bus="0", slot="31", func="3")
    assert tree.task(vm, "pci-list") == f"2 {NIC} msitranslate=0 power_mgmt=1"
    with pytest.raises(TaskError, match="no pci device"):
        tree.task(vm, "pci-del", domain="0", bus="0", slot="31", func="3")
    with pytest.raises(TaskError, match="bad PCI address"):
        tree.task(vm, "pci-del", domain="0", bus="0", slot="32", func="0")
    assert host.pci_state() == before  # config only


def test_pci_add_and_del_while_running_plug_and_unplug(env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("pci6"))
    tree.task(vm, "start")
    domid = domid_of(tree, vm)
    tree.task(vm, "pci-add", id="0", domain="0", bus="0", slot="20", func="0")  # binds
    assert devices(host)[USB]["assigned"] == domid
    assert tree.xs.read(f"/local/domain/0/backend/pci/{domid}/0/dev-0") == USB
    tree.task(vm, "pci-add", id="0", domain="0", bus="4", slot="0", func="0")  # same group
    be = f"/local/domain/0/backend/pci/{domid}/0"
    assert tree.xs.read(f"{be}/num_devs") == "2" and tree.xs.read(f"{be}/dev-1") == NIC
    assert devices(host)[NIC]["assigned"] == domid and devices(host)[USB]["assigned"] == domid
    tree.task(vm, "pci-del", domain="0", bus="0", slot="20", func="0")
    assert devices(host)[USB]["assigned"] is None and devices(host)[NIC]["assigned"] == domid
    assert tree.xs.read(f"{be}/num_devs") == "1" and tree.xs.read(f"{be}/dev-0") == NIC
    assert grants(host)[str(domid)]["irq"] == [19]
    tree.task(vm, "pci-del", domain="0", bus="4", slot="0", func="0")
    assert not tree.xs.exists(be) and str(domid) not in grants(host)
    assert tree.task(vm, "pci-list") == ""
    destroy_and_check(tree, host, vm, domid)


def test_a_device_the_pending_config_has_is_added_live_once(env: tuple[XenTree, Any]) -> None:
    """The pending config (set-config while running) lists the NIC a pci-add passes through
    now: it stays listed once (it was listed twice, and the next start refused the config)."""
    tree, host = env
    cfg = vm_config("pci7")
    vm = tree.add_vm(cfg)
    tree.task(vm, "start")
    tree.task(vm, "set-config", config=cfg + f"pci = 0,{NIC}\n")
    tree.task(vm, "pci-add", id="0", domain="0", bus="4", slot="0", func="0")
    tree.task(vm, "reboot")
    domid = domid_of(tree, vm)
    assert devices(host)[NIC]["assigned"] == domid
    assert tree.task(vm, "pci-list") == f"0 {NIC} msitranslate=1 power_mgmt=1"
    destroy_and_check(tree, host, vm, domid)


@pytest.mark.parametrize(("entry", "message"), [
    ("pci = 0,0000:07:00.0", "no PCI device 0000:07:00.0 on this host"),
    (f"pci = 0,{HOST_NIC}", f"pci {HOST_NIC} is bound to the dom0 driver e1000e, not pciback"),
    (f"pci = 0,bind,{NIC}\npci = 1,{HOST_NIC}", f"pci {HOST_NIC} is bound to the dom0 driver"),
    (f"pci = 0,{NIC}\npci = 1,{NIC}", f"pci {NIC} is listed twice"),
])
def test_a_bad_pci_config_is_refused_before_anything_is_touched(
        env: tuple[XenTree, Any], entry: str, message: str) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("bad") + entry + "\n")
    before = host.pci_state()
    with pytest.raises(TaskError, match=message):
        tree.task(vm, "start")
    assert tree.task(vm, "get-status") == "shutdown"
    assert [i.domid for i in tree.hv.getinfolist()] == [0]  # no domain was created
    assert host.pci_state() == before


def test_a_device_assigned_to_another_vm_is_refused_naming_the_holder(
        env: tuple[XenTree, Any]) -> None:
    tree, host = env
    first = tree.add_vm(vm_config("holder") + f"pci = 0,{NIC}\n")
    tree.task(first, "start")
    holder = domid_of(tree, first)
    second = tree.add_vm(vm_config("second") + f"pci = 0,{NIC}\n")
    third = tree.add_vm(vm_config("third"))
    tree.task(third, "start")
    before = host.pci_state()
    with pytest.raises(TaskError, match=rf"pci {NIC} is assigned to another domain "
                                        rf"\(domain {holder}\)"):
        tree.task(second, "start")
    with pytest.raises(TaskError, match="assigned to another domain"):  # nor hot-added
        tree.task(third, "pci-add", id="1", domain="0", bus="4", slot="0", func="0")
    assert tree.task(third, "pci-list") == ""  # the config did not change either
    assert host.pci_state() == before and not live(tree, second)
    assert tree.task(second, "get-status") == "shutdown"
    tree.task(first, "destroy")
    tree.task(second, "start")  # free now
    assert devices(host)[NIC]["assigned"] == domid_of(tree, second)


HVM = "hvm = true\nqemu-dm-path = /usr/lib/xen/bin/qemu-dm\nqemu-dm-timeout = 10\n"


def test_an_hvm_guest_with_a_device_model_and_pci(env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("hvmpci") + HVM + f"pci = 0,bind,{USB}\n")
    tree.task(vm, "start")
    domid = domid_of(tree, vm)
    assert tree.xs.exists(f"/local/domain/{domid}/device-misc/dm-ready")
    assert devices(host)[USB]["assigned"] == domid
    destroy_and_check(tree, host, vm, domid)


def test_a_start_failing_after_the_assignment_gives_the_devices_back(
        env: tuple[XenTree, Any]) -> None:
    tree, host = env
    # the device model refuses an option it does not know: the start fails after PCI
    vm = tree.add_vm(vm_config("dmfails") + HVM + "extra-hvm = no-such-option\n" + PCI)
    with pytest.raises(TaskError, match="start failed"):
        tree.task(vm, "start")
    assert tree.task(vm, "get-status") == "shutdown"
    wait_until(lambda: not tree.hv.find_by_handle(uuidlib.UUID(vm)), timeout=5)
    assert all(d["assigned"] is None for d in devices(host).values())
    assert grants(host) == {}
    assert list(tree.xs.directory("/local/domain/0/backend/pci")) == []
    assert devices(host)[USB]["resets"] == 2  # before the assignment and after the destroy


def test_a_preserved_dead_domain_keeps_its_devices_until_destroyed(
        env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("kept", on_crash="preserve") + PCI)
    tree.task(vm, "start")
    domid = domid_of(tree, vm)
    host.hypervisor.crash(domid)
    wait_until(lambda: tree.task(vm, "get-status") == "preserved", timeout=10)
    before = host.pci_state()
    assert before["devices"][NIC]["assigned"] == domid  # a dead domain still holds them
    with pytest.raises(TaskError, match="pci-add is not allowed in state preserved"):
        tree.task(vm, "pci-add", id="2", domain="0", bus="0", slot="31", func="3")
    with pytest.raises(TaskError, match="pci-del is not allowed in state preserved"):
        tree.task(vm, "pci-del", domain="0", bus="4", slot="0", func="0")
    assert host.pci_state() == before
    tree.task(vm, "start")  # its own dead domain's devices do not block the new start
    new = domid_of(tree, vm)
    assert new != domid and devices(host)[NIC]["assigned"] == new
    destroy_and_check(tree, host, vm, new)


def test_raw_io_grants_of_the_config_and_their_release(env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("rawio") + "passthrough-io = 0x3f8-0x3ff\n"
                     "passthrough-mmio = 0xfed00-0xfed00\n")
    tree.task(vm, "start")
    domid = domid_of(tree, vm)
    assert grants(host)[str(domid)]["ioport"] == [[0x3F8, 8]]
    assert grants(host)[str(domid)]["iomem"] == [[0xFED00, 1]]
    tree.task(vm, "destroy")
    assert grants(host) == {}  # Xen takes them back with the domain


def test_a_reboot_moves_the_devices_to_the_new_domain(env: tuple[XenTree, Any]) -> None:
    tree, host = env
    vm = tree.add_vm(vm_config("rebooter") + PCI)
    tree.task(vm, "start")
    old = domid_of(tree, vm)
    tree.task(vm, "reboot")  # through the guest, then started again (auto-start)
    new = domid_of(tree, vm)
    assert new != old and tree.task(vm, "get-status") == "running"
    assert {devices(host)[b]["assigned"] for b in (NIC, USB)} == {new}
    assert str(old) not in grants(host) and str(new) in grants(host)
    assert devices(host)[USB]["resets"] == 3  # start, after the old domain, start again
    destroy_and_check(tree, host, vm, new)
