"""Matching passthrough rules against the host's devices; the device map (pure parts)."""

from __future__ import annotations

from xen.xenmgr._devices import PciRule
from xen.xenmgr._pci_inventory import HostPci, device_map, is_gpu, matching

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
