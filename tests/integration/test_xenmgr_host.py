"""xenmgr end to end: the host's clock, services, ISO library, power settings and installer
state, the testing script queue, and a VM's product properties (one supervisor for the
module, on the simulated host)."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpc.dbus import IDENTITY_INTERFACE, IDENTITY_NAME, IDENTITY_PATH, DBusError, RemoteObject
from supervision.control import ControlClient
from tests.helpers import wait_until
from tests.integration.xenmgr_fixtures import VM, XENMGR, Xenmgr, xenmgr_dom0
from tests.integration.xenmgr_signals import SignalRecorder
from xen.hypervisor import ShutdownReason, SimBackend
from xen.xenstore import XenstoreClient

pytestmark = pytest.mark.integration

HOST = "com.citrix.xenclient.xenmgr.host"
POWER = "com.citrix.xenclient.xenmgr.powersettings"
INSTALLER = "com.citrix.xenclient.xenmgr.installer"
TESTING = "com.citrix.xenclient.xenmgr.testing"
PRODUCT = "com.citrix.xenclient.xenmgr.vm.product"
DB = "com.citrix.xenclient.db"


@pytest.fixture(scope="module")
def dom0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xenmgr]:
    with xenmgr_dom0(tmp_path_factory.mktemp("xenmgr-host")) as d:
        yield d


@pytest.fixture(autouse=True)
def _close(dom0: Xenmgr) -> Iterator[None]:
    yield
    dom0.close_connections()


def failure(call: object, *args: object) -> str:
    with pytest.raises(DBusError) as info:
        call(*args)  # type: ignore[operator]
    assert info.value.name == "org.freedesktop.DBus.Error.Failed", info.value
    return info.value.message


def db(dom0: Xenmgr) -> RemoteObject:
    return RemoteObject(dom0.connection(), DB, "/")


def test_clock_and_services(dom0: Xenmgr) -> None:
    host = dom0.obj("/host")
    assert abs(host.call(HOST, "get_seconds_from_epoch")[0] - time.time()) < 5
    assert host.call(HOST, "is_service_running", "s", "db")[0] is True
    assert host.call(HOST, "is_service_running", "s", XENMGR)[0] is True
    assert host.call(HOST, "is_service_running", "s", "networkdaemon")[0] is False
    assert "not a service name" in failure(host.call, HOST, "is_service_running", "s", "a..b")


def test_iso_library(dom0: Xenmgr, tmp_path: Path) -> None:
    host = dom0.obj("/host")
    for name in ("b.ISO", "a.iso", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "dir.iso").mkdir()
    db(dom0).call(DB, "write", "ss", "/xenmgr/isos", str(tmp_path))
    assert host.call(HOST, "list_isos")[0] == [str(tmp_path / "a.iso"), str(tmp_path / "b.ISO")]
    db(dom0).call(DB, "write", "ss", "/xenmgr/isos", str(tmp_path / "missing"))
    assert host.call(HOST, "list_isos")[0] == []


def test_power_settings(dom0: Xenmgr) -> None:
    host = dom0.obj("/host")
    assert host.call(POWER, "get_ac_lid_close_action")[0] == "nothing"
    assert host.call(POWER, "get_battery_lid_close_action")[0] == "sleep"
    host.call(POWER, "set_ac_lid_close_action", "s", "hibernate")
    host.call(POWER, "set_battery_lid_close_action", "s", "shutdown")
    assert host.call(POWER, "get_ac_lid_close_action")[0] == "hibernate"
    assert host.call(POWER, "get_battery_lid_close_action")[0] == "shutdown"
    assert db(dom0).call(DB, "read", "s", "/power-management/lid-close-ac-action")[0] \
        == "hibernate"
    assert "'explode' is not one of" in failure(host.call, POWER, "set_ac_lid_close_action",
                                                 "s", "explode")
    assert host.call(POWER, "get_ac_lid_close_action")[0] == "hibernate"


def test_installer_state(dom0: Xenmgr) -> None:
    host = dom0.obj("/host")
    assert "no EULA" in failure(host.call, INSTALLER, "get_eula")
    assert host.call(INSTALLER, "get_installstate")[0] == {}
    host.call(INSTALLER, "progress_installstate", "s", "eula-accepted")
    assert host.call(INSTALLER, "get_installstate")[0] == {"eula-accepted": "true"}
    assert "is not a word" in failure(host.call, INSTALLER, "progress_installstate", "s",
                                      "../x")


def test_script_queue_is_a_fifo_and_a_waiting_dequeue_is_served(dom0: Xenmgr) -> None:
    root = dom0.root()
    for script in ("one", "two"):
        root.call(TESTING, "script_queue", "s", script)
    assert [root.call(TESTING, "script_dequeue")[0] for _ in range(2)] == ["one", "two"]
    got: list[str] = []
    waiting = dom0.obj("/", dom0.connection())
    waiter = threading.Thread(target=lambda: got.append(
        waiting.call(TESTING, "script_dequeue", timeout=15)[0]))
    waiter.start()
    time.sleep(0.5)  # the dequeue is waiting (nothing queued): then a script arrives
    assert not got
    root.call(TESTING, "script_queue", "s", "three")
    waiter.join(15)
    assert got == ["three"]


def test_product_properties(dom0: Xenmgr) -> None:
    path = str(dom0.root().call(XENMGR, "create_vm_with_template", "s", "new-vm-empty")[0])
    vm = dom0.obj(path)
    uuid = path.rsplit("/", 1)[1].replace("_", "-")
    assert vm.call(PRODUCT, "list_product_properties")[0] == []
    assert "has no product property 'app.name'" in failure(vm.call, PRODUCT,
                                                          "get_product_property", "s",
                                                          "app.name")
    vm.call(PRODUCT, "set_product_property", "ss", "app.name", "<web & co>")
    assert vm.call(PRODUCT, "get_product_property", "s", "app.name")[0] == "<web & co>"
    db(dom0).call(DB, "inject", "ss", f"/vm/{uuid}/productproperty/fixed",
                  '{"key": "fixed.key", "value": "1", "userConfigurable": "false"}')
    assert "not user configurable" in failure(vm.call, PRODUCT, "set_product_property", "ss",
                                              "fixed", "2")
    listed = vm.call(PRODUCT, "list_product_properties")[0]
    assert [p["id"] for p in listed] == ["app.name", "fixed"]
    env = ET.fromstring(vm.call(PRODUCT, "get_ovf_env_xml")[0])
    ns = "{http://schemas.dmtf.org/ovf/environment/1}"
    values = {p.get(f"{ns}key"): p.get(f"{ns}value") for p in env.iter(f"{ns}Property")}
    assert values == {"app.name": "<web & co>", "fixed.key": "1"}
    vm.call(VM, "delete")


def test_request_attention_from_a_guest_connection(dom0: Xenmgr) -> None:
    guestreq = "com.citrix.xenclient.xenmgr.guestreq"
    path = str(dom0.root().call(XENMGR, "create_vm_with_template", "s", "new-vm-linux")[0])
    vm = dom0.obj(path)
    uuid = path.rsplit("/", 1)[1].replace("_", "-")
    vm.call(VM, "start")
    identity = RemoteObject(dom0.connection(), IDENTITY_NAME, IDENTITY_PATH)
    guest = dom0.connection()  # stands for a connection rpc-proxy forwards for the guest
    identity.call(IDENTITY_INTERFACE, "register", "sis", guest.unique_name,
                  vm.get(VM, "domid"), uuid)
    stranger = dom0.connection()
    identity.call(IDENTITY_INTERFACE, "register", "sis", stranger.unique_name, 77, "")
    with SignalRecorder(dom0.address) as rec:
        RemoteObject(guest, XENMGR, "/").call(guestreq, "request_attention")
        assert rec.wait_for("requested_attention")[0] == (uuid, path)
    assert "the caller is dom0" in failure(dom0.root().call, guestreq, "request_attention")
    assert "no VM runs in domain 77" in failure(RemoteObject(stranger, XENMGR, "/").call,
                                                guestreq, "request_attention")
    vm.call(VM, "shutdown")
    vm.call(VM, "delete")


def test_suspend_to_a_file_and_resume_from_it(dom0: Xenmgr, tmp_path: Path) -> None:
    path = str(dom0.root().call(XENMGR, "create_vm_with_template", "s", "new-vm-linux")[0])
    vm = dom0.obj(path)
    vm.call(VM, "start_internal")
    assert vm.get(VM, "state") == "running"
    assert "not an absolute path" in failure(vm.call, VM, "suspend_to_file", "s", "rel.save")
    image = tmp_path / "vm.save"
    vm.call(VM, "suspend_to_file", "s", str(image))
    assert vm.get(VM, "state") == "suspended" and image.stat().st_size > 0
    assert "no save file" in failure(vm.call, VM, "resume_from_file", "s",
                                     str(tmp_path / "nope"))
    vm.call(VM, "resume_from_file", "s", str(image))
    assert vm.get(VM, "state") == "running" and image.exists()  # kept
    vm.call(VM, "shutdown")
    vm.call(VM, "delete")


def test_pci_passthrough_rules(dom0: Xenmgr) -> None:
    pci = "com.citrix.xenclient.xenmgr.vm.pci"
    path = str(dom0.root().call(XENMGR, "create_vm_with_template", "s", "new-vm-empty")[0])
    vm = dom0.obj(path)
    uuid = path.rsplit("/", 1)[1].replace("_", "-")
    vm.call(pci, "add_pt_rule", "sss", "0x0200", "8086", "any")
    vm.call(pci, "add_pt_rule", "sss", "200", "0x8086", "")  # the same rule: stored once
    vm.call(pci, "add_pt_rule_bdf", "s", "3:00.1")
    assert vm.call(pci, "list_pt_rules")[0] == [
        {"id": "0", "class": "0x0200", "vendor": "0x8086"},
        {"id": "1", "bdf": "0000:03:00.1"}]
    assert db(dom0).call(DB, "read", "s", f"/vm/{uuid}/config/pci/1/bdf")[0] == "0000:03:00.1"
    assert "not a 16-bit hex number" in failure(vm.call, pci, "add_pt_rule", "sss", "0x12345",
                                                "", "")
    assert "matching every device" in failure(vm.call, pci, "add_pt_rule", "sss", "", "*", "any")
    assert "is not DDDD:BB:SS.F" in failure(vm.call, pci, "add_pt_rule_bdf", "s", "00:3f.0")
    vm.call(pci, "delete_pt_rule_bdf", "s", "0000:03:00.1")
    vm.call(pci, "delete_pt_rule", "sss", "0x200", "0x8086", "*")
    assert vm.call(pci, "list_pt_rules")[0] == []
    assert "has no PCI passthrough rule" in failure(vm.call, pci, "delete_pt_rule_bdf", "s",
                                                    "0000:03:00.1")
    vm.call(VM, "delete")


def test_diagnostics_gathering_and_status_report(dom0: Xenmgr) -> None:
    diag = "com.citrix.xenclient.xenmgr.diag"
    root = dom0.root()
    assert "no diagnostics gathering" in failure(root.call, diag, "gather", "ss", "x", "y")
    helper = dom0.obj("/", dom0.connection())  # another service answering the request
    with SignalRecorder(dom0.address) as rec:
        saved: list[str] = []
        saver = threading.Thread(target=lambda: saved.append(
            root.call(diag, "save", "s", "support", timeout=20)[0]))
        saver.start()
        assert rec.wait_for("gather_request")[0] == ("support",)
        helper.call(diag, "gather", "ss", "netdaemon", "links: 2 up")
        assert "not a word" in failure(helper.call, diag, "gather", "ss", "../x", "y")
        saver.join(20)
    out = Path(saved[0])
    assert out.name.startswith("support-") and out.parent == dom0.state / "diag"
    assert (out / "gathered" / "netdaemon").read_text() == "links: 2 up"
    vms = (out / "vms.txt").read_text()
    assert "00000000-0000-0000-0000-000000000001" in vms  # the UI VM, stopped
    assert "vm" in json.loads((out / "db.json").read_text())
    report = root.call(diag, "create_status_report", "bbssss", True, True, "it broke",
                       "details", "1. start", "T-1", timeout=20)[0]
    with tarfile.open(report) as tar:
        names = tar.getnames()
        text = tar.extractfile(next(n for n in names if n.endswith("report.txt")))
        assert text is not None
        body = text.read().decode()
    assert "summary: it broke" in body and "ticket: T-1" in body
    assert "screenshots: not included" in body
    assert any("/guests/" in n for n in names) and any(n.endswith("db.json") for n in names)


def test_policy_documents(dom0: Xenmgr) -> None:
    policy = "com.citrix.xenclient.policy"
    root = dom0.root()
    path = str(root.call(XENMGR, "create_vm_with_template", "s", "new-vm-empty")[0])
    vm = dom0.obj(path)
    uuid = path.rsplit("/", 1)[1].replace("_", "-")
    got = json.loads(root.call(policy, "retrieve", "s", uuid)[0])
    assert got["cd-access"] is True and got["print-screen-disallowed"] is False and len(got) == 8
    root.call(policy, "enforce", "ss", uuid, '{"cd-access": false, "audio-rec": true}')
    assert json.loads(root.call(policy, "retrieve", "s", uuid)[0])["cd-access"] is False
    assert vm.get(VM, "policy-cd-access") is False  # the property reads the same key
    for bad, why in (('{"cd-access": 1}', "must be true or false"),
                     ('{"nope": true}', "unknown policy 'nope'"),
                     ("[1]", "not a JSON object"), ("{", "not JSON")):
        assert why in failure(root.call, policy, "enforce", "ss", uuid, bad)
    assert "no vm with uuid" in failure(root.call, policy, "retrieve", "s",
                                        "12345678-1234-1234-1234-123456789abc")
    root.call(policy, "enforce", "ss", "", '{"vm-create-disallowed": true}')
    assert failure(root.call, XENMGR, "create_vm").startswith("220:")
    root.call(policy, "enforce", "ss", "", '{"vm-create-disallowed": false}')
    assert json.loads(root.call(policy, "retrieve", "s", "")[0]) == {
        "ota-upgrades-disallowed": False, "vm-create-disallowed": False,
        "vm-delete-disallowed": False}
    vm.call(VM, "delete")


def test_tracked_dependencies_start_first_and_cycles_are_refused(dom0: Xenmgr) -> None:
    root = dom0.root()

    def make(name: str, backend: str) -> RemoteObject:
        spec = {"name": name, "track-dependencies": "true",
                "config": {"nic": {"0": {"id": "0", "backend-name": backend}}}}
        return dom0.obj(str(root.call(XENMGR, "create_vm_with_template_and_json", "ss",
                                      "new-vm-linux", json.dumps(spec))[0]))
    net = make("netvm", "")
    net.set(VM, "provides-network-backend", "b", True)
    guest = make("guestvm", "netvm")
    guest.call(VM, "start")
    assert net.get(VM, "state") == "running" and guest.get(VM, "state") == "running"
    # netvm's own nic names no backend: it is served by the default backend, the service
    # NDVM, started first of all
    ndvm = dom0.obj("/vm/00000000_0000_0000_0000_000000000002")
    assert ndvm.get(VM, "state") == "running"
    for vm in (guest, net, ndvm):
        vm.call(VM, "shutdown")
    one, two = make("loop-one", "loop-two"), make("loop-two", "loop-one")
    assert "dependency cycle" in failure(one.call, VM, "start")
    assert one.get(VM, "state") == "stopped" and two.get(VM, "state") == "stopped"
    for vm in (guest, net, one, two):
        vm.call(VM, "delete")


def test_temporary_disk_snapshot_lives_while_the_vm_runs(dom0: Xenmgr) -> None:
    assert dom0.host is not None
    root = dom0.root()
    vhd = str(root.call(XENMGR, "create_vhd", "i", 8)[0])
    spec = {"config": {"disk": {"0": {"path": vhd, "type": "vhd", "mode": "w",
                                      "device": "xvda", "devtype": "disk",
                                      "snapshot": "temporary"}}}}
    path = str(root.call(XENMGR, "create_vm_with_template_and_json", "ss", "new-vm-linux",
                         json.dumps(spec))[0])
    vm = dom0.obj(path)
    overlay = Path(vhd).parent / f"snap_{Path(vhd).name}.snap.tmp.qcow2"
    vm.call(VM, "start")
    info = subprocess.run(["qemu-img", "info", "--output=json", str(overlay)], check=True,
                          capture_output=True, text=True).stdout
    assert json.loads(info)["backing-filename"] == vhd  # the overlay sits on the disk
    uuid = path.rsplit("/", 1)[1].replace("_", "-")

    def booted() -> str:
        """The disk the monitor boots (its config's, or the pending one's if it has one)."""
        monitor = subprocess.run([sys.executable, "-m", "xen.xenvm.cmd", "--bus", dom0.address,
                                  uuid, "get-config"], capture_output=True, text=True,
                                 env=dom0.env(), timeout=30, check=True).stdout
        disks = [line.split(" = ", 1)[1] for line in monitor.splitlines()
                 if line.startswith("disk = ")]
        assert len(disks) == 1, monitor
        return disks[0]

    assert booted() == f"{overlay}:qcow:xvda:w:disk:none"  # the monitor boots it
    written = overlay.stat().st_mtime_ns
    for step in ("reboot", "hibernate", "start", "reboot"):  # the guest stays on its overlay
        vm.call(VM, step)
        assert overlay.stat().st_mtime_ns == written, step  # the same file, not a new one
        assert booted() == f"{overlay}:qcow:xvda:w:disk:none", step
    vm.call(VM, "shutdown")
    wait_until(lambda: not overlay.exists(), timeout=10)
    assert Path(vhd).exists()
    encrypted = dict(spec)
    encrypted["config"] = {"disk": {"0": {**spec["config"]["disk"]["0"],
                                          "snapshot": "temporary-encrypted"}}}
    other = dom0.obj(str(root.call(XENMGR, "create_vm_with_template_and_json", "ss",
                                   "new-vm-linux", json.dumps(encrypted))[0]))
    assert "needs VHD encryption" in failure(other.call, VM, "start")
    assert other.get(VM, "state") == "stopped" and not overlay.exists()
    for v in (vm, other):
        v.call(VM, "delete")


def test_a_monitor_that_lost_its_snapshot_is_given_the_overlays_again(dom0: Xenmgr) -> None:
    """A running VM on a temporary disk snapshot whose monitor restarts without its snapshot
    (both slots gone) adopts the domain with its start config, which names the disk itself:
    xenmgr sees the monitor come up and sends it the config with the overlay, so the guest's
    own reboot boots the overlay again, never the disk it protects."""
    assert dom0.host is not None
    root = dom0.root()
    vhd = str(root.call(XENMGR, "create_vhd", "i", 8)[0])
    spec = {"config": {"memory": "64", "disk": {"0": {
        "path": vhd, "type": "vhd", "mode": "w", "device": "xvda", "devtype": "disk",
        "snapshot": "temporary"}}}}
    path = str(root.call(XENMGR, "create_vm_with_template_and_json", "ss", "new-vm-ndvm-pv",
                         json.dumps(spec))[0])
    vm = dom0.obj(path)
    uuid = path.rsplit("/", 1)[1].replace("_", "-")
    overlay = Path(vhd).parent / f"snap_{Path(vhd).name}.snap.tmp.qcow2"
    vm.call(VM, "start")
    domid = int(vm.get(VM, "domid"))
    with XenstoreClient(dom0.host.xenstore_path, timeout=10) as xs:
        def disk(d: int) -> str:
            return xs.read(f"/local/domain/0/backend/tap/{d}/51712/params")

        assert disk(domid) == f"qcow:{overlay}"
        slots = list((dom0.state / "snapshots").glob(f"*{uuid}.snap*"))
        assert slots
        for slot in slots:
            slot.unlink()
        with ControlClient(dom0.info["control"]) as ctl:
            ctl.call("crash", path=f"/vms/{uuid}", reason="test: lose the snapshot")
        wait_until(lambda: "sending them again" in dom0.log(), timeout=20)
        assert int(vm.get(VM, "domid")) == domid  # adopted, not restarted
        with SimBackend(str(dom0.host.hypervisor_path)) as hv:
            hv.shutdown(domid, ShutdownReason.REBOOT)  # the guest reboots by itself
        wait_until(lambda: int(vm.get(VM, "domid")) not in (-1, domid)  # then its state
                   and vm.get(VM, "state") == "running", timeout=30)
        assert disk(int(vm.get(VM, "domid"))) == f"qcow:{overlay}"
    vm.call(VM, "destroy")
    vm.call(VM, "delete")


def test_host_pci_inventory_and_a_vms_passthrough_devices(dom0: Xenmgr) -> None:
    pci = "com.citrix.xenclient.xenmgr.vm.pci"
    devices = dom0.obj("/host").call(HOST, "list_pci_devices")[0]
    by_addr = {d["addr"]: d for d in devices}
    nic = dict(by_addr["0000:03:00.0"])
    # pciback once a VM had it (the NDVM, started by an earlier test, takes the NICs)
    assert nic.pop("driver") in ("e1000e", "pciback")
    assert nic == {"addr": "0000:03:00.0", "class": "0x0200", "vendor": "0x8086",
                   "device": "0x10d3", "name": "Ethernet controller"}
    gpus = dom0.obj("/host").call(HOST, "list_gpu_devices")[0]
    assert all(g["class"].startswith("0x03") for g in gpus)
    assert {g["addr"] for g in gpus} == {a for a, d in by_addr.items()
                                        if d["class"].startswith("0x03")}
    path = str(dom0.root().call(XENMGR, "create_vm_with_template", "s", "new-vm-empty")[0])
    vm = dom0.obj(path)
    vm.call(pci, "add_pt_rule", "sss", "0x0200", "", "")  # every network controller
    vm.call(pci, "add_pt_rule_bdf", "s", "0000:00:14.0")
    chosen = [d["addr"] for d in vm.call(pci, "list_pt_pci_devices")[0]]
    nics = sorted(a for a, d in by_addr.items() if d["class"] == "0x0200")
    assert chosen == sorted([*nics, "0000:00:14.0"]) and len(nics) >= 2
    vm.call(VM, "delete")


def test_network_firewall_rules_are_kept(dom0: Xenmgr) -> None:
    path = str(dom0.root().call(XENMGR, "create_vm_with_template", "s", "new-vm-empty")[0])
    vm = dom0.obj(path)
    uuid = path.rsplit("/", 1)[1].replace("_", "-")
    vm.call(VM, "add_net_firewall_rule", "isss", 2, "in", "10.0.0.0/8", "tcp dport 22")
    vm.call(VM, "add_net_firewall_rule", "isss", 0, "out", "", "")
    assert vm.call(VM, "list_net_firewall_rules")[0] == [
        {"id": "0", "direction": "out", "remote-ip": "", "extra": ""},
        {"id": "2", "direction": "in", "remote-ip": "10.0.0.0/8", "extra": "tcp dport 22"}]
    assert db(dom0).call(DB, "read", "s", f"/vm/{uuid}/firewall-rule/2/remote-ip")[0] \
        == "10.0.0.0/8"
    for args, why in (((1, "sideways", "", ""), "is not in or out"),
                      ((1, "in", "10.0.0.300", ""), "not an IP address"),
                      ((-1, "in", "", ""), "is negative"),
                      ((1, "in", "", "x\n"), "not printable")):
        assert why in failure(vm.call, VM, "add_net_firewall_rule", "isss", *args)
    vm.call(VM, "delete_net_firewall_rule", "i", 2)
    assert "has no network firewall rule 2" in failure(vm.call, VM, "delete_net_firewall_rule",
                                                       "i", 2)
    assert [r["id"] for r in vm.call(VM, "list_net_firewall_rules")[0]] == ["0"]
    vm.call(VM, "delete")
