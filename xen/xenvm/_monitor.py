"""The VM monitor actor (xenvm): one per VM, supervised, restartable, adopting its domain.

Semantics:

* **Start.** ``VmMonitor(env, start)``: the environment (``xen.xenvm._env``) comes from the
  ``vms`` supervisor's child template, the :class:`~xen.xenvm._messages.VmStart` (uuid and
  config) from ``StartChild``. The monitor runs as a ``resume``-mode child of that
  ``simple_one_for_one`` supervisor, child id = the uuid. A config that does not parse fails
  the start with a ``TaskError`` naming it.
* **Operations** (``start``, ``shutdown``, ...) come as :class:`RunTask` messages and run in
  the monitor's own thread, one at a time, in mailbox order: one lookup in
  :data:`~xen.xenvm._handlers.OPERATIONS`; the caller gets a ``concurrent.futures.Future`` with
  the answer (use :func:`vm_task`, or :meth:`VmHandle.submit`).
* **Queries** (``get-status``, ``get-domid``, ``get``, ...) never go through the mailbox: they
  read the immutable :class:`~xen.xenvm._snapshot.VmView` the monitor publishes after every
  change, so a long operation never delays them (:meth:`VmHandle.query`).
* **The published handle.** ``actors.service(vm_path(uuid), VmHandle)`` gives the
  :class:`VmHandle` of the running instance: queries and operation submission, from any thread.
* **Domain events** arrive as :class:`~xen.xenvm._messages.CheckState` from the domain watcher
  ("look again").
* **Snapshots.** After every change the monitor persists the view's encoding through its
  supervisor (durable before it goes on); a new instance resumes from it
  (:meth:`VmMachine.resume <xen.xenvm._machine.VmMachine.resume>`) before it takes any message,
  and queues any long follow-up as messages to itself. A snapshot it cannot read (or of
  another VM) is logged and ignored: the monitor then looks at the world as a new one would.
* **Listeners.** The actors named in the environment's ``notify`` get ``RegisterVm`` at start,
  ``VmNotification`` for each notification, ``UnregisterVm`` at stop or failure (best effort:
  a listener that is not running misses them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from actors import Actor, ActorDeadError, NoSuchActor, handles, service, tell
from xen.xenvm._config import VmConfig, config_from_dict, parse_config
from xen.xenvm._config_values import ConfigError
from xen.xenvm._handlers import OPERATIONS, QUERIES
from xen.xenvm._machine import VmMachine
from xen.xenvm._messages import (
    CheckState,
    RegisterVm,
    RunTask,
    UnregisterVm,
    VmNotification,
    VmStart,
    vm_path,
)
from xen.xenvm._snapshot import SnapshotError, VmView, decode_snapshot, encode_snapshot
from xen.xenvm._tasks import TaskCall, TaskError, parse_task

if TYPE_CHECKING:
    import pykka

    from xen.xenvm._env import XenEnv

__all__ = ["VmHandle", "VmMonitor", "vm_task"]

logger = logging.getLogger("xenvm")


class VmHandle:
    """What a monitor publishes: its view for queries and its mailbox for operations.

    Thread-safe: the view is replaced as a whole (one reference) by the monitor after every
    change; :meth:`submit` only puts a message in the mailbox.
    """

    __slots__ = ("_ref", "_view", "uuid")

    def __init__(self, uuid: str, ref: pykka.ActorRef[Any]) -> None:
        self.uuid = uuid
        self._ref = ref
        self._view: VmView | None = None

    @property
    def view(self) -> VmView | None:
        """The latest published view (None while the monitor starts)."""
        return self._view

    def publish(self, view: VmView) -> None:
        """The monitor's side: replace the view."""
        self._view = view

    def query(self, call: TaskCall) -> str:
        """Answer a query task from the published view (any thread, never waits)."""
        handler = QUERIES.get(call.name)
        if handler is None:
            raise TaskError(f"{call.name} is an operation, not a query")
        view = self._view
        if view is None:
            raise TaskError(f"VM {self.uuid} is starting")
        return handler(view, call)

    def submit(self, call: TaskCall) -> Future[str]:
        """Queue an operation task; its answer (or ``TaskError``) comes in the future.
        Raises ``actors.ActorDeadError`` when this instance has stopped."""
        reply: Future[str] = Future()
        self._ref.tell(RunTask(call, reply))
        return reply


def _load_config(uuid: str, config: str | Mapping[str, Any]) -> VmConfig:
    try:
        if isinstance(config, str):
            return parse_config(config, source="start argument", warn=logger.warning)
        return config_from_dict(config)
    except ConfigError as exc:
        raise TaskError(f"VM {uuid}: bad config: {exc}") from None


