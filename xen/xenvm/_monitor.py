"""The VM monitor actor (xenvm): one per VM, supervised, restartable, adopting its domain.

Semantics:

* **Start arguments** are only msgpack-able values: the VM uuid, its config (the file text or
  a dict from ``config_to_dict``) and the name of the Xen environment (``xen.xenvm._env``).
  The monitor is meant to run as a ``resume``-mode child of the ``simple_one_for_one`` "vms"
  supervisor, child id = the uuid.
* **Operations** (``start``, ``shutdown``, ...) come as :class:`RunTask` messages and run in
  the monitor's own thread, one at a time, in mailbox order; the caller gets a
  ``concurrent.futures.Future`` with the answer (use :func:`vm_task`).
* **Queries** (``get-status``, ``get-domid``, ``get``, ...) never go through the mailbox: they
  read the :class:`VmView` the monitor publishes after every change, so a long operation never
  delays them (:meth:`VmMonitor.query`).
* **Domain events** arrive as :class:`CheckState` from the domain watcher ("look again").
* **Snapshots.** After every change the monitor persists its snapshot through its supervisor
  (durable before it goes on); a new instance resumes from it (``xen.xenvm._resume``) before
  it takes any message, and queues any long follow-up as messages to itself.
* **Notifications** (``vm:state:<state>``, ``error:crashed``) go to the listeners registered
  with :func:`add_listener` (the xenvm DBus service emits them as the ``notify`` signal).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import xen.xenvm._vmops as _vmops
from actors import Actor, actor_of, handles, resolve
from xen.xenvm._config import VmConfig, config_from_dict, format_config, get_field, parse_config
from xen.xenvm._config_values import ConfigError
from xen.xenvm._env import get_env
from xen.xenvm._lifecycle import State
from xen.xenvm._machine import VmMachine
from xen.xenvm._resume import resume, snapshot_of
from xen.xenvm._tasks import TaskCall, TaskError, help_text, parse_task

__all__ = ["XENVM_BUS", "CheckState", "RegisterVm", "RunTask", "UnregisterVm", "VmMonitor",
           "VmView", "add_listener", "remove_listener", "vm_path", "vm_task"]

logger = logging.getLogger("xenvm")

VMS = "/vms"
Listener = Callable[[str, str], None]
_listeners: list[Listener] = []
_listeners_lock = threading.Lock()


def add_listener(listener: Listener) -> None:
    """Call ``listener(uuid, text)`` for every notification of every VM."""
    with _listeners_lock:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    """Stop calling ``listener``."""
    with _listeners_lock:
        if listener in _listeners:
            _listeners.remove(listener)


def vm_path(uuid: str) -> str:
    """The tree name of a VM's monitor."""
    return f"{VMS}/{uuid}"


@dataclass(frozen=True, slots=True)
class VmView:
    """What queries read: published after every change, immutable."""

    uuid: str
    state: State
    domid: int
    stubdom_domid: int
    config: VmConfig
    next_config: VmConfig | None
    op: str | None


@dataclass(frozen=True, slots=True)
class RunTask:
    """Run an operation; its answer (or error) goes to ``reply``."""

    call: TaskCall
    reply: Future[str]


@dataclass(frozen=True, slots=True)
class CheckState:
    """The domain may have changed: look again."""


XENVM_BUS = "/xenvm-bus"
"""Where the xenvm DBus service runs in the tree (if it runs)."""


@dataclass(frozen=True, slots=True)
class RegisterVm:
    """To the xenvm DBus service: own the bus name of VM ``uuid``."""

    uuid: str


@dataclass(frozen=True, slots=True)
class UnregisterVm:
    """To the xenvm DBus service: release the bus name of VM ``uuid``."""

    uuid: str


def _tell_bus(message: RegisterVm | UnregisterVm) -> None:
    try:
        resolve(XENVM_BUS).tell(message)
    except Exception:  # no xenvm bus service in this tree (or it is restarting)
        pass


def _load_config(config: str | Mapping[str, Any]) -> VmConfig:
    if isinstance(config, str):
        return parse_config(config, source="start argument", warn=logger.warning)
    return config_from_dict(config)


