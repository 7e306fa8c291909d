"""Marking the handlers of an exported object: decorators and the handler table.

An implementation object (often the service actor itself) marks its methods with
:func:`dbus_method`, :func:`dbus_getter` and :func:`dbus_setter`; :func:`handler_table` finds
them. :func:`dbus_all_getter` marks an optional bulk getter: ``GetAll`` of that interface then
calls it once and takes each property it answers from its mapping (the other readable
properties from their own getters), so an object that reads one snapshot for all its
properties does so once per ``GetAll``. A handler may return :data:`DEFERRED` and answer
later through its ``Call``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DEFERRED", "dbus_all_getter", "dbus_getter", "dbus_method", "dbus_setter",
           "handler_table"]

F = TypeVar("F", bound=Callable[..., Any])


class _Deferred:
    def __repr__(self) -> str:
        return "DEFERRED"


DEFERRED: Any = _Deferred()
"""Return this from a handler to answer later with ``call.reply(...)`` or ``call.fail(...)``."""


def _mark(kind: str, interface: str, member: str) -> Callable[[F], F]:
    def mark(func: F) -> F:
        marks = list(getattr(func, "_dbus", ()))
        marks.append((kind, interface, member))
        func._dbus = marks  # type: ignore[attr-defined]
        return func
    return mark


def dbus_method(interface: str, member: str) -> Callable[[F], F]:
    """Mark ``func(self, call, *args)`` as the handler of ``interface.member``."""
    return _mark("method", interface, member)


def dbus_getter(interface: str, prop: str) -> Callable[[F], F]:
    """Mark ``func(self, call)`` as the getter of property ``prop``."""
    return _mark("get", interface, prop)


def dbus_all_getter(interface: str) -> Callable[[F], F]:
    """Mark ``func(self, call) -> Mapping[str, Any]`` as the bulk getter of ``interface``:
    ``GetAll`` answers each readable property found in the mapping with that value."""
    return _mark("getall", interface, "")


def dbus_setter(interface: str, prop: str) -> Callable[[F], F]:
    """Mark ``func(self, call, value)`` as the setter of property ``prop``."""
    return _mark("set", interface, prop)


def handler_table(impl: object) -> dict[tuple[str, str, str], Callable[..., Any]]:
    """``{(kind, interface, member): bound method}`` of an implementation object."""
    table: dict[tuple[str, str, str], Callable[..., Any]] = {}
    for klass in reversed(type(impl).__mro__):
        for name, attr in vars(klass).items():
            for mark in getattr(attr, "_dbus", ()):
                table[mark] = getattr(impl, name)
    return table
