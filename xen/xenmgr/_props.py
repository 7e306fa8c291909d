"""Every xenmgr property on the bus: one getter (and setter, where the interface file allows a
set) per binding, generated for each kind of object from :data:`BINDINGS`.

Reading: an object loads one view of the database per call (a VM's whole subtree in one
``dump``; host-wide objects the top-level nodes their properties read). ``GetAll`` loads it
once and reads every property of the interface in one pass (``_readers.Reader``, made once per
interface: the framework's bulk getter). Stored and derived properties come from
``read_property`` (or its compiled equivalent); computed ones from ``_computed``. ``GetAll``
answers every readable property: a value that cannot be read (a stored value that does not fit
its key, a monitor that is restarting) is logged and answered with the binding's default,
never an error for one key; ``Get`` of that one property answers the error.

Setting: the value is checked and planned against a fresh view (``plan_set``: a bad value fails
"property <name>: <value> <reason>", policy 202, read-only 214), the database operations are
carried out in order (nothing is written when the value does not change), then the effects:
``vm_config_changed`` (debounced by the queue) when something was written to a VM, and the
signals the binding names; effects we cannot carry out yet are logged. Setting ``slot`` goes
through the creation actor, which gives the VM holding that slot the old one. When a value
changed, ``PropertiesChanged`` goes out last, through the notification queue like every other
signal (the framework's own emission is turned off for xenmgr's objects).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from xen.xenmgr._binding import Binding, Computed, Effect, Fixed, Scope, Stored, Value
from xen.xenmgr._computed import computed_value
from xen.xenmgr._dbview import DbView
from xen.xenmgr._errors import XenmgrError, plain
from xen.xenmgr._handle import PROPERTIES
from xen.xenmgr._messages import ConfigChanged, Emit, SetSlot
from xen.xenmgr._properties import (
    BINDINGS,
    NeedsService,
    Remove,
    Target,
    Write,
    plan_set,
    read_property,
)
from xen.xenmgr._queue import XENMGR
from xen.xenmgr._readers import Reader
from xen.xenmgr._uuids import vm_object_path
from xen.xenmgr._vm_deps import refuse_cycle

if TYPE_CHECKING:
    from rpc.dbus import Call
    from rpc.idl import Interface
    from xen.xenmgr._context import ServiceContext

__all__ = ["HOST_NODES", "PropertyObject", "with_properties"]

logger = logging.getLogger("xenmgr")


def _host_nodes() -> tuple[str, ...]:
    nodes = set()
    for b in BINDINGS.values():
        source = b.source
        stored = source if isinstance(source, Stored) else (
            source.writes if isinstance(source, Computed) else None)
        if b.scope is Scope.HOST and stored is not None:
            nodes.add(stored.key.strip("/").split("/")[0])
    return tuple(sorted(nodes))


#: The top-level database nodes the host-wide properties read.
HOST_NODES = _host_nodes()
_ZERO: dict[str, Value] = {"s": "", "b": False, "i": 0, "x": 0, "u": 0, "as": [], "ao": [],
                           "a{ss}": {}, "o": "/"}


class _CallView(threading.local):
    call: object = None
    view: DbView | None = None


_CACHE = _CallView()


def fallback(b: Binding) -> Any:
    """What ``GetAll`` answers for a property it cannot read."""
    source = b.source
    if isinstance(source, Stored):
        return source.default
    if isinstance(source, Fixed):
        return source.value
    return _ZERO.get(b.signature, "")


class PropertyObject:
    """The base of every exported xenmgr object (see the module docstring)."""

    def __init__(self, ctx: ServiceContext, target: Target) -> None:
        self.ctx = ctx
        self.target = target

    # ------------------------------------------------------------------ views

    def load_view(self, cached: bool = False) -> DbView:
        """A view of what this object's properties read (subclasses for VMs and devices);
        ``cached``: for reading only, a VM's subtree may come from the cache (``_dbcache``)."""
        root: dict[str, Any] = {}
        for node in HOST_NODES:
            value = self.ctx.db.tree(f"/{node}")
            if value != {}:
                root[node] = value if isinstance(value, dict | str) else str(value)
        return DbView(root)

    def view_for(self, call: Call) -> DbView:
        """The view of ``call`` (loaded once for all the properties of one ``GetAll``)."""
        cache = _CACHE
        if cache.call is call and cache.view is not None:
            return cache.view
        view = self.load_view(cached=True)
        cache.call, cache.view = call, view
        return view

    # ------------------------------------------------------------------ get and set

    def read_prop(self, b: Binding, call: Call) -> Any:
        try:
            view = self.view_for(call)
            try:
                return read_property(b, view, self.target)
            except NeedsService:
                return computed_value(self.ctx, b, view, self.target)
        except Exception as exc:
            if call.member != "GetAll":
                raise
            text = exc.message if isinstance(exc, XenmgrError) else str(exc)
            logger.warning("GetAll %s: property %s: %s", call.path, b.name, text)
            return fallback(b)

    def read_all(self, reader: Reader, call: Call) -> dict[str, Any]:
        """Every property ``reader`` reads, by name, from one view (``GetAll``): a value that
        cannot be read is logged and answered with its binding's default."""
        try:
            view = self.load_view(cached=True)
        except Exception as exc:
            text = exc.message if isinstance(exc, XenmgrError) else str(exc)
            logger.warning("GetAll %s: %s", call.path, text)
            return {b.name: fallback(b) for b in reader.bindings}
        out: dict[str, Any] = {}
        for b, value in reader.read(view, self.target):
            if isinstance(value, BaseException):
                try:
                    if not isinstance(value, NeedsService):
                        raise value
                    value = computed_value(self.ctx, b, view, self.target)
                except Exception as exc:
                    text = exc.message if isinstance(exc, XenmgrError) else str(exc)
                    logger.warning("GetAll %s: property %s: %s", call.path, b.name, text)
                    value = fallback(b)
            out[b.name] = value
        return out

    def write_prop(self, b: Binding, call: Call, value: Any) -> None:
        view = self.load_view()
        try:
            plan = plan_set(b, value, view, self.target)
        except NeedsService as exc:
            raise plain(f"property {b.name} cannot be set here: it is {exc.needs}") from None
        if plan.changed:
            refuse_cycle(self.ctx.db, b, plan.ops)
        if Effect.SLOT_SWAP in plan.effects and plan.changed and self.target.uuid:
            for uuid in self.ctx.ask_creator(SetSlot(self.target.uuid, int(value))):
                self.ctx.tell_queue(ConfigChanged(uuid))
            self._properties_changed(b, call, value)
            return
        for op in plan.ops:
            if isinstance(op, Write):
                self.ctx.db.write(op.path, op.value)
            elif isinstance(op, Remove):
                self.ctx.db.rm(op.path)
        uuid = self.target.uuid
        if plan.changed and uuid is not None:
            self.ctx.tell_queue(ConfigChanged(uuid))
        for effect in plan.effects:
            self._effect(effect, plan.changed)
        if plan.changed:
            self._properties_changed(b, call, value)

    def _properties_changed(self, b: Binding, call: Call, value: Any) -> None:
        """``PropertiesChanged`` through the queue, after the signals this Set queued."""
        self.ctx.tell_queue(Emit(call.path, PROPERTIES, "PropertiesChanged",
                                 (call.interface, {b.name: value}), self.target.uuid))

    def _effect(self, effect: Effect, changed: bool) -> None:
        uuid = self.target.uuid
        if effect is Effect.CONFIG_CHANGED:
            self.ctx.tell_queue(Emit("/", XENMGR, "config_changed", ()))
        elif effect is Effect.LANGUAGE_CHANGED:
            self.ctx.tell_queue(Emit("/", XENMGR, "language_changed", ()))
        elif effect is Effect.NAME_CHANGED and uuid is not None and changed:
            self.ctx.tell_queue(Emit("/", XENMGR, "vm_name_changed",
                                     (uuid, vm_object_path(uuid)), uuid))
        elif effect is Effect.TRANSFER_CHANGED and uuid is not None:
            self.ctx.tell_queue(Emit("/", XENMGR, "vm_transfer_changed",
                                     (uuid, vm_object_path(uuid)), uuid))
        elif changed:
            logger.info("not carried out (not implemented yet): %s", effect.value)


