"""PCI passthrough steps: what `PciAdd` and `PciRelease` expand into, and a PCI group's unplug
(pure).

A PCI function as dom0 sees it is a `PciHostDevice` (read from ``/sys/bus/pci/devices/<bdf>``
by ``xen.xenops._sysfs``: class, vendor and device ids, IRQ, the BARs of its ``resource``
file, the bound driver). The executor reads it when it meets a `PciAdd` or `PciRelease`, then
runs the steps these functions give, each logged as one line:

* `pci_add_steps` (the original's pci_add): FLR first when asked (the host action skips
  network controllers, class 0x020000 and 0x028000, as the original did); pciback's
  ``permissive`` when asked (a stub domain's device model writes config space); the IOMMU
  assignment when the guest is HVM or has a PV-PCI frontend; for each memory BAR an
  iomem grant of its pages, for each I/O BAR an ioport grant of its ports; with an IRQ, the
  GSI mapped as a pirq of the same number and the IRQ granted.
* `pci_release_steps`: the reverse, in the original's order: deassign, unmap the pirq,
  revoke the IRQ, revoke the BARs, and for a PV domain (a stub domain, or a PV-PCI guest)
  pciback back to ``restrictive``. Run best effort (each failure logged).
* `plan_io_grants`: the config's raw I/O-space grants (``passthrough-io`` port ranges,
  ``passthrough-mmio`` machine-frame ranges, both inclusive), given at start as the original
  did; Xen takes them back when the domain is destroyed.
* `plan_pci_remove`: a whole group out of a running domain (``pci-del``): release each
  device, remove both ends and the private dirs, then FLR each device (after the release,
  as a destroy does).

A grant that fails half-way through a `PciAdd` is rolled back by the executor (the release
steps of what was asked, best effort), so a failed add leaves nothing assigned; a crash in
between is cleaned up by Xen itself when the domain dies (devices and grants go back with
domain_kill).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xen.xenops._atomics import Atomic, Plan, Rm
from xen.xenops._calls import (
    AssignDevice,
    DeassignDevice,
    IomemPermission,
    IoportPermission,
    IrqPermission,
    MapPirq,
    PciAdd,
    PciFlr,
    PciPermissive,
    PciRelease,
    UnmapPirq,
)
from xen.xenops._checks import PlanError
from xen.xenops._plan import device_name
from xen.xenops._teardown import ObservedDevice

__all__ = [
    "NO_FLR_CLASSES",
    "PCIBACK",
    "PciBar",
    "PciHostDevice",
    "parse_resource",
    "pci_add_steps",
    "pci_release_steps",
    "plan_io_grants",
    "plan_pci_remove",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: The dom0 driver that holds devices for guests (xen-pciback).
PCIBACK = "pciback"
#: PCI classes never reset (Ethernet and other network controllers), as the original.
NO_FLR_CLASSES = frozenset({0x020000, 0x028000})
_PAGE = 4096
_IORESOURCE_IO = 0x100
_IORESOURCE_MEM = 0x200


@dataclass(frozen=True, slots=True)
class PciBar:
    """A base address register: a memory or I/O range."""

    kind: Literal["mem", "io"]
    start: int
    size: int

    @property
    def frames(self) -> tuple[int, int]:
        """A memory BAR's first machine frame and frame count (whole pages)."""
        first = self.start // _PAGE
        return first, (self.start + self.size - 1) // _PAGE - first + 1


@dataclass(frozen=True, slots=True)
class PciHostDevice:
    """A PCI function as dom0's sysfs shows it."""

    bdf: str
    class_code: int
    vendor: int
    device: int
    irq: int = 0
    bars: tuple[PciBar, ...] = ()
    driver: str | None = None

    @property
    def resettable(self) -> bool:
        """False for the classes the original never reset (network controllers)."""
        return self.class_code not in NO_FLR_CLASSES