def _start_arg(start: VmStart | str, legacy: tuple[Any, ...]) -> VmStart:
    """The start argument; also the ``(uuid, config, env_name)`` a child persisted by an
    earlier version carries (its environment is now the template's)."""
    if isinstance(start, VmStart) and not legacy:
        return start
    if isinstance(start, str) and len(legacy) in (1, 2):
        return VmStart(start, legacy[0])
    raise TypeError(f"VmMonitor takes a VmStart, not {(start, *legacy)!r}")


class VmMonitor(Actor):
    """One VM's monitor (see the module docstring)."""

    def __init__(self, env: XenEnv, start: VmStart | str, *legacy: Any) -> None:
        super().__init__()
        self.start_arg = _start_arg(start, legacy)
        self.uuid = self.start_arg.uuid
        self.env = env
        self.handle = VmHandle(self.uuid, self.actor_ref)
        self.machine: VmMachine | None = None

    def on_start(self) -> None:
        """Build the machine, resume from the snapshot or look at the world, publish."""
        cfg = _load_config(self.uuid, self.start_arg.config)
        machine = VmMachine(self.uuid, cfg, self.env, on_change=self._changed,
                            notify=self._notify, on_quit=self._quit, on_view=self._published)
        self.machine = machine
        view = self._resumed_view()
        followups = machine.resume(view) if view is not None else ()
        if view is None:
            machine.check_state()
        self._changed()
        for followup in followups:
            self._tell_self(RunTask(parse_task(followup.task, dict(followup.params)),
                                    Future()))
        self._tell_listeners(RegisterVm(self.uuid))

    def _resumed_view(self) -> VmView | None:
        snap = self.resume_snapshot
        if not snap:
            return None
        try:
            view = decode_snapshot(snap)
        except SnapshotError as exc:  # the next save replaces it: the log keeps what it held
            logger.error("%s: ignoring the snapshot: %s; it held: %.8000r", self.uuid, exc, snap)
            return None
        if view.uuid != self.uuid:
            logger.error("%s: ignoring a snapshot of VM %s", self.uuid, view.uuid)
            return None
        return view

    def on_stop(self) -> None:
        """Leave the listeners (the domain, if any, keeps running)."""
        self._tell_listeners(UnregisterVm(self.uuid))

    def on_failure(self, *_exc: Any) -> None:
        """Leave the listeners; the next instance registers again."""
        self._tell_listeners(UnregisterVm(self.uuid))

    def published(self) -> VmHandle:
        """The handle (``actors.service(vm_path(uuid), VmHandle)``)."""
        return self.handle

    def snapshot(self) -> dict[str, Any]:
        """The view's encoding (see xen.xenvm._snapshot)."""
        view = self.handle.view
        return encode_snapshot(view) if view is not None else {}

    def _changed(self) -> None:
        if self.machine is None:
            return
        self.handle.publish(self.machine.view())
        self.save_snapshot()

    def _published(self) -> None:
        if self.machine is not None:
            self.handle.publish(self.machine.view())

    def _notify(self, text: str) -> None:
        self._tell_listeners(VmNotification(self.uuid, text))

    def _quit(self) -> None:
        self.actor_ref.stop(block=False)

    def _tell_listeners(self, message: RegisterVm | UnregisterVm | VmNotification) -> None:
        for name in self.env.notify:
            try:
                tell(name, message)
            except (NoSuchActor, ActorDeadError):
                pass  # not running (or restarting): it misses this one

    # ------------------------------------------------------------------ messages

    @handles(CheckState)
    def _check_state(self, _msg: CheckState) -> None:
        assert self.machine is not None
        self.machine.check_state()

    @handles(RunTask)
    def _run_task(self, msg: RunTask) -> None:
        assert self.machine is not None
        name = msg.call.name
        try:
            handler = OPERATIONS.get(name)
            if handler is None:
                raise TaskError(f"{name} is a query, not an operation")
            result = handler(self.machine, msg.call)
        except TaskError as exc:
            msg.reply.set_exception(exc)
        except Exception as exc:
            logger.exception("%s: %s failed", self.uuid, name)
            msg.reply.set_exception(TaskError(f"{name} failed: {exc}"))
        except BaseException:  # killed in the middle: the next instance finishes or rolls back
            msg.reply.set_exception(TaskError(
                f"{name} interrupted: the VM monitor was stopped; its next instance recovers "
                "the VM (get-status tells the outcome)"))
            raise
        else:
            msg.reply.set_result(result)


def vm_task(uuid: str, name: str, params: Mapping[str, str] | None = None, *,
            timeout: float = 120.0) -> str:
    """Run task ``name`` on VM ``uuid`` and wait up to ``timeout`` s for the answer (queries
    answer at once).

    Raises ``TaskError`` (refused or failed), ``actors.NoSuchActor`` (no such VM monitor),
    ``actors.ServiceUnavailable`` or ``actors.ActorDeadError`` (the monitor is restarting) or
    ``TimeoutError``.
    """
    call = parse_task(name, params or {})
    handle = service(vm_path(uuid), VmHandle)
    if call.spec.kind == "query":
        return handle.query(call)
    return handle.submit(call).result(timeout)
