"""The simulated PCI bus as xenstore nodes under ``/sim/pci`` (pure), so that ``xenstore-ls
/sim/pci`` shows it as ``/sim/status`` shows the guests.

`pci_entries(state)` turns `SimPciBus.state()` into (path, value) pairs:
``/sim/pci/<bdf>/{bdf,name,class,vendor,device,driver,assigned,resets,permissive}`` (xenstore
names allow neither ``:`` nor ``.``, so the node is named ``0000-00-14-0`` and ``bdf`` holds the
address; class ``0x%06x``, vendor and device ``0x%04x``; driver and assigned empty when none)
and ``/sim/pci/grants/<domid>/{iomem,ioport,irq,pirq}`` (space-separated ``first+count``
ranges, IRQs, ``pirq:gsi`` pairs). `write_pci_mirror` rewrites the whole area in one
transaction; the simulated host calls it at start and after every change of the bus. dom0
owns it and guests cannot read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xen.xenstore import Transaction, XenstoreClient

__all__ = ["PCI_ROOT", "node_name", "pci_entries", "write_pci_mirror"]

PCI_ROOT = "/sim/pci"


def node_name(bdf: str) -> str:
    """The BDF as a xenstore node name: ``0000:00:14.0`` -> ``0000-00-14-0``."""
    return bdf.replace(":", "-").replace(".", "-")


def pci_entries(state: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The nodes of ``state`` (see the module docstring)."""
    out: list[tuple[str, str]] = []
    for bdf, dev in state["devices"].items():
        base = f"{PCI_ROOT}/{node_name(bdf)}"
        assigned = dev["assigned"]
        out += [(f"{base}/bdf", bdf), (f"{base}/name", dev.get("name") or ""),
                (f"{base}/class", f"0x{dev['class']:06x}"),
                (f"{base}/vendor", f"0x{dev['vendor']:04x}"),
                (f"{base}/device", f"0x{dev['device']:04x}"),
                (f"{base}/driver", dev["driver"] or ""),
                (f"{base}/assigned", "" if assigned is None else str(assigned)),
                (f"{base}/resets", str(dev["resets"])),
                (f"{base}/permissive", "1" if dev["permissive"] else "0")]
    for domid, grants in state["grants"].items():
        base = f"{PCI_ROOT}/grants/{domid}"
        out += [(f"{base}/iomem", " ".join(f"{a:#x}+{n}" for a, n in grants["iomem"])),
                (f"{base}/ioport", " ".join(f"{a:#x}+{n}" for a, n in grants["ioport"])),
                (f"{base}/irq", " ".join(str(i) for i in grants["irq"])),
                (f"{base}/pirq", " ".join(f"{p}:{g}" for p, g in grants["pirq"].items()))]
    return out


def write_pci_mirror(xs: XenstoreClient, state: Mapping[str, Any]) -> None:
    """Replace ``/sim/pci`` with the nodes of ``state``, in one transaction."""
    entries = pci_entries(state)

    def rewrite(t: Transaction) -> None:
        t.rm(PCI_ROOT)
        for path, value in entries:
            t.write(path, value)

    xs.transaction(rewrite)
