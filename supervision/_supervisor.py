"""The supervisor actor: OTP's supervisor semantics on pykka, plus resume mode and backoff.

Guarantees (docs/supervision.md has the full text and every difference from OTP):

* **Start.** Children start one by one in spec order; each must finish ``on_start`` within its
  start timeout before the next starts. If one fails, those already started are stopped in
  reverse order and the supervisor itself fails to start (``StartFailed`` to its parent). A
  ``simple_one_for_one`` supervisor starts with no children, except that in ``resume`` mode it
  starts again every dynamic child that has a persisted snapshot (so VM monitors come back
  after the whole process was killed).
* **Exit of a child.** Reported once by the child's monitor (:class:`ChildExited`). The restart
  type decides (OTP's matrix); a restart counts toward the intensity: more than ``intensity``
  restarts within ``period`` seconds and the supervisor stops every child in reverse order and
  exits with ``Escalated``, which its parent handles like any abnormal exit. Otherwise the
  strategy decides who else is stopped (reverse order) and restarted (start order). With a
  backoff the restart waits, on a timer, so the supervisor keeps answering requests meanwhile.
  A restart that fails to start counts as another restart and is retried by a self-message.
  A killed child's replacement starts once the killed thread has been let go (it releases what
  it owned in ``on_killed``), polled by self-messages, or after ``RELEASE_WAIT`` (2 s).
* **Stop.** ``stop`` on a supervisor stops its children in reverse start order, each bounded by
  its shutdown timeout (graceful stop, then kill).
* **Names.** Every child is registered under its path (``<supervisor path>/<child id>``) while
  it runs; callers resolve the name at each call.
* **Resume mode.** A resume child's snapshots go to the tree's snapshot store; a new instance
  of the child gets the last one. Snapshots are deleted only when a child is removed on purpose
  (terminate of a dynamic child, delete of a static one, a normal exit that is not restarted).
* **Liveness.** Every ``health_interval`` seconds the supervisor checks that each running
  child's thread is alive; one that ended without reporting is handled as ``ThreadDied``.
* **Inspection** never waits on the supervisor's mailbox: :meth:`Supervisor.children` and
  :meth:`Supervisor.restart_window` read published immutable values.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pykka

from actors import (
    Actor,
    ActorContext,
    Escalated,
    ExitReason,
    Killed,
    Shutdown,
    ThreadDied,
    handles,
    is_abnormal,
    reason_to_dict,
)
from supervision._children import Child, ChildRunner
from supervision._events import EventLog
from supervision._intensity import add_restart, backoff_delay, restarts_in_window
from supervision._messages import (
    AddChild,
    ChildExited,
    ChildInfo,
    CountChildren,
    DeleteChild,
    HealthCheck,
    RestartChild,
    RetryRestart,
    StartChild,
    SupervisorError,
    SupervisorStartError,
    TerminateChild,
    WhichChildren,
)
from supervision._snapshots import MemorySnapshotStore, SnapshotStore
from supervision._spec import (
    ChildKind,
    ChildSpec,
    Restart,
    RestartMode,
    Strategy,
    SupFlags,
    check_childspecs,
)
from supervision._strategy import restart_plan, should_restart

__all__ = ["Supervisor"]

logger = logging.getLogger(__name__)

_RELEASE_POLL = 0.01
"""Seconds between looks at a killed child's thread before its replacement starts."""

EscalationHandler = Callable[[ExitReason], None]