def parse_resource(text: str, bdf: str = "") -> tuple[PciBar, ...]:
    """The BARs of a sysfs ``resource`` file: the first six lines ``start end flags`` (hex);
    all-zero lines are unused BARs. PlanError naming the device for a malformed line."""
    bars: list[PciBar] = []
    for number, line in enumerate(text.splitlines()[:6]):
        try:
            start, end, flags = (int(v, 16) for v in line.split())
        except ValueError:
            raise PlanError(f"pci {bdf}: bad resource line {number}: {line!r}") from None
        if start == 0 and end == 0:
            continue
        if end < start:
            raise PlanError(f"pci {bdf}: resource line {number} ends before it starts")
        if flags & _IORESOURCE_IO:
            bars.append(PciBar("io", start, end - start + 1))
        elif flags & _IORESOURCE_MEM:
            bars.append(PciBar("mem", start, end - start + 1))
    return tuple(bars)


def _bar_grants(domid: int, dev: PciHostDevice, *, allow: bool,
                ignore: bool) -> list[Atomic]:
    steps: list[Atomic] = []
    for bar in dev.bars:
        if bar.kind == "mem":
            first, count = bar.frames
            steps.append(IomemPermission(domid, first, count, allow=allow, ignore_errors=ignore))
        else:
            steps.append(IoportPermission(domid, bar.start, bar.size, allow=allow,
                                          ignore_errors=ignore))
    return steps


def pci_add_steps(step: PciAdd, dev: PciHostDevice) -> tuple[Atomic, ...]:
    """The steps of ``step`` for the device ``dev`` (see the module docstring)."""
    domid = step.domid
    steps: list[Atomic] = []
    if step.flr:
        steps.append(PciFlr(step.bdf))
    if step.permissive:
        steps.append(PciPermissive(step.bdf))
    if step.assign and (step.hvm or step.pvpci):
        steps.append(AssignDevice(domid, step.bdf))
    steps += _bar_grants(domid, dev, allow=True, ignore=False)
    if dev.irq > 0:
        steps += [MapPirq(domid, dev.irq), IrqPermission(domid, dev.irq, allow=True)]
    return tuple(steps)


def pci_release_steps(step: PciRelease, dev: PciHostDevice, *,
                      assigned: bool | None = None) -> tuple[Atomic, ...]:
    """The release of ``dev`` from ``step.domid``, every step best effort (see the module
    docstring); not ``assigned`` (default: ``step.assigned``) leaves the deassign out (it was
    never assigned)."""
    domid = step.domid
    assigned = step.assigned if assigned is None else assigned
    steps: list[Atomic] = [DeassignDevice(domid, step.bdf, ignore_errors=True)] if assigned else []
    if dev.irq > 0:
        steps += [UnmapPirq(domid, dev.irq, ignore_errors=True),
                  IrqPermission(domid, dev.irq, allow=False, ignore_errors=True)]
    steps += _bar_grants(domid, dev, allow=False, ignore=True)
    if not step.hvm:  # pciback filters config writes again (a stub domain's device model)
        steps.append(PciPermissive(step.bdf, allow=False, ignore_errors=True))
    return tuple(steps)


def plan_pci_remove(observed: ObservedDevice, *, hvm: bool, stub_copy: bool = False) -> Plan:
    """Take a PCI group out of a running domain: release, both ends and the private dirs
    removed, then FLR (best effort). A stub domain's copy (``stub_copy``) was never assigned
    and is not reset (its guest still has the devices)."""
    dev = observed.device
    domid = dev.frontend.domid
    steps: list[Atomic] = [PciRelease(domid, bdf, hvm=hvm, assigned=not stub_copy,
                                      ignore_errors=True) for bdf in observed.pci_bdfs]
    steps += [Rm(dev.frontend_path), Rm(dev.backend_path), Rm(dev.error_dir),
              Rm(dev.hotplug_extra_path), Rm(dev.hotplug_path)]
    if not stub_copy:
        steps += [PciFlr(bdf, ignore_errors=True) for bdf in observed.pci_bdfs]
    return Plan(f"pci-remove {device_name(dev)}", tuple(steps), best_effort=True)


def plan_io_grants(domid: int, ports: tuple[tuple[int, int], ...],
                   frames: tuple[tuple[int, int], ...]) -> Plan:
    """Grant the inclusive I/O-port ranges ``ports`` and machine-frame ranges ``frames``."""
    steps: list[Atomic] = [IoportPermission(domid, a, b - a + 1, allow=True) for a, b in ports]
    steps += [IomemPermission(domid, a, b - a + 1, allow=True) for a, b in frames]
    return Plan(f"io-grants of domain {domid}", tuple(steps))
