"""Matching passthrough rules against the host's devices; the device map; reading a dom0's
sysfs (a tree of files); the host's GPUs."""

from __future__ import annotations

from pathlib import Path

from xen.xenmgr._devices import PciRule
from xen.xenmgr._host_gpus import host_gpus
from xen.xenmgr._pci_inventory import HostPci, device_map, is_gpu, matching, read_pci
from xen.xenops import HostPciSysfs, pci_functions

NIC = HostPci("0000:03:00.0", 0x020000, 0x8086, 0x10D3, "Ethernet", "e1000e")
WIFI = HostPci("0000:05:00.0", 0x028000, 0x8086, 0x24FD)
GPU = HostPci("0000:00:02.0", 0x030000, 0x8086, 0x5916, "HD Graphics", "i915")
ALL = [NIC, WIFI, GPU]


def test_rules_select_by_address_or_by_class_vendor_device() -> None:
    assert matching(PciRule(0, bdf="0000:05:00.0"), ALL) == [WIFI]
    assert matching(PciRule(0, bdf="0000:09:00.0"), ALL) == []
    assert matching(PciRule(0, pci_class=0x0200), ALL) == [NIC]
    assert matching(PciRule(0, pci_class=0x0280), ALL) == [WIFI]
    assert matching(PciRule(0, vendor=0x8086), ALL) == ALL
    assert matching(PciRule(0, vendor=0x8086, device=0x5916), ALL) == [GPU]
    assert matching(PciRule(0, pci_class=0x0300, vendor=0x10DE), ALL) == []


def test_gpus_and_the_listing_map() -> None:
    assert [d for d in ALL if is_gpu(d)] == [GPU]
    assert device_map(GPU) == {"addr": "0000:00:02.0", "class": "0x0300", "vendor": "0x8086",
                               "device": "0x5916", "name": "HD Graphics", "driver": "i915"}


def _sysfs_tree(root: Path) -> HostPciSysfs:
    """A dom0's /sys/bus/pci as files: a GPU (label, boot_vga, drm card, bound to i915) and a
    NIC without label or driver."""
    for bdf, cls, device in (("0000:00:02.0", "0x030000", "0x5916"),
                             ("0000:03:00.0", "0x020000", "0x10d3")):
        dev = root / "devices" / bdf
        dev.mkdir(parents=True)
        for name, value in (("class", cls), ("vendor", "0x8086"), ("device", device)):
            (dev / name).write_text(value + "\n")
    gpu = root / "devices" / "0000:00:02.0"
    (gpu / "label").write_text("HD Graphics\n")
    (gpu / "boot_vga").write_text("1\n")
    (gpu / "drm" / "card0").mkdir(parents=True)
    (root / "drivers" / "i915").mkdir(parents=True)
    (gpu / "driver").symlink_to(root / "drivers" / "i915")
    return HostPciSysfs(root)


def test_the_inventory_reads_a_dom0_sysfs(tmp_path: Path) -> None:
    sysfs = _sysfs_tree(tmp_path)
    assert pci_functions(sysfs) == ["0000:00:02.0", "0000:03:00.0"]
    assert sysfs.read("devices/0000:00:02.0/drm") == "card0"  # a directory: its entries
    gpu, nic = read_pci(sysfs)
    assert gpu == HostPci("0000:00:02.0", 0x030000, 0x8086, 0x5916, "HD Graphics", "i915",
                          boot_vga=True)
    assert nic == HostPci("0000:03:00.0", 0x020000, 0x8086, 0x10D3)
    assert host_gpus([nic, gpu]) == [gpu]
    second = HostPci("0000:01:00.0", 0x030000, 0x10DE, 0x1C82)
    assert host_gpus([second, nic, gpu]) == [gpu]  # the boot display only
    assert host_gpus([second, nic, gpu], secondary=True) == [gpu, second]
