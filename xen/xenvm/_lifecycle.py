"""The VM lifecycle: states, events and the one transition table (pure).

States keep the original xenvm strings (clients and xenmgr read them); one is new:
``preserved`` (the guest died and ``on_*`` said *preserve*: the dead domain is kept for
inspection; the original kept saying ``running``).

Every change of a VM monitor's state is ``next_state(state, event)``: one lookup in
:data:`TRANSITIONS`; a pair that is not in the table raises :class:`IllegalTransition`, which
the monitor answers as "operation not allowed in state X" *before* it touches anything (the
original had no checks and raced). Requests (``Start``, ``Shutdown``, ...) and progress and
observation events (``DomainBuilt``, ``GuestShutdown``...) go through the same table.

:func:`reaction` is the policy for a domain that died while no operation expected it: which
``on_*`` action applies (the config's ``on_poweroff``/``on_reboot``/``on_crash``) and which
event records it (``DomainReleased`` -> shutdown, ``DomainRebooted`` -> rebooted then a new
start, ``DomainPreserved`` -> preserved). A domain destroyed from outside (dying without a
shutdown reason, or gone) is told apart from a crash and gets no action.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from xen.xenvm._config_values import Action

__all__ = [
    "OPERATIONS",
    "TRANSITIONS",
    "Adopted",
    "DeathCause",
    "Destroy",
    "DevicesAdded",
    "DomainBuilt",
    "DomainPreserved",
    "DomainRebooted",
    "DomainReleased",
    "Event",
    "IllegalTransition",
    "Pause",
    "Reaction",
    "Reboot",
    "Restore",
    "Saved",
    "Shutdown",
    "ShutdownFailed",
    "Start",
    "StartAborted",
    "State",
    "Suspend",
    "SuspendFailed",
    "Unpause",
    "Unpaused",
    "allowed_events",
    "next_state",
    "reaction",
    "render_table",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


class State(enum.Enum):
    """Lifecycle states; values are the strings clients see."""

    SHUTDOWN = "shutdown"
    CREATING_DOMAIN = "creating-domain"
    CREATING_DEVICES = "creating-devices"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    SHUTTING_DOWN = "shutdowning"
    REBOOTING = "rebooting"
    REBOOTED = "rebooted"
    SUSPENDING = "suspending"
    SUSPENDED = "suspended"
    RESTORING = "restoring"
    PRESERVED = "preserved"

    @property
    def has_domain(self) -> bool:
        """Whether a domain normally exists in this state."""
        return self not in (State.SHUTDOWN, State.REBOOTED, State.SUSPENDED)

    @property
    def keeps_dead_domain(self) -> bool:
        """The domain died and is kept for inspection (on_* = preserve)."""
        return self is State.PRESERVED

    @property
    def paused(self) -> bool:
        """Paused after it ran (asked to, or from outside)."""
        return self is State.PAUSED

    @property
    def guest_halted(self) -> bool:
        """The domain exists but its guest does not run (paused, or built and not yet run):
        it cannot answer a request to shut down or suspend."""
        return self in (State.PAUSED, State.CREATED)

    @property
    def built_not_run(self) -> bool:
        """A start's or restore's domain is built with its devices, before its unpause."""
        return self is State.CREATED

    @property
    def mid_operation(self) -> bool:
        """A transitional state that only an operation in flight leaves."""
        return self in (State.CREATING_DOMAIN, State.CREATING_DEVICES, State.SHUTTING_DOWN,
                        State.REBOOTING, State.SUSPENDING, State.RESTORING)


# ------------------------------------------------------------------------------- events
# Requests (the operations a client asks for)


@dataclass(frozen=True, slots=True)
class Start:
    """Create, build and (unless ``paused``) unpause a domain."""

    paused: bool = False


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Ask the guest to power off (``force``: hard shutdown by the hypervisor)."""

    force: bool = False


@dataclass(frozen=True, slots=True)
class Reboot:
    """Ask the guest to reboot (``force``: hard reboot)."""

    force: bool = False


