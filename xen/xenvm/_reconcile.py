"""A restarted monitor's operation in flight against what the world shows: one table (pure).

A monitor that died during an operation comes back with the operation recorded in its snapshot
(:mod:`xen.xenvm._snapshot`) and a world that is somewhere along it. :func:`observe` classifies
what the hypervisor and the disk show now into a :class:`World`; :data:`RECONCILE` maps
(operation, world) to a :class:`Decision`:

* **cleanup**: nothing, the VM's domain, or the VM's domain and *strays*: any other live domain
  with its uuid or its stub domain's (a start or restore interrupted between a create and
  recording the domid leaves one);
* **events**: lifecycle events applied in order, each only when the transition table allows it
  from the current state (the snapshot may have been written just before or just after the
  operation's own transition, so one row serves every state the operation can have reached);
* **then**: what to do next, as tasks the monitor queues to itself (its start stays short):
  nothing, the same operation again with its arguments, or a start when a reboot asked for one.

Every (operation, world) pair that can occur has a row (``IMAGE_COMPLETE`` only arises for a
suspend whose image was written); docs/xenvm.md shows the table (:func:`render_table`).

A start or restore the table keeps (*alive, operation done*: the snapshot says ``created``)
may have got further than its last save: :func:`unfinished` says what it still owes, from
whether the domain runs: it was unpaused (``Unpaused``: the VM is running), or one that
asked for a running guest stopped before its unpause (an ``unpause`` task finishes it).

Outside the table: a pending ``on_*`` action is carried out again (it is idempotent, so it is
applied exactly once), and with no operation in flight the monitor simply looks at its domain
as after any event (adopt it, give a dead one its ``on_*`` action once, or, when it was
destroyed from outside, go to ``shutdown`` with no action).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from xen.xenvm._lifecycle import (
    Destroy,
    DomainRebooted,
    DomainReleased,
    Event,
    Saved,
    ShutdownFailed,
    StartAborted,
    State,
    SuspendFailed,
    Unpaused,
)
from xen.xenvm._snapshot import (
    Destroying,
    Operation,
    Rebooting,
    Restoring,
    ShuttingDown,
    Starting,
    Suspending,
)

__all__ = ["RECONCILE", "Cleanup", "Decision", "FollowUp", "Resumption", "Then", "World",
           "again", "follow_ups", "observe", "render_table", "resumption", "unfinished"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


class World(enum.Enum):
    """What the hypervisor (and, for a suspend, the disk) shows after the restart."""

    ALIVE_DONE = "alive, operation done"
    """The domain lives and the state is a settled one with a domain (created, running...)."""
    ALIVE_MID = "alive, mid-operation"
    """The domain lives and the state is a transitional one (or has no domain yet)."""
    DEAD = "dead"
    """The domain exists but has shut down or is dying."""
    GONE = "gone"
    """No domain: none was recorded, or the hypervisor no longer knows it."""
    IMAGE_COMPLETE = "not alive, image complete"
    """A suspend wrote its image completely, and the domain is dead or gone."""


class Cleanup(enum.Enum):
    """What to destroy first."""

    NOTHING = "-"
    DOMAIN = "destroy the domain"
    DOMAIN_AND_STRAYS = "destroy the domain and strays"


class Then(enum.Enum):
    """What to do after the events."""

    NOTHING = "-"
    RETRY = "the operation again"
    START_IF_AUTO = "start, if the reboot asked for it"


@dataclass(frozen=True, slots=True)
class Decision:
    """One row's outcome (see the module docstring)."""

    cleanup: Cleanup
    events: tuple[Event, ...]
    then: Then


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A task the monitor queues to itself: its name and string arguments."""

    task: str
    params: tuple[tuple[str, str], ...] = ()


def observe(state: State, *, alive: bool, exists: bool, image_complete: bool) -> World:
    """Classify the world: ``alive`` (the domain runs or is paused), ``exists`` (the hypervisor
    knows it), ``image_complete`` (a suspend's image is written and sound)."""
    if alive:
        settled = state.has_domain and not state.mid_operation
        return World.ALIVE_DONE if settled else World.ALIVE_MID
    if image_complete:
        return World.IMAGE_COMPLETE
    return World.DEAD if exists else World.GONE


_ALIVE = (World.ALIVE_DONE, World.ALIVE_MID)
_NOT_ALIVE = (World.DEAD, World.GONE)
_ALL = (*_ALIVE, *_NOT_ALIVE)


def _rows(op: type[Operation], worlds: Iterable[World], cleanup: Cleanup,
          events: tuple[Event, ...], then: Then = Then.NOTHING
          ) -> dict[tuple[type[Operation], World], Decision]:
    return {(op, world): Decision(cleanup, events, then) for world in worlds}


_KEEP = Cleanup.NOTHING
_DOMAIN = Cleanup.DOMAIN

RECONCILE: Mapping[tuple[type[Operation], World], Decision] = MappingProxyType({
    # a start that had finished keeps its domain; any other is rolled back and asked again
    **_rows(Starting, (World.ALIVE_DONE,), _KEEP, ()),
    **_rows(Starting, (World.ALIVE_MID, *_NOT_ALIVE), Cleanup.DOMAIN_AND_STRAYS,
            (StartAborted(), DomainReleased()), Then.RETRY),
    # the guest did not go (yet): it runs on, ask again; it went: clean up
    **_rows(ShuttingDown, _ALIVE, _KEEP, (ShutdownFailed(),), Then.RETRY),
    **_rows(ShuttingDown, _NOT_ALIVE, _DOMAIN, (DomainReleased(),)),
    **_rows(Rebooting, _ALIVE, _KEEP, (ShutdownFailed(),), Then.RETRY),
    **_rows(Rebooting, _NOT_ALIVE, _DOMAIN, (DomainRebooted(),), Then.START_IF_AUTO),
    # destroying is idempotent
    **_rows(Destroying, _ALL, _DOMAIN, (Destroy(),)),
    # a suspend counts only with its image complete; a live domain is not trusted to be saved
    **_rows(Suspending, _ALIVE, _KEEP, (SuspendFailed(),)),
    **_rows(Suspending, _NOT_ALIVE, _DOMAIN, (DomainReleased(),)),
    **_rows(Suspending, (World.IMAGE_COMPLETE,), _DOMAIN, (Saved(),)),
    # a restore that had finished keeps its domain; any other goes back to the image (its
    # domid is not saved either: strays as for a start)
    **_rows(Restoring, (World.ALIVE_DONE,), _KEEP, ()),
    **_rows(Restoring, (World.ALIVE_MID, *_NOT_ALIVE), Cleanup.DOMAIN_AND_STRAYS,
            (StartAborted(), DomainReleased())),
})
"""(operation in flight, world) -> decision."""


def _flag(value: bool) -> str:
    return "true" if value else "false"


def again(op: Operation) -> FollowUp:
    """The task that performs ``op`` again, with its arguments."""
    match op:
        case Starting(paused=paused):
            return FollowUp("start", (("paused", _flag(paused)),))
        case ShuttingDown(force=force):
            return FollowUp("shutdown", (("forced", _flag(force)),))
        case Rebooting(force=force, auto_start=auto_start):
            return FollowUp("reboot", (("forced", _flag(force)), ("auto-start", _flag(auto_start))))
        case Destroying():
            return FollowUp("destroy")
        case Suspending(file=file) | Restoring(file=file):
            return FollowUp(op.task, (("file", file),))
    raise TypeError(f"not an operation: {op!r}")  # pragma: no cover - the union is closed


def follow_ups(op: Operation, then: Then) -> tuple[FollowUp, ...]:
    """The tasks a decision's ``then`` stands for, for ``op``."""
    if then is Then.RETRY:
        return (again(op),)
    if then is Then.START_IF_AUTO and isinstance(op, Rebooting) and op.auto_start:
        return (FollowUp("start"),)
    return ()


def unfinished(op: Operation, state: State, *, domain_paused: bool
               ) -> tuple[tuple[Event, ...], tuple[FollowUp, ...]]:
    """What a start or restore kept in ``created`` still owes (see the module docstring): the
    events to apply and the tasks to queue. Nothing for any other operation or state, nor for
    the paused domain of a start or restore that asked for it paused."""
    if not state.built_not_run or not isinstance(op, Starting | Restoring):
        return (), ()
    if not domain_paused:
        return (Unpaused(),), ()  # its unpause happened: the guest runs
    return (), (() if op.paused else (FollowUp("unpause"),))


@dataclass(frozen=True, slots=True)
class Resumption:
    """What a restarted monitor does about its operation in flight: what to destroy, the
    events to apply (each if allowed), the tasks to queue to itself."""

    cleanup: Cleanup
    events: tuple[Event, ...]
    follow_ups: tuple[FollowUp, ...]


def resumption(op: Operation, state: State, *, alive: bool, exists: bool,
               image_complete: bool, domain_paused: bool) -> Resumption:
    """The table's row for ``op`` in the world observed (`observe`'s arguments), with what a
    kept start still owes (`unfinished`; ``domain_paused``: the live domain is paused)."""
    world = observe(state, alive=alive, exists=exists, image_complete=image_complete)
    decision = RECONCILE[(type(op), world)]
    events, tasks = decision.events, follow_ups(op, decision.then)
    if world is World.ALIVE_DONE:
        owed, more = unfinished(op, state, domain_paused=domain_paused)
        events, tasks = events + owed, tasks + more
    return Resumption(decision.cleanup, events, tasks)


def render_table() -> str:
    """The table as markdown (docs/xenvm.md includes it verbatim)."""
    lines = ["| operation in flight | world | clean up | events (each if allowed) | then |",
             "|---|---|---|---|---|"]
    for (op, world), d in RECONCILE.items():
        events = ", ".join(type(e).__name__ for e in d.events) or "-"
        lines.append(f"| {op.__name__} | {world.value} | {d.cleanup.value} | {events} "
                     f"| {d.then.value} |")
    return "\n".join(lines) + "\n"

