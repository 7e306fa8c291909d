"""What an actor is started with, and the built-in messages every actor answers.

:class:`ActorContext` is attached by the starter (a supervisor, usually) before the actor's
thread runs. The built-in messages (:class:`Ping`, :class:`GetStats`, :class:`GetSnapshot`,
:class:`InjectCrash`) are answered by every :class:`actors.Actor` without a handler of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actors._exits import ExitReason

if TYPE_CHECKING:
    import pykka

__all__ = [
    "NO_CONTEXT",
    "ActorContext",
    "GetSnapshot",
    "GetStats",
    "InjectCrash",
    "InjectedCrash",
    "Monitor",
    "Ping",
    "UnhandledMessage",
    "Wake",
]

Monitor = Callable[["pykka.ActorRef[Any]", ExitReason], None]


@dataclass(frozen=True, slots=True)
class ActorContext:
    """What a supervisor (or a caller of :meth:`Actor.start_with`) gives an actor at start.

    ``name`` is registered for :func:`actors.resolve` while the actor lives; ``monitors`` are
    told the exit reason once; ``resume_snapshot`` is the last persisted snapshot (resume mode);
    ``snapshot_sink`` persists a new one; ``extras`` carries anything else (supervisors use it).
    """

    name: str | None = None
    monitors: tuple[Monitor, ...] = ()
    resume_snapshot: Mapping[str, Any] | None = None
    snapshot_sink: Callable[[Mapping[str, Any]], None] | None = None
    ask_errors_crash: bool = False
    extras: Mapping[str, Any] = field(default_factory=dict)


NO_CONTEXT = ActorContext()


class UnhandledMessage(TypeError):
    """No handler takes this message type."""


class InjectedCrash(RuntimeError):
    """Raised by an actor on :class:`InjectCrash` (fault injection from tests or the shell)."""


@dataclass(frozen=True, slots=True)
class InjectCrash:
    """Make the actor raise :class:`InjectedCrash` (send with ``tell`` to crash it)."""

    reason: str = "injected crash"


@dataclass(frozen=True, slots=True)
class GetSnapshot:
    """Ask for :meth:`Actor.snapshot` (through the mailbox, so it is consistent)."""


@dataclass(frozen=True, slots=True)
class GetStats:
    """Ask for :meth:`Actor.stats` (also readable directly, without the mailbox)."""


@dataclass(frozen=True, slots=True)
class Ping:
    """Ask for ``"pong"``: proves the actor is taking messages."""


@dataclass(frozen=True, slots=True)
class Wake:
    """Unblocks a killed actor waiting on its mailbox."""
