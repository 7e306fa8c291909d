"""A VM's state as one immutable value, what queries read and what a monitor persists (pure).

A :class:`VmView` is a machine's whole state: lifecycle state, domid, stubdomain domid,
applied and pending config, the **operation in flight** and the **pending action**. The
monitor publishes it after every change (queries read it, never waiting behind an operation)
and persists its encoding (the snapshot). An
operation records itself (one of :data:`Operation`: :class:`Starting`, :class:`ShuttingDown`,
:class:`Rebooting`, :class:`Destroying`, :class:`Suspending`, :class:`Restoring`) before its
first side effect and is cleared when it ends; a restarted monitor finishes or rolls it back
(``xen.xenvm._reconcile``). A :class:`PendingAction` is an ``on_*`` action decided for a
death and not yet carried out.

Encoding (:func:`encode_snapshot`): a msgpack-able dict, version :data:`SNAPSHOT_VERSION` (2)::

    {"v": 2, "uuid", "state", "domid", "stubdom_domid", "config", "next_config",
     "op": {"kind": "start" | "shutdown" | "reboot" | "destroy" | "suspend" | "restore",
            <the operation's fields>} | None,
     "pending_action": {"domid", "cause", "action": <Action value> | None,
                        "event": "released" | "rebooted" | "preserved"} | None}

:func:`decode_snapshot` reads version 2 and version 1 (written before operations were typed:
``"op": {"name": <task>, ...}``, ``"pending_action"`` with ``"action": "none"`` and the event's
class name), so a monitor restarted after an upgrade still finds its domain. Anything else (an
unknown version, another shape, a bad value) is a :class:`SnapshotError` naming what was
wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from xen.xenvm._config import VmConfig, config_from_dict, config_to_dict
from xen.xenvm._config_values import Action, ConfigError
from xen.xenvm._lifecycle import (
    DeathCause,
    DomainPreserved,
    DomainRebooted,
    DomainReleased,
    State,
)

__all__ = [
    "OPERATION_TYPES",
    "SNAPSHOT_VERSION",
    "DeathEvent",
    "Destroying",
    "Operation",
    "PendingAction",
    "Rebooting",
    "Restoring",
    "ShuttingDown",
    "SnapshotError",
    "Starting",
    "Suspending",
    "VmView",
    "decode_snapshot",
    "encode_snapshot",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

SNAPSHOT_VERSION = 2


class SnapshotError(ValueError):
    """A snapshot this version cannot read."""


# ------------------------------------------------------------------ operations in flight


@dataclass(frozen=True, slots=True)
class Starting:
    """A start (create, build, plug devices, unpause unless ``paused``)."""

    task: ClassVar[str] = "start"
    paused: bool = False


@dataclass(frozen=True, slots=True)
class ShuttingDown:
    """A shutdown request (``force``: a hard shutdown by the hypervisor)."""

    task: ClassVar[str] = "shutdown"
    force: bool = False


@dataclass(frozen=True, slots=True)
class Rebooting:
    """A reboot request; ``auto_start``: start again once the domain is gone."""

    task: ClassVar[str] = "reboot"
    force: bool = False
    auto_start: bool = True


@dataclass(frozen=True, slots=True)
class Destroying:
    """A destroy."""

    task: ClassVar[str] = "destroy"


@dataclass(frozen=True, slots=True)
class Suspending:
    """A suspend to ``file``; ``written`` once the image is complete on disk."""

    task: ClassVar[str] = "suspend"
    file: str
    written: bool = False


@dataclass(frozen=True, slots=True)
class Restoring:
    """A restore from ``file`` (then an unpause unless ``paused``)."""

    task: ClassVar[str] = "restore"
    file: str
    paused: bool = False


Operation = Starting | ShuttingDown | Rebooting | Destroying | Suspending | Restoring
OPERATION_TYPES: tuple[type[Operation], ...] = (
    Starting, ShuttingDown, Rebooting, Destroying, Suspending, Restoring)
_OPS: Mapping[str, type[Operation]] = {cls.task: cls for cls in OPERATION_TYPES}

_FIELDS: Mapping[type[Operation], tuple[tuple[str, type, Any], ...]] = {
    # field, type, default (``...``: required)
    Starting: (("paused", bool, False),),
    ShuttingDown: (("force", bool, False),),
    Rebooting: (("force", bool, False), ("auto_start", bool, True)),
    Destroying: (),
    Suspending: (("file", str, ...), ("written", bool, False)),
    # a snapshot older than the field does not say: read as paused (a restart leaves it so)
    Restoring: (("file", str, ...), ("paused", bool, True)),
}


# ------------------------------------------------------------------ pending action

DeathEvent = DomainReleased | DomainRebooted | DomainPreserved
_EVENTS: Mapping[str, DeathEvent] = {
    "released": DomainReleased(), "rebooted": DomainRebooted(), "preserved": DomainPreserved()}
_EVENTS_V1: Mapping[str, DeathEvent] = {type(e).__name__: e for e in _EVENTS.values()}


@dataclass(frozen=True, slots=True)
class PendingAction:
    """An ``on_*`` action decided for the death of ``domid`` and not yet carried out."""

    domid: int
    cause: DeathCause
    action: Action | None
    event: DeathEvent


@dataclass(frozen=True, slots=True)
class VmView:
    """A machine's state (see the module docstring)."""

    uuid: str
    state: State
    domid: int
    stubdom_domid: int
    config: VmConfig
    next_config: VmConfig | None
    op: Operation | None
    pending: PendingAction | None

    @property
    def current_config(self) -> VmConfig:
        """The config as it will be at the next start (the pending one if any)."""
        return self.next_config or self.config


