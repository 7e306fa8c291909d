"""xenmgr's bridge to the VM monitors (``xen.xenvm``): each VM is driven only through its
monitor's tasks, never around it.

* :func:`ensure_monitor` starts the monitor of a VM that exists in the database and has none
  (``StartChild(uuid, (VmStart(uuid, config_text),))`` on the ``vms`` supervisor), bounded.
* :func:`sync_config` replaces the monitor's config by the one translated from the database
  (the ``set-config`` task; pending while a domain exists), so a start always boots what the
  database says.
* :func:`run_task` runs one operation, bounded by the settings' ``task_timeout``; a monitor's
  refusal or failure becomes the xenmgr error clients know (``from_monitor_failure``: 101
  memory, 102 not allowed in this state, 104 the guest did not shut down, else the monitor's
  text), a missing or restarting monitor a plain error naming the VM, a timeout error 199.
* :func:`submit_task` queues one operation without waiting, :func:`task_result` waits for
  its answer (bounded), with :func:`run_task`'s errors: a caller runs several monitors'
  operations at once from one thread.
* :func:`monitor_view` reads the monitor's published view (state, domid) without waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Future

from actors import ActorDeadError, AskTimeout, NoSuchActor, ServiceUnavailable, ask, service
from supervision import StartChild, SupervisorError, TerminateChild
from xen.xenmgr._errors import XenmgrError, error, from_monitor_failure, plain
from xen.xenmgr._settings import ManagerSettings
from xen.xenvm import TaskError, VmHandle, VmStart, parse_task, vm_path
from xen.xenvm import VmView as MonitorView

__all__ = ["ensure_monitor", "monitor_view", "run_task", "stop_monitor", "submit_task",
           "sync_config", "task_result"]

logger = logging.getLogger("xenmgr")


def _handle(uuid: str) -> VmHandle | None:
    try:
        return service(vm_path(uuid), VmHandle)
    except (NoSuchActor, ServiceUnavailable, ActorDeadError):
        return None


def monitor_view(uuid: str) -> MonitorView | None:
    """The VM monitor's latest view (None: no monitor runs, or it is starting)."""
    handle = _handle(uuid)
    return handle.view if handle is not None else None


def ensure_monitor(settings: ManagerSettings, uuid: str, config_text: str) -> None:
    """Start VM ``uuid``'s monitor with ``config_text`` unless one runs (bounded)."""
    if _handle(uuid) is not None:
        return
    try:
        ask(settings.vms, StartChild(uuid, (VmStart(uuid, config_text),)),
            timeout=settings.task_timeout)
    except SupervisorError as exc:
        if _handle(uuid) is None and "already" not in str(exc):
            raise plain(f"VM {uuid}: its monitor did not start: {exc}") from None
    except (NoSuchActor, ActorDeadError):
        raise plain(f"VM {uuid}: the VM monitors are not running") from None
    except AskTimeout:
        raise error(199, f"VM {uuid}: its monitor did not start in time") from None


def stop_monitor(settings: ManagerSettings, uuid: str) -> None:
    """Stop and forget VM ``uuid``'s monitor (the VM is being deleted; it has no domain)."""
    try:
        ask(settings.vms, TerminateChild(uuid), timeout=settings.task_timeout)
    except (SupervisorError, NoSuchActor, ActorDeadError, AskTimeout) as exc:
        logger.warning("VM %s: stopping its monitor: %s", uuid, exc)


def run_task(settings: ManagerSettings, uuid: str, name: str,
             params: Mapping[str, str] | None = None, *, timeout: float | None = None) -> str:
    """Run task ``name`` on VM ``uuid``'s monitor (see the module docstring)."""
    handle = _handle(uuid)
    if handle is None:
        raise plain(f"VM {uuid}: its monitor is not running (starting or restarting)")
    try:
        call = parse_task(name, params or {})
        if call.spec.kind == "query":
            return handle.query(call)
    except TaskError as exc:
        raise from_monitor_failure(str(exc)) from None
    return task_result(uuid, name, submit_task(settings, uuid, name, params),
                       timeout or settings.task_timeout)


def submit_task(settings: ManagerSettings, uuid: str, name: str,
                params: Mapping[str, str] | None = None) -> Future[str]:
    """Queue operation ``name`` on VM ``uuid``'s monitor without waiting; its answer comes
    through :func:`task_result` (errors as :func:`run_task` raises them)."""
    handle = _handle(uuid)
    if handle is None:
        raise plain(f"VM {uuid}: its monitor is not running (starting or restarting)")
    try:
        return handle.submit(parse_task(name, params or {}))
    except TaskError as exc:
        raise from_monitor_failure(str(exc)) from None
    except ActorDeadError:
        raise plain(f"VM {uuid}: its monitor stopped during {name}") from None


def task_result(uuid: str, name: str, future: Future[str], timeout: float) -> str:
    """The answer of a task :func:`submit_task` queued, waited for at most ``timeout`` s."""
    try:
        return future.result(timeout)
    except TaskError as exc:
        raise from_monitor_failure(str(exc)) from None
    except ActorDeadError:
        raise plain(f"VM {uuid}: its monitor stopped during {name}") from None
    except TimeoutError:
        raise error(199, f"VM {uuid}: {name} did not finish within {timeout:g} s") from None


def sync_config(settings: ManagerSettings, uuid: str, config_text: str) -> None:
    """Bring the monitor's config up to date (``set-config``), starting the monitor if need be."""
    ensure_monitor(settings, uuid, config_text)
    try:
        run_task(settings, uuid, "set-config", {"config": config_text})
    except XenmgrError as exc:
        raise plain(f"VM {uuid}: cannot give its monitor the config: {exc.message}") from None
