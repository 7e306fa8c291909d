"""Where exported handlers run: in an actor's mailbox, or in a pool of worker threads.

:class:`ActorDispatcher` tells the actor a :class:`DBusJob`; the actor runs it in its own
thread, in mailbox order, one at a time (the actor must handle ``DBusJob``, as
:class:`rpc.dbus.BusService` does). If the actor is gone (restarting), the call is answered at
once with ``org.freedesktop.DBus.Error.Failed`` "service unavailable: ..."; so is a call whose
job is still in the mailbox when the actor ends (crash, kill).

:class:`PoolDispatcher` runs jobs on ``workers`` threads, for services whose calls run in
parallel (xenmgr). It owns its threads; :meth:`PoolDispatcher.close` stops them within a bound.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from actors import ActorDeadError, NoSuchActor, Target, resolve
from rpc.dbus._errors import FAILED, ConnectionLost, DBusError
from rpc.dbus._export import Dispatcher

if TYPE_CHECKING:
    from rpc.dbus._export import Call

__all__ = ["ActorDispatcher", "DBusJob", "PoolDispatcher"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DBusJob:
    """Run ``job`` (a handler call and its reply) in the receiving actor's thread; an actor
    that ends before running it answers ``call`` ``Failed`` (``actors.Undeliverable``)."""

    job: Callable[[], None]
    call: Call | None = None

    def run(self) -> None:
        """Run the job; it answers the call itself, errors included."""
        self.job()

    def undelivered(self, reason: str) -> None:
        """The actor ended first: the caller gets ``Failed`` now, not its timeout."""
        if self.call is not None:
            refuse_unavailable(self.call, reason)


def refuse_unavailable(call: Call, why: str) -> None:
    """Answer ``call`` ``Failed`` "service unavailable: <why>" (the actor that would run it is
    restarting or gone); nothing if the service's own connection is closing too."""
    try:
        call.fail(DBusError(FAILED, f"service unavailable: {why}"))
    except ConnectionLost:
        logger.debug("the refusal (%s) was not sent: the connection is closed", why)


class ActorDispatcher(Dispatcher):
    """Run handlers in the mailbox of the actor ``target`` (a name or a ref)."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def submit(self, call: Call, job: Callable[[], None]) -> None:
        """Tell the actor; answer ``Failed`` at once if it is not there."""
        try:
            resolve(self.target).tell(DBusJob(job, call))
        except (NoSuchActor, ActorDeadError):
            refuse_unavailable(call, f"{self.target} is restarting")


class PoolDispatcher(Dispatcher):
    """Run handlers on ``workers`` threads, in parallel."""

    def __init__(self, workers: int = 4, name: str = "dbus-pool") -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
                         for n in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Call, job: Callable[[], None]) -> None:
        """Queue the job for the next free worker."""
        if self._closed:
            refuse_unavailable(call, "shutting down")
            return
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                logger.exception("DBus job failed outside its handler")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers after the jobs already queued; wait up to ``timeout`` s each."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout)
