"""The notification queue: the one actor every xenmgr signal goes out through.

Ordering: the queue is one mailbox, so signals leave in the order they were queued; the VM
monitors tell it their notifications directly (it is among the ``notify`` targets of their
environment), so the signals of one VM leave in the order its state changes happened. For each
monitor notification ``vm:state:<s>`` it sends ``notify(uuid, "vm:state:<internal>")`` and
``vm_state_changed(uuid, path, public state, acpi state)`` at once, then hands the event to
that VM's event handler (hooks, keep-alive), starting the handler if there is none: a slow
hook never delays a signal. Each state (and a monitor's stop) is also reported to the live
service's waiters (``ManagerBus.states``, ``_vm_waits``), after its signals.

``vm_config_changed`` is debounced per VM: each :class:`ConfigChanged` (re)schedules it
``config_debounce`` seconds later, so a burst of setter calls gives one signal.

Failure behaviour: a signal that cannot be sent because the bus service is not running (or
restarting) waits in a bounded backlog (:data:`MAX_BACKLOG`, oldest dropped and logged) and
goes out when the service reports :class:`ServiceUp`. A restart of the queue itself loses
the backlog and pending debounced signals (they are best effort, as the monitors'
notifications are).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from actors import (
    Actor,
    ActorDeadError,
    NoSuchActor,
    ServiceUnavailable,
    Timer,
    ask,
    handles,
    service,
    tell,
)
from supervision import StartChild
from xen.xenmgr._handle import ManagerBus
from xen.xenmgr._messages import (
    ConfigChanged,
    Emit,
    FlushConfigChanged,
    MonitorUp,
    ServiceUp,
    VmEvent,
)
from xen.xenmgr._monitors import monitor_view
from xen.xenmgr._settings import ManagerSettings
from xen.xenmgr._states import (
    InternalState,
    StateError,
    acpi_state,
    from_monitor_notify,
    notify_text,
    public_state,
)
from xen.xenmgr._uuids import vm_object_path
from xen.xenvm import RegisterVm, UnregisterVm, VmNotification

__all__ = ["MAX_BACKLOG", "XENMGR", "NotificationQueue", "tell_queue"]

logger = logging.getLogger("xenmgr")

XENMGR = "com.citrix.xenclient.xenmgr"
MAX_BACKLOG = 10_000


def tell_queue(settings: ManagerSettings, message: Any) -> None:
    """Hand a signal or a config change to the notification queue (best effort: a queue
    that is not running loses it, logged)."""
    try:
        tell(settings.queue, message)
    except (NoSuchActor, ActorDeadError):
        logger.warning("notification queue not running: %r lost", message)


class NotificationQueue(Actor):
    """See the module docstring."""

    def __init__(self, settings: ManagerSettings) -> None:
        super().__init__()
        self.settings = settings
        self.backlog: deque[Emit] = deque()
        self.generation: dict[str, int] = {}
        self.timers: dict[str, Timer] = {}

    # ------------------------------------------------------------------ sending

    def _send(self, msg: Emit) -> None:
        if self.backlog and not self._flush():
            self._keep(msg)
            return
        if not self._try(msg):
            self._keep(msg)

    def _try(self, msg: Emit) -> bool:
        try:
            bus = service(self.settings.service, ManagerBus)
            bus.emit(msg.path, msg.interface, msg.member, msg.args)
            return True
        except (NoSuchActor, ServiceUnavailable, ActorDeadError, OSError) as exc:
            logger.debug("signal %s waits: %s", msg.member, exc)
            return False
        except Exception:
            logger.exception("signal %s%s could not be sent", msg.member, msg.args)
            return True  # a bad signal is dropped, not retried forever

    def _keep(self, msg: Emit) -> None:
        if len(self.backlog) >= MAX_BACKLOG:
            dropped = self.backlog.popleft()
            logger.warning("signal backlog full: dropped %s%s", dropped.member, dropped.args)
        self.backlog.append(msg)

    def _flush(self) -> bool:
        while self.backlog:
            if not self._try(self.backlog[0]):
                return False
            self.backlog.popleft()
        return True

    @handles(Emit)
    def _emit(self, msg: Emit) -> None:
        self._send(msg)

    @handles(ServiceUp)
    def _service_up(self, _msg: ServiceUp) -> None:
        self._flush()

    # ------------------------------------------------------------------ monitors

    @handles(VmNotification)
    def _notification(self, msg: VmNotification) -> None:
        uuid, text = msg.uuid, msg.text
        try:
            state = from_monitor_notify(text)
        except StateError as exc:
            logger.warning("VM %s: %s", uuid, exc)
            return
        if state is None:
            self._send(Emit("/", XENMGR, "notify", (uuid, text), uuid))
        else:
            self._send(Emit("/", XENMGR, "notify", (uuid, notify_text(state)), uuid))
            self._send(Emit("/", XENMGR, "vm_state_changed",
                            (uuid, vm_object_path(uuid), public_state(state),
                             _signal_acpi(state)), uuid))
            self._report(uuid, state)
        self._to_handler(VmEvent(uuid, text))

    def _report(self, uuid: str, state: InternalState | None) -> None:
        """Wake the live service's waiters (``_vm_waits``; None: the monitor stopped)."""
        try:
            states = service(self.settings.service, ManagerBus).states
        except (NoSuchActor, ServiceUnavailable, ActorDeadError):
            return  # no service, no waiter
        if state is None:
            states.forget(uuid)
        else:
            states.changed(uuid, state)

    def _to_handler(self, event: VmEvent | MonitorUp) -> None:
        name = f"{self.settings.vm_events}/{event.uuid}"
        try:
            tell(name, event)
            return
        except (NoSuchActor, ActorDeadError):
            pass
        try:
            ask(self.settings.vm_events, StartChild(event.uuid, (event.uuid,)), timeout=10)
            tell(name, event)
        except Exception as exc:  # a handler that cannot start: the event is lost, logged
            logger.warning("VM %s: event %s not handled: %s", event.uuid, event, exc)

    @handles(RegisterVm)
    def _register(self, msg: RegisterVm) -> None:
        logger.debug("VM %s: monitor up", msg.uuid)
        view = monitor_view(msg.uuid)
        if view is not None and view.domid > 0:  # its handler checks the config's overlays
            self._to_handler(MonitorUp(msg.uuid))

    @handles(UnregisterVm)
    def _unregister(self, msg: UnregisterVm) -> None:
        logger.debug("VM %s: monitor down", msg.uuid)
        self._report(msg.uuid, None)

    # ------------------------------------------------------------------ vm_config_changed

    @handles(ConfigChanged)
    def _config_changed(self, msg: ConfigChanged) -> None:
        generation = self.generation.get(msg.uuid, 0) + 1
        self.generation[msg.uuid] = generation
        old = self.timers.pop(msg.uuid, None)
        if old is not None:
            old.cancel()
        self.timers[msg.uuid] = self.send_after(self.settings.config_debounce,
                                                FlushConfigChanged(msg.uuid, generation))

    @handles(FlushConfigChanged)
    def _flush_config_changed(self, msg: FlushConfigChanged) -> None:
        if self.generation.get(msg.uuid) != msg.generation:
            return
        self.generation.pop(msg.uuid, None)
        self.timers.pop(msg.uuid, None)
        self._send(Emit("/", XENMGR, "vm_config_changed",
                        (msg.uuid, vm_object_path(msg.uuid)), msg.uuid))

    def on_stop(self) -> None:
        """Cancel the debounce timers (their signals are lost with the queue)."""
        for timer in self.timers.values():
            timer.cancel()

    def on_failure(self, *_exc: Any) -> None:
        """As on stop (its own timers only); the same after a kill."""
        self.on_stop()

    on_killed = on_failure


def _signal_acpi(state: InternalState) -> int:
    """The ACPI state in ``vm_state_changed``: 5 when stopped, else 0 (the hibernated flag and
    a guest's S3 are only in the ``acpi-state`` property, which reads them)."""
    return acpi_state(state, pv=True, hibernated=False)
