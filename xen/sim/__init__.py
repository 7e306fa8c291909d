"""The simulated Xen host: the pieces a real dom0 has outside the toolstack.

`XenstoredServer` is a xenstored on a unix socket (run it alone with
``python -m xen.sim.xenstored --socket PATH``).

`HypervisorServer` serves a `SimHypervisor` model (domids, memory, domain flags) on a unix
socket for `xen.hypervisor.SimBackend`, and publishes the model's events (`HypervisorEvent`)
to Python subscribers (run it alone with ``python -m xen.sim.hypervisor --socket PATH``).
See docs/hypervisor.md.
"""

from __future__ import annotations

from xen.sim._hvserver import HypervisorServer, Subscription
from xen.sim._hypervisor import (
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
    SimHypervisor,
)
from xen.sim._xenstored import XenstoredServer

__all__ = [
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
    "SimHypervisor",
    "Subscription",
    "XenstoredServer",
]
