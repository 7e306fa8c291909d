"""xenmgr end to end: a real oxt-supervisor (with the manager branch) on a private bus against
the simulated host, driven through ``xec``/``xec-vm`` subprocesses and plain bus calls.

One supervisor serves the whole module (it takes a few seconds to start); each test creates
the VMs it needs and deletes them.
"""

from __future__ import annotations

import json
import subprocess
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from jeepney.low_level import HeaderFields

from rpc.dbus import DBusError, RemoteObject
from tests.helpers import wait_until
from tests.integration.xenmgr_fixtures import VM, XENMGR, Xenmgr, xenmgr_dom0
from tests.integration.xenmgr_signals import SignalRecorder

pytestmark = pytest.mark.integration

DISK = "com.citrix.xenclient.vmdisk"
NIC = "com.citrix.xenclient.vmnic"
UNRESTRICTED = "com.citrix.xenclient.xenmgr.unrestricted"
DB = "com.citrix.xenclient.db"
GUEST_TEMPLATES = ["child-vpnvm", "new-vm", "new-vm-empty", "new-vm-linux", "new-vm-ndvm-hvm",
                   "new-vm-ndvm-pv", "new-vm-sync", "new-vm-windows8", "new-vm-xp"]


@pytest.fixture(scope="module")
def dom0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xenmgr]:
    with xenmgr_dom0(tmp_path_factory.mktemp("xenmgr")) as d:
        yield d


@pytest.fixture(autouse=True)
def _close(dom0: Xenmgr) -> Iterator[None]:
    yield
    dom0.close_connections()


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def create(dom0: Xenmgr, template: str = "new-vm-empty", json_text: str | None = None) -> str:
    if json_text is None:
        return str(dom0.root().call(XENMGR, "create_vm_with_template", "s", template)[0])
    return str(dom0.root().call(XENMGR, "create_vm_with_template_and_json", "ss", template,
                                json_text)[0])


def uuid_of(path: str) -> str:
    return path.rsplit("/", 1)[1].replace("_", "-")


def failure(call: object, *args: object) -> str:
    with pytest.raises(DBusError) as info:
        call(*args)  # type: ignore[operator]
    assert info.value.name == "org.freedesktop.DBus.Error.Failed", info.value
    return info.value.message


def db_read(dom0: Xenmgr, path: str) -> str:
    return str(RemoteObject(dom0.connection(), DB, "/").call(DB, "read", "s", path)[0])


def test_templates_and_service_vms_through_xec(dom0: Xenmgr) -> None:
    assert ok(dom0.xec("list-templates")).split() == GUEST_TEMPLATES
    ui = ok(dom0.xec("list-ui-templates"))
    assert "new-vm-linux" in ui and "new-vm-empty" not in ui
    assert ok(dom0.xec("list-child-service-vm-templates")).strip() == "vpnvm"
    vms = ok(dom0.xec("list-vms")).split()
    assert "/vm/00000000_0000_0000_0000_000000000001" in vms  # the UI VM from its template
    assert ok(dom0.xec_vm("-n", "Network", "-g", "flask-label")).splitlines()[0] == \
        "system_u:system_r:ndvm_t"
    assert ok(dom0.xec_vm("-n", "uivm", "-g", "flask-label")).splitlines()[0] == \
        "system_u:system_r:uivm_t"


@pytest.mark.parametrize("template", GUEST_TEMPLATES)
def test_create_list_start_stop_delete_from_each_template(dom0: Xenmgr, template: str) -> None:
    path = ok(dom0.xec("create-vm-with-template", template)).splitlines()[0]
    assert path in ok(dom0.xec("list-vms")).split()
    name = ok(dom0.xec("-o", path, "get", "name")).strip()
    assert ok(dom0.xec_vm("-n", name, "-g", "name")).splitlines()[0] == name
    assert ok(dom0.xec("-o", path, "get", "state")).strip() == "stopped"
    ok(dom0.xec("-o", path, "start"))
    assert ok(dom0.xec("-o", path, "get", "state")).strip() == "running"
    assert int(ok(dom0.xec("-o", path, "get", "domid"))) > 0
    ok(dom0.xec("-o", path, "destroy"))
    assert ok(dom0.xec("-o", path, "get", "state")).strip() == "stopped"
    ok(dom0.xec("-i", VM, "-o", path, "delete"))
    assert path not in ok(dom0.xec("list-vms")).split()


