"""The simulated PCI bus (pure): the sysfs stand-in, assignment, grants, pirqs, the release of a
dying domain, the device document; every failure named and changing nothing."""

from __future__ import annotations

import errno
import uuid

import pytest

from xen.hypervisor import DomainSpec, HypervisorError, InvalidArgument
from xen.sim.hypervisor import (
    DEFAULT_PCI_DEVICES,
    Bar,
    SimHypervisor,
    SimPciBus,
    SimPciDevice,
    pci_devices_from_doc,
)

USB, AUDIO, NIC, HIDDEN, GPU = (d.bdf for d in DEFAULT_PCI_DEVICES)


def errno_of(exc: pytest.ExceptionInfo[HypervisorError]) -> int | None:
    return exc.value.errno


def test_sysfs_reads_as_a_dom0_kernel_shows_them() -> None:
    bus = SimPciBus()
    assert bus.sysfs_read("devices").split() == sorted([USB, AUDIO, NIC, HIDDEN, GPU])
    assert bus.sysfs_read(f"devices/{NIC}/class") == "0x020000"
    assert bus.sysfs_read(f"devices/{NIC}/vendor") == "0x8086"
    assert bus.sysfs_read(f"devices/{NIC}/device") == "0x10d3"
    assert bus.sysfs_read(f"devices/{NIC}/irq") == "18"
    assert bus.sysfs_read(f"devices/{NIC}/driver") == "e1000e"
    lines = bus.sysfs_read(f"devices/{NIC}/resource").splitlines()
    assert len(lines) == 7
    assert lines[0] == "0x00000000f7c00000 0x00000000f7c1ffff 0x0000000000000200"
    assert lines[1] == "0x000000000000e000 0x000000000000e01f 0x0000000000000100"
    assert bus.sysfs_read("drivers/pciback/slots") == HIDDEN
    assert bus.sysfs_read(f"devices/{NIC}/label") == "Ethernet controller"
    assert bus.sysfs_read(f"devices/{GPU}/boot_vga") == "1"
    with pytest.raises(HypervisorError) as no_boot_vga:  # only display controllers have it
        bus.sysfs_read(f"devices/{NIC}/boot_vga")
    assert errno_of(no_boot_vga) == errno.ENOENT


@pytest.mark.parametrize(("path", "code"), [
    ("devices/0000:07:00.0/class", errno.ENODEV),
    ("devices/0000:03:00.0/nothing", errno.ENOENT),
    ("bus/whatever", errno.ENOENT),
    ("devices/zz/class", errno.EINVAL),
])
def test_sysfs_read_failures_carry_the_kernel_errno(path: str, code: int) -> None:
    with pytest.raises(HypervisorError) as failed:
        SimPciBus().sysfs_read(path)
    assert errno_of(failed) == code


def test_binding_to_pciback_needs_unbind_then_new_slot_then_bind() -> None:
    bus = SimPciBus()
    with pytest.raises(HypervisorError) as busy:
        bus.sysfs_write("drivers/pciback/bind", USB)
    assert errno_of(busy) == errno.EBUSY and "bound to xhci_hcd" in str(busy.value)
    with pytest.raises(HypervisorError) as wrong:
        bus.sysfs_write("drivers/e1000e/unbind", USB)
    assert errno_of(wrong) == errno.ENODEV
    bus.sysfs_write("drivers/xhci_hcd/unbind", USB)
    with pytest.raises(HypervisorError) as noslot:
        bus.sysfs_write("drivers/pciback/bind", USB)
    assert errno_of(noslot) == errno.ENODEV and "new_slot" in str(noslot.value)
    bus.sysfs_write("drivers/pciback/new_slot", USB)
    bus.sysfs_write("drivers/pciback/bind", USB)
    assert bus.sysfs_read(f"devices/{USB}/driver") == "pciback"
    # and back to its own driver, not to another one
    bus.sysfs_write("drivers/pciback/unbind", USB)
    with pytest.raises(HypervisorError):
        bus.sysfs_write("drivers/e1000e/bind", USB)
    bus.sysfs_write("drivers/xhci_hcd/bind", USB)
    assert bus.state()["devices"][USB]["driver"] == "xhci_hcd"


def test_reset_counts_only_for_a_pciback_device_not_assigned() -> None:
    bus = SimPciBus()
    with pytest.raises(HypervisorError) as notours:
        bus.sysfs_write("drivers/pciback/reset_device", USB)
    assert errno_of(notours) == errno.ENODEV
    bus.sysfs_write("drivers/pciback/reset_device", HIDDEN)
    bus.assign(3, HIDDEN)
    with pytest.raises(HypervisorError) as busy:
        bus.sysfs_write("drivers/pciback/reset_device", HIDDEN)
    assert errno_of(busy) == errno.EBUSY
    with pytest.raises(HypervisorError):
        bus.sysfs_write("drivers/pciback/unbind", HIDDEN)  # not from under a guest
    assert bus.state()["devices"][HIDDEN]["resets"] == 1
    bus.sysfs_write("drivers/pciback/permissive", HIDDEN)
    assert bus.state()["devices"][HIDDEN]["permissive"]
    bus.sysfs_write("drivers/pciback/restrictive", HIDDEN)  # OpenXT's pciback: filtered again
    assert not bus.state()["devices"][HIDDEN]["permissive"]


