"""dom0's SCSI disks and CD drives: the simulated host's bus (pure) and a dom0's
/sys/bus/scsi read from a tree of files."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from xen.hypervisor import HypervisorError, InvalidArgument
from xen.sim.hypervisor._scsi import DEFAULT_SCSI_DEVICES, SCSI_CDROM, SimScsiBus, SimScsiDevice
from xen.xenops import HostScsiSysfs, ScsiDevice


def test_the_simulated_bus_lists_and_ejects() -> None:
    bus = SimScsiBus()
    disk, dvd, usb_dvd = bus.devices()
    assert (disk["block"], disk["medium"], dvd["medium"], usb_dvd["usb"]) == \
        ("sda", None, True, "2:3")
    assert dvd["sectors"] > 0 and usb_dvd["sectors"] == 0  # no medium: no size
    bus.eject(dvd["hctl"])
    bus.eject(dvd["hctl"])  # an empty drive only opens its tray
    after = bus.devices()[1]
    assert (after["medium"], after["sectors"], after["ejections"]) == (False, 0, 2)
    bus.insert(dvd["hctl"])
    assert bus.devices()[1]["medium"] is True
    for hctl, code in ((disk["hctl"], errno.ENOTTY), ("9:0:0:0", errno.ENODEV)):
        with pytest.raises(HypervisorError) as failed:
            bus.eject(hctl)
        assert failed.value.errno == code


@pytest.mark.parametrize("bad", [
    dict(hctl="1:0:0"), dict(type=3), dict(block="../sda"), dict(sectors=-1)])
def test_a_bad_device_is_refused(bad: dict[str, object]) -> None:
    fields: dict[str, object] = {"hctl": "2:0:0:0", "type": SCSI_CDROM, "vendor": "V",
                                 "model": "M", "block": "sr2", **bad}
    with pytest.raises(InvalidArgument):
        SimScsiDevice(**fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="listed twice"):
        SimScsiBus([DEFAULT_SCSI_DEVICES[0], DEFAULT_SCSI_DEVICES[0]])


def _device(root: Path, hctl: str, kind: int, vendor: str, block: str, size: int,
            parent: Path) -> None:
    dev = parent / hctl
    (dev / "block" / block).mkdir(parents=True)
    (dev / "block" / block / "size").write_text(f"{size}\n")
    for name, value in (("type", str(kind)), ("vendor", vendor + "  "), ("model", "Drive")):
        (dev / name).write_text(value + "\n")
    link = root / "bus" / "scsi" / "devices" / hctl
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(dev)


def test_a_dom0_sysfs_is_read(tmp_path: Path) -> None:
    pci = tmp_path / "devices" / "pci0000:00"
    usb = pci / "0000:00:14.0" / "usb2" / "2-1"
    usb.mkdir(parents=True)
    (usb / "busnum").write_text("2\n")
    (usb / "devnum").write_text("5\n")
    (tmp_path / "bus" / "usb").mkdir(parents=True)
    (usb / "subsystem").symlink_to(tmp_path / "bus" / "usb")
    _device(tmp_path, "0:0:0:0", 0, "ATA", "sda", 1000, pci / "ata1")
    _device(tmp_path, "6:0:0:0", 5, "ASUS", "sr1", 0, usb / "host6")
    (tmp_path / "bus" / "scsi" / "devices" / "host0").mkdir()  # not a device: skipped
    sysfs = HostScsiSysfs(tmp_path)
    assert sysfs.devices() == [
        ScsiDevice("0:0:0:0", 0, "ATA", "Drive", "sda", 1000, None),
        ScsiDevice("6:0:0:0", 5, "ASUS", "Drive", "sr1", 0, (2, 5))]
    with pytest.raises(OSError) as unknown:
        sysfs.eject("9:0:0:0")
    assert unknown.value.errno == errno.ENODEV
    with pytest.raises(OSError) as disk:
        sysfs.eject("0:0:0:0")
    assert disk.value.errno == errno.ENOTTY
    assert HostScsiSysfs(tmp_path / "nothing").devices() == []
