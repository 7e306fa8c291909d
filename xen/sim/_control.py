"""The simulated host's pure core: the control area (behaviours) and the xenbus rules its
simulated guests and backends follow. No I/O, no threads.

Control area. Tests (and the toolstack's tests) steer simulated guests and backends by
writing a sim-only xenstore area as dom0; a real host has no ``/sim`` and nothing in the
toolstack reads it. Unprivileged domains cannot read it (dom0 owns it, default ``n0``).

- ``/sim/behaviour/default/<key>``          every domain
- ``/sim/behaviour/name/<name>/<key>``      domains whose ``/local/domain/<d>/name`` is <name>
- ``/sim/behaviour/uuid/<uuid>/<key>``      domains whose handle (the VM UUID) is <uuid>
- ``/sim/behaviour/domain/<domid>/<key>``   one domain

Later layers win (domain > uuid > name > default), key by key. Keys and values (`KEYS`):
``crash`` / ``reboot`` = seconds after which the guest crashes / reboots by itself (``0``:
at once; counted from when the guest starts running or from when the value changes);
``hang`` (bool: the guest stops responding to everything, its domain keeps running);
``ignore-shutdown`` (bool: ``control/shutdown`` is never acknowledged); ``shutdown-delay``
(seconds between the acknowledgement and the shutdown, default 0.05); ``shutdown-as`` (a
reason the guest shuts down with instead of the one asked for: poweroff, reboot, suspend,
crash, halt); ``frontend-stop`` / ``frontend-stop-<kind>`` (a xenbus state, number or name,
at which the guest's frontends, or those of one kind, stop); ``backend-stop`` (the same for
the backends); ``backend-fail`` (kinds whose backend fails when the frontend connects: it
writes the device's error node and goes Closing); ``hotplug-fail`` (kinds whose hotplug script
never reports); ``hotplug-delay`` (seconds before the hotplug script reports). Kind lists are
comma-separated kinds, or ``all`` / ``1``; booleans are ``1``/``0``/``true``/``false``.

Status: the host writes ``/sim/status/<domid>/guest`` = waiting (running, not introduced to
xenstore yet), running, paused, hung or stopped.

Failure: a bad key or value raises `BehaviourError` (a ValueError) naming the key and value;
`resolve_behaviour` collects them and keeps every good key.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from xen.hypervisor import ShutdownReason
from xen.xenops import XenbusState

__all__ = [
    "BEHAVIOUR_ROOT",
    "KEYS",
    "SIM_ROOT",
    "STATUS_ROOT",
    "BackendEffect",
    "BackendStep",
    "BackendView",
    "Behaviour",
    "BehaviourError",
    "ShutdownAnswer",
    "answer_shutdown",
    "backend_next",
    "behaviour_dirs",
    "clamp_state",
    "frontend_next",
    "frontend_ring_keys",
    "is_net",
    "parse_state",
    "resolve_behaviour",
    "seed_entries",
    "status_path",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

SIM_ROOT = "/sim"
BEHAVIOUR_ROOT = "/sim/behaviour"
STATUS_ROOT = "/sim/status"
_S = XenbusState
_DEFAULT_SHUTDOWN_DELAY = 0.05
_MAX_SECONDS = 86400.0  # a day: anything longer is a typo
_SCOPES = ("default", "name", "uuid", "domain")
_NODE_NAME = re.compile(r"[A-Za-z0-9_@-]+")  # xenstored's path characters, one element
_REASONS = {
    "poweroff": ShutdownReason.POWEROFF,
    "reboot": ShutdownReason.REBOOT,
    "suspend": ShutdownReason.SUSPEND,
    "crash": ShutdownReason.CRASH,
    "halt": ShutdownReason.HALT,
}


class BehaviourError(ValueError):
    """A behaviour key or value that cannot be used."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What one simulated guest and the backends of its devices do (see the module doc)."""

    crash_after: float | None = None
    reboot_after: float | None = None
    hang: bool = False
    ignore_shutdown: bool = False
    shutdown_delay: float = _DEFAULT_SHUTDOWN_DELAY
    shutdown_as: ShutdownReason | None = None
    frontend_stop: tuple[tuple[str, XenbusState], ...] = ()  # kind ("*": all) -> state
    backend_stop: XenbusState | None = None
    backend_fail: frozenset[str] = field(default_factory=frozenset)  # kinds; "*": all
    hotplug_fail: frozenset[str] = field(default_factory=frozenset)
    hotplug_delay: float = 0.0

    def frontend_stop_for(self, kind: str) -> XenbusState | None:
        stops = dict(self.frontend_stop)
        return stops.get(kind, stops.get("*"))

    def backend_fails(self, kind: str) -> bool:
        return "*" in self.backend_fail or kind in self.backend_fail

    def hotplug_fails(self, kind: str) -> bool:
        return "*" in self.hotplug_fail or kind in self.hotplug_fail


