"""PCI passthrough steps (pure: what PciAdd and PciRelease expand into, a group's unplug, the
sysfs resource format) and the dom0 sysfs logic against a sysfs-shaped directory tree."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from xen.xenops import (
    AssignDevice,
    DeassignDevice,
    HostPciSysfs,
    IomemPermission,
    IoportPermission,
    IrqPermission,
    Kind,
    MapPirq,
    ObservedDevice,
    PciAdd,
    PciBar,
    PciDeviceMissing,
    PciFlr,
    PciHostDevice,
    PciPermissive,
    PciRelease,
    PlanError,
    Rm,
    UnmapPirq,
    bind_to_pciback,
    parse_resource,
    pci_add_steps,
    pci_release_steps,
    plan_io_grants,
    plan_pci_remove,
    read_pci_device,
    reset_device,
)
from xen.xenops._layout import Device, Endpoint

BDF = "0000:00:14.0"
DEV = PciHostDevice(BDF, 0x0C0330, 0x8086, 0xA12F, 16,
                    (PciBar("mem", 0xF7F00800, 0x2000), PciBar("io", 0xE000, 0x20)))


def add(**flags: bool) -> PciAdd:
    base = {"assign": True, "permissive": False, "flr": False, "hvm": False, "pvpci": True}
    return PciAdd(3, BDF, **{**base, **flags})


def test_add_resets_assigns_then_grants_bars_and_the_irq() -> None:
    assert pci_add_steps(add(flr=True), DEV) == (
        PciFlr(BDF), AssignDevice(3, BDF),
        IomemPermission(3, 0xF7F00, 3, allow=True),  # 0xf7f00800..0xf7f027ff spans 3 pages
        IoportPermission(3, 0xE000, 0x20, allow=True),
        MapPirq(3, 16), IrqPermission(3, 16, allow=True))


def test_a_permissive_add_asks_pciback_before_the_assignment() -> None:
    steps = pci_add_steps(add(permissive=True), DEV)
    assert steps[:2] == (PciPermissive(BDF), AssignDevice(3, BDF))


def test_add_assigns_only_for_hvm_or_pv_pci_and_maps_no_irq_without_one() -> None:
    no_irq = PciHostDevice(BDF, 0x0C0330, 0x8086, 0xA12F, 0, ())
    assert pci_add_steps(add(pvpci=False, hvm=False), no_irq) == ()
    assert pci_add_steps(add(pvpci=False, hvm=True), no_irq) == (AssignDevice(3, BDF),)
    assert pci_add_steps(add(assign=False), no_irq) == ()


def test_release_is_the_reverse_and_best_effort() -> None:
    steps = pci_release_steps(PciRelease(3, BDF, hvm=True), DEV)
    assert steps == (DeassignDevice(3, BDF, ignore_errors=True),
                     UnmapPirq(3, 16, ignore_errors=True),
                     IrqPermission(3, 16, allow=False, ignore_errors=True),
                     IomemPermission(3, 0xF7F00, 3, allow=False, ignore_errors=True),
                     IoportPermission(3, 0xE000, 0x20, allow=False, ignore_errors=True))
    assert pci_release_steps(PciRelease(3, BDF, hvm=True), DEV, assigned=False)[0] == \
        UnmapPirq(3, 16, ignore_errors=True)
    assert pci_release_steps(PciRelease(3, BDF, hvm=True, assigned=False), DEV) == steps[1:]
    # a PV domain's release (a stub domain's, a PV-PCI guest's) ends with pciback restrictive
    pv = pci_release_steps(PciRelease(3, BDF, hvm=False), DEV, assigned=False)
    assert pv[:-1] == steps[1:]
    assert pv[-1] == PciPermissive(BDF, allow=False, ignore_errors=True)


def test_a_group_unplug_releases_then_removes_then_resets() -> None:
    dev = Device(Endpoint(3, Kind.PCI, 1), Endpoint(0, Kind.PCI, 1))
    plan = plan_pci_remove(ObservedDevice(dev, pci_bdfs=(BDF, "0000:04:00.0")), hvm=False)
    assert plan.best_effort
    kinds = [type(s).__name__ for s in plan.steps]
    assert kinds == ["PciRelease", "PciRelease", "Rm", "Rm", "Rm", "Rm", "Rm", "PciFlr",
                     "PciFlr"]
    assert Rm("/local/domain/0/backend/pci/3/1") in plan.steps
    assert Rm("/local/domain/3/device/pci/1") in plan.steps


def test_the_resource_file() -> None:
    text = ("0x00000000f7c00000 0x00000000f7c1ffff 0x0000000000040200\n"
            "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
            "0x000000000000e000 0x000000000000e01f 0x0000000000040101\n"
            + "0x0000000000000000 0x0000000000000000 0x0000000000000000\n" * 3
            + "0x00000000f7c20000 0x00000000f7c3ffff 0x0000000000046200\n")  # ROM: ignored
    assert parse_resource(text) == (PciBar("mem", 0xF7C00000, 0x20000),
                                    PciBar("io", 0xE000, 0x20))
    with pytest.raises(PlanError, match="bad resource line 0"):
        parse_resource("0x1 0x2\n", BDF)
    with pytest.raises(PlanError, match="ends before it starts"):
        parse_resource("0x10 0x2 0x200\n", BDF)


def fake_sysfs(root: Path, driver: str | None) -> HostPciSysfs:
    """A /sys/bus/pci with one device and the drivers' attribute files (plain files)."""
    dev = root / "devices" / BDF
    dev.mkdir(parents=True)
    for name, value in (("class", "0x0c0330"), ("vendor", "0x8086"), ("device", "0xa12f"),
                        ("irq", "16"),
                        ("resource", "0x00000000f7f00000 0x00000000f7f0ffff 0x200\n")):
        (dev / name).write_text(value + "\n")
    for drv in ("xhci_hcd", "pciback"):
        (root / "drivers" / drv).mkdir(parents=True)
    if driver is not None:
        os.symlink(f"../../../bus/pci/drivers/{driver}", dev / "driver")
    return HostPciSysfs(root)


