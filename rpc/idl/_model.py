"""The interface model: immutable values describing DBus objects, interfaces and their members.

These are immutable `NamedTuple` values built by the loader (`rpc.idl._loader`) from our interface
files or from any introspection XML, and read by the export framework, the introspection renderer
and xec. They hold names and signatures exactly as declared: method and signal names with
underscores, property names with dashes, argument names verbatim (``""`` for an unnamed one).

Members keep their declared order. Lookups by name (`Interface.method`, `Node.interface`, ...)
return the first declaration of that name, or ``None`` (a linear scan: interfaces are small;
a server builds its own tables). The model itself validates nothing; the loader does (names,
signatures, duplicates) and names the file and member on failure.

NamedTuple rather than dataclass: xec builds these from every introspection reply and must
start fast; a frozen dataclass costs about 0.5 ms per class at import (plus 7 ms for the
dataclasses module), a NamedTuple under 0.1 ms.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Protocol, TypeVar

from rpc.idl._signature import DBusType, parse_single_type

__all__ = [
    "TP_NAMESPACE",
    "Access",
    "Annotation",
    "Arg",
    "Direction",
    "Enum",
    "EnumValue",
    "Interface",
    "Method",
    "Node",
    "Property",
    "Signal",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: The namespace of the Telepathy spec extensions (``tp:`` elements in interface files).
TP_NAMESPACE = "http://telepathy.freedesktop.org/wiki/DbusSpec#extensions-v0"


class Direction(enum.Enum):
    """Direction of a method argument (signal arguments are always `OUT`)."""

    IN = "in"
    OUT = "out"


class Access(enum.Enum):
    """Access of a property, spelled as in introspection XML."""

    READ = "read"
    WRITE = "write"
    READWRITE = "readwrite"

    @property
    def readable(self) -> bool:
        return self is not Access.WRITE

    @property
    def writable(self) -> bool:
        return self is not Access.READ


class Annotation(NamedTuple):
    """``<annotation name=.. value=../>`` on an interface, member or argument."""

    name: str
    value: str


class Arg(NamedTuple):
    """One argument: ``type`` is exactly one complete DBus type."""

    name: str
    type: str
    direction: Direction = Direction.IN
    annotations: tuple[Annotation, ...] = ()
    doc: str = ""

    @property
    def dbus_type(self) -> DBusType:
        return parse_single_type(self.type)


class Method(NamedTuple):
    """A method; ``args`` in declared order, both directions."""

    name: str
    args: tuple[Arg, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    doc: str = ""

    @property
    def in_args(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.direction is Direction.IN)

    @property
    def out_args(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.direction is Direction.OUT)

    @property
    def in_signature(self) -> str:
        return "".join(a.type for a in self.args if a.direction is Direction.IN)

    @property
    def out_signature(self) -> str:
        return "".join(a.type for a in self.args if a.direction is Direction.OUT)


class Signal(NamedTuple):
    """A signal; its args carry ``Direction.OUT``."""

    name: str
    args: tuple[Arg, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    doc: str = ""

    @property
    def signature(self) -> str:
        return "".join(a.type for a in self.args)


class Property(NamedTuple):
    """A property: ``type`` is exactly one complete DBus type."""

    name: str
    type: str
    access: Access
    annotations: tuple[Annotation, ...] = ()
    doc: str = ""

    @property
    def readable(self) -> bool:
        return self.access.readable

    @property
    def writable(self) -> bool:
        return self.access.writable

    @property
    def dbus_type(self) -> DBusType:
        return parse_single_type(self.type)


class EnumValue(NamedTuple):
    """One constant of an enum: ``suffix`` names it, ``value`` is its text (may be empty)."""

    suffix: str
    value: str
    doc: str = ""


class Enum(NamedTuple):
    """A free-standing set of named constants of one basic DBus type (``tp:enum``).

    Not tied to any member: it documents the values a string or integer may take (``VM_STATE``
    lists the states the ``state`` property and ``vm_state_changed`` signal carry).
    """

    name: str
    type: str
    values: tuple[EnumValue, ...] = ()
    doc: str = ""

    def as_dict(self) -> dict[str, str]:
        """``{suffix: value}`` in declared order."""
        return {v.suffix: v.value for v in self.values}


class Interface(NamedTuple):
    """A DBus interface with its members in declared order."""

    name: str
    methods: tuple[Method, ...] = ()
    signals: tuple[Signal, ...] = ()
    properties: tuple[Property, ...] = ()
    enums: tuple[Enum, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    doc: str = ""

    def method(self, name: str) -> Method | None:
        return _find(self.methods, name)

    def signal(self, name: str) -> Signal | None:
        return _find(self.signals, name)

    def property(self, name: str) -> Property | None:
        return _find(self.properties, name)


class Node(NamedTuple):
    """One object kind: the interfaces an object serves, in declared order.

    ``name`` is the ``<node name>`` attribute (in our files a placeholder such as ``/vm/uuid``
    documenting the object-path shape, not a real path), ``kind`` the file stem (``xenmgr_vm``)
    or ``""``, ``children`` the names of child ``<node>`` elements.
    """

    name: str | None
    interfaces: tuple[Interface, ...] = ()
    enums: tuple[Enum, ...] = ()
    children: tuple[str, ...] = ()
    kind: str = ""
    doc: str = ""

    def interface(self, name: str) -> Interface | None:
        return _find(self.interfaces, name)

    @property
    def all_enums(self) -> tuple[Enum, ...]:
        """Node-level enums, then those declared inside interfaces, in order."""
        return self.enums + tuple(e for i in self.interfaces for e in i.enums)


class _HasName(Protocol):
    @property
    def name(self) -> str: ...


_T = TypeVar("_T", bound=_HasName)


def _find(items: tuple[_T, ...], name: str) -> _T | None:
    """The first item called ``name``."""
    for item in items:
        if item.name == name:
            return item
    return None
