"""Load interface XML (our interface files, or any DBus introspection XML) into the model.

The dialect is freedesktop introspection XML plus the Telepathy spec extensions the OpenXT IDL
used: ``<tp:enum name type>`` with ``<tp:enumvalue suffix value/>`` children, under ``<node>`` or
``<interface>``, and ``<tp:docstring>``. Documentation is the ``tp:docstring`` child of an element
or, failing that, its first XML comment child. ``<arg>`` without ``direction`` is ``in`` in a
method; signal args are always ``out``. ``<arg name="">`` or no name gives ``""``.

Two modes:

- ``strict=True`` (our own files): unknown elements or attributes in the null namespace,
  invalid names (interface, member, property, enum, arg), duplicates and a missing
  required attribute are errors. Property names may contain dashes (the OpenXT interfaces use
  them; they only travel as strings). Elements and attributes in other namespaces are ignored.
- ``strict=False`` (introspection read from a remote service): unknown elements and attributes
  are ignored, names are not checked and the first of duplicate declarations wins.

In both modes every signature is validated (`rpc.idl._signature`), the input is bounded
(`MAX_XML_BYTES`), and a document declaring entities is refused. Every failure raises `IdlError`
naming the source, interface and member. Nothing is cached except `load_package`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, TypeVar

from rpc.idl._model import (
    TP_NAMESPACE,
    Access,
    Annotation,
    Arg,
    Direction,
    Enum,
    EnumValue,
    Interface,
    Method,
    Node,
    Property,
    Signal,
)
from rpc.idl._signature import BASIC_CODES, SignatureError, parse_single_type
from rpc.idl._xml import XmlElement, XmlSyntaxError, parse_xml

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "MAX_XML_BYTES",
    "IdlError",
    "load_directory",
    "load_file",
    "load_package",
    "package_interface",
    "package_interfaces",
    "parse_node",
]

#: Namespace of the Telepathy spec extensions (``tp:enum``, ``tp:docstring``).
_TP = "{" + TP_NAMESPACE + "}"

#: Largest document accepted. Our biggest file is about 60 KiB and a remote Introspect reply is
#: limited by the bus message size anyway; 4 MiB keeps a hostile input from costing much.
MAX_XML_BYTES = 4 * 1024 * 1024

_INTERFACE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_MEMBER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PROPERTY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_ARG_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)?")
_INT_RE = re.compile(r"-?[0-9]+")
_MAX_NAME = 255

_INT_RANGES = {
    "y": (0, 2**8 - 1),
    "n": (-(2**15), 2**15 - 1),
    "q": (0, 2**16 - 1),
    "i": (-(2**31), 2**31 - 1),
    "u": (0, 2**32 - 1),
    "x": (-(2**63), 2**63 - 1),
    "t": (0, 2**64 - 1),
    "h": (0, 2**32 - 1),
}

_ATTRS = {
    "node": {"name"},
    "interface": {"name"},
    "method": {"name"},
    "signal": {"name"},
    "property": {"name", "type", "access"},
    "arg": {"name", "type", "direction"},
    "annotation": {"name", "value"},
    f"{_TP}enum": {"name", "type"},
    f"{_TP}enumvalue": {"suffix", "value"},
}


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_NamedT = TypeVar("_NamedT", bound=_Named)


class IdlError(ValueError):
    """An interface document is malformed or breaks a rule; the message names where."""


class _Reader:
    """One document being read; ``where`` builds the context prefix of error messages."""

    def __init__(self, source: str, strict: bool) -> None:
        self.source = source
        self.strict = strict

    def error(self, where: str, message: str) -> IdlError:
        prefix = f"{self.source}: {where}: " if where else f"{self.source}: "
        return IdlError(prefix + message)

    # -- helpers -------------------------------------------------------------------------------

    def check_attrs(self, elem: XmlElement, where: str) -> None:
        if not self.strict:
            return
        allowed = _ATTRS.get(str(elem.tag), set())
        for attr in elem.attrib:
            if attr.startswith("{"):
                continue
            if attr not in allowed:
                raise self.error(where, f"unknown attribute {attr!r} on <{_local(elem.tag)}>")

    def required(self, elem: XmlElement, attr: str, where: str) -> str:
        value = elem.get(attr)
        if value is None:
            raise self.error(where, f"<{_local(elem.tag)}> lacks the required {attr!r} attribute")
        return value

    def check_name(self, name: str, regex: re.Pattern[str], what: str, where: str) -> None:
        if self.strict and (len(name) > _MAX_NAME or regex.fullmatch(name) is None):
            raise self.error(where, f"invalid {what} name {name!r}")

    def single_type(self, sig: str, where: str) -> str:
        try:
            parse_single_type(sig)
        except SignatureError as exc:
            raise self.error(where, str(exc)) from None
        return sig

    def unknown(self, child: XmlElement, where: str) -> None:
        tag = str(child.tag)
        if self.strict and not tag.startswith("{"):
            raise self.error(where, f"unexpected element <{tag}>")

    def dedupe(self, items: list[_NamedT], what: str, where: str) -> tuple[_NamedT, ...]:
        seen: set[str] = set()
        out: list[_NamedT] = []
        for item in items:
            if item.name in seen:
                if self.strict:
                    raise self.error(where, f"duplicate {what} {item.name!r}")
                continue
            seen.add(item.name)
            out.append(item)
        return tuple(out)

    # -- elements ------------------------------------------------------------------------------

    def node(self, root: XmlElement, kind: str) -> Node:
        if root.tag != "node":
            raise self.error("", f"root element is <{root.tag}>, expected <node>")
        self.check_attrs(root, "node")
        interfaces: list[Interface] = []
        enums: list[Enum] = []
        children: list[str] = []
        for child in _elements(root):
            if child.tag == "interface":
                interfaces.append(self.interface(child))
            elif child.tag == f"{_TP}enum":
                enums.append(self.enum(child, "node"))
            elif child.tag == "node":
                name = child.get("name")
                if name is None:
                    if self.strict:
                        raise self.error("node", "child <node> lacks a name")
                    continue
                children.append(name)
            elif child.tag != f"{_TP}docstring":
                self.unknown(child, "node")
        return Node(
            name=root.get("name"),
            interfaces=self.dedupe(interfaces, "interface", "node"),
            enums=self.dedupe(enums, "enum", "node"),
            children=tuple(children),
            kind=kind,
            doc=_doc(root),
        )

    def interface(self, elem: XmlElement) -> Interface:
        name = self.required(elem, "name", "interface")
        where = f"interface {name}"
        self.check_attrs(elem, where)
        self.check_name(name, _INTERFACE_RE, "interface", where)
        methods: list[Method] = []
        signals: list[Signal] = []
        properties: list[Property] = []
        enums: list[Enum] = []
        annotations: list[Annotation] = []
        for child in _elements(elem):
            if child.tag == "method":
                methods.append(self.method(child, where))
            elif child.tag == "signal":
                signals.append(self.signal(child, where))
            elif child.tag == "property":
                properties.append(self.property(child, where))
            elif child.tag == "annotation":
                annotations.append(self.annotation(child, where))
            elif child.tag == f"{_TP}enum":
                enums.append(self.enum(child, where))
            elif child.tag != f"{_TP}docstring":
                self.unknown(child, where)
        return Interface(
            name=name,
            methods=self.dedupe(methods, "method", where),
            signals=self.dedupe(signals, "signal", where),
            properties=self.dedupe(properties, "property", where),
            enums=self.dedupe(enums, "enum", where),
            annotations=tuple(annotations),
            doc=_doc(elem),
        )

    def _member_args(
        self, elem: XmlElement, where: str, arg: Callable[[XmlElement, str, int], Arg]
    ) -> tuple[tuple[Arg, ...], tuple[Annotation, ...]]:
        args: list[Arg] = []
        annotations: list[Annotation] = []
        for child in _elements(elem):
            if child.tag == "arg":
                args.append(arg(child, where, len(args) + 1))
            elif child.tag == "annotation":
                annotations.append(self.annotation(child, where))
            elif child.tag != f"{_TP}docstring":
                self.unknown(child, where)
        return tuple(args), tuple(annotations)

    def method(self, elem: XmlElement, where: str) -> Method:
        name = self.required(elem, "name", f"{where}: method")
        where = f"{where}: method {name}"
        self.check_attrs(elem, where)
        self.check_name(name, _MEMBER_RE, "method", where)
        args, annotations = self._member_args(elem, where, self.method_arg)
        return Method(name=name, args=args, annotations=annotations, doc=_doc(elem))

    def signal(self, elem: XmlElement, where: str) -> Signal:
        name = self.required(elem, "name", f"{where}: signal")
        where = f"{where}: signal {name}"
        self.check_attrs(elem, where)
        self.check_name(name, _MEMBER_RE, "signal", where)
        args, annotations = self._member_args(elem, where, self.signal_arg)
        return Signal(name=name, args=args, annotations=annotations, doc=_doc(elem))

    def _arg(self, elem: XmlElement, where: str, number: int, direction: Direction) -> Arg:
        name = elem.get("name", "")
        where = f"{where}: arg {number}" + (f" ({name})" if name else "")
        self.check_attrs(elem, where)
        self.check_name(name, _ARG_RE, "arg", where)
        sig = self.single_type(self.required(elem, "type", where), where)
        annotations = tuple(
            self.annotation(c, where) for c in _elements(elem) if c.tag == "annotation"
        )
        for child in _elements(elem):
            if child.tag not in ("annotation", f"{_TP}docstring"):
                self.unknown(child, where)
        return Arg(name, sig, direction, annotations, _doc(elem))

    def method_arg(self, elem: XmlElement, where: str, number: int) -> Arg:
        raw = elem.get("direction", "in")
        try:
            direction = Direction(raw)
        except ValueError:
            raise self.error(
                f"{where}: arg {number}", f"direction must be 'in' or 'out', not {raw!r}"
            ) from None
        return self._arg(elem, where, number, direction)

    def signal_arg(self, elem: XmlElement, where: str, number: int) -> Arg:
        raw = elem.get("direction", "out")
        if raw != "out":
            raise self.error(f"{where}: arg {number}", f"a signal arg cannot be {raw!r}")
        return self._arg(elem, where, number, Direction.OUT)

    def property(self, elem: XmlElement, where: str) -> Property:
        name = self.required(elem, "name", f"{where}: property")
        where = f"{where}: property {name}"
        self.check_attrs(elem, where)
        self.check_name(name, _PROPERTY_RE, "property", where)
        sig = self.single_type(self.required(elem, "type", where), where)
        raw = self.required(elem, "access", where)
        try:
            access = Access(raw)
        except ValueError:
            raise self.error(
                where, f"access must be 'read', 'write' or 'readwrite', not {raw!r}"
            ) from None
        annotations: list[Annotation] = []
        for child in _elements(elem):
            if child.tag == "annotation":
                annotations.append(self.annotation(child, where))
            elif child.tag != f"{_TP}docstring":
                self.unknown(child, where)
        return Property(name, sig, access, tuple(annotations), _doc(elem))

    def annotation(self, elem: XmlElement, where: str) -> Annotation:
        name = self.required(elem, "name", f"{where}: annotation")
        self.check_attrs(elem, f"{where}: annotation {name}")
        return Annotation(name, self.required(elem, "value", f"{where}: annotation {name}"))

    def enum(self, elem: XmlElement, where: str) -> Enum:
        name = self.required(elem, "name", f"{where}: enum")
        where = f"{where}: enum {name}"
        self.check_attrs(elem, where)
        self.check_name(name, _MEMBER_RE, "enum", where)
        code = self.required(elem, "type", where)
        if code not in BASIC_CODES:
            raise self.error(where, f"enum type must be one basic type code, not {code!r}")
        values: list[EnumValue] = []
        seen: set[str] = set()
        for child in _elements(elem):
            if child.tag != f"{_TP}enumvalue":
                if child.tag != f"{_TP}docstring":
                    self.unknown(child, where)
                continue
            suffix = self.required(child, "suffix", f"{where}: value")
            vwhere = f"{where}: value {suffix}"
            self.check_attrs(child, vwhere)
            self.check_name(suffix, _MEMBER_RE, "enum value", vwhere)
            value = self.required(child, "value", vwhere)
            if code in _INT_RANGES:
                low, high = _INT_RANGES[code]
                if _INT_RE.fullmatch(value) is None or not low <= int(value) <= high:
                    raise self.error(vwhere, f"{value!r} is not a valid {code!r} value")
            if suffix in seen and self.strict:
                raise self.error(vwhere, "duplicate enum value")
            seen.add(suffix)
            values.append(EnumValue(suffix, value, _doc(child)))
        return Enum(name, code, tuple(values), _doc(elem))


def _local(tag: object) -> str:
    text = str(tag)
    if text.startswith(_TP):
        return "tp:" + text[len(_TP) :]
    return text


def _elements(elem: XmlElement) -> list[XmlElement]:
    """Element children, in order."""
    return elem.children


def _doc(elem: XmlElement) -> str:
    """``tp:docstring`` text, else the first comment child, dedented and stripped."""
    for child in elem.children:
        if child.tag == f"{_TP}docstring":
            return _clean(child.text())
    return _clean(elem.comment or "")


def _clean(text: str) -> str:
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    indents = [len(line) - len(line.lstrip()) for line in lines if line]
    cut = min(indents, default=0)
    return "\n".join(line[cut:] for line in lines).strip()


def parse_node(
    data: str | bytes, *, source: str = "<string>", strict: bool = True, kind: str = ""
) -> Node:
    """Parse one XML document into a `Node`; raise `IdlError` naming what is wrong."""
    size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
    if size > MAX_XML_BYTES:
        raise IdlError(f"{source}: document is {size} bytes, more than {MAX_XML_BYTES}")
    try:
        root = parse_xml(data)
    except XmlSyntaxError as exc:
        raise IdlError(f"{source}: malformed XML: {exc}") from None
    return _Reader(source, strict).node(root, kind)


def load_file(path: str | os.PathLike[str], *, strict: bool = True) -> Node:
    """Read and parse one interface file; ``kind`` is the file name without ``.xml``."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read(MAX_XML_BYTES + 1)
    except OSError as exc:
        raise IdlError(f"{name}: cannot read: {exc.strerror or exc}") from None
    stem = os.path.basename(name)
    stem = stem[: -len(".xml")] if stem.endswith(".xml") else stem
    return parse_node(data, source=name, strict=strict, kind=stem)