def test_reading_a_device_from_a_sysfs_tree(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, "xhci_hcd")
    assert read_pci_device(sysfs, BDF) == PciHostDevice(
        BDF, 0x0C0330, 0x8086, 0xA12F, 16, (PciBar("mem", 0xF7F00000, 0x10000),), "xhci_hcd")
    with pytest.raises(PciDeviceMissing, match=r"no PCI device 0000:07:00\.0 on this host") as e:
        read_pci_device(sysfs, "0000:07:00.0")
    assert e.value.errno == errno.ENODEV


class Recording(HostPciSysfs):
    """A sysfs tree that also records the order of its writes."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writes: list[tuple[str, str]] = []

    def write(self, path: str, value: str) -> None:
        super().write(path, value)
        self.writes.append((path, value))


def test_binding_writes_unbind_new_slot_bind_in_that_order(tmp_path: Path) -> None:
    fake_sysfs(tmp_path, "xhci_hcd")
    sysfs = Recording(tmp_path)
    bind_to_pciback(sysfs, BDF)
    assert sysfs.writes == [("drivers/xhci_hcd/unbind", BDF), ("drivers/pciback/new_slot", BDF),
                            ("drivers/pciback/bind", BDF)]
    assert (tmp_path / "drivers/pciback/bind").read_text() == BDF


def test_a_device_already_with_pciback_is_left_alone_and_reset(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, "pciback")
    bind_to_pciback(sysfs, BDF)
    assert not list(tmp_path.glob("drivers/*/*"))
    reset_device(sysfs, BDF)
    assert (tmp_path / "drivers/pciback/reset_device").read_text() == BDF


def test_a_network_controller_is_never_reset(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, "pciback")
    (tmp_path / "devices" / BDF / "class").write_text("0x020000\n")
    reset_device(sysfs, BDF)
    assert not (tmp_path / "drivers/pciback/reset_device").exists()


def test_raw_io_grants_are_inclusive_ranges() -> None:
    plan = plan_io_grants(3, ((0x3F8, 0x3FF),), ((0xFED00, 0xFED01),))
    assert plan.steps == (IoportPermission(3, 0x3F8, 8, allow=True),
                          IomemPermission(3, 0xFED00, 2, allow=True))
    assert not plan.best_effort
