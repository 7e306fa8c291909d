"""One event handler per VM: the VM's monitor notifications, one at a time, in order.

A dynamic child of the ``vm-events`` supervisor (child id = the VM's uuid), started by the
notification queue at the VM's first event. For each state change (the signals are already
sent by the queue) it runs, in the order the changes happened:

* the state hooks: ``run-on-state-change [uuid, public state]`` and, for ``running``,
  ``suspended`` and ``shutdown``, ``run-on-acpi-state-change [uuid, 0|3|5]`` (failures are
  only logged, as the original);
* the Argo firewall is told to recompute when a VM gets or loses its domain
  (``creating-devices``, ``running``, ``shutdown``, ``rebooted``, ``suspended``);
* a VM that reached ``shutdown``: its temporary disk snapshots are deleted (``_snapshots``);
* a VM that reached ``running``: the nics of other running VMs it serves move into its domain
  (``_vm_deps.relocate_nics``: a network VM restarted), and its own nics into their running
  backend VMs' domains (a guest resumed from hibernation);
* a network backend VM (``provides-network-backend`` or ``provides-default-network-backend``)
  that reached ``running`` or ``shutdown``: ``network_state_changed(available)`` on ``/``
  (true when it runs; the original relayed the network daemon's state, which this host does
  not run: the backend VM's own state is what says whether the guests' network is there);
* ``keep-alive``: a VM that reached ``shutdown`` and has ``keep-alive`` true is started again
  (a rebooting guest is restarted by its monitor, never here).

When the VM's monitor (re)starts and finds the VM with a domain (``MonitorUp``), the handler
checks that the config the monitor would boot next names the temporary disk snapshots that
exist (``VmFlows.offer_overlays``): a monitor that lost its snapshot adopts the domain with its
start config, which names the disks themselves, and the guest's own reboot would then boot
the disk its overlay protects; the config with the overlays is sent again (logged).

It reads the VM's database tree through the bus service (``ManagerBus``), from the service's
kept copy when it is current (``DbClient.cached_vm_tree``, ``_dbcache``: dropped by the
database's change signal before any later call reaches the service, so a setting written
before the state change is seen); while the service restarts,
the reactions of that moment are skipped and logged. Each hook is bounded by the hook timeout,
so a hanging hook delays only this VM's later reactions, never another VM's nor any signal.
"""

from __future__ import annotations

import logging

from actors import Actor, ActorDeadError, NoSuchActor, ServiceUnavailable, handles, service
from xen.xenmgr._argo_firewall import recompute_argo
from xen.xenmgr._errors import XenmgrError
from xen.xenmgr._flows import VmFlows
from xen.xenmgr._handle import ManagerBus
from xen.xenmgr._jsontree import parse_db_bool
from xen.xenmgr._messages import Emit, MonitorUp, VmEvent
from xen.xenmgr._queue import XENMGR, tell_queue
from xen.xenmgr._settings import ManagerSettings
from xen.xenmgr._snapshots import remove_temporary_snapshots
from xen.xenmgr._states import InternalState, StateError, from_monitor_notify, state_hooks
from xen.xenmgr._vm_deps import relocate_nics

__all__ = ["VmEventHandler"]

logger = logging.getLogger("xenmgr")

_ARGO_STATES = frozenset({InternalState.CREATING_DEVICES, InternalState.RUNNING,
                          InternalState.SHUTDOWN, InternalState.REBOOTED,
                          InternalState.SUSPENDED})


class VmEventHandler(Actor):
    """See the module docstring."""

    def __init__(self, settings: ManagerSettings, uuid: str) -> None:
        super().__init__()
        self.settings = settings
        self.uuid = uuid

    def _bus(self, what: str) -> ManagerBus | None:
        """The bus service, or None (logged: ``what`` is skipped) while it is not running."""
        try:
            return service(self.settings.service, ManagerBus)
        except (NoSuchActor, ServiceUnavailable, ActorDeadError):
            logger.warning("VM %s: %s: the bus service is not running, skipped", self.uuid,
                           what)
            return None

    @handles(MonitorUp)
    def _monitor_up(self, msg: MonitorUp) -> None:
        bus = self._bus("monitor up")
        if bus is None:
            return
        try:
            tree = bus.db.cached_vm_tree(self.uuid)  # read only
            if tree:
                VmFlows(self.settings, bus.db, bus.conn).offer_overlays(self.uuid, tree)
        except XenmgrError as exc:
            logger.warning("VM %s: monitor up: %s", self.uuid, exc.message)

    @handles(VmEvent)
    def _event(self, msg: VmEvent) -> None:
        try:
            state = from_monitor_notify(msg.text)
        except StateError:
            return
        if state is None:
            return
        bus = self._bus(msg.text)
        if bus is None:
            return
        if state in _ARGO_STATES:
            recompute_argo(self.settings, f"VM {self.uuid} {state.value}")
        flows = VmFlows(self.settings, bus.db, bus.conn)
        try:
            tree = bus.db.cached_vm_tree(self.uuid)  # read only
            if not tree:  # deleted meanwhile: this handler is done (transient: not restarted)
                self.actor_ref.stop(block=False)
                return
            calls = state_hooks(state)
            if calls.state is not None:
                flows.hooks("run-on-state-change", tree.get("run-on-state-change"),
                            [self.uuid, calls.state], fatal=False)
            if calls.acpi is not None:
                flows.hooks("run-on-acpi-state-change", tree.get("run-on-acpi-state-change"),
                            [self.uuid, str(calls.acpi)], fatal=False)
            if state is InternalState.SHUTDOWN:
                remove_temporary_snapshots(tree)
            if state is InternalState.RUNNING:
                relocate_nics(self.settings, bus.db, self.uuid)
            if state in (InternalState.RUNNING, InternalState.SHUTDOWN) and (
                    _true(tree.get("provides-network-backend"))
                    or _true(tree.get("provides-default-network-backend"))):
                tell_queue(self.settings, Emit("/", XENMGR, "network_state_changed",
                                               (state is InternalState.RUNNING,), self.uuid))
            if state is InternalState.SHUTDOWN and _true(tree.get("keep-alive")):
                logger.info("VM %s: keep-alive: starting it again", self.uuid)
                flows.start(self.uuid)
        except XenmgrError as exc:
            logger.warning("VM %s: reacting to %s: %s", self.uuid, msg.text, exc.message)


def _true(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return parse_db_bool(value, what="keep-alive")
    except Exception:
        return False