@dataclass(frozen=True, slots=True)
class Destroy:
    """Destroy the domain and its devices now."""


@dataclass(frozen=True, slots=True)
class Pause:
    """Pause the domain."""


@dataclass(frozen=True, slots=True)
class Unpause:
    """Unpause the domain."""


@dataclass(frozen=True, slots=True)
class Suspend:
    """Save the domain to a file and destroy it."""


@dataclass(frozen=True, slots=True)
class Restore:
    """Create a domain from a saved file."""


# Progress of an operation


@dataclass(frozen=True, slots=True)
class DomainBuilt:
    """The domain exists and is built (memory, store, console)."""


@dataclass(frozen=True, slots=True)
class DevicesAdded:
    """Every device is plugged (start) or the domain is restored with its devices."""


@dataclass(frozen=True, slots=True)
class Unpaused:
    """The domain runs."""


@dataclass(frozen=True, slots=True)
class StartAborted:
    """A start or restore failed part way; what was built has been destroyed."""


@dataclass(frozen=True, slots=True)
class ShutdownFailed:
    """The guest did not acknowledge or did not die in time; it still runs."""


@dataclass(frozen=True, slots=True)
class Saved:
    """The suspend image is written and the domain destroyed."""


@dataclass(frozen=True, slots=True)
class SuspendFailed:
    """Saving failed; the domain runs on."""


# Outcomes of a domain's death (after cleanup), and what the on_* actions chose


@dataclass(frozen=True, slots=True)
class DomainReleased:
    """The domain is gone and its devices cleaned up."""


@dataclass(frozen=True, slots=True)
class DomainRebooted:
    """The domain rebooted: destroyed and cleaned up, a new start follows."""


@dataclass(frozen=True, slots=True)
class DomainPreserved:
    """The domain died and is kept (on_* = preserve)."""


@dataclass(frozen=True, slots=True)
class Adopted:
    """A live domain with this VM's uuid was found (after a restart, or started elsewhere)."""


Event = (
    Start | Shutdown | Reboot | Destroy | Pause | Unpause | Suspend | Restore
    | DomainBuilt | DevicesAdded | Unpaused | StartAborted | ShutdownFailed | Saved
    | SuspendFailed | DomainReleased | DomainRebooted | DomainPreserved | Adopted
)

S = State
_DEATHS: dict[type, State] = {
    DomainReleased: S.SHUTDOWN, DomainRebooted: S.REBOOTED, DomainPreserved: S.PRESERVED,
}
_WITH_DOMAIN: dict[type, State] = {Destroy: S.SHUTDOWN, **_DEATHS}

TRANSITIONS: Mapping[State, Mapping[type, State]] = MappingProxyType({
    S.SHUTDOWN: {Start: S.CREATING_DOMAIN, Restore: S.RESTORING, Destroy: S.SHUTDOWN,
                 Adopted: S.RUNNING},
    S.REBOOTED: {Start: S.CREATING_DOMAIN, Restore: S.RESTORING, Destroy: S.SHUTDOWN,
                 Adopted: S.RUNNING},
    S.SUSPENDED: {Restore: S.RESTORING, Start: S.CREATING_DOMAIN, Destroy: S.SHUTDOWN,
                  Adopted: S.RUNNING},
    S.PRESERVED: {Start: S.CREATING_DOMAIN, Destroy: S.SHUTDOWN, DomainReleased: S.SHUTDOWN},
    S.CREATING_DOMAIN: {DomainBuilt: S.CREATING_DEVICES, StartAborted: S.SHUTDOWN,
                        **_WITH_DOMAIN},
    S.CREATING_DEVICES: {DevicesAdded: S.CREATED, StartAborted: S.SHUTDOWN, **_WITH_DOMAIN},
    S.CREATED: {Unpaused: S.RUNNING, Unpause: S.RUNNING, Pause: S.PAUSED,
                Shutdown: S.SHUTTING_DOWN, Reboot: S.REBOOTING, **_WITH_DOMAIN},
    S.RUNNING: {Pause: S.PAUSED, Shutdown: S.SHUTTING_DOWN, Reboot: S.REBOOTING,
                Suspend: S.SUSPENDING, **_WITH_DOMAIN},
    S.PAUSED: {Unpause: S.RUNNING, Unpaused: S.RUNNING, Shutdown: S.SHUTTING_DOWN,
               Reboot: S.REBOOTING, Suspend: S.SUSPENDING, **_WITH_DOMAIN},
    S.SHUTTING_DOWN: {ShutdownFailed: S.RUNNING, **_WITH_DOMAIN},
    S.REBOOTING: {ShutdownFailed: S.RUNNING, **_WITH_DOMAIN},
    S.SUSPENDING: {Saved: S.SUSPENDED, SuspendFailed: S.RUNNING, **_WITH_DOMAIN},
    S.RESTORING: {DevicesAdded: S.CREATED, StartAborted: S.SUSPENDED, **_WITH_DOMAIN},
})

