"""Child specs of the Xen part of the dom0 tree: the "xen" and "vms" supervisors.

``xen`` (``rest_for_one``): ``hypervisor`` (the backend), ``xenstore`` (the client),
``watcher`` (domain events to monitors); a restart of the hypervisor or xenstore child restarts
the children after it. ``vms`` (``simple_one_for_one``, resume): one :class:`VmMonitor` per VM,
child id = uuid, transient (a monitor that quits normally is not restarted), restarted with
backoff; after a restart of the whole process every monitor comes back from its snapshot and
adopts its domain. The Xen environment of the monitors is the composition root's: it rides in
the child template, so a child's own (persisted) argument is only its ``VmStart``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from supervision import (
    Backoff,
    ChildKind,
    ChildSpec,
    Restart,
    RestartMode,
    Strategy,
    Supervisor,
    SupFlags,
    start_actor,
)
from xen.tree._hvactor import HypervisorActor
from xen.tree._watcher import DomainWatcher
from xen.xenstore import XenstoreActor
from xen.xenvm import VmMonitor

if TYPE_CHECKING:
    from xen.xenvm import XenEnv

__all__ = ["vms_spec", "xen_spec"]

_DEFAULT_BACKOFF = Backoff(0.05, 2.0)
#: Seconds the hypervisor child may take to open its backend.
HYPERVISOR_START_TIMEOUT = 30.0


def xen_spec(*, backend: str = "sim", hypervisor_socket: str | None = None,
             xenstore_socket: str | None = None, intensity: int = 5,
             period: float = 10.0) -> ChildSpec:
    """The "xen" supervisor: hypervisor, xenstore, watcher."""
    children = [
        # opening the xc backend loads cffi and libxenctrl: seconds on a slow or emulated
        # dom0 (the lab once took more than the default 5 s under load)
        ChildSpec("hypervisor", start_actor(HypervisorActor, backend, hypervisor_socket),
                  start_timeout=HYPERVISOR_START_TIMEOUT),
        ChildSpec("xenstore", start_actor(XenstoreActor, xenstore_socket)),
        ChildSpec("watcher", start_actor(DomainWatcher)),
    ]
    flags = SupFlags(Strategy.REST_FOR_ONE, intensity, period, backoff=Backoff(0.1, 5.0))
    return ChildSpec("xen", start_actor(Supervisor, flags, children),
                     kind=ChildKind.SUPERVISOR)


def vms_spec(*, env: XenEnv, intensity: int = 10, period: float = 10.0,
             backoff: Backoff | None = _DEFAULT_BACKOFF) -> ChildSpec:
    """The "vms" supervisor: one resume-mode VmMonitor per VM, each in ``env``.

    Add a VM with ``StartChild(uuid, (VmStart(uuid, config),))``.
    """
    template = ChildSpec("vm", start_actor(VmMonitor, env), restart=Restart.TRANSIENT,
                         mode=RestartMode.RESUME, shutdown=10.0, start_timeout=30.0)
    flags = SupFlags(Strategy.SIMPLE_ONE_FOR_ONE, intensity, period, backoff=backoff)
    return ChildSpec("vms", start_actor(Supervisor, flags, [template]),
                     kind=ChildKind.SUPERVISOR, shutdown=60.0)
