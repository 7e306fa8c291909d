"""Host power transitions: shutdown, reboot, idle shutdown (and the frame sleep and hibernate
run in, ``_host_suspend``): the original's ``/host`` power methods, §4.2 and §4.7 of its
behaviour.

:func:`shutdown_groups` (pure) orders the running VMs: groups by ``shutdown-priority``
descending (a missing or malformed value is 0), VMs of one group in uuid order.

:func:`transition` runs one transition at a time (a second caller while one runs gets an error
naming the state): it writes the host state node (xenstore ``/xenmgr/host-state``:
``shutting-down``, ``rebooting``, ``going-to-sleep`` or ``going-to-hibernate``) and sends
``/host`` ``state_changed`` (``shutdowning``, ``rebooting``, ``sleeping``, ``hibernating``),
then runs the transition's body; a failure puts the host back to ``idle`` (node and signal) and
fails the call (a failed power action: an error naming it).

:func:`stop_all_vms`: group after group, every VM of the group is asked to shut down in parallel
(each bounded by the guest timeout, the monitor's own shutdown waiting for the guest): one
thread puts the ``shutdown`` task in every monitor's mailbox (``VmFlows.submit_shutdown``,
the path of a VM's own shutdown), then waits for their answers (bounded by the guest timeout
plus the task timeout), then for every VM of the group
to have no domain: woken by the VMs' state notifications (``_vm_waits``), at most 3 s more,
with one last check; so a group ends as soon as its last VM is gone. The first failure stops
the sequence (229 when a VM did not stop in time, else the VM's error; the rest of its group
is still waited for, later groups are never asked).

Shutdown and reboot: every VM down, then the host's power action (:func:`power_action`,
``ManagerSettings.host_power``); the host stays in its state (it is going down):

* ``sim``: recorded in the simulated host's xenstore, ``/sim/host/power`` = ``poweroff``,
  ``reboot``, ``suspend`` (a host sleep: the simulated host wakes at once) or
  ``poweroff-forced``; the simulated host goes on running, so after a shutdown xenmgr stays
  ``shutting-down`` and later transitions are refused;
* ``dom0``: ``systemctl poweroff|reboot|suspend`` (``poweroff --force --force`` when forced),
  bounded; not proven here;
* ``none``: logged only.

**Idle shutdown** (``shutdown_idle``, the power daemon's idle trigger in the original): the
shutdown sequence under a cap (``ManagerSettings.idle_shutdown_cap``, 300 s): when the cap
passes before the host is off, whatever the sequence is doing, the host is forced off
(``poweroff-forced``). A VM that refuses to stop fails the call, and the host stays
``shutting-down`` until the cap forces it off. The cap's timer belongs to the service
(:class:`IdleCap`, cancelled when the service stops).
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from xen.xenmgr._errors import XenmgrError, error, plain
from xen.xenmgr._host_io import xenstore
from xen.xenmgr._messages import Emit
from xen.xenmgr._monitors import monitor_view
from xen.xenmgr._states import InternalState

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext
    from xen.xenmgr._flows import QueuedTask

__all__ = ["HOST_STATE_NODE", "SIM_POWER_NODE", "IdleCap", "host_state_node", "idle_shutdown",
           "is_stopped", "power_action", "power_off_host", "running_priorities",
           "set_host_state", "shutdown_groups", "stop_all_vms", "transition"]

logger = logging.getLogger("xenmgr")

HOST = "com.citrix.xenclient.xenmgr.host"
HOST_STATE_NODE = "/xenmgr/host-state"
SIM_POWER_NODE = "/sim/host/power"
STOP_GRACE = 3.0
#: transition -> (host state node, public state)
STATES = {"shutdown": ("shutting-down", "shutdowning"), "reboot": ("rebooting", "rebooting"),
          "sleep": ("going-to-sleep", "sleeping"),
          "hibernate": ("going-to-hibernate", "hibernating"), "idle": ("idle", "idle")}
#: power action -> (what the simulated host records, systemctl's arguments)
ACTIONS = {"poweroff": ("poweroff", ["poweroff"]), "reboot": ("reboot", ["reboot"]),
           "suspend": ("suspend", ["suspend"]),
           "poweroff-forced": ("poweroff-forced", ["poweroff", "--force", "--force"])}


def shutdown_groups(priorities: Mapping[str, str]) -> list[list[str]]:
    """Running VMs (uuid -> ``shutdown-priority`` text) in shutdown order (module docstring)."""
    def value(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            return 0
    groups: dict[int, list[str]] = {}
    for uuid, text in priorities.items():
        groups.setdefault(value(text), []).append(uuid)
    return [sorted(groups[p]) for p in sorted(groups, reverse=True)]


def host_state_node(ctx: ServiceContext) -> str | None:
    """The host state node's value (None: missing or xenstore unreachable)."""
    try:
        return xenstore(ctx.settings).try_read(HOST_STATE_NODE)
    except Exception:
        return None


def set_host_state(ctx: ServiceContext, state: str) -> None:
    """Write the host state node and send ``state_changed`` (``state``: a key of STATES)."""
    node, public = STATES[state]
    xenstore(ctx.settings).write(HOST_STATE_NODE, node)
    ctx.tell_queue(Emit("/host", HOST, "state_changed", (public,)))


def is_stopped(uuid: str) -> bool:
    """VM ``uuid`` has no domain (or no monitor)."""
    view = monitor_view(uuid)
    return view is None or view.domid < 0


