"""The manager branch as child specs: what the composition root adds to a tree.

::

    manager  (one_for_one)
    ├── queue      NotificationQueue   every signal, in order (a notify target of the monitors)
    ├── vm-events  simple_one_for_one  one VmEventHandler per VM (child id = uuid)
    ├── creator    VmCreator           uuids, slots, names; the only writer of new/deleted VMs
    ├── service    XenmgrService       com.citrix.xenclient.xenmgr, calls on a worker pool
    ├── argo-firewall  ArgoFirewall    the host's Argo rule table follows the running VMs
    ├── storage-watch  StorageWatch    storage_space_low when the storage runs out
    └── autostart  Autostart           temporary: the start_on_boot VMs, once

Children restart on their own (one_for_one): the service restarting rebuilds its objects from
the database and the monitors; the queue restarting loses only signals not yet sent. The
branch expects dbd (``com.citrix.xenclient.db``) on the bus and the VM monitors' supervisor at
``settings.vms``; the composition root puts ``settings.queue`` among the monitors' ``notify``
targets.
"""

from __future__ import annotations

from supervision import (
    Backoff,
    ChildKind,
    ChildSpec,
    Restart,
    Strategy,
    Supervisor,
    SupFlags,
    start_actor,
)
from xen.xenmgr._argo_firewall import ArgoFirewall
from xen.xenmgr._autostart import Autostart
from xen.xenmgr._creator import VmCreator
from xen.xenmgr._queue import NotificationQueue
from xen.xenmgr._service import XenmgrService
from xen.xenmgr._settings import ManagerSettings
from xen.xenmgr._storage_watch import StorageWatch
from xen.xenmgr._vm_events import VmEventHandler

__all__ = ["manager_specs", "manager_supervisor_spec"]


def manager_specs(settings: ManagerSettings) -> list[ChildSpec]:
    """The children of the manager branch (see the module docstring)."""
    handler = ChildSpec("vm-events", start_actor(VmEventHandler, settings),
                        restart=Restart.TRANSIENT, shutdown=settings.hook_timeout + 5)
    events = SupFlags(Strategy.SIMPLE_ONE_FOR_ONE, 20, 10.0, backoff=Backoff(0.05, 2.0))
    return [
        ChildSpec("queue", start_actor(NotificationQueue, settings)),
        ChildSpec("vm-events", start_actor(Supervisor, events, [handler]),
                  kind=ChildKind.SUPERVISOR, shutdown=settings.hook_timeout + 10),
        ChildSpec("creator", start_actor(VmCreator, settings), shutdown=30.0,
                  start_timeout=60.0),
        ChildSpec("service", start_actor(XenmgrService, settings), shutdown=10.0,
                  start_timeout=120.0),
        ChildSpec("argo-firewall", start_actor(ArgoFirewall, settings), shutdown=10.0),
        ChildSpec("storage-watch", start_actor(StorageWatch, settings)),
        ChildSpec("autostart", start_actor(Autostart, settings), restart=Restart.TEMPORARY,
                  shutdown=settings.task_timeout + 5),
    ]


def manager_supervisor_spec(settings: ManagerSettings, *, intensity: int = 10,
                            period: float = 30.0) -> ChildSpec:
    """The ``manager`` supervisor (its name must be the last part of ``settings.branch``)."""
    flags = SupFlags(Strategy.ONE_FOR_ONE, intensity, period, backoff=Backoff(0.1, 5.0))
    return ChildSpec(settings.branch.rsplit("/", 1)[-1],
                     start_actor(Supervisor, flags, manager_specs(settings)),
                     kind=ChildKind.SUPERVISOR, shutdown=60.0)
