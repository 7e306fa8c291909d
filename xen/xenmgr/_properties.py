"""Reading and setting xenmgr's DBus properties against the config database (pure).

:data:`BINDINGS` maps ``(interface, property)`` to its :class:`~xen.xenmgr._binding.Binding`
for every property of every xenmgr interface file (tables in ``_vm_properties`` and
``_object_properties``; a test checks that each declared property has exactly one).

:func:`read_property` answers a property from a :class:`~xen.xenmgr._dbview.DbView` of the
database rooted at ``/`` (it may hold only the parts the caller read: ``/vm/<uuid>`` for a VM
property, ``/xenmgr`` ... for host-wide ones) and a :class:`Target` (the VM uuid, the disk id,
the nic id). A missing key gives the binding's default, never an error. A ``Computed``
property raises :class:`NeedsService` naming what it needs; an ``Unsupported`` one a
:class:`~xen.xenmgr._errors.XenmgrError` with the reason.

:func:`plan_set` checks a new value and answers a :class:`SetPlan`: the database operations
(:class:`Write`, :class:`Remove`, in order) and the effects the service must carry out. As the
original: nothing is written when the stored value already equals the new one (host-wide keys
and ``download-progress`` excepted: always written); nothing at all when the VM does not
exist; a guarded setter of a VM whose ``policies/modify-vm-settings`` is false fails with
error 202; a read-only property with error 214.

Failure behaviour: a new value of the wrong type or outside its allowed values raises a plain
:class:`~xen.xenmgr._errors.XenmgrError` "property <name>: <value> <reason>"; a disk or nic that
does not exist gives error 206 or 222; a stored value that does not fit its key raises
:class:`~xen.xenmgr._codecs.SchemaError` naming the key and the value; an unknown property
``KeyError``. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from xen.xenmgr._binding import (
    Binding,
    Codec,
    Computed,
    Derived,
    Effect,
    Fixed,
    Scope,
    Stored,
    Unsupported,
    Value,
)
from xen.xenmgr._codecs import SchemaError, decode_bool
from xen.xenmgr._dbview import DbView
from xen.xenmgr._devices import read_disks, read_nic, read_nics
from xen.xenmgr._errors import error, plain
from xen.xenmgr._object_properties import object_bindings
from xen.xenmgr._schema import network_path
from xen.xenmgr._vm_properties import vm_bindings

__all__ = [
    "BINDINGS",
    "DEFAULT_ISO_DIR",
    "NeedsService",
    "Remove",
    "SetPlan",
    "Target",
    "Write",
    "binding",
    "plan_set",
    "portica_enabled",
    "read_property",
    "seamless_traffic",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

DEFAULT_ISO_DIR = "/storage/isos"


def _index(bindings: tuple[Binding, ...]) -> Mapping[tuple[str, str], Binding]:
    table = {(b.interface, b.name): b for b in bindings}
    assert len(table) == len(bindings), "a property is bound twice"
    return MappingProxyType(table)


#: Every binding, by (interface, property name).
BINDINGS: Mapping[tuple[str, str], Binding] = _index(vm_bindings() + object_bindings())


def binding(interface: str, name: str) -> Binding:
    """The binding of a property; ``KeyError`` naming it when there is none."""
    try:
        return BINDINGS[(interface, name)]
    except KeyError:
        raise KeyError(f"no xenmgr property {name!r} on {interface}") from None


class NeedsService(LookupError):
    """The property is computed from something only the service has (``needs``)."""

    def __init__(self, b: Binding, needs: str) -> None:
        super().__init__(f"property {b.name} of {b.interface} needs {needs}")
        self.binding, self.needs = b, needs


@dataclass(frozen=True, slots=True)
class Target:
    """Which object: the VM (``uuid``), and for disk and nic properties the disk id or nic id."""

    uuid: str | None = None
    disk: int | None = None
    nic: int | None = None


@dataclass(frozen=True, slots=True)
class Write:
    path: str
    value: str


@dataclass(frozen=True, slots=True)
class Remove:
    path: str


DbOp = Write | Remove


@dataclass(frozen=True, slots=True)
class SetPlan:
    """What a set does: database operations in order, then the effects."""

    ops: tuple[DbOp, ...] = ()
    effects: tuple[Effect, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.ops)


# ------------------------------------------------------------------------------ paths


def _vm_base(target: Target) -> str:
    if not target.uuid or "/" in target.uuid:
        raise ValueError(f"a VM property needs the VM's uuid, got {target.uuid!r}")
    return f"/vm/{target.uuid}"


def _base(b: Binding, db: DbView, target: Target) -> str:
    """The path a Stored key of ``b`` is relative to (errors 206/222 for a missing device)."""
    if b.scope is Scope.HOST:
        return ""
    vm = _vm_base(target)
    if b.scope is Scope.VM:
        return vm
    if b.scope is Scope.DISK:
        if target.disk is None:
            raise ValueError("a disk property needs the disk id")
        path = f"{vm}/config/disk/{target.disk}"
        if not db.is_node(path):
            raise error(206)
        return path
    if target.nic is None:
        raise ValueError("a nic property needs the nic id")
    nic = read_nic(db.sub(vm), target.nic)
    if nic is None:
        raise error(222)
    return f"{vm}/config/nic/{nic.node}"


def _join(base: str, key: str) -> str:
    return key if key.startswith("/") else f"{base}/{key}"


# ---------------------------------------------------------------------------- reading


def _stored(b: Binding, s: Stored, db: DbView, base: str) -> Value:
    path = _join(base, s.key)
    if s.native is not None and b.scope is Scope.VM:
        native = db.read(f"{base}/native-experience")
        if native is not None and decode_bool(f"{base}/native-experience", native):
            return s.native
    if s.codec.kind == "joined":
        if not db.exists(path):
            return s.default
        return s.codec.show_list([db.read(f"{path}/{c}") or "" for c in db.children(path)])
    text = db.read(path)
    value = s.default if text is None else s.codec.decode(path, text)
    if s.fallback is not None and (text is None or (isinstance(value, int) and value <= 0)):
        fallback = db.read(_join(base, s.fallback))
        return s.default if fallback is None else s.codec.decode(_join(base, s.fallback),
                                                                 fallback)
    return value


def read_property(b: Binding, db: DbView, target: Target) -> Value:
    """The DBus value of property ``b`` of ``target`` (see the module docstring)."""
    source = b.source
    if isinstance(source, Fixed):
        return source.value
    if isinstance(source, Unsupported):
        raise plain(f"property {b.name} is not supported: {source.reason}")
    if isinstance(source, Computed):
        raise NeedsService(b, source.needs)
    base = _base(b, db, target)
    if isinstance(source, Derived):
        return _DERIVED_READ[source.rule](db, base, target)
    return _stored(b, source, db, base)


# ---------------------------------------------------------------------------- setting


def _check(b: Binding, value: object) -> Value:
    codec = _codec_of(b)
    stored = _stored_of(b)
    try:
        if b.signature == "b" and not isinstance(value, bool):
            raise ValueError("is not a boolean")
        if b.signature in ("i", "x") and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError("is not an integer")
        if b.signature == "s" and not isinstance(value, str):
            raise ValueError("is not a string")
        if stored is not None and value in stored.remove_on and type(value) is type(
                stored.default):
            return value  # "" for the hooks, "auto" for a nic's MAC...: remove the key
        if codec is not None:
            return codec.check(value)
        if isinstance(value, bool | int | str):
            return value
        raise ValueError("has a type no property of this kind takes")
    except ValueError as exc:
        raise plain(f"property {b.name}: {value!r} {exc}") from None


def _stored_of(b: Binding) -> Stored | None:
    source = b.source
    if isinstance(source, Computed):
        return source.writes
    return source if isinstance(source, Stored) else None


def _codec_of(b: Binding) -> Codec | None:
    stored = _stored_of(b)
    return None if stored is None else stored.codec


def _policy_allows(db: DbView, base: str) -> bool:
    text = db.read(f"{base}/policies/modify-vm-settings")
    return True if text is None else decode_bool(f"{base}/policies/modify-vm-settings", text)


def _same(s: Stored, path: str, current: str | None, value: Value) -> bool:
    if current is None:
        return False
    try:
        return s.codec.decode(path, current) == value
    except SchemaError:
        return False


def _stored_ops(s: Stored, db: DbView, base: str, value: Value, compare: bool
                ) -> tuple[DbOp, ...]:
    path = _join(base, s.key)
    if s.strip and isinstance(value, str):
        value = value.strip()
    if value in s.remove_on or (s.remove_nonpositive and isinstance(value, int)
                                and value <= 0):
        return (Remove(path),) if db.exists(path) else ()
    encoded = s.codec.encode(value)
    if isinstance(encoded, list):  # a list: remove the node, write the children
        current = [db.read(f"{path}/{c}") or "" for c in db.children(path)]
        if compare and db.exists(path) and current == encoded:
            return ()
        return (Remove(path), *(Write(f"{path}/{i}", item) for i, item in enumerate(encoded)))
    if compare and _same(s, path, db.read(path), value):
        return ()
    return (Write(path, encoded),)


def plan_set(b: Binding, value: object, db: DbView, target: Target) -> SetPlan:
    """What setting property ``b`` of ``target`` to ``value`` does (see the module docstring)."""
    if not b.settable:
        raise error(214)
    source = b.source
    if isinstance(source, Unsupported):
        raise plain(f"property {b.name} is not supported: {source.reason}")
    if isinstance(source, Fixed):
        if source.on_set is not None:
            raise plain(source.on_set)
        return SetPlan((), b.effects)
    if isinstance(source, Computed) and source.writes is None:
        raise NeedsService(b, source.needs)
    checked = _check(b, value)
    if b.scope is not Scope.HOST:
        vm = _vm_base(target)
        if not db.is_node(vm):
            return SetPlan()  # the original did nothing for a VM that does not exist
        if b.guarded and not _policy_allows(db, vm):
            raise error(202)
    base = _base(b, db, target)
    if isinstance(source, Derived):
        ops = _DERIVED_SET[source.rule](db, base, target, checked)
    else:
        stored = source.writes if isinstance(source, Computed) else source
        assert stored is not None
        compare = b.scope is not Scope.HOST and not stored.always_write
        ops = _stored_ops(stored, db, base, checked, compare)
    return SetPlan(ops, b.effects)


# ---------------------------------------------------------------------- derived rules


def _cd_disks(db: DbView, vm: str) -> list[tuple[int, str | None]]:
    return [(d.id, d.path) for d in read_disks(db.sub(vm)) if d.is_cd]


def _read_cd(db: DbView, vm: str, target: Target) -> Value:
    cds = _cd_disks(db, vm)
    if not cds:
        return ""
    name = (cds[0][1] or "").rsplit("/", 1)[-1]
    return "" if name == "null.iso" else name


def _set_cd(db: DbView, vm: str, target: Target, value: Value) -> tuple[DbOp, ...]:
    assert isinstance(value, str)
    iso_dir = db.read("/xenmgr/isos") or DEFAULT_ISO_DIR
    new = f"{iso_dir}/{value or 'null.iso'}"
    return tuple(Write(f"{vm}/config/disk/{i}/path", new) for i, path in _cd_disks(db, vm)
                 if path != new)


def _read_mac(db: DbView, vm: str, target: Target) -> Value:
    nics = read_nics(db.sub(vm))
    assert target.uuid is not None
    return nics[0].actual_mac(target.uuid) if nics else ""


def _read_mac_actual(db: DbView, base: str, target: Target) -> Value:
    vm = _vm_base(target)
    assert target.nic is not None and target.uuid is not None
    nic = read_nic(db.sub(vm), target.nic)
    assert nic is not None  # _base checked it
    return nic.actual_mac(target.uuid)


def _first_nic(db: DbView, vm: str, wireless: bool) -> tuple[str, str] | None:
    for nic in read_nics(db.sub(vm)):
        if nic.wireless == wireless:
            return nic.node, nic.network
    return None


def _network_rule(wireless: bool) -> tuple[Callable[..., Value], Callable[..., tuple[DbOp, ...]]]:
    def read(db: DbView, vm: str, target: Target) -> Value:
        first = _first_nic(db, vm, wireless)
        return "" if first is None else first[1]

    def set_(db: DbView, vm: str, target: Target, value: Value) -> tuple[DbOp, ...]:
        assert isinstance(value, str)
        first = _first_nic(db, vm, wireless)
        if first is None or first[1] == network_path(value):
            return ()
        return (Write(f"{vm}/config/nic/{first[0]}/network", network_path(value)),)

    return read, set_


def _read_stubdom(db: DbView, vm: str, target: Target) -> Value:
    stub = db.read(f"{vm}/stubdom")
    hvm = db.read(f"{vm}/config/virt-type") == "hvm"
    return hvm and stub is not None and decode_bool(f"{vm}/stubdom", stub)


def _set_stubdom(db: DbView, vm: str, target: Target, value: Value) -> tuple[DbOp, ...]:
    current = db.read(f"{vm}/stubdom")
    if current is not None and decode_bool(f"{vm}/stubdom", current) == value:
        return ()
    return (Write(f"{vm}/stubdom", "true" if value else "false"),)


def _read_pending(db: DbView, vm: str, target: Target) -> Value:
    path = "/xenmgr/autostart-pending-vms"
    return any(db.read(f"{path}/{c}") == target.uuid for c in db.children(path))


_WIRED, _WIRELESS = _network_rule(False), _network_rule(True)
_DERIVED_READ: Mapping[str, Callable[[DbView, str, Target], Value]] = MappingProxyType({
    "autostart-pending": _read_pending,
    "cd": _read_cd,
    "mac": _read_mac,
    "mac-actual": _read_mac_actual,
    "stubdom": _read_stubdom,
    "uuid": lambda db, vm, target: target.uuid or "",
    "wired-network": _WIRED[0],
    "wireless-network": _WIRELESS[0],
})
_DERIVED_SET: Mapping[str, Callable[[DbView, str, Target, Value], tuple[DbOp, ...]]] = (
    MappingProxyType({
        "cd": _set_cd,
        "stubdom": _set_stubdom,
        "wired-network": _WIRED[1],
        "wireless-network": _WIRELESS[1],
    }))


# ------------------------------------------------------------- helpers for the service


def seamless_traffic(vm_type: str, stored: bool | None, host_default: bool) -> bool:
    """``seamless-traffic``: for a guest VM (type ``svm``) the stored flag, or the host's
    capability default when unset; false for service VMs."""
    if vm_type not in ("svm", "pvm"):
        return False
    return host_default if stored is None else stored


def portica_enabled(installed: bool, enabled: bool, seamless: bool) -> int:
    """``portica-enabled``: 0 not installed, 1 installed and enabled with seamless traffic on,
    2 otherwise (the UI's encoding)."""
    if not installed:
        return 0
    return 1 if enabled and seamless else 2


def _assert_rules_complete() -> None:
    rules = {b.source.rule for b in BINDINGS.values() if isinstance(b.source, Derived)}
    settable = {b.source.rule for b in BINDINGS.values()
                if isinstance(b.source, Derived) and b.settable}
    assert rules == set(_DERIVED_READ), rules ^ set(_DERIVED_READ)
    assert settable == set(_DERIVED_SET), settable ^ set(_DERIVED_SET)


_assert_rules_complete()