def test_reboot_and_shutdown_and_pause(dom0: Xenmgr) -> None:
    path = create(dom0, "new-vm-linux")
    vm = dom0.obj(path)
    vm.call(VM, "start")
    domid = vm.get(VM, "domid")
    vm.call(VM, "pause")
    assert vm.get(VM, "state") == "paused"
    vm.call(VM, "unpause")
    vm.call(VM, "reboot")
    wait_until(lambda: vm.get(VM, "state") == "running" and vm.get(VM, "domid") != domid,
               timeout=20)
    vm.call(VM, "shutdown")
    assert vm.get(VM, "state") == "stopped" and vm.get(VM, "domid") == -1
    assert vm.get(VM, "acpi-state") == 5
    vm.call(VM, "delete")


def test_get_all_on_every_object_kind(dom0: Xenmgr) -> None:
    path = create(dom0, "new-vm")
    vm = dom0.obj(path)
    disk = str(vm.call(VM, "add_disk")[0])
    nic = str(vm.call(VM, "list_nics")[0][0])
    everything = {"/": ["com.citrix.xenclient.xenmgr.config",
                        "com.citrix.xenclient.xenmgr.config.ui"],
                  "/host": ["com.citrix.xenclient.xenmgr.host"],
                  path: [VM, "com.citrix.xenclient.xenmgr.vm.unrestricted"],
                  disk: [DISK], nic: [NIC]}
    for obj, interfaces in everything.items():
        for iface in interfaces:
            values = dom0.obj(obj).get_all(iface)
            assert values, (obj, iface)
    values = vm.get_all(VM)
    assert values["state"] == "stopped" and values["slot"] >= 1
    assert values["uuid"] == uuid_of(path)
    assert dom0.obj(nic).get(NIC, "mac") == "auto"
    assert dom0.obj(disk).get(DISK, "devtype") == "disk"
    assert ok(dom0.xec("-o", path, "getall"))  # xec prints every interface
    vm.call(VM, "delete")
    with pytest.raises(DBusError):
        dom0.obj(disk).get(DISK, "phys-path")  # the objects went with the VM


def test_setters_write_only_on_change_and_signal_once(dom0: Xenmgr) -> None:
    path = create(dom0)
    uuid = uuid_of(path)
    vm = dom0.obj(path)
    with SignalRecorder(dom0.address) as rec:
        vm.set(VM, "name", "s", "renamed")
        vm.set(VM, "memory", "i", 512)
        vm.set(VM, "memory", "i", 768)
        assert db_read(dom0, f"/vm/{uuid}/config/memory") == "768"
        rec.wait_for("vm_config_changed", uuid)
        assert rec.count("vm_name_changed", uuid) == 1
        assert rec.count("vm_config_changed", uuid) == 1  # debounced
        changed = rec.wait_for("PropertiesChanged", VM, n=3)  # name, 512, 768: once each
        assert [args[1] for args in changed] == [{"name": ("s", "renamed")},
                                                 {"memory": ("i", 512)}, {"memory": ("i", 768)}]
        members = [m for m, _ in rec.signals]  # through the queue: after vm_name_changed
        assert members.index("vm_name_changed") < members.index("PropertiesChanged")
        vm.set(VM, "memory", "i", 768)  # unchanged: no signal
        vm.set(VM, "name", "s", "renamed-again")
        rec.wait_for("PropertiesChanged", VM, n=4)
        assert len(rec.of("PropertiesChanged", VM)) == 4
        assert rec.of("PropertiesChanged", VM)[3][1] == {"name": ("s", "renamed-again")}
    assert ok(dom0.xec("-o", path, "get", "name")).strip() == "renamed-again"
    with pytest.raises(DBusError) as info:  # the wrong type: the framework names it
        vm.set(VM, "memory", "s", "lots")
    assert info.value.name == "org.freedesktop.DBus.Error.InvalidArgs"
    assert "memory" in info.value.message
    message = failure(vm.set, VM, "os", "s", "beos")
    assert "os" in message and "beos" in message
    vm.call(VM, "delete")


