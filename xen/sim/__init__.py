"""The simulated Xen host: what a real dom0 has outside the toolstack, for machines without Xen.

* `xen.sim.xenstored`: a xenstored speaking the real wire protocol on a unix socket;
* `xen.sim.hypervisor`: a hypervisor model (domids, memory, domain flags) on a unix socket;
* here: `SimHost`, the whole host (both servers wired as on Xen, simulated PV backends
  `SimBackends` and guests `SimGuest`, behaviours steered through the ``/sim/behaviour``
  xenstore area, `Behaviour`), run as its own process with ``oxt-simhost --state DIR``; and the
  simulated device model (``python -m xen.sim.qemu_dm``).

See docs/simhost.md. Production code never imports this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from xen.sim._backends import (
        SimBackends,
    )
    from xen.sim._control import (
        BEHAVIOUR_ROOT,
        STATUS_ROOT,
        Behaviour,
        BehaviourError,
    )
    from xen.sim._guests import (
        SimGuest,
    )
    from xen.sim._host import (
        DOM0_UUID,
        SimHost,
    )

__all__ = [
    "BEHAVIOUR_ROOT",
    "DOM0_UUID",
    "STATUS_ROOT",
    "Behaviour",
    "BehaviourError",
    "SimBackends",
    "SimGuest",
    "SimHost",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "BEHAVIOUR_ROOT": "xen.sim._control",
    "Behaviour": "xen.sim._control",
    "BehaviourError": "xen.sim._control",
    "DOM0_UUID": "xen.sim._host",
    "STATUS_ROOT": "xen.sim._control",
    "SimBackends": "xen.sim._backends",
    "SimGuest": "xen.sim._guests",
    "SimHost": "xen.sim._host",
})
