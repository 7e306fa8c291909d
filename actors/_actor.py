"""The base actor: pykka's ThreadingActor with exit reasons, monitors, stats, timers, snapshots.

Semantics (in addition to pykka's):

* **One FIFO mailbox.** Messages from one sender are handled in the order sent; messages from
  different senders interleave in arrival order. One message at a time, in the actor's thread.
* **Typed messages.** Methods decorated with :func:`handles` receive the message types they
  name (frozen dataclasses); dispatch is one dict lookup on ``type(message)``. pykka's proxy
  calls keep working. A message no handler takes raises :class:`UnhandledMessage`: returned to
  an ``ask``er, logged and dropped under ``tell`` (a stray message never kills an actor).
* **Every way to die is reported, exactly once, with an exit reason** (:mod:`actors._exits`) to
  every monitor: an exception under ``tell`` (``Crashed``; ``on_failure`` is called first), a
  failure in ``on_start`` (``StartFailed``; pykka itself does not report it), a ``BaseException``
  in a handler (``Crashed``; pykka would stop *every* actor in the process, we contain it to this
  one), a failing ``on_stop`` (``Crashed`` with ``where="on_stop"``), a forced :meth:`kill`
  (``Killed``). An exception answered to an ``ask`` is the caller's error and the actor goes on,
  unless the actor was started with ``ask_errors_crash`` (then it is also a crash).
* **Statistics** readable from any thread without asking the actor (:meth:`stats`): mailbox
  depth, messages handled, ask errors, the message being handled and for how long, last
  activity. A stuck actor is visible as a growing ``busy_for``.
* **Timers** (:meth:`send_after`, :meth:`send_every`) deliver messages to the actor's own
  mailbox and are cancelled when the actor stops.
* **Snapshots.** :meth:`snapshot` returns a msgpack-able dict of the state that matters;
  :meth:`save_snapshot` hands it to the supervisor's store (``resume`` restart mode), and a
  restarted instance finds the last one in :attr:`resume_snapshot` and reconciles it in
  ``on_start``, before it takes any message.
* **Tracing** of handled messages, bounded in count and time (:meth:`start_trace`).
* **Messages left** when it ends: asks fail, own-reply messages are told (:mod:`actors._mailbox`).
* **After a kill** the thread, once back, runs :meth:`on_killed` (not ``on_stop``/``on_failure``).

Threads are daemon threads: an actor that ignores ``stop`` and is killed cannot keep the
process alive. Orderly stop is the supervisor's job.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar, cast

import pykka
from pykka._envelope import Envelope

from actors._context import (
    NO_CONTEXT,
    ActorContext,
    GetSnapshot,
    GetStats,
    InjectCrash,
    InjectedCrash,
    Ping,
    UnhandledMessage,
    Wake,
)
from actors._exits import (
    Crashed,
    ExitReason,
    Killed,
    Normal,
    StartFailed,
    ThreadDied,
    reason_from_exception,
)
from actors._mailbox import drain
from actors._names import register_name, unregister_name
from actors._shield import Guard, install_guard, interrupt
from actors._stats import ActorStats
from actors._timers import Timer, schedule
from actors._trace import MessageTrace, Traced
from actors._urn import init_pykka_fields

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Actor", "actor_of", "handles"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class _ActorKilled(BaseException):
    """Injected into a killed actor's thread to interrupt Python code (best effort)."""


def actor_of(ref: pykka.ActorRef[Any]) -> Actor:
    """The actor object behind a ref (for inspection and supervision; never for messaging).

    pykka refs hold their actor weakly; refs made by :meth:`Actor.start_with` hold it
    strongly, so a child that died at once can still be asked for its exit reason.
    """
    obj = getattr(ref, "_actor_obj", None) or ref._actor_weakref()
    if not isinstance(obj, Actor):
        raise TypeError(f"{ref} is not an actors.Actor")
    return obj


def handles(*message_types: type) -> Callable[[F], F]:
    """Mark a method as the handler of ``message_types``: ``@handles(Start) def _start(...)``."""

    def mark(func: F) -> F:
        func._handles = message_types  # type: ignore[attr-defined]
        return func
    return mark