def test_a_device_is_assigned_once_and_only_from_pciback() -> None:
    bus = SimPciBus()
    with pytest.raises(HypervisorError) as held:
        bus.assign(3, NIC)
    assert errno_of(held) == errno.EBUSY and "e1000e" in str(held.value)
    with pytest.raises(HypervisorError) as missing:
        bus.assign(3, "0000:07:00.0")
    assert errno_of(missing) == errno.ENODEV
    assert bus.test_assign(3, HIDDEN)
    bus.assign(3, HIDDEN)
    assert not bus.test_assign(4, HIDDEN)
    with pytest.raises(HypervisorError) as twice:
        bus.assign(4, HIDDEN)
    assert errno_of(twice) == errno.EBUSY and "domain 3" in str(twice.value)
    with pytest.raises(HypervisorError) as other:
        bus.deassign(4, HIDDEN)
    assert errno_of(other) == errno.EINVAL
    assert bus.holder(HIDDEN) == 3
    bus.deassign(3, HIDDEN)
    assert bus.holder(HIDDEN) is None


def test_grants_and_pirqs_are_recorded_and_released_with_the_domain() -> None:
    bus = SimPciBus()
    bus.assign(5, HIDDEN)
    bus.iomem(5, 0xF7A00, 32, True)
    bus.ioport(5, 0xD000, 32, True)
    assert bus.map_pirq(5, 19, None) == 19
    assert bus.map_pirq(5, 19, None) == 19  # the same mapping again is fine
    with pytest.raises(HypervisorError) as clash:
        bus.map_pirq(5, 18, 19)
    assert errno_of(clash) == errno.EBUSY
    with pytest.raises(HypervisorError) as nogsi:
        bus.map_pirq(5, 99, None)
    assert errno_of(nogsi) == errno.EINVAL
    bus.irq_permission(5, 19, True)
    assert bus.state()["grants"] == {"5": {"iomem": [[0xF7A00, 32]], "ioport": [[0xD000, 32]],
                                           "irq": [19], "pirq": {"19": 19}}}
    bus.iomem(5, 0xF7A00, 32, False)
    bus.iomem(5, 0x1, 1, False)  # revoking what was never granted is fine
    assert bus.release_domain(5) == [f"device {HIDDEN}", "grants"]
    assert bus.state()["grants"] == {} and bus.holder(HIDDEN) is None
    with pytest.raises(HypervisorError):
        bus.unmap_pirq(5, 19)


def test_the_hypervisor_releases_a_domain_when_it_starts_dying() -> None:
    model = SimHypervisor(1 << 20)
    domid, _ = model.create(DomainSpec(handle=uuid.uuid4(), memory_kib=4096))
    model.pci.assign(domid, HIDDEN)
    model.pci.irq_permission(domid, 19, True)
    model.hold(domid)  # a backend keeps it dying
    model.destroy(domid)
    assert domid in model.domids() and model.pci.holder(HIDDEN) is None
    assert model.pci.state()["grants"] == {}
    with pytest.raises(InvalidArgument, match="dying"):
        model.check_guest(domid, "assign_device", live=True)
    model.check_guest(domid, "deassign_device", live=False)  # a teardown may still revoke


def test_the_device_document() -> None:
    devices = pci_devices_from_doc([
        {"bdf": "0000:0A:00.0", "class": "0x030000", "vendor": "0x10de", "device": 7,
         "irq": 11, "driver": "nouveau",
         "bars": [{"type": "mem", "start": "0xe0000000", "size": "0x10000000"},
                  {"type": "io", "start": 0xC000, "size": 128}]}])
    assert devices == (SimPciDevice("0000:0a:00.0", 0x030000, 0x10DE, 7,
                                    (Bar("mem", 0xE0000000, 0x10000000), Bar("io", 0xC000, 128)),
                                    irq=11, driver="nouveau"),)
    assert SimPciBus(devices).sysfs_read("devices") == "0000:0a:00.0"


@pytest.mark.parametrize(("doc", "message"), [
    ({"bdf": USB}, "must be a list"),
    ([{"bdf": "00:14.0", "class": 1, "vendor": 1, "device": 1}], "entry 0: .*bad PCI address"),
    ([{"bdf": USB, "class": "x", "vendor": 1, "device": 1}], "entry 0: class must be a number"),
    ([{"bdf": USB, "class": 1, "vendor": 1, "device": 1,
       "bars": [{"type": "io", "start": 0xFFF0, "size": 0x20}]}], "entry 0: bad io BAR"),
    ([{"bdf": USB, "class": 1, "vendor": 1, "device": 1, "driver": "../x"}], "bad driver"),
    ([{"bdf": USB, "class": 1, "vendor": 1, "device": 1}] * 2, "listed twice"),
])
def test_a_bad_device_document_is_named(doc: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        pci_devices_from_doc(doc)
