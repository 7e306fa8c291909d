"""Child specifications and supervisor flags: data, checked by a pure function.

Names and defaults follow Erlang/OTP's ``supervisor`` (see docs/supervision.md):

* ``ChildSpec.restart``: ``permanent`` (always restarted), ``transient`` (restarted only after
  an abnormal exit), ``temporary`` (never restarted, and forgotten when it exits).
* ``ChildSpec.shutdown``: seconds to wait after a graceful stop before the child is killed;
  :data:`BRUTAL_KILL` kills at once; :data:`INFINITY` waits (bounded by
  :data:`INFINITY_BOUND` here, because every wait in this project has a bound). Default 5 s for
  workers, :data:`INFINITY` for supervisors, as in OTP.
* ``ChildSpec.mode``: ``fresh`` (a restart starts from the start arguments) or ``resume`` (the
  restarted instance gets the last snapshot its predecessor persisted).
* ``SupFlags``: strategy, ``intensity`` restarts within ``period`` seconds (default 1 in 5 s),
  optional exponential :class:`Backoff` between restarts (not in OTP).

:func:`check_childspecs` validates specs and flags without starting anything and returns every
problem as a tagged :class:`SpecError`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pykka

    from actors import ActorContext

__all__ = [
    "BRUTAL_KILL",
    "INFINITY",
    "INFINITY_BOUND",
    "ActorStart",
    "Backoff",
    "ChildKind",
    "ChildSpec",
    "Restart",
    "RestartMode",
    "SpecError",
    "StartFunc",
    "Strategy",
    "SupFlags",
    "check_childspecs",
    "start_actor",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

BRUTAL_KILL = 0.0
"""Shutdown value: kill without a graceful stop."""
INFINITY = math.inf
"""Shutdown value: wait for the child to stop (default for supervisors)."""
INFINITY_BOUND = 300.0
"""How long :data:`INFINITY` really waits before killing (every wait has a bound)."""

StartFunc = Callable[["ActorContext"], "pykka.ActorRef[Any]"]


class Restart(enum.Enum):
    """When a child is restarted."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class ChildKind(enum.Enum):
    """A worker, or a supervisor of its own subtree."""

    WORKER = "worker"
    SUPERVISOR = "supervisor"


class RestartMode(enum.Enum):
    """What a restarted instance starts from."""

    FRESH = "fresh"
    RESUME = "resume"