class VmMonitor(Actor):
    """One VM's monitor (see the module docstring)."""

    def __init__(self, uuid: str, config: str | Mapping[str, Any], env: str = "default") -> None:
        super().__init__()
        self.uuid = uuid
        self._config_arg = config
        self._env_name = env
        self.machine: VmMachine | None = None
        self.view: VmView | None = None

    def on_start(self) -> None:
        """Build the machine, resume from the snapshot or look at the world, publish."""
        try:
            cfg = _load_config(self._config_arg)
        except ConfigError as exc:
            raise TaskError(f"VM {self.uuid}: bad config: {exc}") from None
        machine = VmMachine(self.uuid, cfg, get_env(self._env_name), on_change=self._changed,
                            notify=self._notify)
        self.machine = machine
        snap = self.resume_snapshot
        followups = resume(machine, snap) if snap else []
        if not snap:
            machine.check_state()
        self._changed()
        for name, params in followups:
            self._tell_self(RunTask(parse_task(name, params), Future()))
        _tell_bus(RegisterVm(self.uuid))

    def on_stop(self) -> None:
        """Leave the bus (the domain, if any, keeps running)."""
        _tell_bus(UnregisterVm(self.uuid))

    def on_failure(self, *_exc: Any) -> None:
        """Leave the bus; the next instance registers again."""
        _tell_bus(UnregisterVm(self.uuid))

    def _changed(self) -> None:
        vm = self.machine
        if vm is None:
            return
        self.view = VmView(vm.uuid, vm.state, vm.domid, vm.stubdom_domid, vm.config,
                           vm.next_config, vm.op["name"] if vm.op else None)
        self.save_snapshot()

    def _notify(self, text: str) -> None:
        with _listeners_lock:
            listeners = list(_listeners)
        for listener in listeners:
            try:
                listener(self.uuid, text)
            except Exception:
                logger.exception("%s: notification listener failed", self.uuid)

    def snapshot(self) -> dict[str, Any]:
        """The machine's snapshot (see xen.xenvm._resume)."""
        return snapshot_of(self.machine) if self.machine is not None else {}

    # ------------------------------------------------------------------ messages

    @handles(CheckState)
    def _check_state(self, _msg: CheckState) -> None:
        assert self.machine is not None
        self.machine.check_state()

    @handles(RunTask)
    def _run_task(self, msg: RunTask) -> None:
        try:
            result = self._operate(msg.call)
        except TaskError as exc:
            msg.reply.set_exception(exc)
        except Exception as exc:
            logger.exception("%s: %s failed", self.uuid, msg.call.name)
            msg.reply.set_exception(TaskError(f"{msg.call.name} failed: {exc}"))
        else:
            msg.reply.set_result(result)

    def _operate(self, call: TaskCall) -> str:
        vm = self.machine
        assert vm is not None
        name, a = call.name, call.arg
        if name == "start":
            vm.start(paused=bool(a("paused")))
        elif name in ("shutdown", "halt"):
            vm.shutdown(force=bool(a("forced")), timeout=float(a("timeout") or 30.0),
                        destroy_after=bool(a("destroy-after")))
        elif name == "reboot":
            vm.shutdown(reboot=True, force=bool(a("forced")), timeout=float(a("timeout") or 30),
                        auto_start=bool(a("auto-start")))
        elif name == "destroy":
            vm.destroy()
        elif name == "pause":
            vm.pause()
        elif name == "unpause":
            vm.unpause()
        elif name == "suspend":
            _vmops.suspend(vm, str(a("file")))
        elif name == "restore":
            _vmops.restore(vm, str(a("file")), paused=bool(a("paused")),
                           delete=bool(a("delete")))
        elif name == "set":
            _vmops.set_config(vm, str(a("field")), str(a("value")))
        elif name == "disk-add":
            entry = f"{a('path')}:{a('type')}:{a('device')}:{a('mode')}:{a('devtype')}:none"
            _vmops.add_device(vm, "disk", entry)
        elif name == "disk-del":
            _vmops.remove_device(vm, "disk", str(a("device")))
        elif name == "nic-add":
            parts = [f"{k}={a(k)}" for k in ("bridge", "mac", "model") if a(k)]
            if int(a("id") or -1) >= 0:
                parts.append(f"id={a('id')}")
            _vmops.add_device(vm, "nic", ",".join(parts))
        elif name == "nic-del":
            _vmops.remove_device(vm, "nic", str(a("id")))
        elif name == "set-mem-target":
            _vmops.set_mem_target(vm, int(a("mb")))  # type: ignore[arg-type]
        elif name == "quit":
            self.actor_ref.stop(block=False)
        else:
            raise TaskError(f"{name} is a query, not an operation")
        return ""

    # ------------------------------------------------------------------ queries

    def query(self, call: TaskCall) -> str:
        """Answer a query task from the published view (any thread, never waits)."""
        view = self.view
        if view is None:
            raise TaskError(f"VM {self.uuid} is starting")
        name = call.name
        if name == "get-domid":
            return str(view.domid)
        if name == "get-stubdomid":
            return str(view.stubdom_domid)
        if name == "get-status":
            return view.state.value
        if name == "get-vnc":
            return ""
        if name == "get":
            try:
                return get_field(view.next_config or view.config, str(call.arg("field")))
            except ConfigError as exc:
                raise TaskError(f"get: {exc}") from None
        if name == "get-config":
            return format_config(view.config)
        if name == "disk-list":
            return "\n".join(f"{d.virtpath} {d.phystype.value}:{d.physpath} {d.mode} {d.devtype}"
                             for d in view.config.disks)
        if name == "nic-list":
            return "\n".join(f"{n.nic_id} {n.mac or 'auto'} {n.bridge or n.network or ''}"
                             .rstrip() for n in view.config.nics)
        if name == "help":
            return help_text()
        raise TaskError(f"{name} is an operation, not a query")


def vm_task(uuid: str, name: str, params: Mapping[str, str] | None = None, *,
            timeout: float = 120.0) -> str:
    """Run task ``name`` on VM ``uuid`` and wait for the answer (queries answer at once).

    Raises ``TaskError`` (refused or failed), ``actors.NoSuchActor`` (no such VM monitor) or
    ``TimeoutError``.
    """
    call = parse_task(name, params or {})
    ref = resolve(vm_path(uuid))
    monitor = actor_of(ref)
    assert isinstance(monitor, VmMonitor)
    if call.spec.kind == "query":
        return monitor.query(call)
    reply: Future[str] = Future()
    ref.tell(RunTask(call, reply))
    return reply.result(timeout)
