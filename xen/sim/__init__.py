"""The simulated Xen host: the pieces a real dom0 has outside the toolstack.

`XenstoredServer` is a xenstored on a unix socket (run it alone with
``python -m xen.sim.xenstored --socket PATH``).

`HypervisorServer` serves a `SimHypervisor` model (domids, memory, domain flags) on a unix
socket for `xen.hypervisor.SimBackend`, and publishes the model's events (`HypervisorEvent`)
to Python subscribers (run it alone with ``python -m xen.sim.hypervisor --socket PATH``).
See docs/hypervisor.md.

`SimHost` is the whole simulated host: both servers wired as on Xen, simulated PV backends
(`SimBackends`) and guests (`SimGuest`), behaviours steered through the ``/sim/behaviour``
xenstore area (`Behaviour`), optionally the private dbus-daemon; run it as its own process with
``oxt-simhost --state DIR`` (``python -m xen.sim.simhost``). See docs/simhost.md. These are
imported on first use (they pull in the xenstore client and the actor runtime, which the
hypervisor client, importing this package for its protocol module, does not need).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors._lazy import lazy_exports
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

if TYPE_CHECKING:
    from xen.sim._backends import SimBackends
    from xen.sim._control import BEHAVIOUR_ROOT, STATUS_ROOT, Behaviour, BehaviourError
    from xen.sim._guests import SimGuest
    from xen.sim._host import DOM0_UUID, SimHost

_LAZY = {
    "BEHAVIOUR_ROOT": "xen.sim._control",
    "STATUS_ROOT": "xen.sim._control",
    "Behaviour": "xen.sim._control",
    "BehaviourError": "xen.sim._control",
    "SimBackends": "xen.sim._backends",
    "SimGuest": "xen.sim._guests",
    "DOM0_UUID": "xen.sim._host",
    "SimHost": "xen.sim._host",
}

__all__ = [
    "BEHAVIOUR_ROOT",
    "DOM0_UUID",
    "STATUS_ROOT",
    "Behaviour",
    "BehaviourError",
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
    "SimBackends",
    "SimGuest",
    "SimHost",
    "SimHypervisor",
    "Subscription",
    "XenstoredServer",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
