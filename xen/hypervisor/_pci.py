"""PCI passthrough values and argument checks of the hypervisor interface (pure).

`PciAddress` is a PCI function's address, written ``DDDD:BB:SS.F`` (hex: segment, bus,
slot, function) as sysfs and the xenvm config write it; `PciAddress.sbdf` is the 32-bit
``machine_sbdf`` libxenctrl takes (segment << 16 | bus << 8 | slot << 3 | function).
`parse_bdf` reads one, raising `InvalidArgument` naming the operation for anything else.

`check_pci_args` checks the arguments of the `PciOps` members the same way in every backend
(the simulated client, the simulated server and the xc backend), before anything is sent:
I/O ports are 0..0xFFFF (x86 I/O space), machine frames are 64-bit, pirqs and GSIs are
non-negative 31-bit ints (libxenctrl takes them as C ``int``).

This module is pure: no I/O, no threads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xen.hypervisor._errors import InvalidArgument
from xen.hypervisor._values import check_domid, check_range

__all__ = [
    "MAX_IOPORT",
    "MAX_PIRQ",
    "PciAddress",
    "check_allow",
    "check_iomem",
    "check_ioport",
    "check_pirq",
    "parse_bdf",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: The last x86 I/O port.
MAX_IOPORT = 0xFFFF
#: The largest pirq or GSI a C ``int`` carries.
MAX_PIRQ = (1 << 31) - 1
_U64 = (1 << 64) - 1
_BDF = re.compile(r"([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])")


@dataclass(frozen=True, slots=True, order=True)
class PciAddress:
    """A PCI function: segment (0..0xFFFF), bus (0..0xFF), slot (0..0x1F), function (0..7)."""

    segment: int
    bus: int
    slot: int
    function: int

    def __post_init__(self) -> None:
        for name, high in (("segment", 0xFFFF), ("bus", 0xFF), ("slot", 0x1F),
                           ("function", 7)):
            check_range("PciAddress", name, getattr(self, name), 0, high)

    def __str__(self) -> str:
        return f"{self.segment:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    @property
    def sbdf(self) -> int:
        """libxenctrl's ``machine_sbdf``: segment << 16 | bus << 8 | devfn."""
        return self.segment << 16 | self.bus << 8 | self.slot << 3 | self.function

    @classmethod
    def parse(cls, text: str, what: str = "PCI address") -> PciAddress:
        """``DDDD:BB:SS.F`` (hex) as a PciAddress; `InvalidArgument` naming ``what`` else."""
        match = _BDF.fullmatch(text) if isinstance(text, str) else None
        if match is None or int(match.group(3), 16) > 0x1F:
            raise InvalidArgument(f"{what}: bad PCI address {text!r} (expected DDDD:BB:SS.F)")
        seg, bus, slot, fn = (int(g, 16) for g in match.groups())
        return cls(seg, bus, slot, fn)


def parse_bdf(what: str, domid: int, bdf: str) -> PciAddress:
    """Check ``domid`` and parse ``bdf`` for the operation ``what``."""
    check_domid(domid)
    return PciAddress.parse(bdf, f"{what} of domain {domid}")


def check_ioport(what: str, domid: int, first: int, count: int) -> None:
    """`InvalidArgument` unless ``first`` .. ``first + count - 1`` are I/O ports (count >= 1)."""
    check_domid(domid)
    check_range(f"{what} of domain {domid}", "first port", first, 0, MAX_IOPORT)
    check_range(f"{what} of domain {domid}", "port count", count, 1, MAX_IOPORT + 1 - first)


def check_iomem(what: str, domid: int, first_mfn: int, count: int) -> None:
    """`InvalidArgument` unless the frame range is within 64 bits (count >= 1)."""
    check_domid(domid)
    check_range(f"{what} of domain {domid}", "first frame", first_mfn, 0, _U64)
    check_range(f"{what} of domain {domid}", "frame count", count, 1, _U64 - first_mfn + 1)


def check_pirq(what: str, domid: int, name: str, value: int) -> int:
    """``value`` when it is a pirq/GSI number 0..`MAX_PIRQ`; else `InvalidArgument`."""
    check_domid(domid)
    return check_range(f"{what} of domain {domid}", name, value, 0, MAX_PIRQ)


def check_allow(what: str, domid: int, allow: object) -> bool:
    """``allow`` when it is a bool; else `InvalidArgument`."""
    if not isinstance(allow, bool):
        raise InvalidArgument(f"{what} of domain {domid}: allow must be a bool, got {allow!r}")
    return allow
