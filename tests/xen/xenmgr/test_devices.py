"""A VM's disks, nics and PCI rules read from its subtree."""

from __future__ import annotations

import pytest

from xen.xenmgr import (
    DbView,
    Disk,
    Nic,
    PciRule,
    SchemaError,
    default_mac,
    read_disk,
    read_disks,
    read_nic,
    read_nics,
    read_pci_rules,
)

UUID = "00000000-0000-0000-0000-000000000001"


def vm(**config: object) -> DbView:
    return DbView({"config": config})


def test_disks_by_id_with_defaults() -> None:
    view = vm(disk={
        "10": {"path": "/d.vhd", "type": "vhd", "mode": "w", "device": "hdb", "devtype": "disk",
               "snapshot": "temporary", "sha1sum": "ab" * 20, "shared": "yes", "enable": "0"},
        "2": {"path": "/x.iso", "type": "file", "mode": "r", "device": "hdc", "devtype": "cdrom",
              "managed-disktype": "system"},
        "3": {},
    })
    disks = read_disks(view)
    assert [d.id for d in disks] == [2, 3, 10]
    assert disks[0] == Disk(2, "/x.iso", "file", "r", "hdc", "cdrom", managed_disktype="system")
    assert disks[0].is_cd and not disks[2].is_cd
    assert disks[1] == Disk(3)  # half-made: listed, nothing set
    assert disks[2].shared and not disks[2].enabled and disks[2].snapshot == "temporary"
    assert read_disk(view, 4) is None


def test_disk_errors_name_the_concrete_key() -> None:
    with pytest.raises(SchemaError, match=r"config/disk/7/mode.*'x'"):
        read_disks(vm(disk={"7": {"mode": "x"}}))
    with pytest.raises(SchemaError, match="config/disk/abc"):
        read_disks(vm(disk={"abc": {}}))


def test_nics_ids_networks_and_macs() -> None:
    view = vm(nic={
        "0": {"id": "3", "network": "brshared", "backend-uuid": "", "backend-name": "Network",
              "wireless-driver": "true", "mac": "00:16:3E:00:00:01", "model": "rtl8139"},
        "1": {},
        "5": {"id": ""},
    })
    nics = read_nics(view)
    assert [(n.id, n.node) for n in nics] == [(1, "1"), (3, "0"), (5, "5")]
    assert nics[0] == Nic(1, "1")
    assert nics[0].network == "/wired/0/bridged"
    assert nics[0].actual_mac(UUID) == default_mac(1, UUID)
    assert nics[1].network == "/wired/0/shared" and nics[1].backend_uuid is None
    assert nics[1].backend_name == "Network" and nics[1].wireless
    assert nics[1].actual_mac(UUID) == "00:16:3E:00:00:01"
    assert read_nic(view, 3) == nics[1] and read_nic(view, 0) is None


def test_nic_errors() -> None:
    with pytest.raises(SchemaError, match=r"config/nic/1/id.*also the id of config/nic/0"):
        read_nics(vm(nic={"0": {}, "1": {"id": "0"}}))
    with pytest.raises(SchemaError, match="config/nic/0/mac"):
        read_nics(vm(nic={"0": {"mac": "nonsense"}}))
    with pytest.raises(SchemaError, match="config/nic/0/id"):
        read_nics(vm(nic={"0": {"id": "-2"}}))
    with pytest.raises(SchemaError, match="config/nic/eth0"):
        read_nics(vm(nic={"eth0": {}}))


def test_pci_rules() -> None:
    rules = read_pci_rules(vm(pci={
        "1": {"class": "0x0200", "force-slot": "true"},
        "0": {"bdf": "0000:00:19.0@1f"},
        "2": {"vendor": "0x8086", "device": "0x10de"},
    }))
    assert rules == (
        PciRule(0, bdf="0000:00:19.0", guest_slot=0x1F),
        PciRule(1, pci_class=0x200, force_slot=True),
        PciRule(2, vendor=0x8086, device=0x10DE),
    )
    with pytest.raises(SchemaError, match="config/pci/0/bdf"):
        read_pci_rules(vm(pci={"0": {"bdf": "00:19"}}))