def load_directory(directory: str | os.PathLike[str]) -> dict[str, Node]:
    """Every ``*.xml`` of a directory (strict), keyed by file stem, in file-name order."""
    base = os.fspath(directory)
    names = sorted(n for n in os.listdir(base) if n.endswith(".xml"))
    return {n[: -len(".xml")]: load_file(os.path.join(base, n)) for n in names}


@cache
def load_package() -> Mapping[str, Node]:
    """The interface files shipped in this package, keyed by stem (``db``, ``xenmgr_vm``, ...).

    Loaded once and cached; the mapping is read-only.
    """
    from importlib import resources  # only here: it costs 4 ms of start-up

    nodes: dict[str, Node] = {}
    root = resources.files("rpc.idl")
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".xml") and entry.is_file():
            stem = entry.name[: -len(".xml")]
            nodes[stem] = parse_node(entry.read_bytes(), source=f"rpc/idl/{entry.name}", kind=stem)
    return MappingProxyType(nodes)


@cache
def package_interfaces() -> Mapping[str, Interface]:
    """Every interface of the package files by name; a name declared twice is an `IdlError`."""
    found: dict[str, Interface] = {}
    where: dict[str, str] = {}
    for stem, node in load_package().items():
        for interface in node.interfaces:
            if interface.name in found:
                raise IdlError(
                    f"interface {interface.name} is declared in both {where[interface.name]}.xml"
                    f" and {stem}.xml"
                )
            found[interface.name] = interface
            where[interface.name] = stem
    return MappingProxyType(found)


def package_interface(name: str) -> Interface:
    """One interface of the package files; `KeyError` naming it if there is none."""
    try:
        return package_interfaces()[name]
    except KeyError:
        raise KeyError(f"no interface {name!r} in rpc/idl") from None