def _stop_group(ctx: ServiceContext, group: list[str]) -> None:
    """Shut ``group`` down in parallel; raise the first failure in group order."""
    timeout = ctx.settings.vm_shutdown_timeout
    deadline = time.monotonic() + timeout + ctx.settings.task_timeout
    asked: dict[str, QueuedTask] = {}
    failed: dict[str, XenmgrError] = {}
    for uuid in group:  # every monitor asked at once (``VmFlows.submit_shutdown``)
        try:
            asked[uuid] = ctx.flows.submit_shutdown(uuid, timeout)
        except XenmgrError as exc:
            failed[uuid] = exc
    for uuid, task in asked.items():
        try:
            task.result(max(0.0, deadline - time.monotonic()))
        except XenmgrError as exc:
            failed[uuid] = exc
    waiting = [u for u in group if u not in failed]

    def gone(uuid: str) -> bool:
        return is_stopped(uuid) or ctx.states.last(uuid) is InternalState.SHUTDOWN
    if not ctx.states.wait_until(lambda: all(gone(u) for u in waiting), STOP_GRACE):
        failed.update((u, error(229)) for u in waiting if not gone(u))
    for uuid in group:
        if uuid in failed:
            raise failed[uuid]


def stop_all_vms(ctx: ServiceContext, what: str) -> None:
    """Shut every running VM down by priority group (module docstring)."""
    groups = shutdown_groups(running_priorities(ctx))
    logger.warning("host %s: stopping %d VM(s) in %d group(s)", what, sum(map(len, groups)),
                   len(groups))
    for group in groups:
        _stop_group(ctx, group)


def power_action(ctx: ServiceContext, action: str) -> None:
    """The host's own power action (a key of ACTIONS; module docstring)."""
    record, argv = ACTIONS[action]
    how = ctx.settings.host_power
    try:
        if how == "sim":
            xenstore(ctx.settings).write(SIM_POWER_NODE, record)
        elif how == "dom0":
            subprocess.run(["systemctl", *argv], check=True, timeout=30, capture_output=True)
    except (subprocess.SubprocessError, OSError) as exc:
        raise plain(f"the host's power action {action} failed: {exc}") from None
    logger.warning("host: power action %s done (%s)", action, how)


def transition(ctx: ServiceContext, state: str, body: Callable[[], None]) -> None:
    """Run ``body`` as host transition ``state`` (module docstring)."""
    if not ctx.host_transition.acquire(blocking=False):
        raise plain(f"the host is already {host_state_node(ctx) or 'changing state'}")
    try:
        current = host_state_node(ctx)
        if current not in (None, "", "idle"):
            raise plain(f"the host is already {current}")
        set_host_state(ctx, state)
        try:
            body()
        except BaseException as exc:
            logger.error("host %s stopped: %s", state, exc)
            set_host_state(ctx, "idle")
            raise
    finally:
        ctx.host_transition.release()


def power_off_host(ctx: ServiceContext, action: str) -> None:
    """Shut the VMs down and power the host off (``shutdown``) or reboot it (``reboot``)."""
    def body() -> None:
        stop_all_vms(ctx, action)
        power_action(ctx, "poweroff" if action == "shutdown" else "reboot")
    transition(ctx, action, body)


class IdleCap:
    """The idle shutdown's cap: one timer at a time, owned by the service (see the module
    docstring); ``fired`` tells whether it forced the host off."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self.fired = threading.Event()

    def arm(self, seconds: float, force: Callable[[], None]) -> bool:
        """Start the timer; False when one already runs (an idle shutdown is under way)."""
        def fire() -> None:
            self.fired.set()
            force()
        with self._lock:
            if self._timer is not None and self._timer.is_alive():
                return False
            self.fired.clear()
            self._timer = threading.Timer(seconds, fire)
            self._timer.name = "idle-shutdown-cap"
            self._timer.daemon = True
            self._timer.start()
            return True

    def cancel(self) -> None:
        """Stop the timer (the host went off in time, or the service stops)."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            if timer is not threading.current_thread():
                timer.join(5.0)

    close = cancel


def idle_shutdown(ctx: ServiceContext, cap: IdleCap) -> None:
    """The idle shutdown (module docstring)."""
    def force() -> None:
        logger.warning("host idle shutdown: the %g s cap passed: forcing the host off",
                       ctx.settings.idle_shutdown_cap)
        try:
            power_action(ctx, "poweroff-forced")
        except Exception as exc:
            logger.error("host idle shutdown: %s", exc)

    if not ctx.host_transition.acquire(blocking=False):
        raise plain(f"the host is already {host_state_node(ctx) or 'changing state'}")
    try:
        current = host_state_node(ctx)
        if current not in (None, "", "idle"):
            raise plain(f"the host is already {current}")
        if not cap.arm(ctx.settings.idle_shutdown_cap, force):
            raise plain("an idle shutdown is already under way")
        set_host_state(ctx, "shutdown")
        try:
            stop_all_vms(ctx, "idle shutdown")
        except BaseException as exc:  # the host stays shutting-down: the cap forces it off
            logger.error("host idle shutdown: %s; the host is forced off when the cap passes",
                         exc)
            raise
        cap.cancel()
        if not cap.fired.is_set():
            power_action(ctx, "poweroff")
    finally:
        ctx.host_transition.release()


def running_priorities(ctx: ServiceContext) -> dict[str, str]:
    """The running VMs' ``shutdown-priority`` texts (db), by uuid."""
    out: dict[str, str] = {}
    vms: dict[str, Any] = ctx.db.cached_vms()  # read only
    for uuid, tree in vms.items():
        if not is_stopped(uuid):
            out[uuid] = str(tree.get("shutdown-priority") or "0")
    return out