OPERATIONS: Mapping[str, type] = MappingProxyType({
    "start": Start, "shutdown": Shutdown, "reboot": Reboot, "destroy": Destroy,
    "pause": Pause, "unpause": Unpause, "suspend": Suspend, "restore": Restore,
})
"""Task names and the request event each one starts with."""


class IllegalTransition(ValueError):
    """``event`` is not allowed in ``state``."""

    def __init__(self, state: State, event: object) -> None:
        name = type(event).__name__ if not isinstance(event, type) else event.__name__
        super().__init__(f"{name.lower()} is not allowed in state {state.value}")
        self.state = state
        self.event = event


def next_state(state: State, event: object) -> State:
    """The state after ``event`` (an instance or a class); :class:`IllegalTransition` if none."""
    kind = event if isinstance(event, type) else type(event)
    try:
        return TRANSITIONS[state][kind]
    except KeyError:
        raise IllegalTransition(state, event) from None


def allowed_events(state: State) -> tuple[type, ...]:
    """The event types ``state`` accepts."""
    return tuple(TRANSITIONS[state])


class DeathCause(enum.Enum):
    """Why a domain died, as seen from the hypervisor (the original's Xal reasons, fixed)."""

    POWEROFF = "poweroff"
    REBOOT = "reboot"
    SUSPEND = "suspend"
    CRASH = "crash"
    WATCHDOG = "watchdog"
    DESTROYED = "destroyed"
    """Dying without a shutdown reason, or vanished: destroyed by someone else, not a crash."""


@dataclass(frozen=True, slots=True)
class Reaction:
    """What to do about a death nobody asked for: the action and the event that records it."""

    action: Action | None
    event: DomainReleased | DomainRebooted | DomainPreserved
    restart: bool


def reaction(cause: DeathCause, on_poweroff: Action, on_reboot: Action,
             on_crash: Action) -> Reaction:
    """Apply the ``on_*`` configuration to an unexpected death."""
    action: Action | None
    if cause in (DeathCause.POWEROFF,):
        action = on_poweroff
    elif cause is DeathCause.REBOOT:
        action = on_reboot
    elif cause in (DeathCause.CRASH, DeathCause.WATCHDOG):
        action = on_crash
    else:  # destroyed from outside, or a suspend nobody asked for: clean up, nothing more
        return Reaction(None, DomainReleased(), False)
    if action is Action.RESTART:
        return Reaction(action, DomainRebooted(), True)
    if action is Action.PRESERVE:
        return Reaction(action, DomainPreserved(), False)
    return Reaction(action, DomainReleased(), False)


def render_table() -> str:
    """The transition table as a markdown table (docs/xenvm.md includes it verbatim)."""
    lines = ["| state | event | next state |", "|---|---|---|"]
    for state, row in TRANSITIONS.items():
        for event, target in row.items():
            lines.append(f"| {state.value} | {event.__name__} | {target.value} |")
    return "\n".join(lines) + "\n"
