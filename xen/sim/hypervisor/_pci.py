"""The simulated host's PCI bus: devices, dom0 driver binding (a sysfs stand-in) and what
the hypervisor knows of passthrough (assignment, I/O-space and IRQ grants, pirqs). Pure.

Devices (`SimPciDevice`, configured: `DEFAULT_PCI_DEVICES` or `pci_devices_from_doc`) have
a BDF, a class code, vendor and device ids, BARs (`Bar`: memory or I/O ranges), an IRQ (GSI)
and the dom0 driver bound at boot (a host driver name, ``pciback``, or None).

**The sysfs stand-in** (`SimPciBus.sysfs_read` / `sysfs_write`, paths relative to
``/sys/bus/pci``, as a dom0 kernel with xen-pciback shows them):

===============================================  =============================================
``devices``                                       (read) every BDF, one a line
``devices/<bdf>/{class,vendor,device,irq}``       (read) ``0x0c0330``, ``0x8086``, ..., ``16``
``devices/<bdf>/label``                           (read) the device's name (firmware label);
                                                  ENOENT when it has none
``devices/<bdf>/boot_vga``                        (read, display controllers only) ``1`` for
                                                  the boot display, else ``0``
``devices/<bdf>/drm``                             (read, a directory: its entries) ``card<n>``
                                                  of a display controller while a dom0 driver
                                                  holds it (n: its rank among them by BDF)
``devices/<bdf>/resource``                        (read) 7 lines ``0x<start> 0x<end> 0x<flags>``
                                                  (6 BARs and the ROM; flags 0x100 I/O,
                                                  0x200 memory; unused lines all zero)
``devices/<bdf>/driver``                          (read) the bound driver's name (a symlink in
                                                  sysfs); ENOENT when unbound
``drivers/<driver>/unbind``                       (write bdf) ENODEV unless bound to it; EBUSY
                                                  for pciback while the device is assigned
``drivers/pciback/new_slot``, ``remove_slot``     (write bdf) pciback may (no longer) bind it
``drivers/<driver>/bind``                         (write bdf) EBUSY when bound; pciback: ENODEV
                                                  without ``new_slot``; another driver: only
                                                  the device's own host driver (ENODEV else)
``drivers/pciback/reset_device``                  (write bdf; OpenXT's pciback) a function-level
                                                  reset, counted; ENODEV unless bound to
                                                  pciback, EBUSY while assigned
``drivers/pciback/permissive``                    (write bdf) config writes passed through
``drivers/pciback/restrictive``                   (write bdf; OpenXT's pciback) filtered again
===============================================  =============================================

**The hypervisor side** (the `xen.hypervisor.PciOps` members; the caller checks the domain
exists): a device is assigned to at most one domain (EBUSY naming the holder) and, *sim*,
only while bound to pciback (EBUSY naming the dom0 driver: real Xen would take it from under
that driver; libxl refuses such a device as not assignable); deassigning a device the domain
does not hold is EINVAL. I/O-memory, I/O-port and IRQ grants are recorded per domain as
given (*sim*: a revoke removes the exact range granted; revoking what was never granted is
fine, as Xen's rangesets). `map_pirq` maps a GSI some device has (EINVAL else) to a pirq (the
GSI's number unless another is asked); mapping a pirq already mapped to another GSI is EBUSY;
unmapping one not mapped is EINVAL. `release_domain` (the model calls it when a domain starts
dying, as Xen's domain_kill relinquishes devices and frees the rangesets) deassigns every
device the domain holds and drops its grants and pirqs. Every failure changes nothing.

Errors are `xen.hypervisor` errors with an errno (ENODEV, EBUSY, EINVAL, ENOENT); the server
sends them as it sends every error, and the sysfs client turns them back into OSErrors.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from xen.hypervisor import HypervisorError, InvalidArgument, PciAddress, error_for_errno

__all__ = [
    "DEFAULT_PCI_DEVICES",
    "PCIBACK",
    "Bar",
    "SimPciBus",
    "SimPciDevice",
    "pci_devices_from_doc",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

PCIBACK = "pciback"
IORESOURCE_IO = 0x100
IORESOURCE_MEM = 0x200
_RESOURCE_LINES = 7  # six BARs and the expansion ROM


@dataclass(frozen=True, slots=True)
class Bar:
    """One base address register: a memory or I/O range."""

    kind: Literal["mem", "io"]
    start: int
    size: int

    def __post_init__(self) -> None:
        if self.kind not in ("mem", "io"):
            raise InvalidArgument(f"a BAR is 'mem' or 'io', got {self.kind!r}")
        high = 0xFFFF if self.kind == "io" else (1 << 64) - 1
        if not (isinstance(self.start, int) and isinstance(self.size, int)
                and self.size > 0 and 0 <= self.start and self.start + self.size - 1 <= high):
            raise InvalidArgument(f"bad {self.kind} BAR start {self.start!r} size {self.size!r}")


@dataclass(frozen=True, slots=True)
class SimPciDevice:
    """A device on the simulated bus, as configured."""

    bdf: str
    class_code: int
    vendor: int
    device: int
    bars: tuple[Bar, ...] = ()
    irq: int = 0
    driver: str | None = None
    name: str = ""
    boot_vga: bool = False

    def __post_init__(self) -> None:
        address = PciAddress.parse(self.bdf, "simulated PCI device")
        object.__setattr__(self, "bdf", str(address))  # lower case
        for what, value, high in (("class", self.class_code, 0xFFFFFF),
                                  ("vendor", self.vendor, 0xFFFF),
                                  ("device", self.device, 0xFFFF), ("irq", self.irq, 255)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
                raise InvalidArgument(f"PCI device {self.bdf}: bad {what} {value!r}")
        if len(self.bars) > 6:
            raise InvalidArgument(f"PCI device {self.bdf}: more than 6 BARs")


DEFAULT_PCI_DEVICES: tuple[SimPciDevice, ...] = (
    SimPciDevice("0000:00:14.0", 0x0C0330, 0x8086, 0xA12F, (Bar("mem", 0xF7F00000, 0x10000),),
                 irq=16, driver="xhci_hcd", name="USB 3.0 xHCI controller"),
    SimPciDevice("0000:00:1f.3", 0x040300, 0x8086, 0xA170, (Bar("mem", 0xF7F10000, 0x4000),),
                 irq=17, driver="snd_hda_intel", name="HD audio controller"),
    SimPciDevice("0000:03:00.0", 0x020000, 0x8086, 0x10D3,
                 (Bar("mem", 0xF7C00000, 0x20000), Bar("io", 0xE000, 0x20)),
                 irq=18, driver="e1000e", name="Ethernet controller"),
    SimPciDevice("0000:04:00.0", 0x020000, 0x8086, 0x10D3,
                 (Bar("mem", 0xF7A00000, 0x20000), Bar("io", 0xD000, 0x20)),
                 irq=19, driver=PCIBACK, name="Ethernet controller (hidden at boot)"),
    SimPciDevice("0000:00:02.0", 0x030000, 0x8086, 0x5912, (Bar("mem", 0xF6000000, 0x1000000),),
                 irq=20, driver="i915", name="HD Graphics 630", boot_vga=True),
)


def _number(entry: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = entry.get(key, default)
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{key} must be a number, got {value!r}")
    return value


def pci_devices_from_doc(doc: object) -> tuple[SimPciDevice, ...]:
    """Devices from a JSON document: a list of ``{"bdf", "class", "vendor", "device",
    "irq", "driver", "name", "boot_vga", "bars": [{"type": "mem"|"io", "start", "size"}]}`` (numbers
    as ints or strings like ``"0x8086"``). `InvalidArgument` naming the entry for anything
    wrong; a BDF given twice is an error."""
    if not isinstance(doc, list):
        raise InvalidArgument("the PCI device document must be a list of devices")
    devices: list[SimPciDevice] = []
    for i, entry in enumerate(doc):
        try:
            if not isinstance(entry, dict):
                raise InvalidArgument("not an object")
            bars = tuple(Bar(b.get("type", "mem"), _number(b, "start"), _number(b, "size"))
                         for b in entry.get("bars", ()))
            driver = entry.get("driver")
            if driver is not None and (not isinstance(driver, str) or "/" in driver):
                raise InvalidArgument(f"bad driver {driver!r}")
            devices.append(SimPciDevice(
                str(entry.get("bdf")), _number(entry, "class"), _number(entry, "vendor"),
                _number(entry, "device"), bars, _number(entry, "irq", 0), driver,
                str(entry.get("name", "")), entry.get("boot_vga") is True))
        except (InvalidArgument, AttributeError, TypeError) as exc:
            raise InvalidArgument(f"PCI device entry {i}: {exc}") from None
    bdfs = [d.bdf for d in devices]
    dup = sorted({b for b in bdfs if bdfs.count(b) > 1})
    if dup:
        raise InvalidArgument(f"PCI device {dup[0]} is listed twice")
    return tuple(devices)


@dataclass(slots=True)
class _Dev:
    config: SimPciDevice
    driver: str | None
    slot: bool = False          # in pciback's slot list (new_slot)
    permissive: bool = False
    resets: int = 0
    assigned: int | None = None


@dataclass(slots=True)
class _Grants:
    iomem: set[tuple[int, int]] = field(default_factory=set)
    ioport: set[tuple[int, int]] = field(default_factory=set)
    irq: set[int] = field(default_factory=set)
    pirqs: dict[int, int] = field(default_factory=dict)  # pirq -> gsi

    def empty(self) -> bool:
        return not (self.iomem or self.ioport or self.irq or self.pirqs)


def _fail(errnum: int, what: str, detail: str) -> HypervisorError:
    return error_for_errno(errnum, what, detail)


class SimPciBus:
    """The simulated PCI bus (see the module docstring)."""

    def __init__(self, devices: Iterable[SimPciDevice] = DEFAULT_PCI_DEVICES) -> None:
        self._devs: dict[str, _Dev] = {}
        for dev in devices:
            if dev.bdf in self._devs:
                raise InvalidArgument(f"PCI device {dev.bdf} is listed twice")
            self._devs[dev.bdf] = _Dev(dev, dev.driver, slot=dev.driver == PCIBACK)
        self._grants: dict[int, _Grants] = {}

    # --- queries -------------------------------------------------------------------------------

    def _dev(self, bdf: str, what: str) -> _Dev:
        try:
            key = str(PciAddress.parse(bdf, what))
        except InvalidArgument as exc:
            raise _fail(_errno.EINVAL, what, str(exc)) from None
        dev = self._devs.get(key)
        if dev is None:
            raise _fail(_errno.ENODEV, what, f"no PCI device {key} on this host")
        return dev

    def holder(self, bdf: str) -> int | None:
        """The domain the device is assigned to, if any (an unknown BDF: ENODEV)."""
        return self._dev(bdf, "holder").assigned

    def state(self) -> dict[str, Any]:
        """Everything, as plain data (str keys): ``devices`` by BDF (driver, slot,
        permissive, resets, assigned, class, vendor, device, irq, bars) and, per domain that
        has any, ``grants`` (iomem and ioport as [first, count] pairs, irq, pirq -> gsi)."""
        devices = {
            bdf: {"driver": d.driver, "slot": d.slot, "permissive": d.permissive,
                  "resets": d.resets, "assigned": d.assigned, "name": d.config.name,
                  "class": d.config.class_code, "vendor": d.config.vendor,
                  "device": d.config.device, "irq": d.config.irq,
                  "bars": [[b.kind, b.start, b.size] for b in d.config.bars]}
            for bdf, d in sorted(self._devs.items())}
        grants = {
            str(domid): {"iomem": sorted(map(list, g.iomem)),
                         "ioport": sorted(map(list, g.ioport)), "irq": sorted(g.irq),
                         "pirq": {str(p): gsi for p, gsi in sorted(g.pirqs.items())}}
            for domid, g in sorted(self._grants.items()) if not g.empty()}
        return {"devices": devices, "grants": grants}

    # --- the sysfs stand-in --------------------------------------------------------------------

    def sysfs_read(self, path: str) -> str:
        """The text of ``/sys/bus/pci/<path>`` (see the module docstring)."""
        what = f"read /sys/bus/pci/{path}"
        parts = path.strip("/").split("/")
        if parts == ["devices"]:
            return "\n".join(sorted(self._devs))
        if parts[:2] == ["drivers", PCIBACK] and parts[2:] == ["slots"]:
            return "\n".join(b for b, d in sorted(self._devs.items()) if d.slot)
        if len(parts) != 3 or parts[0] != "devices":
            raise _fail(_errno.ENOENT, what, "no such file")
        dev = self._dev(parts[1], what).config
        attr = parts[2]
        if attr == "driver":
            driver = self._devs[dev.bdf].driver
            if driver is None:
                raise _fail(_errno.ENOENT, what, f"{dev.bdf} is bound to no driver")
            return driver
        values = {"class": f"{dev.class_code:#08x}", "vendor": f"{dev.vendor:#06x}",
                  "device": f"{dev.device:#06x}", "irq": str(dev.irq)}
        if attr == "resource":
            return "\n".join(_resource_lines(dev.bars))
        if attr == "label" and dev.name:
            return dev.name
        if attr == "boot_vga" and dev.class_code >> 16 == 0x03:
            return "1" if dev.boot_vga else "0"
        if attr == "drm" and dev.class_code >> 16 == 0x03 \
                and self._devs[dev.bdf].driver not in (None, PCIBACK):
            gpus = [b for b, d in sorted(self._devs.items()) if d.config.class_code >> 16 == 0x03]
            return f"card{gpus.index(dev.bdf)}"
        if attr not in values:
            raise _fail(_errno.ENOENT, what, "no such file")
        return values[attr]

    def sysfs_write(self, path: str, value: str) -> None:
        """Write ``value`` (a BDF) to ``/sys/bus/pci/<path>`` (see the module docstring)."""
        what = f"write {value.strip()!r} to /sys/bus/pci/{path}"
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "drivers":
            raise _fail(_errno.ENOENT, what, "no such file")
        driver, attr = parts[1], parts[2]
        dev = self._dev(value.strip(), what)
        if attr == "unbind":
            if dev.driver != driver:
                raise _fail(_errno.ENODEV, what, f"it is bound to {dev.driver or 'no driver'}")
            if dev.assigned is not None:
                raise _fail(_errno.EBUSY, what, f"it is assigned to domain {dev.assigned}")
            dev.driver = None
        elif attr == "bind":
            if dev.driver is not None:
                raise _fail(_errno.EBUSY, what, f"it is bound to {dev.driver}")
            if driver == PCIBACK and not dev.slot:
                raise _fail(_errno.ENODEV, what, "pciback has no slot for it (new_slot)")
            if driver != PCIBACK and driver != dev.config.driver:
                raise _fail(_errno.ENODEV, what, f"{driver} does not drive this device")
            dev.driver = driver
        elif driver != PCIBACK:
            raise _fail(_errno.ENOENT, what, "no such file")
        elif attr == "new_slot":
            dev.slot = True
        elif attr == "remove_slot":
            dev.slot = False
        elif attr in ("reset_device", "permissive", "restrictive"):
            if dev.driver != PCIBACK:
                raise _fail(_errno.ENODEV, what, f"it is bound to {dev.driver or 'no driver'}")
            if attr != "reset_device":
                dev.permissive = attr == "permissive"
            elif dev.assigned is not None:
                raise _fail(_errno.EBUSY, what, f"it is assigned to domain {dev.assigned}")
            else:
                dev.resets += 1
        else:
            raise _fail(_errno.ENOENT, what, "no such file")

    # --- the hypervisor side -------------------------------------------------------------------

    def test_assign(self, domid: int, bdf: str) -> bool:
        """False when the device is assigned to a domain (EBUSY on Xen)."""
        return self._dev(bdf, f"test_assign_device of domain {domid}").assigned is None

    def assign(self, domid: int, bdf: str) -> None:
        """Assign the device to ``domid``."""
        what = f"assign_device {bdf} to domain {domid}"
        dev = self._dev(bdf, what)
        if dev.assigned is not None:
            raise _fail(_errno.EBUSY, what, f"it is assigned to domain {dev.assigned}")
        if dev.driver != PCIBACK:
            raise _fail(_errno.EBUSY, what,
                        f"dom0 driver {dev.driver or '(none)'} holds it, not pciback")
        dev.assigned = domid

    def deassign(self, domid: int, bdf: str) -> None:
        """Take the device back from ``domid``."""
        what = f"deassign_device {bdf} from domain {domid}"
        dev = self._dev(bdf, what)
        if dev.assigned != domid:
            raise _fail(_errno.EINVAL, what, "it is not assigned to that domain")
        dev.assigned = None

    def iomem(self, domid: int, first: int, count: int, allow: bool) -> None:
        """Grant or revoke machine frames."""
        self._grant(self._grants_of(domid).iomem, (first, count), allow)

    def ioport(self, domid: int, first: int, count: int, allow: bool) -> None:
        """Grant or revoke I/O ports."""
        self._grant(self._grants_of(domid).ioport, (first, count), allow)

    def irq_permission(self, domid: int, pirq: int, allow: bool) -> None:
        """Grant or revoke a physical IRQ."""
        grants = self._grants_of(domid).irq
        if allow:
            grants.add(pirq)
        else:
            grants.discard(pirq)

    def map_pirq(self, domid: int, gsi: int, pirq: int | None) -> int:
        """Map ``gsi`` into the domain as ``pirq`` (default: the same number)."""
        what = f"map_pirq of GSI {gsi} into domain {domid}"
        if not any(d.config.irq == gsi for d in self._devs.values()):
            raise _fail(_errno.EINVAL, what, "no device uses that GSI")
        want = gsi if pirq is None else pirq
        pirqs = self._grants_of(domid).pirqs
        if pirqs.get(want, gsi) != gsi:
            raise _fail(_errno.EBUSY, what, f"pirq {want} is mapped to GSI {pirqs[want]}")
        pirqs[want] = gsi
        return want

    def unmap_pirq(self, domid: int, pirq: int) -> None:
        """Undo `map_pirq`."""
        pirqs = self._grants_of(domid).pirqs
        if pirq not in pirqs:
            raise _fail(_errno.EINVAL, f"unmap_pirq {pirq} of domain {domid}", "not mapped")
        del pirqs[pirq]

    def release_domain(self, domid: int) -> list[str]:
        """Deassign what ``domid`` holds and drop its grants (a dying domain); what was
        released, for the log."""
        released = [f"device {bdf}" for bdf, d in sorted(self._devs.items())
                    if d.assigned == domid]
        for dev in self._devs.values():
            if dev.assigned == domid:
                dev.assigned = None
        grants = self._grants.pop(domid, None)
        if grants is not None and not grants.empty():
            released.append("grants")
        return released

    def _grants_of(self, domid: int) -> _Grants:
        return self._grants.setdefault(domid, _Grants())

    @staticmethod
    def _grant(ranges: set[tuple[int, int]], item: tuple[int, int], allow: bool) -> None:
        if allow:
            ranges.add(item)
        else:
            ranges.discard(item)


def _resource_lines(bars: tuple[Bar, ...]) -> list[str]:
    lines = []
    for bar in bars:
        flags = IORESOURCE_IO if bar.kind == "io" else IORESOURCE_MEM
        lines.append(f"{bar.start:#018x} {bar.start + bar.size - 1:#018x} {flags:#018x}")
    lines += [f"{0:#018x} {0:#018x} {0:#018x}"] * (_RESOURCE_LINES - len(bars))
    return lines

