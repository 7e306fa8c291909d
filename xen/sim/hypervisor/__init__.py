"""The simulated hypervisor: a model of Xen's domains and memory, and the socket server for it.

`SimHypervisor` is the model (domids, memory accounting, pause counts, shutdown codes, HVM
parameters, the PCI bus of `SimPciBus`) and emits `HypervisorEvent` values; `HypervisorServer`
serves it on a unix socket with the protocol of `xen.hypervisor.wire` and publishes its events
to Python subscribers. Run it alone with ``python -m xen.sim.hypervisor --socket PATH``.
See docs/hypervisor.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from xen.sim.hypervisor._events import (
        DomainCreated,
        DomainDying,
        DomainGone,
        DomainPaused,
        DomainShutdown,
        DomainUnpaused,
        HandleChanged,
        HypervisorEvent,
        MaxMemChanged,
        MemoryChanged,
        PciChanged,
    )
    from xen.sim.hypervisor._model import (
        DEFAULT_CAPABILITIES,
        DEFAULT_VERSION,
        SimHypervisor,
    )
    from xen.sim.hypervisor._pci import (
        DEFAULT_PCI_DEVICES,
        Bar,
        SimPciBus,
        SimPciDevice,
        pci_devices_from_doc,
    )
    from xen.sim.hypervisor._server import (
        HypervisorServer,
        Subscription,
    )

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PCI_DEVICES",
    "DEFAULT_VERSION",
    "Bar",
    "DomainCreated",
    "DomainDying",
    "DomainGone",
    "DomainPaused",
    "DomainShutdown",
    "DomainUnpaused",
    "HandleChanged",
    "HypervisorEvent",
    "HypervisorServer",
    "MaxMemChanged",
    "MemoryChanged",
    "PciChanged",
    "SimHypervisor",
    "SimPciBus",
    "SimPciDevice",
    "Subscription",
    "pci_devices_from_doc",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "DEFAULT_CAPABILITIES": "xen.sim.hypervisor._model",
    "DEFAULT_PCI_DEVICES": "xen.sim.hypervisor._pci",
    "DEFAULT_VERSION": "xen.sim.hypervisor._model",
    "Bar": "xen.sim.hypervisor._pci",
    "DomainCreated": "xen.sim.hypervisor._events",
    "DomainDying": "xen.sim.hypervisor._events",
    "DomainGone": "xen.sim.hypervisor._events",
    "DomainPaused": "xen.sim.hypervisor._events",
    "DomainShutdown": "xen.sim.hypervisor._events",
    "DomainUnpaused": "xen.sim.hypervisor._events",
    "HandleChanged": "xen.sim.hypervisor._events",
    "HypervisorEvent": "xen.sim.hypervisor._events",
    "HypervisorServer": "xen.sim.hypervisor._server",
    "MaxMemChanged": "xen.sim.hypervisor._events",
    "MemoryChanged": "xen.sim.hypervisor._events",
    "PciChanged": "xen.sim.hypervisor._events",
    "SimHypervisor": "xen.sim.hypervisor._model",
    "SimPciBus": "xen.sim.hypervisor._pci",
    "SimPciDevice": "xen.sim.hypervisor._pci",
    "Subscription": "xen.sim.hypervisor._server",
    "pci_devices_from_doc": "xen.sim.hypervisor._pci",
})