def test_error_codes(dom0: Xenmgr) -> None:
    path = create(dom0)
    uuid = uuid_of(path)
    vm = dom0.obj(path)
    vm.call(VM, "start")
    assert failure(vm.call, VM, "delete") == "204:Cannot remove running VM"
    vm.call(VM, "destroy")
    disk = vm.call(VM, "add_disk")[0]
    nic = vm.call(VM, "add_nic")[0]
    db = RemoteObject(dom0.connection(), DB)
    db.call(DB, "rm", "s", f"/vm/{uuid}/config/disk/0")
    db.call(DB, "rm", "s", f"/vm/{uuid}/config/nic/0")
    assert failure(dom0.obj(disk).get, DISK, "phys-path") == "206:No such disk"
    assert failure(dom0.obj(nic).get, NIC, "network") == "222:No such NIC"
    message = failure(dom0.obj(disk).call, DISK, "attach_vhd", "s", "/nonexistent/x.vhd")
    assert message.startswith("223:IO error:")
    db.call(DB, "write", "ss", "/vm-create-disallowed", "true")
    try:
        assert failure(dom0.root().call, XENMGR, "create_vm") == \
            "220:Action suppressed by active policy settings"
    finally:
        db.call(DB, "rm", "s", "/vm-create-disallowed")
    missing = str(uuidlib.uuid4())
    assert failure(dom0.root().call, XENMGR, "find_vm_by_uuid", "s", missing) == \
        f"no vm with uuid {missing}"
    assert failure(dom0.root().call, UNRESTRICTED, "unrestricted_delete_vm", "s", missing) == \
        f"no vm with uuid {missing}"
    vm.call(VM, "delete")


def test_too_many_vms(dom0: Xenmgr) -> None:
    made = []
    try:
        while len(made) < 12:
            try:
                made.append(create(dom0))
            except DBusError as exc:
                assert exc.message == "205:Too many VMS"
                break
        else:
            pytest.fail("slots never ran out")
        slots = [dom0.obj(p).get(VM, "slot") for p in made]
        assert len(set(slots)) == len(slots)
    finally:
        for p in made:
            dom0.obj(p).call(VM, "delete")


def test_bad_input_leaves_nothing_half_created(dom0: Xenmgr) -> None:
    before = dom0.root().call(XENMGR, "list_vms")[0]
    root = dom0.root()
    assert "no template named 'nope'" in failure(root.call, XENMGR, "create_vm_with_template",
                                                 "s", "nope")
    assert "json" in failure(root.call, XENMGR, "create_vm_with_template_and_json", "ss",
                             "new-vm", "{\"name\": ")
    assert "uuid" in failure(root.call, XENMGR, "create_vm_with_template_and_uuid", "ss",
                             "new-vm", "not-a-uuid")
    assert root.call(XENMGR, "list_vms")[0] == before


def test_json_merge_and_find(dom0: Xenmgr) -> None:
    fixed = str(uuidlib.uuid4())
    path = str(dom0.root().call(XENMGR, "create_vm_with_template_and_uuid", "ss", "new-vm",
                                fixed)[0])
    assert uuid_of(path) == fixed
    assert dom0.root().call(XENMGR, "find_vm_by_uuid", "s", fixed)[0] == path
    dom0.obj(path).call(VM, "delete")
    path = create(dom0, "new-vm", json.dumps({"name": "from-json", "config": {"memory": 300}}))
    vm = dom0.obj(path)
    assert vm.get(VM, "name") == "from-json" and vm.get(VM, "memory") == 300
    assert vm.get(VM, "vcpus") == 2  # the rest from the template
    vm.call(VM, "start")
    domid = vm.get(VM, "domid")
    assert dom0.root().call(XENMGR, "find_vm_by_domid", "i", domid)[0] == path
    assert domid in dom0.root().call(XENMGR, "list_domids")[0]
    vm.call(VM, "destroy")
    assert failure(dom0.root().call, XENMGR, "find_vm_by_domid", "i", domid) == \
        f"no vm with domid {domid}"
    vm.call(VM, "delete")


def test_create_vhd_attach_and_delete_owned_files(dom0: Xenmgr) -> None:
    vhd = ok(dom0.xec("create-vhd", "10")).strip()
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", vhd],
                                     capture_output=True, text=True, check=True,
                                     timeout=30).stdout)
    assert info["format"] == "vpc" and info["virtual-size"] == 10 << 20
    path = create(dom0)
    vm = dom0.obj(path)
    disk = str(vm.call(VM, "add_disk")[0])
    dom0.obj(disk).call(DISK, "attach_vhd", "s", vhd)
    assert dom0.obj(disk).get(DISK, "virtual-size-mb") == 10
    assert [d for d in vm.call(VM, "list_disks")[0]] == [disk]
    vm.call(VM, "delete")
    assert not Path(vhd).exists()


