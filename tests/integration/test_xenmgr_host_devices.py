"""``/host``'s devices through ``xec`` and the bus, on the simulated host's inventory: CD drives
(listing, assignment to a running VM through its device model, sticky assignment, eject),
disks, GPUs (placement, the display handler's), the licence, UI plugins and sound (none on
this host)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpc.dbus import DBusError, RemoteObject
from tests.integration.xenmgr_fixtures import VM, XENMGR, Xenmgr, xenmgr_dom0
from tests.integration.xenmgr_signals import SignalRecorder
from xen.hypervisor import SimBackend
from xen.xenstore import XenstoreClient

pytestmark = pytest.mark.integration

HOST = "com.citrix.xenclient.xenmgr.host"
DB = "com.citrix.xenclient.db"
ERROR = "org.freedesktop.DBus.Error.Failed: "
DVD, USB_DVD, DISK = "1:0:0:0", "6:0:0:0", "0:0:0:0"
GPU = "0000:00:02.0"


@pytest.fixture(scope="module")
def dom0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xenmgr]:
    with xenmgr_dom0(tmp_path_factory.mktemp("xenmgr-devices")) as d:
        yield d


@pytest.fixture(autouse=True)
def _close(dom0: Xenmgr) -> Iterator[None]:
    yield
    dom0.close_connections()


def xec(dom0: Xenmgr, *args: str) -> str:
    done = dom0.xec("-o", "/host", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def xec_fails(dom0: Xenmgr, *args: str) -> str:
    done = dom0.xec("-o", "/host", *args)
    assert done.returncode == 1 and done.stdout.startswith("org.freedesktop.DBus.Error."), \
        done.stdout + done.stderr
    return done.stdout.strip()


def hv(dom0: Xenmgr) -> SimBackend:
    assert dom0.host is not None
    return SimBackend(dom0.host.hypervisor_path)


def test_cd_drives_and_disks(dom0: Xenmgr) -> None:
    host = dom0.obj("/host")
    drives = host.call(HOST, "list_cd_devices")[0]
    assert drives == [
        {"id": DVD, "name": "HL-DT-ST DVDRAM GH24NSD1", "vm": "", "vm-sticky": "0",
         "usb-id": ""},
        {"id": USB_DVD, "name": "ASUS SDRW-08D2S-U", "vm": "", "vm-sticky": "0",
         "usb-id": str((2 << 8) + 3)}]
    assert host.call(HOST, "list_disk_devices")[0] == [
        {"udi": f"/sys/bus/scsi/devices/{DISK}", "block-device": "/dev/sda"}]
    assert "HL-DT-ST DVDRAM GH24NSD1" in xec(dom0, "list-cd-devices")
    assert xec(dom0, "get-cd-device-assignment", DVD).split() == ["false"]
    assert "not H:C:T:L" in xec_fails(dom0, "get-cd-device-assignment", "sr0")
    assert f"no CD device {DISK}" in xec_fails(dom0, "eject-cd-device", DISK)

    xec(dom0, "eject-cd-device", DVD)
    with hv(dom0) as backend:
        dvd = next(d for d in backend.scsi_devices() if d["hctl"] == DVD)
    assert dvd["medium"] is False and dvd["ejections"] == 1


def test_cd_assignment_to_a_running_vm_and_sticky(dom0: Xenmgr) -> None:
    assert dom0.host is not None
    # an HVM guest whose device model runs in a stub domain: it answers the drive requests
    path = str(dom0.root().call(XENMGR, "create_vm_with_template", "s", "new-vm-empty")[0])
    vm = dom0.obj(path)
    uuid = path.rsplit("/", 1)[1].replace("_", "-")
    vm.call(VM, "start")
    domid = vm.get(VM, "domid")
    host = dom0.obj("/host")
    lock = f"/local/domain/{domid}/bsgdev/1_0_0_0/lock"
    with SignalRecorder(dom0.address) as rec:
        xec(dom0, "assign-cd-device", DVD, "false", uuid)
        assert rec.wait_for("cd_assignment_changed")[0] == (DVD, uuid, path)
    with XenstoreClient(dom0.host.xenstore_path, timeout=5.0) as xs:
        assert xs.read(lock) == "1"
    assert tuple(host.call(HOST, "get_cd_device_assignment", "s", DVD)) == (False, uuid)
    listed = {d["id"]: d for d in host.call(HOST, "list_cd_devices")[0]}
    assert listed[DVD]["vm"] == uuid and listed[DVD]["vm-sticky"] == "0"

    host.call(HOST, "assign_cd_device", "sbs", DVD, True, uuid)  # sticky: kept in the db
    db = RemoteObject(dom0.connection(), DB, "/")
    assert db.call(DB, "read", "s", "/xenmgr/cdassign/1_0_0_0")[0] == uuid
    assert tuple(host.call(HOST, "get_cd_device_assignment", "s", DVD)) == (True, uuid)
    vm.call(VM, "shutdown")
    assert tuple(host.call(HOST, "get_cd_device_assignment", "s", DVD)) == (True, uuid)

    with SignalRecorder(dom0.address) as rec:
        host.call(HOST, "assign_cd_device", "sbs", DVD, False, "")  # unassigned
        assert rec.wait_for("cd_assignment_changed")[0] == (DVD, "", "/")
    assert tuple(host.call(HOST, "get_cd_device_assignment", "s", DVD)) == (False, "")
    assert db.call(DB, "read", "s", "/xenmgr/cdassign/1_0_0_0")[0] == ""
    with pytest.raises(DBusError) as nobody:
        host.call(HOST, "assign_cd_device", "sbs", DVD, True,
                  "12345678-1234-1234-1234-123456789abc")
    assert "no vm with uuid" in nobody.value.message
    vm.call(VM, "delete")

    # the device model in dom0 answers too
    path = str(dom0.root().call(XENMGR, "create_vm_with_template_and_json", "ss",
                                "new-vm-empty", '{"stubdom": "false"}')[0])
    vm = dom0.obj(path)
    uuid = path.rsplit("/", 1)[1].replace("_", "-")
    vm.call(VM, "start")
    host.call(HOST, "assign_cd_device", "sbs", USB_DVD, False, uuid)
    assert tuple(host.call(HOST, "get_cd_device_assignment", "s", USB_DVD)) == (False, uuid)
    host.call(HOST, "assign_cd_device", "sbs", USB_DVD, False, "")
    assert tuple(host.call(HOST, "get_cd_device_assignment", "s", USB_DVD)) == (False, "")
    vm.call(VM, "shutdown")
    vm.call(VM, "delete")


def test_gpus_placement_and_the_display_handler(dom0: Xenmgr) -> None:
    host = dom0.obj("/host")
    gpus = host.call(HOST, "list_gpu_devices")[0]
    assert [(g["addr"], g["name"], g["placement"]) for g in gpus] == \
        [(GPU, "HD Graphics 630", "0")]
    assert xec(dom0, "get-gpu-placement", GPU).strip() == "0"
    xec(dom0, "configure-gpu-placement", GPU, "2")
    assert host.call(HOST, "get_gpu_placement", "s", GPU)[0] == 2
    assert "234:Unknown GPU 0000:09:00.0" in xec_fails(dom0, "get-gpu-placement",
                                                       "0000:09:00.0")
    assert host.call(HOST, "list_gpus_for_displayhandler")[0] == [
        {"addr": GPU, "name": "HD Graphics 630", "drmcard": "0"}]
    assert host.call(HOST, "get_displayhandler_gpu")[0] == "0"  # the boot display's card
    with SignalRecorder(dom0.address) as rec:
        host.call(HOST, "set_displayhandler_gpu", "s", GPU)
        rec.wait_for("displayhandler_gpu_changed")
    assert host.call(HOST, "get_displayhandler_gpu")[0] == "0"
    assert host.call(HOST, "list_gpu_devices")[0] == []  # the display handler drives it
    assert "not a PCI address" in xec_fails(dom0, "set-displayhandler-gpu", "gpu0")
    path = str(dom0.root().call(XENMGR, "create_vm_with_template_and_json", "ss",
                                "new-vm-empty", json.dumps({"gpu": "0000:00:02.0"}))[0])
    assert "assigned to a VM for passthrough" in xec_fails(dom0, "set-displayhandler-gpu", GPU)
    assert host.call(HOST, "list_gpus_for_displayhandler")[0] == []
    dom0.obj(path).call(VM, "delete")
    host.call(HOST, "set_displayhandler_gpu", "s", "")


def test_licence(dom0: Xenmgr) -> None:
    host = dom0.obj("/host")
    assert host.get(HOST, "is-licensed") is True  # no licence set: "local"
    assert "invalid hash" in xec_fails(dom0, "set-license", "2030-01-01 00:00:00 +0000",
                                       "dev", "local")
    assert "failed to parse expiry date" in xec_fails(dom0, "set-license", "soon", "dev", "x")
    with SignalRecorder(dom0.address) as rec:
        host.call(HOST, "set_license", "sss", "2030-01-01 00:00:00 +0000", "dev", "bogus")
        rec.wait_for("license_changed")
    assert host.get(HOST, "is-licensed") is False
    good = hashlib.sha256(b"dev2099-01-01 00:00:00 +0000").hexdigest()  # no licence key
    host.call(HOST, "set_license", "sss", "2099-01-01 00:00:00 +0000", "dev", good)
    assert host.get(HOST, "is-licensed") is True
    expired = hashlib.sha256(b"dev2001-01-01 00:00:00 +0000").hexdigest()
    host.call(HOST, "set_license", "sss", "2001-01-01 00:00:00 +0000", "dev", expired)
    assert host.get(HOST, "is-licensed") is False


def test_ui_plugins_and_sound(dom0: Xenmgr) -> None:
    host = dom0.obj("/host")
    assert host.call(HOST, "list_ui_plugins", "s", "themes")[0] == []  # no plugin directory
    if not Path("/proc/asound").exists():  # no ALSA on this host: no cards (not an error)
        assert host.call(HOST, "list_sound_cards")[0] == []
        assert host.call(HOST, "list_playback_devices")[0] == []
        assert host.call(HOST, "list_capture_devices")[0] == []
    if shutil.which("amixer") is None:
        with pytest.raises(DBusError) as info:
            host.call(HOST, "set_sound_card_control", "sss", "0", "Master", "50% on")
        assert info.value.name == "org.freedesktop.DBus.Error.NotSupported"
        assert "need amixer" in info.value.message
