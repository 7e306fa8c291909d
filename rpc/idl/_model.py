"""The interface model: immutable values describing DBus objects, interfaces and their members.

These are plain frozen dataclasses built by the loader (`rpc.idl._loader`) from our interface
files or from any introspection XML, and read by the export framework, the introspection renderer
and xec. They hold names and signatures exactly as declared: method and signal names with
underscores, property names with dashes, argument names verbatim (``""`` for an unnamed one).

Members keep their declared order. Lookups by name (`Interface.method`, `Node.interface`, ...)
return the first declaration of that name, or ``None``. The model itself validates nothing; the
loader does (names, signatures, duplicates) and names the file and member on failure.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from rpc.idl._signature import DBusType, parse_single_type

__all__ = [
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


@dataclass(frozen=True, slots=True)
class Annotation:
    """``<annotation name=.. value=../>`` on an interface, member or argument."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: ``type`` is exactly one complete DBus type."""

    name: str
    type: str
    direction: Direction = Direction.IN
    annotations: tuple[Annotation, ...] = ()
    doc: str = ""

    @property
    def dbus_type(self) -> DBusType:
        return parse_single_type(self.type)


@dataclass(frozen=True, slots=True)
class Method:
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


@dataclass(frozen=True, slots=True)
class Signal:
    """A signal; its args carry ``Direction.OUT``."""

    name: str
    args: tuple[Arg, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    doc: str = ""

    @property
    def signature(self) -> str:
        return "".join(a.type for a in self.args)


@dataclass(frozen=True, slots=True)
class Property:
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


@dataclass(frozen=True, slots=True)
class EnumValue:
    """One constant of an enum: ``suffix`` names it, ``value`` is its text (may be empty)."""

    suffix: str
    value: str
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Enum:
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


@dataclass(frozen=True, slots=True)
class Interface:
    """A DBus interface with its members in declared order."""

    name: str
    methods: tuple[Method, ...] = ()
    signals: tuple[Signal, ...] = ()
    properties: tuple[Property, ...] = ()
    enums: tuple[Enum, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    doc: str = ""
    _methods: Mapping[str, Method] = field(init=False, repr=False, compare=False)
    _signals: Mapping[str, Signal] = field(init=False, repr=False, compare=False)
    _properties: Mapping[str, Property] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_methods", _index(self.methods))
        object.__setattr__(self, "_signals", _index(self.signals))
        object.__setattr__(self, "_properties", _index(self.properties))

    def method(self, name: str) -> Method | None:
        return self._methods.get(name)

    def signal(self, name: str) -> Signal | None:
        return self._signals.get(name)

    def property(self, name: str) -> Property | None:
        return self._properties.get(name)


@dataclass(frozen=True, slots=True)
class Node:
    """One object kind: the interfaces an object serves, in declared order.

    ``name`` is the ``<node name>`` attribute (in our files a placeholder such as ``/vm/uuid``
    documenting the object-path shape, not a real path), ``kind`` the file stem (``xenmgr_vm``)
    or ``""``, ``children`` the names of child ``<node>`` elements, ``source`` where it was read
    (not compared).
    """

    name: str | None
    interfaces: tuple[Interface, ...] = ()
    enums: tuple[Enum, ...] = ()
    children: tuple[str, ...] = ()
    kind: str = ""
    source: str = field(default="", compare=False)
    doc: str = ""
    _interfaces: Mapping[str, Interface] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_interfaces", _index(self.interfaces))

    def interface(self, name: str) -> Interface | None:
        return self._interfaces.get(name)

    @property
    def all_enums(self) -> tuple[Enum, ...]:
        """Node-level enums, then those declared inside interfaces, in order."""
        return self.enums + tuple(e for i in self.interfaces for e in i.enums)


class _HasName(Protocol):
    @property
    def name(self) -> str: ...


_T = TypeVar("_T", bound=_HasName)


def _index(items: tuple[_T, ...]) -> dict[str, _T]:
    """Name -> first item of that name."""
    index: dict[str, _T] = {}
    for item in items:
        index.setdefault(item.name, item)
    return index
