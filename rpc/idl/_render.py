"""Render model values back to XML: standard introspection XML, or our interface-file dialect.

`render_introspection` produces what ``org.freedesktop.DBus.Introspectable.Introspect`` returns:
the freedesktop DOCTYPE, one ``<node>``, interfaces in the order given (then the requested
standard interfaces), each with methods, signals and properties in declared order, property
access spelled out, annotations kept. Enums and documentation are left out; an unnamed arg has
no ``name`` attribute. The output is deterministic for a given input.

`render_idl` produces a full interface file (enums as ``tp:enum``, documentation as XML comments)
that the loader reads back to an equal `Node`.

Both only escape text; an unknown standard interface name raises `KeyError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rpc.idl._model import TP_NAMESPACE
from rpc.idl._standard import STANDARD_INTERFACES

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from rpc.idl._model import Annotation, Arg, Enum, Interface, Node

__all__ = ["DOCTYPE", "render_idl", "render_introspection"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

DOCTYPE = (
    '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\n'
    ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n'
)

_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\n": "&#10;",
        "\r": "&#13;",
        "\t": "&#9;",
    }
)


def _q(value: str) -> str:
    """A double-quoted, escaped XML attribute value."""
    return '"' + value.translate(_ESCAPES) + '"'


def _comment(text: str, indent: str) -> list[str]:
    if not text:
        return []
    body = text.replace("--", "- -")
    if body.endswith("-"):
        body += " "
    lines = body.splitlines()
    if len(lines) == 1:
        return [f"{indent}<!-- {lines[0]} -->"]
    inner = indent + "  "
    return [f"{indent}<!--", *[(inner + line).rstrip() for line in lines], f"{indent}-->"]


def _annotations(annotations: Iterable[Annotation], indent: str) -> list[str]:
    return [f"{indent}<annotation name={_q(a.name)} value={_q(a.value)}/>" for a in annotations]


def _arg(arg: Arg, indent: str, *, signal: bool, idl: bool) -> list[str]:
    attrs = f" name={_q(arg.name)}" if arg.name else ""
    attrs += f" type={_q(arg.type)}"
    if not signal:
        attrs += f" direction={_q(arg.direction.value)}"
    inner = (_comment(arg.doc, indent + "  ") if idl else []) + _annotations(
        arg.annotations, indent + "  "
    )
    if not inner:
        return [f"{indent}<arg{attrs}/>"]
    return [f"{indent}<arg{attrs}>", *inner, f"{indent}</arg>"]


def _element(tag: str, attrs: str, inner: list[str], indent: str) -> list[str]:
    if not inner:
        return [f"{indent}<{tag}{attrs}/>"]
    return [f"{indent}<{tag}{attrs}>", *inner, f"{indent}</{tag}>"]


def _enum(enum: Enum, indent: str) -> list[str]:
    inner = _comment(enum.doc, indent + "  ")
    for value in enum.values:
        inner += _element(
            "tp:enumvalue",
            f" suffix={_q(value.suffix)} value={_q(value.value)}",
            _comment(value.doc, indent + "    "),
            indent + "  ",
        )
    return _element("tp:enum", f" name={_q(enum.name)} type={_q(enum.type)}", inner, indent)


def _interface(interface: Interface, indent: str, *, idl: bool) -> list[str]:
    sub = indent + "  "
    deep = sub + "  "
    inner: list[str] = []
    if idl:
        inner += _comment(interface.doc, sub)
        for enum in interface.enums:
            inner += _enum(enum, sub)
    inner += _annotations(interface.annotations, sub)
    for method in interface.methods:
        body = _comment(method.doc, deep) if idl else []
        for arg in method.args:
            body += _arg(arg, deep, signal=False, idl=idl)
        body += _annotations(method.annotations, deep)
        inner += _element("method", f" name={_q(method.name)}", body, sub)
    for signal in interface.signals:
        body = _comment(signal.doc, deep) if idl else []
        for arg in signal.args:
            body += _arg(arg, deep, signal=True, idl=idl)
        body += _annotations(signal.annotations, deep)
        inner += _element("signal", f" name={_q(signal.name)}", body, sub)
    for prop in interface.properties:
        body = _comment(prop.doc, deep) if idl else []
        body += _annotations(prop.annotations, deep)
        attrs = f" name={_q(prop.name)} type={_q(prop.type)} access={_q(prop.access.value)}"
        inner += _element("property", attrs, body, sub)
    return [f"{indent}<interface name={_q(interface.name)}>", *inner, f"{indent}</interface>"]


def render_introspection(
    interfaces: Sequence[Interface],
    *,
    path: str | None = None,
    children: Iterable[str] = (),
    standard: Iterable[str] = (),
) -> str:
    """Standard introspection XML for an object serving ``interfaces``.

    ``standard`` names standard interfaces (keys of `STANDARD_INTERFACES`) to list after the
    declared ones, in the order given, skipping any already listed. ``children`` are the names
    of child nodes; ``path`` becomes the ``name`` of the root node when given.
    """
    listed = list(interfaces)
    names = {i.name for i in listed}
    for name in standard:
        extra = STANDARD_INTERFACES[name]
        if name not in names:
            listed.append(extra)
            names.add(name)
    lines = [f"<node name={_q(path)}>" if path is not None else "<node>"]
    for interface in listed:
        lines += _interface(interface, "  ", idl=False)
    lines += [f"  <node name={_q(child)}/>" for child in children]
    lines.append("</node>")
    return DOCTYPE + "\n".join(lines) + "\n"


def render_idl(node: Node) -> str:
    """An interface file for ``node``: enums and docs included; `load_file` reads it back."""
    use_tp = bool(node.all_enums)
    attrs = f" name={_q(node.name)}" if node.name is not None else ""
    if use_tp:
        attrs += f" xmlns:tp={_q(TP_NAMESPACE)}"
    lines = [f"<node{attrs}>"]
    lines += _comment(node.doc, "  ")
    for enum in node.enums:
        lines += _enum(enum, "  ")
    for interface in node.interfaces:
        lines += _interface(interface, "  ", idl=True)
    lines += [f"  <node name={_q(child)}/>" for child in node.children]
    lines.append("</node>")
    return DOCTYPE + "\n".join(lines) + "\n"
