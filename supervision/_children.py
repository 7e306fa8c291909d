"""Starting and stopping one child: the mechanics under a supervisor's policy.

:class:`ChildRunner` starts a child with its context (name, monitor, resume snapshot and
snapshot sink), waits for its ``on_start`` within the start timeout, and stops it with OTP's
shutdown protocol: a graceful stop, a bounded wait, then a kill. It records what happened in
the event log. It runs in the supervisor's thread; the supervisor decides *when*.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pykka

from actors import (
    Actor,
    ActorContext,
    ExitReason,
    Shutdown,
    StartFailed,
    reason_from_exception,
    reason_to_dict,
)
from supervision._events import EventLog
from supervision._messages import ChildInfo
from supervision._snapshots import SnapshotStore
from supervision._spec import BRUTAL_KILL, INFINITY_BOUND, ChildSpec, RestartMode

__all__ = ["Child", "ChildRunner"]

Monitor = Callable[[pykka.ActorRef[Any], ExitReason], None]

RELEASE_WAIT = 2.0
"""Seconds a killed child's replacement waits, at most, for the killed thread to be let go
(and to release what it owned: ``Actor.on_killed``); a thread stuck in a C call is not waited
for longer."""


class Child:
    """A supervisor's private, mutable record of one child."""

    __slots__ = ("actor", "args", "id", "last_exit", "path", "releasing", "restarts", "spec",
                 "started_at", "status", "urn")

    def __init__(self, spec: ChildSpec, path: str, args: tuple[Any, ...] = ()) -> None:
        self.id = path.rsplit("/", 1)[-1]
        self.spec = spec
        self.path = path
        self.args = args
        self.actor: Actor | None = None
        self.urn: str | None = None
        self.status = "stopped"
        self.started_at = 0.0
        self.restarts = 0
        self.last_exit: ExitReason | None = None
        self.releasing: tuple[Actor, float] | None = None  # a killed instance, until when

    def killed(self, actor: Actor) -> None:
        """``actor``, an instance of this child, was killed: its replacement waits for it."""
        self.releasing = (actor, time.monotonic() + RELEASE_WAIT)

    def released(self) -> bool:
        """Whether a replacement may start: no killed instance is still being let go (or it
        has had its ``RELEASE_WAIT``)."""
        if self.releasing is not None:
            actor, until = self.releasing
            if actor.thread_alive and time.monotonic() < until:
                return False
            self.releasing = None
        return True

    def wait_released(self) -> None:
        """Block until :meth:`released` (at most the rest of ``RELEASE_WAIT``)."""
        if self.releasing is not None:
            actor, until = self.releasing
            actor.join_thread(max(0.0, until - time.monotonic()))
            self.releasing = None

    def info(self) -> ChildInfo:
        """An immutable view for publishing."""
        return ChildInfo(self.id, self.path, self.spec, self.status, self.urn,
                         self.started_at, self.restarts, self.last_exit, self.args, self.actor)


class ChildRunner:
    """Start and stop children of one supervisor (see the module docstring)."""

    def __init__(self, events: EventLog, store: SnapshotStore,
                 monitor_for: Callable[[str], Monitor]) -> None:
        self.events = events
        self.store = store
        self.monitor_for = monitor_for

    def start(self, child: Child) -> ExitReason | None:
        """Start ``child``; None on success, else the reason it did not start. A killed
        instance of it is given up to ``RELEASE_WAIT`` to be let go first (the restarts after
        an exit wait for that without blocking, so this only blocks a manual restart)."""
        child.wait_released()
        spec = child.spec
        resume = None
        sink = None
        if spec.mode is RestartMode.RESUME:
            record = self.store.load(child.path)
            resume = record["state"] if record is not None else None
            store, path, args = self.store, child.path, child.args

            def sink(state: Any) -> None:
                store.save(path, state, args)

        context = ActorContext(
            name=child.path,
            monitors=(self.monitor_for(child.id),),
            resume_snapshot=resume,
            snapshot_sink=sink,
            ask_errors_crash=spec.ask_errors_crash,
            extras={"events": self.events, "store": self.store},
        )
        start = spec.start
        if child.args:
            start = start.with_args(*child.args)  # type: ignore[attr-defined]
        try:
            ref = start(context)
        except Exception as exc:
            failed = reason_from_exception(exc, exc.__traceback__, where="start")
            return self._failed(child, StartFailed(failed.error, failed.traceback))
        actor = getattr(ref, "_actor_obj", None)
        if not isinstance(actor, Actor):
            ref.stop(block=False)
            return self._failed(child, StartFailed("start did not return an actors.Actor"))
        timeout = spec.effective_start_timeout
        if not actor.wait_started(timeout):
            reason = actor.exit_reason
            if reason is None:
                actor.kill(timeout)
                reason = StartFailed(f"on_start did not finish within {timeout:g} s")
            return self._failed(child, reason)
        child.actor = actor
        child.urn = ref.actor_urn
        child.status = "running"
        child.started_at = time.monotonic()
        self.events.append("started", child.path, urn=ref.actor_urn, resumed=resume is not None)
        return None

    def _failed(self, child: Child, reason: ExitReason) -> ExitReason:
        child.status = "start_failed"
        child.last_exit = reason
        self.events.append("start_failed", child.path, **reason_to_dict(reason))
        return reason

    def terminate(self, child: Child) -> None:
        """Stop a running child synchronously: graceful stop, bounded wait, then kill."""
        actor = child.actor
        child.actor = None
        child.urn = None
        if actor is None:
            if child.status == "restarting":
                child.status = "stopped"
            return
        timeout = child.spec.shutdown_timeout
        if timeout == BRUTAL_KILL:
            actor.kill(0.0)
            child.killed(actor)
            self.events.append("killed", child.path, after=0.0)
        else:
            bound = INFINITY_BOUND if math.isinf(timeout) else timeout
            actor.request_stop(Shutdown())
            if actor.wait_dead(bound):
                self.events.append("stopped", child.path)
            else:
                actor.kill(bound)
                child.killed(actor)
                self.events.append("killed", child.path, after=bound)
        child.status = "stopped"
        child.last_exit = actor.exit_reason
