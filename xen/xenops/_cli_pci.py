"""The ``xenops`` command's PCI commands: add_pci, del_pci and bind_pci, as the original's.

* ``add_pci -domid D -pci BDF[,BDF...] [-devid N] [-bind]``: one PCI group (devid N, 0 by
  default) with those devices: each is read from dom0's sysfs first (an unknown BDF is an error
  naming it, before anything is done), bound to pciback with ``-bind``, then the same plan as a
  VM start (`plan_device_add` of a `PciSpec`: FLR, assignment, BAR and IRQ grants, the backend
  and frontend; a PV-PCI frontend). Printed: ``added pci/<devid> (<bdfs>) to domain <d>``.
* ``del_pci -domid D [-devid N]``: the group read back from xenstore and taken out
  (`plan_pci_remove`: release, both ends, FLR); a group that is not there is an error.
* ``bind_pci -pci BDF[,BDF...]`` (alias ``pci-bind``): give the devices to pciback.

On a real dom0 these act through ``/sys/bus/pci`` and libxenctrl and are unproven (no device to
pass through in the lab).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xen.xenops._cli_domains import domain_info
from xen.xenops._cli_env import CliError, UsageError
from xen.xenops._devspec import PciDev, PciSpec
from xen.xenops._layout import Kind
from xen.xenops._observe import observe_domain
from xen.xenops._pci import plan_pci_remove
from xen.xenops._plan import Timeouts, plan_device_add

if TYPE_CHECKING:
    from argparse import Namespace

    from xen.xenops._cli_env import Session

__all__ = ["PCI_COMMANDS", "parse_bdfs"]


def parse_bdfs(text: str) -> tuple[PciDev, ...]:
    """``DDDD:BB:SS.F[,...]`` (hex) as devices; `UsageError` naming a bad one."""
    devs: list[PciDev] = []
    for item in text.split(","):
        try:
            domain, bus, rest = item.split(":")
            slot, func = rest.split(".")
            dev = PciDev(int(domain, 16), int(bus, 16), int(slot, 16), int(func, 16))
        except ValueError:
            raise UsageError(f"-pci: not a PCI address: {item!r} (DDDD:BB:SS.F)") from None
        if len(domain) != 4 or len(bus) != 2 or len(slot) != 2 or len(func) != 1:
            raise UsageError(f"-pci: not a PCI address: {item!r} (DDDD:BB:SS.F)")
        devs.append(dev)
    return tuple(devs)


def _read_all(s: Session, devs: tuple[PciDev, ...]) -> None:
    for dev in devs:
        try:
            s.host().pci_device(dev.bdf)
        except OSError as exc:
            raise CliError(f"pci {dev.bdf}: {exc.strerror or exc}") from None


def cmd_add_pci(s: Session, a: Namespace) -> int:
    info = domain_info(s, a.domid)
    devs = parse_bdfs(a.pci)
    _read_all(s, devs)
    spec = PciSpec(a.domid, a.devid, devs, hvm=info.hvm, pvpci=True, flr=True, bind=a.bind)
    s.executor().run(plan_device_add(spec, Timeouts(hotplug=a.timeout)))
    print(f"added pci/{a.devid} ({a.pci}) to domain {a.domid}")
    return 0


def cmd_del_pci(s: Session, a: Namespace) -> int:
    for obs in observe_domain(s.xs(), a.domid).devices:
        if obs.device.backend.kind is Kind.PCI and obs.device.frontend.devid == a.devid:
            s.executor().run(plan_pci_remove(obs, hvm=domain_info(s, a.domid).hvm))
            print(f"removed pci/{a.devid} ({','.join(obs.pci_bdfs)}) from domain {a.domid}")
            return 0
    raise CliError(f"domain {a.domid} has no pci group {a.devid}")


def cmd_bind_pci(s: Session, a: Namespace) -> int:
    devs = parse_bdfs(a.pci)
    _read_all(s, devs)
    for dev in devs:
        s.host().pci_bind(dev.bdf)
        print(f"{dev.bdf} bound to pciback")
    return 0


PCI_COMMANDS = {"add_pci": cmd_add_pci, "del_pci": cmd_del_pci, "bind_pci": cmd_bind_pci}
