"""VM states as xenmgr sees and publishes them: internal states, public strings, "running",
the ACPI state, the ``notify`` texts, the state hooks, and the mapping from our VM monitor.

**Internal states** (:class:`InternalState`) are the strings the original's domain tool wrote
for each VM: ``pre-create creating-domain creating-devices created running shutdown
shutdowning rebooting rebooted suspended suspending restoring paused``. A missing state node
means ``shutdown``; any other string is a :class:`StateError` naming it.

**Public strings** (the ``state`` property, the ``vm_state_changed`` signal; the ``VM_STATE``
enum of the interface file): the four creating sub-states -> ``creating``; ``running``;
``shutdowning`` -> ``stopping``; ``shutdown`` -> ``stopped``; ``rebooting``; ``rebooted``;
``suspending suspended restoring paused`` unchanged. Only the ``state`` *property* says
``locked`` instead of ``stopped``: when the VM has a ``crypto-user`` and that user's secure
store (``/config/sec/s-<user>``) is not mounted (:func:`login_required`); the signal always
says ``stopped``, as the original's did.

**Running** (:func:`is_running`) is any internal state but ``shutdown`` and ``rebooted``.

**ACPI state** (:func:`acpi_state`), from the internal state, whether the guest is PV, the
VM's ``hibernated`` flag and what the hypervisor reports for a running HVM guest: a stopped VM
is 5 (4 when hibernated); a PV guest is 0 while running; a running HVM guest is 3 when the
hypervisor says S3, else 0. As in the original, a ``rebooted`` VM that is marked hibernated
gives 0 (its rule maps only ``shutdown`` to 4).

**notify** (:func:`notify_text`, :func:`parse_notify`): xenmgr announces each internal state
as ``notify(uuid, "vm:state:<internal>")``, except that ``rebooted`` is announced as
``vm:state:shutdown`` (it is still recorded as a reboot); ``power-state:<n>`` announces an
ACPI change and ``rtc:<offset>`` a guest clock offset to save as ``time-offset``.

**Hooks** (:func:`state_hooks`): ``run-on-state-change`` gets the public state on every change
except the three creating sub-states of a start (``creating-domain``, ``creating-devices``,
``created``); ``running``, ``suspended`` and ``shutdown`` also run ``run-on-acpi-state-change``
with 0, 3 and 5.

**Our VM monitors** (``xen.xenvm``) notify ``vm:state:<state>`` with their lifecycle states,
which keep the original's strings; :data:`MONITOR_STATES` maps each to an internal state
(:func:`from_monitor_state`, :func:`from_monitor_notify`). Choices, one per monitor state:

* every state the original also had maps to itself;
* ``preserved`` (the guest died and the monitor keeps the dead domain because an ``on_*``
  action said *preserve*) maps to ``shutdown``: the guest no longer runs, xenmgr may start it
  again (the monitor destroys the kept domain first), and clients see ``stopped``. xenmgr's own
  configs never ask for *preserve* (see ``_vmconfig``), so this only happens to VMs configured
  by hand;
* the monitor has no ``pre-create`` (xenmgr itself used it before asking for a domain).

Monitor notifications that are not states (``error:crashed``) are not state changes:
:func:`from_monitor_notify` answers ``None`` for them.

**Host states** (:func:`host_public_state`): the host's xenstore node holds
``idle shutting-down rebooting going-to-sleep going-to-hibernate`` (missing or anything else
is ``idle``); the ``state`` property and ``state_changed`` signal of ``/host`` say ``idle
shutdowning rebooting sleeping hibernating``.

Failure behaviour: an unknown internal state, monitor state or malformed ``notify`` payload
raises :class:`StateError` naming the text. Pure: no I/O (the caller reads xenstore, the
hypervisor and ``/proc/mounts`` and passes what it read).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "HOST_STATES",
    "MONITOR_STATES",
    "PUBLIC_STATES",
    "AcpiNotice",
    "HookCalls",
    "InternalState",
    "Notice",
    "RtcNotice",
    "StateError",
    "StateNotice",
    "acpi_state",
    "crypto_mount_point",
    "from_monitor_notify",
    "from_monitor_state",
    "host_public_state",
    "is_running",
    "login_required",
    "mounted_paths",
    "notify_text",
    "parse_internal_state",
    "parse_notify",
    "public_state",
    "state_hooks",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


class StateError(ValueError):
    """A state string or notification that xenmgr does not know."""


class InternalState(enum.Enum):
    """The original's internal VM states; values are the strings."""

    PRE_CREATE = "pre-create"
    CREATING_DOMAIN = "creating-domain"
    CREATING_DEVICES = "creating-devices"
    CREATED = "created"
    RUNNING = "running"
    SHUTDOWN = "shutdown"
    SHUTTING_DOWN = "shutdowning"
    REBOOTING = "rebooting"
    REBOOTED = "rebooted"
    SUSPENDED = "suspended"
    SUSPENDING = "suspending"
    RESTORING = "restoring"
    PAUSED = "paused"


