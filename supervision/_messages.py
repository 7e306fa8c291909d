"""Messages a supervisor takes, and the view of a child it publishes.

Requests (send with :func:`actors.ask` and a timeout): :class:`StartChild` (dynamic child of a
``simple_one_for_one`` supervisor), :class:`AddChild` (a new static child), :class:`TerminateChild`,
:class:`RestartChild`, :class:`DeleteChild`, :class:`WhichChildren`, :class:`CountChildren`.
Internal: :class:`ChildExited` (from a child's monitor), :class:`RetryRestart`,
:class:`HealthCheck`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actors import ExitReason, reason_to_dict

if TYPE_CHECKING:
    from actors import Actor
    from supervision._spec import ChildSpec

__all__ = [
    "AddChild",
    "ChildExited",
    "ChildInfo",
    "CountChildren",
    "DeleteChild",
    "HealthCheck",
    "RestartChild",
    "RetryRestart",
    "StartChild",
    "SupervisorError",
    "SupervisorStartError",
    "TerminateChild",
    "WhichChildren",
]


class SupervisorError(Exception):
    """A request the supervisor refused (unknown child, already running, failed start...)."""


class SupervisorStartError(SupervisorError):
    """A supervisor could not start (bad specs, or a child failed to start)."""


@dataclass(frozen=True, slots=True)
class StartChild:
    """Start a dynamic child ``child_id`` of a simple_one_for_one supervisor with ``args``."""

    child_id: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class AddChild:
    """Add ``spec`` as the last static child and start it."""

    spec: ChildSpec


@dataclass(frozen=True, slots=True)
class TerminateChild:
    """Stop a child (dynamic children are also removed, with their snapshot)."""

    child_id: str


@dataclass(frozen=True, slots=True)
class RestartChild:
    """Start a stopped static child again, or stop and start a running one."""

    child_id: str


@dataclass(frozen=True, slots=True)
class DeleteChild:
    """Remove the spec of a stopped static child (and its snapshot)."""

    child_id: str


@dataclass(frozen=True, slots=True)
class WhichChildren:
    """Ask for the tuple of :class:`ChildInfo`."""


@dataclass(frozen=True, slots=True)
class CountChildren:
    """Ask for OTP's counts: specs, active, supervisors, workers."""


@dataclass(frozen=True, slots=True)
class ChildExited:
    """A child's monitor reports its exit (ignored when ``urn`` is not the current instance)."""

    child_id: str
    urn: str
    reason: ExitReason


@dataclass(frozen=True, slots=True)
class RetryRestart:
    """Start these children again (after a backoff delay or a failed restart)."""

    child_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """Check that every running child's thread is alive."""


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """A published, immutable view of one child (readable from any thread).

    ``status`` is ``running``, ``restarting``, ``stopped`` or ``start_failed``; ``started_at``
    is a ``time.monotonic()`` stamp; ``actor`` is the live instance (for its stats) or None.
    """

    id: str
    path: str
    spec: ChildSpec
    status: str
    urn: str | None
    started_at: float
    restarts: int
    last_exit: ExitReason | None
    args: tuple[Any, ...] = ()
    actor: Actor | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A msgpack-able summary (without live stats)."""
        return {
            "id": self.id,
            "path": self.path,
            "kind": self.spec.kind.value,
            "restart": self.spec.restart.value,
            "mode": self.spec.mode.value,
            "status": self.status,
            "urn": self.urn,
            "restarts": self.restarts,
            "last_exit": reason_to_dict(self.last_exit) if self.last_exit else None,
        }