# ------------------------------------------------------------------ encoding


def encode_snapshot(snap: VmView) -> dict[str, Any]:
    """The snapshot of ``snap``: a msgpack-able dict (version 2)."""
    return {
        "v": SNAPSHOT_VERSION,
        "uuid": snap.uuid,
        "state": snap.state.value,
        "domid": snap.domid,
        "stubdom_domid": snap.stubdom_domid,
        "config": config_to_dict(snap.config),
        "next_config": config_to_dict(snap.next_config) if snap.next_config else None,
        "op": _encode_op(snap.op) if snap.op is not None else None,
        "pending_action": _encode_pending(snap.pending) if snap.pending is not None else None,
    }


def _encode_op(op: Operation) -> dict[str, Any]:
    return {"kind": op.task, **{name: getattr(op, name) for name, _t, _d in _FIELDS[type(op)]}}


def _encode_pending(p: PendingAction) -> dict[str, Any]:
    event = next(tag for tag, e in _EVENTS.items() if e == p.event)
    return {"domid": p.domid, "cause": p.cause.value,
            "action": p.action.value if p.action is not None else None, "event": event}


# ------------------------------------------------------------------ decoding


def decode_snapshot(data: Mapping[str, Any]) -> VmView:
    """The snapshot in ``data`` (version 2 or 1); :class:`SnapshotError` otherwise."""
    version = data.get("v")
    if version not in (1, SNAPSHOT_VERSION):
        raise SnapshotError(f"unknown snapshot version {version!r}")
    try:
        config = config_from_dict(data.get("config"))
        next_raw = data.get("next_config")
        next_config = config_from_dict(next_raw) if next_raw else None
        state = State(data.get("state"))
    except (ConfigError, ValueError) as exc:
        raise SnapshotError(f"bad snapshot: {exc}") from None
    op_raw, pending_raw = data.get("op"), data.get("pending_action")
    return VmView(
        uuid=_typed(data, "uuid", str, ...),
        state=state,
        domid=_typed(data, "domid", int, -1),
        stubdom_domid=_typed(data, "stubdom_domid", int, -1),
        config=config,
        next_config=next_config,
        op=_decode_op(op_raw, "kind" if version == SNAPSHOT_VERSION else "name")
        if op_raw else None,
        pending=(_decode_pending(pending_raw) if version == SNAPSHOT_VERSION
                 else _decode_pending_v1(pending_raw)) if pending_raw else None,
    )


def _typed(data: Any, name: str, kind: type, default: Any) -> Any:
    if not isinstance(data, Mapping):
        raise SnapshotError(f"expected a map, got {type(data).__name__}")
    if name not in data:
        if default is ...:
            raise SnapshotError(f"missing {name}")
        return default
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SnapshotError(f"{name} must be {kind.__name__}, not {value!r}")
    return value


def _decode_op(raw: Any, key: str) -> Operation:
    kind = _typed(raw, key, str, ...)
    cls = _OPS.get(kind)
    if cls is None:
        raise SnapshotError(f"unknown operation {kind!r}")
    return cls(**{name: _typed(raw, name, t, default) for name, t, default in _FIELDS[cls]})


def _decode_pending(raw: Any) -> PendingAction:
    event = _EVENTS.get(_typed(raw, "event", str, ...))
    return _pending(raw, event, raw.get("action"))


def _decode_pending_v1(raw: Any) -> PendingAction:
    event = _EVENTS_V1.get(_typed(raw, "event", str, ...))
    action = raw.get("action")
    return _pending(raw, event, None if action == "none" else action)


def _pending(raw: Mapping[str, Any], event: DeathEvent | None, action: Any) -> PendingAction:
    if event is None:
        raise SnapshotError(f"unknown death event {raw.get('event')!r}")
    domid = _typed(raw, "domid", int, ...)
    cause = _typed(raw, "cause", str, ...)
    try:
        return PendingAction(domid, DeathCause(cause),
                             Action(action) if action is not None else None, event)
    except ValueError as exc:
        raise SnapshotError(f"bad pending action: {exc}") from None