#: The public strings, in the order of the ``VM_STATE`` enum of the interface file.
PUBLIC_STATES = ("creating", "running", "stopping", "stopped", "locked", "rebooting",
                 "rebooted", "suspending", "suspended", "restoring", "paused")

_S = InternalState
_PUBLIC: Mapping[InternalState, str] = MappingProxyType({
    _S.PRE_CREATE: "creating",
    _S.CREATING_DOMAIN: "creating",
    _S.CREATING_DEVICES: "creating",
    _S.CREATED: "creating",
    _S.RUNNING: "running",
    _S.SHUTTING_DOWN: "stopping",
    _S.SHUTDOWN: "stopped",
    _S.REBOOTING: "rebooting",
    _S.REBOOTED: "rebooted",
    _S.SUSPENDING: "suspending",
    _S.SUSPENDED: "suspended",
    _S.RESTORING: "restoring",
    _S.PAUSED: "paused",
})
_BY_VALUE = {state.value: state for state in InternalState}


def parse_internal_state(text: str | None) -> InternalState:
    """The internal state a state node holds (``None``: the node is missing -> shutdown)."""
    if text is None:
        return InternalState.SHUTDOWN
    try:
        return _BY_VALUE[text]
    except KeyError:
        raise StateError(f"unexpected VM state string: {text!r}") from None


def crypto_mount_point(crypto_user: str) -> str:
    """Where the secure store of ``crypto_user`` is mounted when the user is logged in."""
    return f"/config/sec/s-{crypto_user}"


_OCTAL = re.compile(r"\\([0-7]{3})")


def mounted_paths(proc_mounts: str) -> frozenset[str]:
    """The mount points listed in the text of ``/proc/mounts`` (octal escapes decoded).

    The original searched the whole file for the mount point's text, so ``s-al`` matched a
    mounted ``s-alice``; we compare whole mount points.
    """
    out = set()
    for line in proc_mounts.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            out.add(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[1]))
    return frozenset(out)


def login_required(crypto_user: str | None, mounted: Collection[str]) -> bool:
    """Whether the VM needs its user to log in: it has a ``crypto-user`` and that user's secure
    store is not among the ``mounted`` paths. An empty ``crypto-user`` counts as none (setting
    it to "" removes the key)."""
    if not crypto_user:
        return False
    return crypto_mount_point(crypto_user) not in mounted


def public_state(state: InternalState, *, login_required: bool = False) -> str:
    """The public string of ``state`` for the ``state`` property (``login_required``: see
    :func:`login_required`; it turns ``stopped`` into ``locked``). For the ``vm_state_changed``
    signal pass nothing: it never says ``locked``."""
    if state is InternalState.SHUTDOWN and login_required:
        return "locked"
    return _PUBLIC[state]


def is_running(state: InternalState) -> bool:
    """xenmgr's "running": a domain exists or is being made (not shutdown, not rebooted)."""
    return state not in (InternalState.SHUTDOWN, InternalState.REBOOTED)


def acpi_state(state: InternalState, *, pv: bool, hibernated: bool,
               hypervisor_acpi: int | None = None) -> int:
    """The ``acpi-state`` property: 0, 3, 4 or 5.

    ``pv``: the VM's virt-type is ``pv``; ``hibernated``: its db ``hibernated`` flag;
    ``hypervisor_acpi``: the ACPI state the hypervisor reports for the running domain (only
    asked for a running HVM/PVH guest; ``None`` or -1 when it cannot tell).
    """
    if state is InternalState.SHUTDOWN:
        return 4 if hibernated else 5
    if state is InternalState.REBOOTED and not hibernated:
        return 5
    if pv:
        low = 0
    elif not is_running(state):
        low = 5
    else:
        low = hypervisor_acpi if hypervisor_acpi is not None else -1
    return 3 if low == 3 else 0