class Actor(Traced, pykka.ThreadingActor):
    """Base class of every actor in the toolstack (see the module docstring)."""

    use_daemon_thread: ClassVar[bool] = True
    auto_snapshot: ClassVar[bool] = False
    """Save a snapshot after every message when it changed (resume mode only)."""

    _dispatch: ClassVar[dict[type, Callable[[Any, Any], Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[type, Callable[[Any, Any], Any]] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                for msg_type in getattr(attr, "_handles", ()):
                    table[msg_type] = attr
        cls._dispatch = table

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        init_pykka_fields(self)  # pykka.Actor.__init__'s fields, with a cheaper unique URN
        self._context: ActorContext = NO_CONTEXT
        self._exit_reason: ExitReason | None = None
        self._requested_reason: ExitReason | None = None
        self._exit_lock = threading.Lock()
        self._exit_reported = False
        self._killed = False
        self._ready = threading.Event()
        self._started_ok = False
        self._dead = threading.Event()
        self._thread: threading.Thread | None = None
        self._timers: set[Timer] = set()
        self._trace: MessageTrace | None = None  # Traced's
        self._last_trace: MessageTrace | None = None
        self._processed = 0
        self._ask_errors = 0
        self._busy_since = 0.0
        self._current: Any = None
        self._started_at = time.monotonic()
        self._last_activity = self._started_at
        self._last_saved: bytes | None = None

    # ------------------------------------------------------------------ starting

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Self]:
        """Start without a supervisor (no name, no monitors): pykka's ``start``."""
        return cls.start_with(NO_CONTEXT, *args, **kwargs)

    @classmethod
    def start_with(cls, context: ActorContext, *args: Any, **kwargs: Any) -> pykka.ActorRef[Self]:
        """Start with ``context`` attached before the actor's thread runs.

        Monitors are in place before ``on_start`` runs, so even a failing start is reported.
        Returns at once; :meth:`wait_started` waits for ``on_start`` to finish.
        """
        return cls.start_object(context, *args, **kwargs).actor_ref

    @classmethod
    def start_object(cls, context: ActorContext, *args: Any, **kwargs: Any) -> Self:
        """:meth:`start_with` returning the object, for its owner (never for messaging)."""
        obj = cls(*args, **kwargs)
        obj._context = context
        ref = obj.actor_ref
        ref._actor_obj = obj  # type: ignore[attr-defined]  # see actor_of()
        pykka.ActorRegistry.register(ref)
        if context.name is not None:
            register_name(context.name, ref)
        obj._start_actor_loop()
        return obj

    @staticmethod
    def _create_actor_inbox() -> Any:
        """A C ``queue.SimpleQueue``: FIFO like pykka's ``queue.Queue``, about 2x faster."""
        return queue.SimpleQueue()

    def _start_actor_loop(self) -> None:
        thread = threading.Thread(target=self._actor_loop,
                                  name=f"{type(self).__name__}-{self.actor_urn[-8:]}")
        thread.daemon = self.use_daemon_thread
        self._thread = thread
        self._guard = Guard()
        thread.start()

    def wait_started(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for ``on_start`` to end; True if it succeeded."""
        self._ready.wait(timeout)
        return self._started_ok

    @property
    def context(self) -> ActorContext:
        """The context this actor was started with."""
        return self._context

    @property
    def name(self) -> str:
        """The actor's registered name, or its class and URN tail when it has none."""
        return self._context.name or f"{type(self).__name__}-{self.actor_urn[-8:]}"

    @property
    def resume_snapshot(self) -> Mapping[str, Any] | None:
        """The snapshot the previous instance persisted (resume mode), else None."""
        return self._context.resume_snapshot

    # ------------------------------------------------------------------ the loop

    def _actor_loop(self) -> None:
        install_guard(self._guard)
        try:
            try:
                self.on_start()
            except BaseException as exc:
                logger.error("%s failed to start", self.name, exc_info=True)
                text = reason_from_exception(exc, exc.__traceback__, where="on_start")
                self._exit_reason = StartFailed(text.error, text.traceback)
                return
            self._started_ok = True
            self._ready.set()
            self._run_loop()
        except BaseException as exc:
            if self._exit_reason is None:
                self._exit_reason = reason_from_exception(exc, exc.__traceback__, where="loop")
        finally:
            self._finish()
            if self._killed:  # a tell that raced the kill's drain is answered now
                drain(cast("queue.SimpleQueue[Any]", self.actor_inbox), self.name, Killed())
                self._guard.kill = None  # delivered: on_killed's own sections must run
                try:
                    self.on_killed()
                except BaseException:
                    logger.exception("%s: on_killed raised", self.name)

    def on_killed(self) -> None:
        """Run in this actor's thread once a :meth:`kill` lets it go (the cut handler returned):
        release what only this instance owns (threads, connections, files; its own shielded
        requests run), not what a new instance may share (names, registrations). Default: none."""

    def _run_loop(self) -> None:
        inbox_get = self.actor_inbox.get
        stopped = self.actor_stopped
        handle = self._handle_receive
        monotonic = time.monotonic
        while not stopped.is_set():
            envelope = inbox_get()
            message = envelope.message
            reply_to = envelope.reply_to
            self._busy_since = started = monotonic()
            self._current = message
            outcome = "ok"
            try:
                response = handle(message)
            except Exception as exc:
                outcome = f"error: {type(exc).__name__}"
                if reply_to is not None:
                    self._ask_errors += 1
                    reply_to.set_exception()
                    if self._context.ask_errors_crash and not isinstance(exc, UnhandledMessage):
                        self._crash(exc, sys.exc_info()[2])
                elif isinstance(exc, UnhandledMessage):
                    logger.error("%s dropped a message: %s", self.name, exc)
                else:
                    self._crash(exc, sys.exc_info()[2])
            except BaseException as exc:  # contained: pykka would stop every actor
                outcome = f"error: {type(exc).__name__}"
                if reply_to is not None:
                    reply_to.set_exception()
                if not isinstance(exc, _ActorKilled):
                    self._crash(exc, sys.exc_info()[2])
            else:
                if reply_to is not None:
                    reply_to.set(response)
            self._last_activity = started
            self._busy_since = 0.0
            self._current = None
            self._processed += 1
            trace = self._trace
            if trace is not None and not trace.record(message, started, outcome):
                self._trace = None
            if self.auto_snapshot and not stopped.is_set():
                self.save_snapshot()

    def _handle_receive(self, message: Any) -> Any:
        handler = self._dispatch.get(type(message))
        if handler is not None:
            return handler(self, message)
        return super()._handle_receive(message)

    def on_receive(self, message: Any) -> Any:
        """Built-in messages (:class:`InjectCrash`, :class:`GetSnapshot`, ...), else an error."""
        if isinstance(message, InjectCrash):
            raise InjectedCrash(message.reason)
        if isinstance(message, GetSnapshot):
            return self.snapshot()
        if isinstance(message, GetStats):
            return self.stats()
        if isinstance(message, Ping):
            return "pong"
        if isinstance(message, Wake):
            return None
        raise UnhandledMessage(f"{self.name} has no handler for {type(message).__name__}")

    def _crash(self, exc: BaseException, tb: TracebackType | None) -> None:
        reason = self._exit_reason = reason_from_exception(exc, tb)  # the traceback, once:
        logger.error("%s crashed\n%s", self.name, reason.traceback.rstrip("\n"))  # as exc_info
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        try:
            self.on_failure(type(exc), exc, tb)
        except Exception:
            logger.exception("%s: on_failure raised", self.name)

    def _stop(self) -> None:
        """Handle pykka's stop message: stop taking messages, then run ``on_stop``."""
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        if self._exit_reason is None:
            self._exit_reason = self._requested_reason or Normal()
        try:
            self.on_stop()
        except Exception as exc:
            logger.error("%s: on_stop raised", self.name, exc_info=True)
            self._exit_reason = reason_from_exception(exc, exc.__traceback__, where="on_stop")

    def _finish(self) -> None:
        """Report the exit reason once, whoever gets here first (the actor or a killer)."""
        with self._exit_lock:
            if self._exit_reported:
                return
            self._exit_reported = True
        reason: ExitReason = self._exit_reason or Crashed("actor loop ended without a reason")
        self._exit_reason = reason
        for timer in list(self._timers):
            timer.cancel()
        self._timers.clear()
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        if self._context.name is not None:
            unregister_name(self._context.name, self.actor_ref)
        drain(cast("queue.SimpleQueue[Any]", self.actor_inbox), self.name, reason)
        self._dead.set()
        self._ready.set()
        for monitor in self._context.monitors:
            try:
                monitor(self.actor_ref, reason)
            except Exception:
                logger.exception("%s: monitor %r raised", self.name, monitor)

    def forget_dead_thread(self) -> None:
        """Bookkeeping for a thread that ended without reporting (the supervisor's liveness
        check): unregister and mark dead as ``ThreadDied``, without calling the monitors."""
        with self._exit_lock:
            if self._exit_reported:
                return
            self._exit_reported = True
        self._exit_reason = ThreadDied()
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        if self._context.name is not None:
            unregister_name(self._context.name, self.actor_ref)
        self._dead.set()
        self._ready.set()

    # ------------------------------------------------------------------ stopping

    def exit_now(self, reason: ExitReason) -> None:
        """From the actor's own thread: take no more messages and report ``reason``.

        ``on_stop`` is not called; the caller has done its own cleanup.
        """
        self._exit_reason = reason
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()

    def request_stop(self, reason: ExitReason | None = None) -> None:
        """Ask the actor to stop after the messages already queued; ``reason`` is reported."""
        self._requested_reason = reason
        try:
            self.actor_ref.tell(pykka.messages._ActorStop())
        except pykka.ActorDeadError:
            pass

    def wait_dead(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the actor to have stopped; True if it has."""
        return self._dead.wait(timeout)

    @property
    def exit_reason(self) -> ExitReason | None:
        """Why the actor stopped (None while it runs)."""
        return self._exit_reason if self._exit_reported else None

    @property
    def thread_alive(self) -> bool:
        """Whether the actor's thread is still running."""
        return self._thread is not None and self._thread.is_alive()

    def join_thread(self, timeout: float) -> bool:
        """Wait at most ``timeout`` s for the actor's thread to end; whether it has."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self.thread_alive

    def kill(self, after: float = 0.0) -> None:
        """Force the actor out: it takes no more messages and is reported ``Killed`` now.

        If the thread is inside a handler, an exception is raised in it (this interrupts
        Python code, not a blocking C call; inside an `actors.uninterruptible` section it is
        raised when the section ends); the thread ends when the handler returns.
        A killed actor can no longer save snapshots.
        """
        self._killed = True
        if not self._exit_reported:
            self._exit_reason = Killed(after)
        self.actor_stopped.set()
        thread = self._thread
        if (thread is not None and thread.is_alive() and thread is not threading.current_thread()
                and self._busy_since and thread.ident is not None):
            interrupt(thread, self._guard, _ActorKilled)
        self._finish()
        self.actor_inbox.put(Envelope(Wake()))  # after _finish drained the mailbox

    # ------------------------------------------------------------------ timers

    def send_after(self, delay: float, message: Any) -> Timer:
        """Deliver ``message`` to this actor's mailbox after ``delay`` seconds."""
        holder: list[Timer] = []

        def fire() -> None:
            self._timers.discard(holder[0])
            self._tell_self(message)

        timer = schedule(delay, fire)
        holder.append(timer)
        self._timers.add(timer)
        return timer

    def send_every(self, period: float, message: Any, first: float | None = None) -> Timer:
        """Deliver ``message`` every ``period`` seconds (first after ``first`` or ``period``)."""
        timer = schedule(period if first is None else first, lambda: self._tell_self(message),
                         period=period)
        self._timers.add(timer)
        return timer

    def _tell_self(self, message: Any) -> None:
        if not self.actor_stopped.is_set():
            self.actor_inbox.put(Envelope(message))

    def published(self) -> object | None:
        """The typed handle this actor publishes (override; see :func:`actors.service`)."""
        return None

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> dict[str, Any]:
        """The state worth keeping across a restart, as a msgpack-able dict (override)."""
        return {}

    def save_snapshot(self) -> None:
        """Persist :meth:`snapshot` through the supervisor (resume mode); else a no-op.

        Returns once the store has it (durably, for the file store); unchanged ones are skipped.
        """
        sink = self._context.snapshot_sink
        if sink is None or self._killed:
            return
        sink(self.snapshot())

    # ------------------------------------------------------------------ inspection

    def stats(self) -> ActorStats:
        """Current statistics; safe from any thread, never waits on the actor."""
        return ActorStats(**self.stats_dict())

    def stats_dict(self) -> dict[str, Any]:
        """:meth:`stats` as ``ActorStats.to_dict()``, built directly (read at every request)."""
        now = time.monotonic()
        busy = self._busy_since
        current = self._current
        return {
            "name": self.name,
            "urn": self.actor_urn,
            "actor_class": type(self).__name__,
            "alive": not self.actor_stopped.is_set(),
            "mailbox_depth": self.actor_inbox.qsize(),  # type: ignore[attr-defined]
            "processed": self._processed,
            "ask_errors": self._ask_errors,
            "current_message": type(current).__name__ if busy and current is not None else None,
            "busy_for": now - busy if busy else 0.0,
            "idle_for": 0.0 if busy else now - self._last_activity,
            "uptime": now - self._started_at,
            "last_activity": time.time() - (now - (busy or self._last_activity)),
        }