class Supervisor(Actor):
    """Supervise ``specs`` under ``flags`` (see the module docstring)."""

    def __init__(self, flags: SupFlags, specs: Sequence[ChildSpec]) -> None:
        super().__init__()
        self.flags = flags
        self._specs = tuple(specs)
        self._children: dict[str, Child] = {}
        self._restarts: tuple[float, ...] = ()
        self._published: tuple[ChildInfo, ...] = ()
        self._template: ChildSpec | None = None
        self.path = "/"
        self.events = EventLog()
        self.store: SnapshotStore = MemorySnapshotStore()
        self._runner = ChildRunner(self.events, self.store, self._monitor_for)

    # ------------------------------------------------------------------ root start

    @classmethod
    def start_root(
        cls,
        flags: SupFlags,
        specs: Sequence[ChildSpec],
        *,
        events: EventLog | None = None,
        snapshot_dir: Path | str | None = None,
        on_escalate: EscalationHandler | None = None,
        start_timeout: float = 60.0,
    ) -> pykka.ActorRef[Supervisor]:
        """Start the root of a tree and wait until every child has started.

        Raises :class:`SupervisorStartError` with the reason if it could not start.
        ``on_escalate`` is called (in the supervisor's thread) if the root gives up.
        """
        store: SnapshotStore = (SnapshotStore(snapshot_dir) if snapshot_dir is not None
                                else MemorySnapshotStore())
        monitors: tuple[Callable[[pykka.ActorRef[Any], ExitReason], None], ...] = ()
        if on_escalate is not None:
            def report(_ref: pykka.ActorRef[Any], reason: ExitReason) -> None:
                if isinstance(reason, Escalated):
                    on_escalate(reason)
            monitors = (report,)
        context = ActorContext(
            name="/", monitors=monitors,
            extras={"events": events or EventLog(), "store": store},
        )
        actor = cls.start_object(context, flags, specs)
        ref = actor.actor_ref
        if not actor.wait_started(start_timeout):
            reason = actor.exit_reason
            if reason is None:
                actor.kill(start_timeout)
                raise SupervisorStartError(f"root supervisor did not start in {start_timeout} s")
            text = getattr(reason, "error", type(reason).__name__)
            raise SupervisorStartError(f"root supervisor failed to start: {text}")
        return ref

    # ------------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        """Check the specs and start the children (see the module docstring)."""
        self.path = self.context.name or "/"
        self.events = self.context.extras.get("events") or EventLog()
        self.store = self.context.extras.get("store") or MemorySnapshotStore()
        self._runner = ChildRunner(self.events, self.store, self._monitor_for)
        errors = check_childspecs(self._specs, self.flags)
        if errors:
            raise SupervisorStartError("; ".join(str(e) for e in errors))
        if self.flags.strategy is Strategy.SIMPLE_ONE_FOR_ONE:
            self._template = self._specs[0]
            if self._template.mode is RestartMode.RESUME:
                self._resume_dynamic_children()
        else:
            for spec in self._specs:
                child = Child(spec, self._child_path(spec.id))
                self._children[spec.id] = child
                reason = self._runner.start(child)
                if reason is not None:
                    self._stop_all_children()
                    text = getattr(reason, "error", type(reason).__name__)
                    raise SupervisorStartError(f"child {spec.id!r} failed to start: {text}")
        self._publish()
        if self.flags.health_interval > 0:
            self.send_every(self.flags.health_interval, HealthCheck())

    def on_stop(self) -> None:
        """Stop every child in reverse start order, each within its shutdown timeout."""
        self._stop_all_children()
        self._publish()

    def on_failure(self, *_exc: Any) -> None:
        """A supervisor that crashes still takes its children down first."""
        self._stop_all_children()
        self._publish()

    def _resume_dynamic_children(self) -> None:
        assert self._template is not None
        for record in self.store.children_of(self.path):
            child_id = record["path"].rsplit("/", 1)[-1]
            child = Child(self._template, record["path"], tuple(record["args"]))
            self._children[child_id] = child
            self.events.append("resuming", child.path)
            if self._runner.start(child) is not None:
                child.status = "restarting"
                self._tell_self(RetryRestart((child_id,)))

    # ------------------------------------------------------------------ starting/stopping

    def _child_path(self, child_id: str) -> str:
        return f"{self.path.rstrip('/')}/{child_id}"

    def _monitor_for(self, child_id: str) -> Callable[[pykka.ActorRef[Any], ExitReason], None]:
        def monitor(ref: pykka.ActorRef[Any], reason: ExitReason) -> None:
            self._tell_self(ChildExited(child_id, ref.actor_urn, reason))
        return monitor

    def _stop_all_children(self) -> None:
        for child in reversed(list(self._children.values())):
            self._runner.terminate(child)

    def _remove(self, child_id: str, *, forget_snapshot: bool) -> None:
        child = self._children.pop(child_id, None)
        if child is None:
            return
        if forget_snapshot:
            self.store.delete(child.path)
        self.events.append("removed", child.path)

    def _publish(self) -> None:
        self._published = tuple(c.info() for c in self._children.values())

    # ------------------------------------------------------------------ failures

    @handles(ChildExited)
    def _on_child_exited(self, msg: ChildExited) -> None:
        child = self._children.get(msg.child_id)
        if child is None or child.urn != msg.urn:
            return  # an instance we already stopped or replaced
        if isinstance(msg.reason, Killed) and child.actor is not None:
            child.killed(child.actor)  # its replacement waits for it to be let go
        child.actor = None
        child.urn = None
        child.status = "stopped"
        child.last_exit = msg.reason
        abnormal = is_abnormal(msg.reason)
        self.events.append("crashed" if abnormal else "exited", child.path,
                           **reason_to_dict(msg.reason))
        if should_restart(child.spec.restart, msg.reason):
            self._restart_after_exit(msg.child_id)
        elif child.spec.restart is Restart.TEMPORARY or self._template is not None:
            self._remove(msg.child_id, forget_snapshot=True)
        elif not abnormal:
            self.store.delete(child.path)
        self._publish()

    def _count_restart(self) -> bool:
        """Record a restart now; True when the intensity is exceeded."""
        self._restarts, exceeded = add_restart(
            self._restarts, time.monotonic(), self.flags.intensity, self.flags.period)
        return exceeded

    def _restart_after_exit(self, failed: str) -> None:
        if self._count_restart():
            self._escalate()
            return
        order = [cid for cid, c in self._children.items()
                 if c.status == "running" or cid == failed]
        types = {cid: self._children[cid].spec.restart for cid in order}
        plan = restart_plan(self.flags.strategy, order, types, failed)
        for cid in plan.stop:
            self._runner.terminate(self._children[cid])
        for cid in plan.forget:
            self._remove(cid, forget_snapshot=True)
        for cid in plan.start:
            self._children[cid].status = "restarting"
        self._schedule_restart(plan.start)

    def _schedule_restart(self, child_ids: tuple[str, ...]) -> None:
        delay = backoff_delay(self.flags.backoff, len(self._restarts))
        for cid in child_ids:
            self.events.append("restarting", self._children[cid].path, delay=round(delay, 4))
        if delay > 0:
            self.send_after(delay, RetryRestart(child_ids))
        else:
            self._do_restart(child_ids)

    @handles(RetryRestart)
    def _do_restart(self, msg_or_ids: RetryRestart | tuple[str, ...]) -> None:
        ids = msg_or_ids.child_ids if isinstance(msg_or_ids, RetryRestart) else msg_or_ids
        for n, cid in enumerate(ids):
            child = self._children.get(cid)
            if child is None or child.status != "restarting":
                continue
            if not child.released():  # a killed instance still lets go of what it holds
                self.send_after(_RELEASE_POLL, RetryRestart(tuple(ids[n:])))
                break
            if self._runner.start(child) is None:
                child.restarts += 1
                self._publish()
                self.events.append("restarted", child.path, restarts=child.restarts)
                continue
            child.status = "restarting"
            if self._count_restart():
                self._escalate()
                return
            self._schedule_restart(tuple(ids[n:]))
            break
        self._publish()

    def _escalate(self) -> None:
        reason = Escalated(len(self._restarts), self.flags.period)
        self.events.append("escalated", self.path, restarts=len(self._restarts),
                           intensity=self.flags.intensity, period=self.flags.period)
        logger.error("%s: more than %d restarts in %g s, giving up", self.path,
                     self.flags.intensity, self.flags.period)
        self._stop_all_children()
        self._publish()
        self.exit_now(reason)

    @handles(HealthCheck)
    def _health_check(self, _msg: HealthCheck) -> None:
        for child in list(self._children.values()):
            actor, urn = child.actor, child.urn
            if (actor is None or urn is None or child.actor is not actor
                    or actor.thread_alive or actor.exit_reason is not None):
                continue
            logger.error("%s: thread of %s died without reporting", self.path, child.path)
            actor.forget_dead_thread()
            self._on_child_exited(ChildExited(child.id, urn, ThreadDied()))

    # ------------------------------------------------------------------ requests

    @handles(StartChild)
    def _start_child(self, msg: StartChild) -> ChildInfo:
        if self._template is None:
            raise SupervisorError(f"{self.path} is not simple_one_for_one: use AddChild")
        if not msg.child_id or "/" in msg.child_id:
            raise SupervisorError(f"bad child id {msg.child_id!r}")
        if msg.child_id in self._children:
            raise SupervisorError(f"child {msg.child_id!r} already exists in {self.path}")
        child = Child(self._template, self._child_path(msg.child_id), tuple(msg.args))
        self._children[msg.child_id] = child
        self.events.append("added", child.path)
        reason = self._runner.start(child)
        if reason is not None:
            self._children.pop(msg.child_id, None)
            self._publish()
            raise SupervisorError(f"child {msg.child_id!r} failed to start: "
                                  f"{getattr(reason, 'error', reason)}")
        self._publish()
        return child.info()

    @handles(AddChild)
    def _add_child(self, msg: AddChild) -> ChildInfo:
        if self._template is not None:
            raise SupervisorError(f"{self.path} is simple_one_for_one: use StartChild")
        errors = check_childspecs([*[c.spec for c in self._children.values()], msg.spec])
        if errors:
            raise SupervisorError("; ".join(str(e) for e in errors))
        child = Child(msg.spec, self._child_path(msg.spec.id))
        self._children[msg.spec.id] = child
        self.events.append("added", child.path)
        reason = self._runner.start(child)
        self._publish()
        if reason is not None:
            raise SupervisorError(f"child {msg.spec.id!r} failed to start: "
                                  f"{getattr(reason, 'error', reason)}")
        return child.info()

    def _get(self, child_id: str) -> Child:
        child = self._children.get(child_id)
        if child is None:
            raise SupervisorError(f"no child {child_id!r} in {self.path}")
        return child

    @handles(TerminateChild)
    def _terminate_child(self, msg: TerminateChild) -> None:
        child = self._get(msg.child_id)
        self._runner.terminate(child)
        child.last_exit = Shutdown()
        if self._template is not None:
            self._remove(msg.child_id, forget_snapshot=True)
        self._publish()

    @handles(RestartChild)
    def _restart_child(self, msg: RestartChild) -> ChildInfo:
        child = self._get(msg.child_id)
        if child.status == "running":
            self._runner.terminate(child)
        reason = self._runner.start(child)
        if reason is None:
            child.restarts += 1
        self._publish()
        if reason is None:
            self.events.append("restarted", child.path, restarts=child.restarts, manual=True)
        if reason is not None:
            raise SupervisorError(f"child {msg.child_id!r} failed to start: "
                                  f"{getattr(reason, 'error', reason)}")
        return child.info()

    @handles(DeleteChild)
    def _delete_child(self, msg: DeleteChild) -> None:
        child = self._get(msg.child_id)
        if child.status == "running":
            raise SupervisorError(f"child {msg.child_id!r} is running: terminate it first")
        self._remove(msg.child_id, forget_snapshot=True)
        self._publish()

    @handles(WhichChildren)
    def _which_children(self, _msg: WhichChildren) -> tuple[ChildInfo, ...]:
        return self._published

    @handles(CountChildren)
    def _count_children(self, _msg: CountChildren) -> dict[str, int]:
        infos = self._published
        return {
            "specs": len(infos),
            "active": sum(1 for i in infos if i.status == "running"),
            "supervisors": sum(1 for i in infos if i.spec.kind is ChildKind.SUPERVISOR),
            "workers": sum(1 for i in infos if i.spec.kind is ChildKind.WORKER),
        }

    # ------------------------------------------------------------------ inspection

    def published(self) -> Supervisor:
        """The supervisor itself, for inspection (``actors.service(path, Supervisor)``):
        :meth:`children`, :meth:`restart_window` and :meth:`snapshot` read published state
        from any thread, never waiting on the mailbox."""
        return self

    def children(self) -> tuple[ChildInfo, ...]:
        """The published children, from any thread, without waiting on the mailbox."""
        return self._published

    def restart_window(self) -> tuple[float, ...]:
        """Monotonic times of the restarts inside the current intensity period."""
        return restarts_in_window(self._restarts, time.monotonic(), self.flags.period)

    def snapshot(self) -> dict[str, Any]:
        """A summary of the supervisor's own state (for ``state`` in the shell)."""
        return {
            "path": self.path,
            "strategy": self.flags.strategy.value,
            "intensity": self.flags.intensity,
            "period": self.flags.period,
            "restarts_in_window": len(self.restart_window()),
            "children": [c.to_dict() for c in self._published],
        }

