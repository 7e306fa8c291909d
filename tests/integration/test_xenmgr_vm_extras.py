"""xenmgr's VM and disk members that need outside parts, on the simulated host, through
``xec`` where it matters: ``start-from-suspend-image``, ``switch`` and ``vm.auth`` without an
input daemon (``NotSupported`` naming it), a disk's crypto keys (``generate_crypto_key``,
``generate_crypto_key_in``, ``encryption-key-set``), ``mount``/``umount`` refused."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from jeepney.low_level import HeaderFields, Message

from rpc.dbus import BusConnection, DBusError, RemoteObject, method_return
from rpc.dbus._messages import field
from tests.helpers import wait_until
from tests.integration.xenmgr_fixtures import VM, XENMGR, Xenmgr, xenmgr_dom0

pytestmark = pytest.mark.integration

AUTH = "com.citrix.xenclient.xenmgr.vm.auth"
VMDISK = "com.citrix.xenclient.vmdisk"
CONFIG = "com.citrix.xenclient.xenmgr.config"
NOT_SUPPORTED = "org.freedesktop.DBus.Error.NotSupported"


@pytest.fixture(scope="module")
def dom0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xenmgr]:
    with xenmgr_dom0(tmp_path_factory.mktemp("xenmgr-extras")) as d:
        yield d


@pytest.fixture(autouse=True)
def _close(dom0: Xenmgr) -> Iterator[None]:
    yield
    dom0.close_connections()


def create(dom0: Xenmgr) -> RemoteObject:
    doc = {"slot": "-1", "config": {"virt-type": "pv", "memory": "256"}}
    return dom0.obj(str(dom0.root().call(XENMGR, "create_vm_with_template_and_json", "ss",
                                         "new-vm-linux", json.dumps(doc))[0]))


def refused(call: object, *args: object) -> DBusError:
    with pytest.raises(DBusError) as info:
        call(*args)  # type: ignore[operator]
    return info.value


def test_start_from_suspend_image(dom0: Xenmgr, tmp_path: Path) -> None:
    vm = create(dom0)
    vm.call(VM, "start")
    image = tmp_path / "vm.save"
    vm.call(VM, "suspend_to_file", "s", str(image))
    vm.call(VM, "destroy")
    assert vm.get(VM, "state") == "stopped" and image.stat().st_size > 0
    # a file that is not a save image: the start restores it, so it fails
    junk = tmp_path / "junk.save"
    junk.write_bytes(b"not a save file")
    vm.set(VM, "start-from-suspend-image", "s", str(junk))
    refused(vm.call, VM, "start")
    assert vm.get(VM, "state") != "running"
    vm.call(VM, "destroy")
    # the real image: restored, and kept for the next start
    vm.set(VM, "start-from-suspend-image", "s", str(image))
    vm.call(VM, "start")
    assert vm.get(VM, "state") == "running" and image.exists()
    vm.call(VM, "destroy")
    # a name that is no file: a plain boot
    vm.set(VM, "start-from-suspend-image", "s", str(tmp_path / "gone.save"))
    vm.call(VM, "start")
    assert vm.get(VM, "state") == "running"
    vm.call(VM, "destroy")
    vm.call(VM, "delete")


def test_switch_and_auth_name_the_input_daemon(dom0: Xenmgr) -> None:
    vm = create(dom0)
    err = refused(vm.call, VM, "switch")
    assert "not running" in err.message  # nothing to switch to
    vm.call(VM, "start")
    err = refused(vm.call, VM, "switch")
    assert err.name == NOT_SUPPORTED and "com.citrix.xenclient.input" in err.message
    for member in ("auth", "auth_required"):
        err = refused(vm.call, AUTH, member)
        assert err.name == NOT_SUPPORTED and "input daemon" in err.message
    out = dom0.xec("-o", vm.path, "-i", VM, "switch")
    assert out.returncode != 0 and "input daemon" in out.stdout + out.stderr
    vm.call(VM, "destroy")
    vm.call(VM, "delete")


def test_switch_asks_the_input_daemon_when_it_runs(dom0: Xenmgr) -> None:
    calls: list[tuple[str, tuple[object, ...]]] = []
    got = threading.Event()

    def on_call(msg: Message) -> None:  # a stand-in input daemon: records, answers
        calls.append((str(field(msg, HeaderFields.member)), tuple(msg.body)))
        daemon.send(method_return(msg))
        got.set()

    daemon = BusConnection(dom0.address, on_call=on_call)
    vm = create(dom0)
    try:
        assert daemon.request_name("com.citrix.xenclient.input") == 1
        vm.call(VM, "start")
        vm.call(VM, "switch")
        assert got.wait(10)
        assert calls == [("switch_focus", (int(vm.get(VM, "domid")), False))]
    finally:
        daemon.close()
        vm.call(VM, "destroy")
        vm.call(VM, "delete")


def test_disk_keys(dom0: Xenmgr, tmp_path: Path) -> None:
    vm = create(dom0)
    vhd = str(dom0.root().call(XENMGR, "create_vhd", "i", 8)[0])
    disk = dom0.obj(str(vm.call(VM, "add_disk")[0]))
    keys = tmp_path / "platform-keys"
    keys.mkdir()
    dom0.root().set(CONFIG, "platform-crypto-key-dirs", "s", str(keys))
    assert "not a VHD file" in refused(disk.call, VMDISK, "generate_crypto_key", "i",
                                       256).message  # not attached yet
    disk.call(VMDISK, "attach_vhd", "s", vhd)
    assert disk.get(VMDISK, "encryption-key-set") is False
    assert "not one of 256, 512" in refused(disk.call, VMDISK, "generate_crypto_key", "i",
                                            128).message
    out = dom0.xec("-o", disk.path, "-i", VMDISK, "generate-crypto-key", "512")
    assert out.returncode == 0, out.stderr
    name = os.path.basename(vhd)[:-4] + ",aes-xts-plain,512.key"
    key = keys / name
    assert key.stat().st_size == 64 and key.stat().st_mode & 0o777 == 0o600
    assert disk.get(VMDISK, "encryption-key-set") is True
    first = key.read_bytes()
    err = refused(disk.call, VMDISK, "generate_crypto_key", "i", 512)
    assert "already has this key" in err.message and key.read_bytes() == first  # kept
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    disk.call(VMDISK, "generate_crypto_key_in", "is", 256, str(elsewhere))
    assert (elsewhere / name.replace("512", "256")).stat().st_size == 32
    assert "not an existing absolute directory" in refused(
        disk.call, VMDISK, "generate_crypto_key_in", "is", 256, "relative").message
    for member, sig, args in (("mount", "sb", (str(tmp_path), True)), ("umount", "", ())):
        err = refused(disk.call, VMDISK, member, sig, *args)
        assert err.name == NOT_SUPPORTED and "qemu-nbd" in err.message
    vm.call(VM, "delete")


def test_create_child_service_vm(dom0: Xenmgr) -> None:
    host = dom0.host
    assert host is not None
    guest = create(dom0)
    guest_uuid = guest.path.rsplit("/", 1)[1].replace("_", "-")
    assert "no child service VM template 'new-vm'" in refused(
        guest.call, VM, "create_child_service_vm", "s", "new-vm").message
    out = dom0.xec("-o", guest.path, "-i", VM, "create-child-service-vm", "vpnvm")
    assert out.returncode == 0, out.stdout + out.stderr
    child_path = out.stdout.splitlines()[0]
    child = dom0.obj(child_path)
    child_uuid = child_path.rsplit("/", 1)[1].replace("_", "-")
    assert child_path in dom0.root().call(XENMGR, "list_vms")[0]
    assert child.get(VM, "type") == "ndvm" and child.get(VM, "provides-network-backend")
    # the override: the guest's nic goes through the child, which starts first
    nic = dom0.obj(f"{guest.path}/nic/0")
    assert nic.get("com.citrix.xenclient.vmnic", "backend-uuid") == child_uuid
    assert guest.get(VM, "track-dependencies") is True
    ndvm = dom0.obj("/vm/00000000_0000_0000_0000_000000000002")  # the child's own backend
    assert guest.get(VM, "dependencies") == [ndvm.path, child_path]
    guest.call(VM, "start", timeout=60)
    assert child.get(VM, "state") == "running" and ndvm.get(VM, "state") == "running"
    child_domid, guest_domid = int(child.get(VM, "domid")), int(guest.get(VM, "domid"))
    wait_until(lambda: ("vif", guest_domid, 0) in host.backends_connected(child_domid),
               timeout=20)
    assert guest_uuid != child_uuid
    for vm in (guest, child, ndvm):
        vm.call(VM, "destroy")
    guest.call(VM, "delete")
    child.call(VM, "delete")