def notify_text(state: InternalState) -> str:
    """The ``notify`` message announcing ``state`` (``rebooted`` is announced as shutdown)."""
    shown = InternalState.SHUTDOWN if state is InternalState.REBOOTED else state
    return f"vm:state:{shown.value}"


@dataclass(frozen=True, slots=True)
class StateNotice:
    """``vm:state:<internal>``."""

    state: InternalState


@dataclass(frozen=True, slots=True)
class AcpiNotice:
    """``power-state:<n>``: the guest's ACPI state changed."""

    acpi: int


@dataclass(frozen=True, slots=True)
class RtcNotice:
    """``rtc:<offset>``: the guest set its clock; ``offset`` (seconds) becomes ``time-offset``."""

    offset: int


Notice = StateNotice | AcpiNotice | RtcNotice
_INT = re.compile(r"-?[0-9]{1,18}")


def parse_notify(message: str) -> Notice | None:
    """What a ``notify`` message means to xenmgr; ``None`` for messages it does not act on
    (other prefixes). A known prefix with a bad value is a :class:`StateError`."""
    kind, sep, rest = message.partition(":")
    if not sep:
        return None
    if kind == "vm":
        what, sep, state = rest.partition(":")
        if what != "state" or not sep:
            return None
        return StateNotice(parse_internal_state(state))
    if kind in ("power-state", "rtc"):
        if not _INT.fullmatch(rest):
            raise StateError(f"bad {kind} notification: {message!r}")
        return AcpiNotice(int(rest)) if kind == "power-state" else RtcNotice(int(rest))
    return None


@dataclass(frozen=True, slots=True)
class HookCalls:
    """The hook runs a state change causes: ``state`` is the argument of
    ``run-on-state-change`` (``None``: not run), ``acpi`` that of ``run-on-acpi-state-change``."""

    state: str | None
    acpi: int | None


_HOOK_ACPI = {_S.RUNNING: 0, _S.SUSPENDED: 3, _S.SHUTDOWN: 5}
_NO_HOOK = frozenset({_S.CREATING_DOMAIN, _S.CREATING_DEVICES, _S.CREATED})


def state_hooks(state: InternalState) -> HookCalls:
    """Which hooks a change to ``state`` runs, with which argument (after the VM's uuid)."""
    if state in _NO_HOOK:
        return HookCalls(None, None)
    return HookCalls(_PUBLIC[state], _HOOK_ACPI.get(state))


#: Our VM monitor's lifecycle states (``xen.xenvm``, the ``vm:state:<state>`` it notifies)
#: -> xenmgr's internal state. Every monitor state is here (a test checks it).
MONITOR_STATES: Mapping[str, InternalState] = MappingProxyType({
    "shutdown": _S.SHUTDOWN,
    "creating-domain": _S.CREATING_DOMAIN,
    "creating-devices": _S.CREATING_DEVICES,
    "created": _S.CREATED,
    "running": _S.RUNNING,
    "paused": _S.PAUSED,
    "shutdowning": _S.SHUTTING_DOWN,
    "rebooting": _S.REBOOTING,
    "rebooted": _S.REBOOTED,
    "suspending": _S.SUSPENDING,
    "suspended": _S.SUSPENDED,
    "restoring": _S.RESTORING,
    "preserved": _S.SHUTDOWN,
})


def from_monitor_state(value: str) -> InternalState:
    """xenmgr's internal state for a state of our VM monitor."""
    try:
        return MONITOR_STATES[value]
    except KeyError:
        raise StateError(f"unknown VM monitor state: {value!r}") from None


def from_monitor_notify(message: str) -> InternalState | None:
    """The internal state a monitor notification announces (``None``: not a state change)."""
    prefix = "vm:state:"
    if not message.startswith(prefix):
        return None
    return from_monitor_state(message[len(prefix):])


#: The host's xenstore state -> the public string of ``/host``'s ``state``.
HOST_STATES: Mapping[str, str] = MappingProxyType({
    "idle": "idle",
    "shutting-down": "shutdowning",
    "rebooting": "rebooting",
    "going-to-sleep": "sleeping",
    "going-to-hibernate": "hibernating",
})


def host_public_state(node: str | None) -> str:
    """``/host``'s ``state`` for the host-state node's value (missing or unknown: idle)."""
    return HOST_STATES.get(node or "idle", "idle")
