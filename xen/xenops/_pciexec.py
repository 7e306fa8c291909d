"""How the plan executor runs PCI passthrough steps (its table entries for them).

`pci_methods` gives the executor one function per PCI step type: the plain hypervisor calls
(`AssignDevice`, `DeassignDevice`, `IomemPermission`, `IoportPermission`, `IrqPermission`,
`MapPirq`, `UnmapPirq`) call their `xen.hypervisor.PciOps` member, the host action
`PciPermissive` its ``HostActions`` method; the composite ones read the
device from the host (``HostActions.pci_device``) and run the steps ``xen.xenops._pci``
expands them into through the executor (so each is logged as one line):

* `PciAdd`: its steps stop at the first failure; then the release steps of the same device run
  best effort (rolling back whatever was granted) and the first failure is raised.
* `PciRelease`: every step runs (best effort); afterwards a `HypervisorError` lists the steps
  that failed, if any.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from xen.hypervisor import HypervisorError
from xen.xenops._calls import (
    AssignDevice,
    DeassignDevice,
    IomemPermission,
    IoportPermission,
    IrqPermission,
    MapPirq,
    PciAdd,
    PciPermissive,
    PciRelease,
    UnmapPirq,
)
from xen.xenops._pci import pci_add_steps, pci_release_steps

if TYPE_CHECKING:
    from xen.hypervisor import Hypervisor
    from xen.xenops._atomics import Atomic
    from xen.xenops._executor import HostActions

__all__ = ["RunSteps", "pci_methods"]

logger = logging.getLogger("xenops")

#: ``run(name, steps, best_effort)`` -> the failures (best effort); without best effort the
#: first failure raises the executor's PlanFailed (with ``cause``).
RunSteps = Callable[[str, "Iterable[Atomic]", bool], list[tuple[str, str]]]


def _ignore(_value: object) -> None:
    """The pirq map_pirq chose: the GSI's number, as asked (nothing else to do with it)."""


def pci_methods(hv: Callable[[], Hypervisor], host: HostActions,
                run: RunSteps) -> dict[type, Callable[[Any], None]]:
    """The executor's methods for the PCI steps (see the module docstring)."""

    def pci_add(step: PciAdd) -> None:
        dev = host.pci_device(step.bdf)
        name = f"pci-add {step.bdf} to domain {step.domid}"
        try:
            run(name, pci_add_steps(step, dev), False)
        except Exception as exc:  # PlanFailed: the step and its cause
            cause = getattr(exc, "cause", exc)
            logger.warning("%s failed (%s); releasing what it asked for", name, cause)
            release = PciRelease(step.domid, step.bdf, hvm=step.hvm,
                                 assigned=step.assign and (step.hvm or step.pvpci))
            run(f"{name} (rollback)", pci_release_steps(release, dev), True)
            raise cause from exc

    def pci_release(step: PciRelease) -> None:
        dev = host.pci_device(step.bdf)
        failures = run(f"pci-release {step.bdf} from domain {step.domid}",
                       pci_release_steps(step, dev), True)
        if failures:
            raise HypervisorError("; ".join(f"{what}: {why}" for what, why in failures))

    return {
        PciAdd: pci_add,
        PciRelease: pci_release,
        AssignDevice: lambda s: hv().assign_device(s.domid, s.bdf),
        DeassignDevice: lambda s: hv().deassign_device(s.domid, s.bdf),
        IomemPermission: lambda s: hv().iomem_permission(s.domid, s.first_pfn, s.count, s.allow),
        IoportPermission: lambda s: hv().ioport_permission(s.domid, s.first, s.count, s.allow),
        IrqPermission: lambda s: hv().irq_permission(s.domid, s.pirq, s.allow),
        MapPirq: lambda s: _ignore(hv().map_pirq(s.domid, s.gsi)),
        UnmapPirq: lambda s: hv().unmap_pirq(s.domid, s.pirq),
        PciPermissive: lambda s: (host.pci_permissive(s.bdf) if s.allow
                                  else host.pci_restrictive(s.bdf)),
    }