def _getter(b: Binding) -> Callable[..., Any]:
    def get(self: PropertyObject, call: Call) -> Any:
        return self.read_prop(b, call)
    get._dbus = [("get", b.interface, b.name)]  # type: ignore[attr-defined]
    return get


def _setter(b: Binding) -> Callable[..., Any]:
    def set_(self: PropertyObject, call: Call, value: Any) -> None:
        self.write_prop(b, call, value)
    set_._dbus = [("set", b.interface, b.name)]  # type: ignore[attr-defined]
    return set_


def _all_getter(interface: str, reader: Reader) -> Callable[..., Any]:
    def get_all(self: PropertyObject, call: Call) -> dict[str, Any]:
        return self.read_all(reader, call)
    get_all._dbus = [("getall", interface, "")]  # type: ignore[attr-defined]
    return get_all


def with_properties(base: type[PropertyObject], interfaces: Sequence[Interface]
                    ) -> type[PropertyObject]:
    """``base`` with a getter for every readable property of ``interfaces``, a setter for
    every writable one (each from its binding), and a bulk getter per interface."""
    namespace: dict[str, Any] = {}
    for iface in interfaces:
        readable = [BINDINGS[(iface.name, p.name)] for p in iface.properties
                    if p.readable and (iface.name, p.name) in BINDINGS]
        if readable:
            key = iface.name.replace(".", "_")
            namespace[f"_get_all_{key}"] = _all_getter(iface.name, Reader(readable))
        for prop in iface.properties:
            b = BINDINGS.get((iface.name, prop.name))
            if b is None:
                continue
            key = f"{iface.name}:{prop.name}".replace(".", "_").replace("-", "_")
            if prop.readable:
                namespace[f"_get_{key}"] = _getter(b)
            if prop.writable:
                namespace[f"_set_{key}"] = _setter(b)
    return type(f"{base.__name__}WithProperties", (base,), namespace)
