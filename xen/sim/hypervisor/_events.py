"""The events of the simulated hypervisor model (re-exported by `xen.sim.hypervisor._model`).

Every `SimHypervisor` operation that changes state returns the events it caused, in order.
`HypervisorEvent.dom_exc` is true where Xen raises VIRQ_DOM_EXC, on which xenstored fires
``@releaseDomain``: DomainShutdown, DomainDying, DomainGone (xenstored also releases the
domain's connection, as RELEASE would). DomainCreated, DomainPaused, DomainUnpaused,
MaxMemChanged, MemoryChanged and HandleChanged raise nothing on a real host. PciChanged is
the simulation's own (after any change of the PCI bus: a sysfs write, an assignment, a grant,
a dying domain's release): the simulated host mirrors the bus into ``/sim/pci``.

Pure data: no I/O.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import ClassVar

from xen.hypervisor import ShutdownReason

__all__ = [
    "DomainCreated",
    "DomainDying",
    "DomainGone",
    "DomainPaused",
    "DomainShutdown",
    "DomainUnpaused",
    "HandleChanged",
    "HypervisorEvent",
    "MaxMemChanged",
    "MemoryChanged",
    "PciChanged",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


@dataclass(frozen=True, slots=True)
class DomainCreated:
    domid: int
    handle: uuid.UUID
    dom_exc: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class DomainPaused:
    domid: int
    pause_count: int
    dom_exc: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class DomainUnpaused:
    domid: int
    pause_count: int
    dom_exc: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class DomainShutdown:
    """The domain shut down; ``by_guest`` when the guest did it (or crashed)."""

    domid: int
    reason: ShutdownReason
    by_guest: bool
    dom_exc: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class DomainDying:
    domid: int
    dom_exc: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class DomainGone:
    """The domain left the hypervisor; its memory is free again."""

    domid: int
    dom_exc: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class MaxMemChanged:
    domid: int
    max_pages: int
    dom_exc: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class MemoryChanged:
    domid: int
    tot_pages: int
    dom_exc: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class HandleChanged:
    domid: int
    handle: uuid.UUID
    dom_exc: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class PciChanged:
    """sim only: the PCI bus changed (``what``: the operation)."""

    what: str
    dom_exc: ClassVar[bool] = False


HypervisorEvent = (DomainCreated | DomainPaused | DomainUnpaused | DomainShutdown | DomainDying
                   | DomainGone | MaxMemChanged | MemoryChanged | HandleChanged | PciChanged)
