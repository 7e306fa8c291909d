"""Host shutdown and reboot: every running VM shut down by priority group, then the host's
power action (the original's ``shutdown``/``reboot`` of ``/host``, §4.7 of its behaviour).

:func:`shutdown_groups` (pure) orders the running VMs: groups by ``shutdown-priority``
descending (a missing or malformed value is 0), VMs of one group in uuid order.

:func:`power_off_host` runs one transition at a time (a second caller while one runs gets an
error naming the state): it writes the host state node (xenstore ``/xenmgr/host-state``:
``shutting-down`` or ``rebooting``) and sends ``/host`` ``state_changed`` (``shutdowning`` or
``rebooting``); then, group after group, asks every VM of the group to shut down in parallel
(each bounded by the task timeout, the monitor's own shutdown waiting for the guest) and waits
at most 3 s more for each to be stopped; the first failure stops the sequence: the host goes
back to ``idle`` (node and signal) and the call fails (229 when a VM did not stop in time,
else the VM's error). When every VM is down, the host's power action runs
(``ManagerSettings.host_power``):

* ``sim``: the request is recorded in the simulated host's xenstore, ``/sim/host/power`` =
  ``poweroff`` | ``reboot``; the simulated host goes on running and xenmgr stays in the
  ``shutting-down``/``rebooting`` state (a real host would be going down), so later starts are
  refused;
* ``dom0``: ``systemctl poweroff`` | ``systemctl reboot`` (bounded; not proven here);
* ``none``: logged only.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from actors import service
from xen.xenmgr._errors import error, plain
from xen.xenmgr._messages import Emit
from xen.xenmgr._monitors import monitor_view
from xen.xenstore import XenstoreClient

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["HOST_STATE_NODE", "SIM_POWER_NODE", "host_state_node", "power_off_host",
           "running_priorities", "shutdown_groups"]

logger = logging.getLogger("xenmgr")

HOST = "com.citrix.xenclient.xenmgr.host"
HOST_STATE_NODE = "/xenmgr/host-state"
SIM_POWER_NODE = "/sim/host/power"
STOP_GRACE = 3.0
_NODE = {"shutdown": "shutting-down", "reboot": "rebooting"}
_PUBLIC = {"shutdown": "shutdowning", "reboot": "rebooting"}


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
        return service(ctx.settings.xenstore_service, XenstoreClient).try_read(HOST_STATE_NODE)
    except Exception:
        return None


def _set_state(ctx: ServiceContext, node: str, public: str) -> None:
    service(ctx.settings.xenstore_service, XenstoreClient).write(HOST_STATE_NODE, node)
    ctx.tell_queue(Emit("/host", HOST, "state_changed", (public,)))


def _stopped(uuid: str) -> bool:
    view = monitor_view(uuid)
    return view is None or view.domid < 0


def _stop_group(ctx: ServiceContext, group: list[str]) -> None:
    def one(uuid: str) -> None:
        ctx.flows.shutdown(uuid, ctx.settings.vm_shutdown_timeout)
        deadline = time.monotonic() + STOP_GRACE
        while not _stopped(uuid):
            if time.monotonic() > deadline:
                raise error(229)
            time.sleep(0.05)
    with ThreadPoolExecutor(max_workers=len(group), thread_name_prefix="host-shutdown") as pool:
        failures = [f.exception() for f in [pool.submit(one, u) for u in group]]
    for exc in failures:
        if exc is not None:
            raise exc


def _power_action(ctx: ServiceContext, action: str) -> None:
    how = ctx.settings.host_power
    if how == "sim":
        service(ctx.settings.xenstore_service, XenstoreClient).write(
            SIM_POWER_NODE, "poweroff" if action == "shutdown" else "reboot")
    elif how == "dom0":
        subprocess.run(["systemctl", "poweroff" if action == "shutdown" else "reboot"],
                       check=True, timeout=30, capture_output=True)
    logger.warning("host %s: every VM is down; power action (%s) done", action, how)


def power_off_host(ctx: ServiceContext, action: str,
                   running: Callable[[], Mapping[str, str]]) -> None:
    """Shut the VMs down and power the host off or reboot it (module docstring).
    ``running()`` gives the running VMs' uuids and ``shutdown-priority`` texts."""
    if not ctx.host_transition.acquire(blocking=False):
        raise plain(f"the host is already {host_state_node(ctx) or 'changing state'}")
    try:
        current = host_state_node(ctx)
        if current not in (None, "", "idle"):
            raise plain(f"the host is already {current}")
        _set_state(ctx, _NODE[action], _PUBLIC[action])
        try:
            groups = shutdown_groups(running())
            logger.warning("host %s: stopping %d VM(s) in %d group(s)", action,
                           sum(map(len, groups)), len(groups))
            for group in groups:
                _stop_group(ctx, group)
            _power_action(ctx, action)
        except BaseException as exc:
            logger.error("host %s stopped: %s", action, exc)
            _set_state(ctx, "idle", "idle")
            if isinstance(exc, subprocess.SubprocessError | OSError):
                raise plain(f"host {action}: the power action failed: {exc}") from None
            raise
    finally:
        ctx.host_transition.release()


def running_priorities(ctx: ServiceContext) -> dict[str, str]:
    """The running VMs' ``shutdown-priority`` texts (db), by uuid."""
    out: dict[str, str] = {}
    vms: dict[str, Any] = ctx.db.vms()
    for uuid, tree in vms.items():
        if not _stopped(uuid):
            out[uuid] = str(tree.get("shutdown-priority") or "0")
    return out