def status_path(domid: int) -> str:
    return f"{STATUS_ROOT}/{domid}/guest"


def behaviour_dirs(domid: int, name: str | None, uuid: str | None) -> list[str]:
    """The control directories that apply to a domain, lowest precedence first."""
    dirs = [f"{BEHAVIOUR_ROOT}/default"]
    if name:
        dirs.append(f"{BEHAVIOUR_ROOT}/name/{name}")
    if uuid:
        dirs.append(f"{BEHAVIOUR_ROOT}/uuid/{uuid}")
    dirs.append(f"{BEHAVIOUR_ROOT}/domain/{domid}")
    return dirs


# --- values ------------------------------------------------------------------------------------


def _seconds(key: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise BehaviourError(f"{key} must be a number of seconds, got {value!r}") from None
    if not 0 <= seconds <= _MAX_SECONDS or math.isnan(seconds):
        raise BehaviourError(f"{key} must be 0..{_MAX_SECONDS:.0f} seconds, got {value!r}")
    return seconds


def _bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise BehaviourError(f"{key} must be 1/0/true/false, got {value!r}")


def _kinds(key: str, value: str) -> frozenset[str]:
    items = {item.strip() for item in value.split(",") if item.strip()}
    if items & {"all", "1", "*", "true"}:
        return frozenset({"*"})
    if items <= {"0", "false", "none"}:
        return frozenset()
    bad = [i for i in items if not i.isalnum()]
    if bad:
        raise BehaviourError(f"{key} must list device kinds (vbd,vif,...) or 'all', got {value!r}")
    return frozenset(items)


def parse_state(value: str) -> XenbusState:
    """A xenbus state by number ("3") or name ("initialised", "init-wait", "InitWait")."""
    text = value.strip()
    if text.isdigit():
        try:
            return XenbusState.parse(text)
        except ValueError:
            raise BehaviourError(f"not a xenbus state: {value!r} (0..6)") from None
    wanted = text.lower().replace("-", "").replace("_", "")
    for state in XenbusState:
        if state.description == wanted:
            return state
    raise BehaviourError(f"not a xenbus state: {value!r} (0..6 or a name like initwait)")


def _reason(key: str, value: str) -> ShutdownReason:
    reason = _REASONS.get(value.strip().lower())
    if reason is None:
        raise BehaviourError(f"{key} must be one of {sorted(_REASONS)}, got {value!r}")
    return reason


KEYS = ("crash", "reboot", "hang", "ignore-shutdown", "shutdown-delay", "shutdown-as",
        "frontend-stop", "backend-stop", "backend-fail", "hotplug-fail", "hotplug-delay")


def _apply(fields_: dict[str, object], stops: dict[str, XenbusState], key: str,
           value: str) -> None:
    if key in ("crash", "reboot"):
        fields_[f"{key}_after"] = _seconds(key, value)
    elif key in ("hang", "ignore-shutdown"):
        fields_[key.replace("-", "_")] = _bool(key, value)
    elif key in ("shutdown-delay", "hotplug-delay"):
        fields_[key.replace("-", "_")] = _seconds(key, value)
    elif key == "shutdown-as":
        fields_["shutdown_as"] = _reason(key, value)
    elif key == "frontend-stop":
        stops["*"] = parse_state(value)
    elif key.startswith("frontend-stop-") and key[len("frontend-stop-"):].isalnum():
        stops[key[len("frontend-stop-"):]] = parse_state(value)
    elif key == "backend-stop":
        fields_["backend_stop"] = parse_state(value)
    elif key in ("backend-fail", "hotplug-fail"):
        fields_[key.replace("-", "_")] = _kinds(key, value)
    else:
        raise BehaviourError(f"unknown behaviour key {key!r} (known: {', '.join(KEYS)},"
                             " frontend-stop-<kind>)")


def resolve_behaviour(
    layers: Sequence[Mapping[str, str]],
) -> tuple[Behaviour, list[BehaviourError]]:
    """Merge key/value layers (lowest precedence first) into a `Behaviour`. Bad keys or
    values are returned as errors and skipped; every other key applies."""
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(layer)
    values: dict[str, object] = {}
    stops: dict[str, XenbusState] = {}
    errors: list[BehaviourError] = []
    for key in sorted(merged):
        try:
            _apply(values, stops, key, merged[key])
        except BehaviourError as exc:
            errors.append(exc)
    values["frontend_stop"] = tuple(sorted(stops.items()))
    return Behaviour(**values), errors  # type: ignore[arg-type]


def seed_entries(config: Mapping[str, object]) -> list[tuple[str, str]]:
    """The control-area nodes for a defaults document (from ``OXT_SIMHOST_BEHAVIOUR`` or
    ``--behaviour``): ``{"default": {key: value}, "name": {name: {key: value}}, "uuid":
    {...}, "domain": {...}}``. Raises `BehaviourError` on any bad scope, key or value."""
    if not isinstance(config, Mapping):
        raise BehaviourError(f"behaviour defaults must be an object, got {type(config).__name__}")
    out: list[tuple[str, str]] = []
    for scope, body in config.items():
        if scope not in _SCOPES:
            raise BehaviourError(f"unknown behaviour scope {scope!r} (known: {_SCOPES})")
        if not isinstance(body, Mapping):
            raise BehaviourError(f"behaviour scope {scope!r} must be an object")
        groups = {"": body} if scope == "default" else body
        for ident, keys in groups.items():
            if not isinstance(keys, Mapping):
                raise BehaviourError(f"behaviour {scope} entry {ident!r} must be an object")
            if scope != "default" and not _NODE_NAME.fullmatch(str(ident)):
                raise BehaviourError(f"behaviour {scope} {ident!r} is not a xenstore node name")
            base = f"{BEHAVIOUR_ROOT}/{scope}" + (f"/{ident}" if scope != "default" else "")
            layer = {str(k): _text(v) for k, v in keys.items()}
            _, errors = resolve_behaviour([layer])
            if errors:
                raise errors[0]
            out += [(f"{base}/{k}", v) for k, v in sorted(layer.items())]
    return out


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


# --- control/shutdown --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShutdownAnswer:
    """What a guest does with a ``control/shutdown`` value: acknowledge it (clear the node)
    and, if ``reason`` is set, shut its domain down with it after ``delay`` seconds."""

    ack: bool
    reason: ShutdownReason | None
    delay: float = 0.0


def answer_shutdown(value: str, behaviour: Behaviour) -> ShutdownAnswer:
    """As a Linux PV guest: every non-empty request is acknowledged (unknown ones are then
    ignored); poweroff and halt power off (Linux's halt handler powers off), reboot reboots,
    suspend suspends, hibernate powers off at the end; s3 is acknowledged only (sleep is not
    simulated). ``ignore-shutdown`` never acknowledges; ``shutdown-as`` replaces the reason."""
    request = value.strip()
    if not request or behaviour.ignore_shutdown:
        return ShutdownAnswer(False, None)
    reason = {"poweroff": ShutdownReason.POWEROFF, "halt": ShutdownReason.POWEROFF,
              "hibernate": ShutdownReason.POWEROFF, "reboot": ShutdownReason.REBOOT,
              "suspend": ShutdownReason.SUSPEND}.get(request)
    if reason is not None and behaviour.shutdown_as is not None:
        reason = behaviour.shutdown_as
    return ShutdownAnswer(True, reason, behaviour.shutdown_delay)


# --- xenbus rules ------------------------------------------------------------------------------


def is_net(kind: str) -> bool:
    """netfront/netback flavour (the frontend goes straight to Connected)."""
    return kind in ("vif", "vwif")


# Frontend: backend state -> {frontend state -> next frontend state}. Block-like frontends
# (blkfront, console) publish their rings and go Initialised on InitWait, then Connected when
# the backend is; netfront goes straight to Connected. A closing or closed backend closes the
# frontend (blkfront/netfront go straight to Closed). A backend back in InitWait after a close
# makes a closed frontend connect again.
_CLOSE_ALL = {_S.INITIALISING: _S.CLOSED, _S.INITIALISED: _S.CLOSED, _S.CONNECTED: _S.CLOSED,
              _S.CLOSING: _S.CLOSED}
FRONTEND_BLOCK: Mapping[XenbusState, Mapping[XenbusState, XenbusState]] = {
    _S.INIT_WAIT: {_S.INITIALISING: _S.INITIALISED, _S.CLOSED: _S.INITIALISED},
    _S.CONNECTED: {_S.INITIALISING: _S.INITIALISED, _S.INITIALISED: _S.CONNECTED},
    _S.CLOSING: _CLOSE_ALL,
    _S.CLOSED: _CLOSE_ALL,
}
FRONTEND_NET: Mapping[XenbusState, Mapping[XenbusState, XenbusState]] = {
    _S.INIT_WAIT: {_S.INITIALISING: _S.CONNECTED, _S.CLOSED: _S.CONNECTED},
    _S.CONNECTED: {_S.INITIALISING: _S.CONNECTED},
    _S.CLOSING: _CLOSE_ALL,
    _S.CLOSED: _CLOSE_ALL,
}


def clamp_state(current: XenbusState, target: XenbusState | None,
                stop: XenbusState | None) -> XenbusState | None:
    """Apply a stop state: an end that reached ``stop`` stays there; one below it goes no
    further than ``stop``. None: no change."""
    if target is None or target == current:
        return None
    if stop is None:
        return target
    if current == stop:
        return None
    if target > stop:
        return stop if current < stop else None
    return target


def frontend_next(kind: str, frontend: XenbusState, backend: XenbusState | None,
                  stop: XenbusState | None = None) -> XenbusState | None:
    """The state a frontend moves to next (None: it stays), given the backend's state
    (None: missing or unreadable) and a stop state."""
    if backend is None:
        return None
    table = FRONTEND_NET if is_net(kind) else FRONTEND_BLOCK
    return clamp_state(frontend, table.get(backend, {}).get(frontend), stop)


def frontend_ring_keys(kind: str, domid: int, devid: int) -> tuple[tuple[str, str], ...]:
    """The keys a frontend publishes before leaving Initialising (made-up grant refs and
    event channels)."""
    ref, port = str(8 + devid % 1000), str(10 + devid % 1000)
    if is_net(kind):
        return (("tx-ring-ref", ref), ("rx-ring-ref", str(int(ref) + 1)),
                ("event-channel", port), ("request-rx-copy", "1"), ("feature-rx-notify", "1"))
    if kind == "console":
        return (("ring-ref", ref), ("port", port))
    if kind == "pci":  # pcifront: its shared page, event channel and XEN_PCI_MAGIC
        return (("pci-op-ref", ref), ("event-channel", port), ("magic", "7"))
    return (("ring-ref", ref), ("event-channel", port), ("protocol", "x86_64-abi"))


@dataclass(frozen=True, slots=True)
class BackendView:
    """What a backend driver sees of one device. ``state``: its own ``state`` (None: the
    backend directory is gone); ``frontend``: the frontend's state (None: the frontend
    directory is gone; UNKNOWN: it has no ``state``); ``online``: the backend's ``online``
    is 1; ``hotplug_done``: the hotplug script reported (or the kind has none);
    ``connected``: the backend mapped the frontend's rings (holds its domain)."""

    kind: str
    state: XenbusState | None
    frontend: XenbusState | None
    online: bool = True
    hotplug_done: bool = True
    connected: bool = False


class BackendEffect(enum.Enum):
    CONNECT = "connect"          # map the rings (hold the domain), publish connect keys
    FAIL = "fail"                # write the device's error node instead of connecting
    DISCONNECT = "disconnect"    # unmap (unhold)
    UNREGISTER = "unregister"    # the device goes: the hotplug script's remove runs


@dataclass(frozen=True, slots=True)
class BackendStep:
    """The backend's next move: a state to write (None: none) and effects, in order."""

    state: XenbusState | None = None
    effects: tuple[BackendEffect, ...] = ()


def backend_next(view: BackendView, *, fail: bool = False,
                 stop: XenbusState | None = None) -> BackendStep:
    """One step of a backend driver (blkback/netback/console backend, as Linux's xenbus):

    - backend directory gone: disconnect, unregister;
    - frontend gone: Closed, disconnect, unregister (Linux: frontend Unknown);
    - Initialising: probe -> InitWait;
    - InitWait: when the frontend is Initialised/Connected (netback: Connected) and the
      hotplug script reported -> Connected (with ``fail``: the error node and Closing);
      a closing frontend -> Closing; a closed one -> Closed;
    - Connected: frontend Closing -> Closing; Closed -> Closed and disconnect;
    - Closing (the toolstack's request, or ours): once the frontend is Closed -> Closed and
      disconnect;
    - Closed: unregister when ``online`` is 0; a frontend starting again -> InitWait.
    ``stop`` holds the state as in `clamp_state`; effects tied to a state change wait too.
    """
    E = BackendEffect
    connected = (E.DISCONNECT,) if view.connected else ()
    if view.state is None:
        return BackendStep(None, (*connected, E.UNREGISTER))
    if view.frontend is None:
        closed = None if view.state == _S.CLOSED else _S.CLOSED
        return BackendStep(closed, (*connected, E.UNREGISTER))
    state, fe = view.state, view.frontend
    target: XenbusState | None = None
    effects: tuple[BackendEffect, ...] = ()
    ready = (_S.CONNECTED,) if is_net(view.kind) else (_S.INITIALISED, _S.CONNECTED)
    if state == _S.INITIALISING:
        target = _S.INIT_WAIT
    elif state == _S.INIT_WAIT:
        if fe in ready and view.hotplug_done:
            target, effects = (_S.CLOSING, (E.FAIL,)) if fail else (_S.CONNECTED, (E.CONNECT,))
        elif fe == _S.CLOSING:
            target = _S.CLOSING
        elif fe == _S.CLOSED:
            target = _S.CLOSED
    elif state == _S.CONNECTED:
        if fe == _S.CLOSING:
            target = _S.CLOSING
        elif fe == _S.CLOSED:
            target, effects = _S.CLOSED, connected
    elif state == _S.CLOSING:
        if fe in (_S.CLOSED, _S.UNKNOWN):
            target, effects = _S.CLOSED, connected
    elif state == _S.CLOSED:
        if not view.online:
            return BackendStep(None, (*connected, E.UNREGISTER))
        if fe == _S.INITIALISING:
            target = _S.INIT_WAIT
    clamped = clamp_state(state, target, stop)
    if clamped is None:
        return BackendStep()
    if clamped != target:
        return BackendStep(clamped)
    if clamped == _S.CLOSED and not view.online:
        effects = (*effects, E.UNREGISTER)
    return BackendStep(clamped, effects)
