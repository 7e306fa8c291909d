"""Delivery of xenstore watch events to actors and callbacks, coalesced ("look again").

A WATCH_EVENT means "something at or under this path may have changed: read it again"; it is
never data. So an event that would repeat one its target has not taken yet adds nothing, and is
dropped:

- Raw events from the reader thread are queued here (`WatchDispatcher.post`, which never
  blocks) keyed by ``(path, token)``; a key already queued is not queued twice. If more than
  ``max_pending`` distinct keys are waiting, further events collapse into one entry per token,
  delivered as an event on each watch's own path (bounded memory, nothing lost).
- One dispatcher thread routes each event (``routes(path, token)``, given by the client, says
  which registrations get which `WatchFired`) and delivers it in order:
  - to an actor (a name such as ``"/xen/domain-watcher"``, resolved at each delivery, or a
    ref): ``tell(WatchFired(path, token))``, unless an equal `WatchFired` is still in that
    actor's mailbox (not taken yet). A name that does not resolve (restarting actor) or a dead
    actor loses the event: a starting actor must read the state anyway. A handler exception
    crashes the actor as with any ``tell``;
  - to a callable: called on the dispatcher thread (keep it short; it may use the client, never
    block on another watch event). Its exceptions are logged and the dispatcher goes on.
- `stop` ends the thread within its timeout; events not yet delivered are dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import pykka


__all__ = ["WatchDispatcher", "WatchFired", "WatchTarget"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchFired:
    """A watch fired: look at ``path`` again. ``token`` is the one given to ``watch``."""

    path: str
    token: str


# An actor name, an actor ref, or a function taking the event.
WatchTarget: TypeAlias = "str | pykka.ActorRef[Any] | Callable[[WatchFired], None]"
Routes = Callable[[str | None, str], list[tuple[WatchFired, WatchTarget]]]

MAX_PENDING = 4096


class WatchDispatcher:
    """See the module docstring."""

    def __init__(self, routes: Routes, *, name: str = "xenstore", max_pending: int = MAX_PENDING
                 ) -> None:
        self._routes = routes
        self._max_pending = max_pending
        self._cond = threading.Condition()
        self._pending: OrderedDict[tuple[str | None, str], None] = OrderedDict()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-watches", daemon=True)
        self.delivered = 0
        self.coalesced = 0

    def start(self) -> WatchDispatcher:
        self._thread.start()
        return self

    def post(self, path: str, token: str) -> None:
        """Queue a raw event (from the reader thread; never blocks on a target)."""
        key: tuple[str | None, str] = (path, token)
        with self._cond:
            if self._stopping:
                return
            if key in self._pending or (None, token) in self._pending:
                self.coalesced += 1
                return
            if len(self._pending) >= self._max_pending:
                logger.warning("over %d watch events queued: collapsing token %r",
                               self._max_pending, token)
                key = (None, token)
                if key in self._pending:
                    self.coalesced += 1
                    return
            self._pending[key] = None
            self._cond.notify()

    def stop(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._stopping = True
            self._pending.clear()
            self._cond.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"xenstore watch dispatcher did not stop within {timeout} s"
                                   " (a callback is blocked?)")

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait(1.0)
                if self._stopping:
                    return
                (path, token), _ = self._pending.popitem(last=False)
            try:
                routes = self._routes(path, token)
            except Exception:
                logger.exception("routing watch event %r %r failed", path, token)
                continue
            for event, target in routes:
                self._deliver(event, target)

    def _deliver(self, event: WatchFired, target: WatchTarget) -> None:
        if not callable(target):  # an actor: a name or a ref (refs are not callable)
            from pykka import ActorDeadError  # only here: a client without actors stays light

            from actors import NoSuchActor, resolve

            try:
                ref = resolve(target)
                if _still_queued(ref, event):
                    self.coalesced += 1
                    return
                ref.tell(event)
            except (NoSuchActor, ActorDeadError) as exc:
                logger.info("watch event %s for %s not delivered: %s", event, target, exc)
                return
        else:
            try:
                target(event)
            except Exception:
                logger.exception("watch callback %r failed on %s", target, event)
                return
        self.delivered += 1


def _still_queued(ref: pykka.ActorRef[Any], event: WatchFired) -> bool:
    """True if ``event`` is in the actor's mailbox, not taken yet (pykka's threading inbox is
    a `queue.Queue` of envelopes; anything else is not inspected)."""
    inbox = ref.actor_inbox
    if not isinstance(inbox, queue.Queue):
        return False
    with inbox.mutex:
        for envelope in inbox.queue:
            message = getattr(envelope, "message", None)
            if type(message) is WatchFired and message == event:
                return True
    return False