class Strategy(enum.Enum):
    """Which children a failure takes down with it."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"
    SIMPLE_ONE_FOR_ONE = "simple_one_for_one"


@dataclass(frozen=True, slots=True)
class ActorStart:
    """A start function as data: ``actor_class.start_with(context, *args, **kwargs)``."""

    actor_class: type
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, context: ActorContext) -> pykka.ActorRef[Any]:
        """Start the actor with ``context``."""
        return self.actor_class.start_with(context, *self.args, **self.kwargs)  # type: ignore[attr-defined]

    def with_args(self, *extra: Any) -> ActorStart:
        """The same start with ``extra`` appended to the positional arguments."""
        return ActorStart(self.actor_class, (*self.args, *extra), self.kwargs)

    def __repr__(self) -> str:
        return f"{self.actor_class.__name__}.start{self.args!r}"


def start_actor(actor_class: type, *args: Any, **kwargs: Any) -> ActorStart:
    """``ChildSpec(start=start_actor(DbStore, root))``."""
    return ActorStart(actor_class, args, dict(kwargs))


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential delay before restart n of a window: min(maximum, initial * factor**(n-1))."""

    initial: float = 0.01
    maximum: float = 5.0
    factor: float = 2.0


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child of a supervisor (see the module docstring for the fields' meaning)."""

    id: str
    start: StartFunc
    restart: Restart = Restart.PERMANENT
    shutdown: float | None = None
    kind: ChildKind = ChildKind.WORKER
    mode: RestartMode = RestartMode.FRESH
    start_timeout: float | None = None
    ask_errors_crash: bool = False

    @property
    def shutdown_timeout(self) -> float:
        """The effective shutdown value (OTP's defaults when unset)."""
        if self.shutdown is not None:
            return self.shutdown
        return INFINITY if self.kind is ChildKind.SUPERVISOR else 5.0

    @property
    def effective_start_timeout(self) -> float:
        """How long ``on_start`` may take: 5 s for workers, 60 s for supervisors by default."""
        if self.start_timeout is not None:
            return self.start_timeout
        return 60.0 if self.kind is ChildKind.SUPERVISOR else 5.0


@dataclass(frozen=True, slots=True)
class SupFlags:
    """Supervisor flags (OTP defaults: one_for_one, intensity 1, period 5 s)."""

    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = 1
    period: float = 5.0
    backoff: Backoff | None = None
    health_interval: float = 1.0
    """Seconds between checks that each child's thread is still alive (0 disables)."""


@dataclass(frozen=True, slots=True)
class SpecError:
    """One problem with a child spec or the flags: ``tag`` is machine-readable."""

    child: str | None
    tag: str
    message: str

    def __str__(self) -> str:
        where = f"child {self.child!r}" if self.child is not None else "supervisor flags"
        return f"{where}: {self.message} [{self.tag}]"


def _check_flags(flags: SupFlags) -> list[SpecError]:
    errors: list[SpecError] = []

    def bad(tag: str, message: str) -> None:
        errors.append(SpecError(None, tag, message))

    if not isinstance(flags.strategy, Strategy):
        bad("bad_strategy", f"strategy must be a Strategy, got {flags.strategy!r}")
    if not isinstance(flags.intensity, int) or isinstance(flags.intensity, bool) \
            or flags.intensity < 0:
        bad("bad_intensity", f"intensity must be an int >= 0, got {flags.intensity!r}")
    if not isinstance(flags.period, int | float) or not flags.period > 0:
        bad("bad_period", f"period must be > 0 seconds, got {flags.period!r}")
    if flags.backoff is not None:
        b = flags.backoff
        if not (b.initial >= 0 and b.maximum >= b.initial and b.factor >= 1):
            bad("bad_backoff", f"backoff needs 0 <= initial <= maximum and factor >= 1, got {b}")
    if not flags.health_interval >= 0:
        bad("bad_health_interval", "health_interval must be >= 0")
    return errors


def _check_spec(spec: ChildSpec) -> list[SpecError]:
    errors: list[SpecError] = []
    cid = spec.id if isinstance(spec.id, str) else repr(spec.id)

    def bad(tag: str, message: str) -> None:
        errors.append(SpecError(cid, tag, message))

    if not isinstance(spec.id, str) or not spec.id or "/" in spec.id:
        bad("bad_id", f"id must be a non-empty string without '/', got {spec.id!r}")
    if not callable(spec.start):
        bad("bad_start", f"start must be callable, got {spec.start!r}")
    if not isinstance(spec.restart, Restart):
        bad("bad_restart", f"restart must be a Restart, got {spec.restart!r}")
    if not isinstance(spec.kind, ChildKind):
        bad("bad_kind", f"kind must be a ChildKind, got {spec.kind!r}")
    if not isinstance(spec.mode, RestartMode):
        bad("bad_mode", f"mode must be a RestartMode, got {spec.mode!r}")
    if spec.shutdown is not None and (
        not isinstance(spec.shutdown, int | float) or spec.shutdown < 0
    ):
        bad("bad_shutdown", f"shutdown must be seconds >= 0 or INFINITY, got {spec.shutdown!r}")
    if spec.start_timeout is not None and not (
        isinstance(spec.start_timeout, int | float) and 0 < spec.start_timeout < math.inf
    ):
        bad("bad_start_timeout", f"start_timeout must be finite seconds > 0, "
                                 f"got {spec.start_timeout!r}")
    return errors


def check_childspecs(specs: Sequence[ChildSpec], flags: SupFlags | None = None) -> list[SpecError]:
    """Every problem with ``specs`` (and ``flags``), without starting anything. Empty = valid."""
    errors = _check_flags(flags) if flags is not None else []
    seen: set[str] = set()
    for spec in specs:
        if not isinstance(spec, ChildSpec):
            errors.append(SpecError(None, "not_a_spec", f"not a ChildSpec: {spec!r}"))
            continue
        errors.extend(_check_spec(spec))
        if isinstance(spec.id, str):
            if spec.id in seen:
                errors.append(SpecError(spec.id, "duplicate_id", "id used by another child"))
            seen.add(spec.id)
    if flags is not None and flags.strategy is Strategy.SIMPLE_ONE_FOR_ONE and len(specs) != 1:
        errors.append(SpecError(None, "simple_one_for_one_template",
                                f"simple_one_for_one needs exactly one template spec, "
                                f"got {len(specs)}"))
    return errors
