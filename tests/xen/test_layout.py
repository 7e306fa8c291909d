"""The xenstore layout of devices: paths, permissions and the keys each kind writes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xen.xenops._devid import DeviceNameError
from xen.xenops._devspec import (
    ConsoleSpec,
    PciDev,
    PciSpec,
    PvDeviceSpec,
    VbdSpec,
    VifSpec,
    device_layout,
    vif_rate_value,
)
from xen.xenops._layout import (
    Device,
    Endpoint,
    Kind,
    LayoutError,
    Perms,
    PhysType,
    Protocol,
    ro_perms,
    rw_perms,
)


def test_perms_wire_form() -> None:
    assert Perms(0, "n", ((5, "r"),)).to_strings() == ["n0", "r5"]
    assert rw_perms(7).to_strings() == ["n7"]
    assert ro_perms(7).to_strings() == ["n0", "r7"]
    assert Perms.from_strings(["b3", "w4", "r0"]) == Perms(3, "b", ((4, "w"), (0, "r")))


@given(
    st.integers(0, 0xFFFF),
    st.sampled_from("nrwb"),
    st.lists(st.tuples(st.integers(0, 0xFFFF), st.sampled_from("nrwb")), max_size=5),
)
def test_perms_round_trip(owner: int, other: str, acl: list[tuple[int, str]]) -> None:
    perms = Perms(owner, other, tuple(acl))  # type: ignore[arg-type]
    assert Perms.from_strings(perms.to_strings()) == perms


@pytest.mark.parametrize("bad", [[], ["x0"], ["r"], ["r-1"], ["n70000"]])
def test_bad_perms(bad: list[str]) -> None:
    with pytest.raises(LayoutError):
        Perms.from_strings(bad)


def test_device_paths() -> None:
    dev = Device(Endpoint(5, Kind.VBD, 51712), Endpoint(0, Kind.TAP, 51712))
    assert dev.frontend_path == "/local/domain/5/device/vbd/51712"
    assert dev.backend_path == "/local/domain/0/backend/tap/5/51712"
    assert dev.error_path == "/local/domain/5/error/device/vbd/51712/error"
    assert dev.hotplug_path == "/xapi/5/hotplug/tap/51712"
    assert dev.hotplug_status_path == "/xapi/5/hotplug/tap/51712/hotplug"
    assert dev.hotplug_extra_path == "/xapi/5/hotplug-extra/tap/51712"
    assert dev.frontend_hotplug_path == "/xapi/5/frontend/vbd/51712/hotplug"
    assert dev.udev_path == "/xapi/5/hotplug/vbd/51712"
    assert dev.hotplug_connected_path == "/local/domain/0/backend/tap/5/51712/hotplug-status"


def test_endpoint_validation() -> None:
    with pytest.raises(LayoutError):
        Endpoint(-1, Kind.VIF, 0)
    with pytest.raises(LayoutError):
        Endpoint(1, Kind.VIF, -3)


def test_vbd_phy_layout() -> None:
    spec = VbdSpec(3, "xvda", "/dev/sda5", PhysType.PHY, mode="w", backend_uuid="U",
                   physical_device=(8, 5), protocol=Protocol.X86_32)
    layout = device_layout(spec)
    assert layout.device.backend.kind is Kind.VBD
    back = dict(layout.backend)
    assert back == {"params": "/dev/sda5", "physical-device": "8:5", "frontend-id": "3",
                    "online": "1", "removable": "0", "state": "1", "dev": "xvda",
                    "type": "phy", "mode": "w"}
    assert dict(layout.frontend) == {"backend-id": "0", "backend-uuid": "U", "state": "1",
                                     "virtual-device": "51712", "device-type": "disk",
                                     "protocol": "x86_32-abi"}


def test_vbd_tap_and_stubdom_layout() -> None:
    spec = VbdSpec(3, "hda", "/img/a.vhd", PhysType.VHD, mode="r", device_type="cdrom")
    layout = device_layout(spec)
    assert layout.device.backend.kind is Kind.TAP
    assert layout.device.frontend.kind is Kind.VBD
    back = dict(layout.backend)
    assert back["params"] == "vhd:/img/a.vhd" and back["type"] == "tap"
    assert "protocol" not in dict(layout.frontend)
    stub = dict(device_layout(VbdSpec(9, "hda", "/img/a.vhd", PhysType.VHD,
                                      use_stubdom=True)).backend)
    assert stub["params"] == "vhd:/dev/hda" and stub["type"] == "phy"


def test_vbd_pv_file_needs_a_loop_device() -> None:
    with pytest.raises(LayoutError):
        VbdSpec(3, "xvda", "/img/a.raw", PhysType.FILE)
    spec = VbdSpec(3, "xvda", "/img/a.raw", PhysType.FILE, loop_device="/dev/loop2",
                   physical_device=(7, 2))
    back = dict(device_layout(spec).backend)
    assert back["loop-device"] == "/dev/loop2" and back["physical-device"] == "7:2"
    assert back["type"] == "file" and back["params"] == "/img/a.raw"
    hvm = dict(device_layout(VbdSpec(3, "hda", "/img/a.raw", PhysType.FILE, hvm=True)).backend)
    assert "loop-device" not in hvm


def test_vbd_dom0_frontend_gets_dev_path() -> None:
    back = dict(device_layout(VbdSpec(0, "xvdb", "/dev/x", PhysType.PHY)).backend)
    assert back["dev"] == "/dev/xvdb"


def test_vbd_rejects_bad_virtpath_and_mode() -> None:
    with pytest.raises(DeviceNameError):
        VbdSpec(3, "vdz", "/x", PhysType.PHY)
    with pytest.raises(LayoutError):
        VbdSpec(3, "xvda", "/x", PhysType.PHY, mode="rw")  # type: ignore[arg-type]


def test_vif_layout_and_vwif() -> None:
    spec = VifSpec(4, 1, "00:16:3e:00:00:01", network="/net/0", rate=(1000, 0))
    layout = device_layout(spec)
    assert layout.device.frontend.kind is Kind.VIF
    back = dict(layout.backend)
    assert back["script"] == "/etc/xensource/scripts/vif"
    assert back["handle"] == "1" and back["mac"] == "00:16:3e:00:00:01"
    assert back["bridge"] == "/net/0"
    assert back["rate"] == "51200,50000"  # 1000 KiB/s over 50 ms
    wifi = device_layout(VifSpec(4, 1, "00:16:3e:00:00:01", wireless=True)).device
    assert wifi.frontend.kind is Kind.VWIF and wifi.backend.kind is Kind.VIF
    assert wifi.frontend_path == "/local/domain/4/device/vwif/1"
    assert wifi.backend_path == "/local/domain/0/backend/vif/4/1"
    with pytest.raises(LayoutError):
        VifSpec(4, 1, "00:16:3e:00:00")


def test_vif_rate_out_of_range_is_dropped() -> None:
    assert vif_rate_value(0, 0) is None
    assert vif_rate_value(1 << 40, 1_000_000) is None


def test_pci_layout() -> None:
    devs = (PciDev(0, 0, 2, 0, msitranslate=0, power_mgmt=1),
            PciDev(0, 1, 0x1F, 7, guest_slot=5, vdevfn=40))
    layout = device_layout(PciSpec(6, 0, devs, flr=True, pvpci=False))
    back = layout.backend
    assert back[0] == ("flr", "1")
    d = dict(back)
    assert d["dev-0"] == "0000:00:02.0"
    assert d["dev-1"] == "0000:01:1f.7@05" and d["vdevfn-1"] == "40"
    assert d["num_devs"] == "2" and d["msitranslate"] == "0" and d["power_mgmt"] == "1"
    assert "state" not in d  # no PV-PCI when a stubdom owns the frontend
    assert dict(layout.frontend) == {"backend-id": "0", "state": "1"}
    with pytest.raises(LayoutError):
        PciDev(0, 0, 0x20, 0)


def test_console_layouts() -> None:
    stub = device_layout(ConsoleSpec(8, ring=("17", "1234"), output="file:/var/log/x"))
    assert dict(stub.frontend) == {"backend-id": "0", "protocol": "native", "limit": "0",
                                   "ring-ref": "1234", "port": "17", "type": "ioemu",
                                   "output": "file:/var/log/x"}
    assert dict(stub.backend)["protocol"] == "vt100"
    extra = dict(device_layout(ConsoleSpec(8, devid=1, output="pty")).frontend)
    assert extra["protocol"] == "vt100" and extra["state"] == "1"
    assert device_layout(ConsoleSpec(8, hvm=True)).frontend == ()
    with pytest.raises(LayoutError):
        ConsoleSpec(8)


def test_simple_pv_devices() -> None:
    vfb = device_layout(PvDeviceSpec(Kind.VFB, 2))
    assert dict(vfb.frontend) == {"backend-id": "0", "protocol": "native", "state": "1"}
    assert dict(vfb.backend) == {"frontend-id": "2", "online": "1", "state": "1"}
    v4v = device_layout(PvDeviceSpec(Kind.V4V, 2))
    assert dict(v4v.backend) == {"frontend-id": "2", "state": "0"}
    vsnd = device_layout(PvDeviceSpec(Kind.VSND, 2))
    assert "protocol" not in dict(vsnd.frontend)
    vkbd1 = device_layout(PvDeviceSpec(Kind.VKBD, 2, devid=1)).device
    assert vkbd1.backend_path == "/local/domain/0/backend/vkbd/2/1"
    with pytest.raises(LayoutError):
        PvDeviceSpec(Kind.VBD, 2)