def test_shared_vhd_is_kept(dom0: Xenmgr) -> None:
    vhd = ok(dom0.xec("create-vhd", "4")).strip()
    paths = [create(dom0), create(dom0)]
    for p in paths:
        disk = str(dom0.obj(p).call(VM, "add_disk")[0])
        dom0.obj(disk).call(DISK, "attach_vhd", "s", vhd)
    dom0.obj(paths[0]).call(VM, "delete")
    assert Path(vhd).exists()  # the other VM uses it
    dom0.obj(paths[1]).call(VM, "delete")
    assert not Path(vhd).exists()


def test_domstore_and_db_keys(dom0: Xenmgr) -> None:
    path = create(dom0)
    vm = dom0.obj(path)
    vm.call(VM, "set_domstore_key", "ss", "color", "blue")
    assert vm.call(VM, "get_domstore_key", "s", "color")[0] == "blue"
    vm.call(VM, "set_db_key", "ss", "description", "hello")
    assert vm.get(VM, "description") == "hello"
    assert vm.call(VM, "read_icon")[0] == b""
    assert "not supported" in failure(vm.call, VM, "sleep")
    with pytest.raises(DBusError) as info:
        dom0.root().call(XENMGR, "list_extension_packs")
    assert info.value.name == "org.freedesktop.DBus.Error.NotSupported"
    assert info.value.message.startswith("list_extension_packs: extension packs")
    vm.call(VM, "delete")


def test_setting_a_used_slot_swaps(dom0: Xenmgr) -> None:
    a, b = create(dom0), create(dom0)
    va, vb = dom0.obj(a), dom0.obj(b)
    sa, sb = va.get(VM, "slot"), vb.get(VM, "slot")
    va.set(VM, "slot", "i", sb)
    assert (va.get(VM, "slot"), vb.get(VM, "slot")) == (sb, sa)
    va.call(VM, "delete")
    vb.call(VM, "delete")


def test_hibernate_then_start_restores(dom0: Xenmgr) -> None:
    path = create(dom0, "new-vm-ndvm-pv", json.dumps({"config": {"memory": "64"}}))
    vm = dom0.obj(path)
    vm.call(VM, "start")
    vm.call(VM, "hibernate")
    assert vm.get(VM, "state") == "suspended" and vm.get(VM, "domid") == -1
    assert vm.get(VM, "hibernated") is True
    vm.call(VM, "start")  # restores from the image
    assert vm.get(VM, "state") == "running" and vm.get(VM, "hibernated") is False
    vm.call(VM, "destroy")
    vm.call(VM, "delete")


def test_direct_database_writes_show_at_once(dom0: Xenmgr) -> None:
    """Property reads may come from copies that dbd's change signals keep current: a write to
    dbd by another connection shows in the very next read, with no wait."""
    path = create(dom0)
    uuid = uuid_of(path)
    writer = RemoteObject(dom0.connection(), DB, "/")
    heard: list[tuple[str, int]] = []
    listener = dom0.connection()
    changes = "org.openxt.toolstack.DbChanges"
    # The bus also sends this connection NameAcquired (not a match): keep the changes only.
    listener.on_signal = lambda msg: (
        heard.append(tuple(msg.body)) if msg.header.fields.get(HeaderFields.interface) == changes
        else None)
    listener.add_match(f"type='signal',interface='{changes}'")
    vm = dom0.obj(path)
    for i in range(20):
        vm.get_all(VM)  # a copy may be kept from here
        writer.call(DB, "write", "ss", f"/vm/{uuid}/description", f"d{i}")
        assert vm.get_all(VM)["description"] == f"d{i}"
        writer.call(DB, "write", "ss", f"/vm/{uuid}/config/memory", str(100 + i))
        assert vm.get(VM, "memory") == 100 + i
    writer.call(DB, "rm", "s", f"/vm/{uuid}/description")
    assert vm.get_all(VM)["description"] == ""  # the default again
    writer.call(DB, "inject", "ss", f"/vm/{uuid}/policies", '{"cd-access": "false"}')
    assert vm.get_all(VM)["policy-cd-access"] is False
    wait_until(lambda: any(p == f"/vm/{uuid}/policies" for p, _s in heard))
    seqs = [s for _p, s in heard]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one connection, no gap
    vm.call(VM, "delete")
