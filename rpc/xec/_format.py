"""xec's and xec-vm's output, byte for byte as the originals print it.

Values (jeepney's decoded form, typed by a signature):

- integers and unix fds in decimal; ``b`` as ``true``/``false``; ``d`` as Haskell ``show``
  (``1.0``, ``1.0e-2``); ``s`` and ``o`` raw; ``v`` unwrapped; ``g`` as the Haskell debug value
  of the original's signature type (``[SigString,SigArray SigInt32]``);
- ``ay`` as a Haskell string literal with Haskell escapes (``"a\\NULb\\255"``);
- other arrays and structs: the elements, each formatted, joined by newlines (nesting
  flattens; an empty array is the empty string);
- dicts: ``{``, then per entry a line of two spaces, the key in double quotes left-justified to
  30 characters, `` = ``, the value; then ``}``. A multi-line value continues unindented.

Each function returns text; those that print whole lines include the final newline. Inputs are
assumed well-typed (as a DBus decoder produces them); a value that does not fit its type raises
`TypeError` naming both. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from rpc.idl import DBusType, parse_signature, parse_single_type
from rpc.xec._haskell import show_bytes, show_double

if TYPE_CHECKING:
    from rpc.idl import Interface

__all__ = [
    "VM_TABLE_RULE",
    "VmRow",
    "format_error",
    "format_getall",
    "format_interface_names",
    "format_introspection",
    "format_method_names",
    "format_property_names",
    "format_reply",
    "format_value",
    "format_vm_table",
    "show_signature",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_SIG_NAMES = {
    "y": "SigByte",
    "b": "SigBool",
    "n": "SigInt16",
    "q": "SigUInt16",
    "i": "SigInt32",
    "u": "SigUInt32",
    "x": "SigInt64",
    "t": "SigUInt64",
    "d": "SigDouble",
    "s": "SigString",
    "o": "SigObjectPath",
    "g": "SigSignature",
    "v": "SigVariant",
    "h": "SigUnixFD",
}


def _show_type(t: DBusType, nested: bool) -> str:
    if t.code in _SIG_NAMES:
        return _SIG_NAMES[t.code]
    if t.code == "a":
        text = "SigArray " + _show_type(t.children[0], True)
    elif t.code == "(":
        text = "SigStruct [" + ",".join(_show_type(c, False) for c in t.children) + "]"
    else:
        text = f"SigDict {_show_type(t.children[0], True)} {_show_type(t.children[1], True)}"
    return f"({text})" if nested else text


def show_signature(signature: str) -> str:
    """The original's debug form of a signature: a Haskell list of type constructors."""
    return "[" + ",".join(_show_type(t, False) for t in parse_signature(signature)) + "]"


def _mismatch(value: Any, t: DBusType) -> TypeError:
    return TypeError(f"cannot format {value!r} as DBus type {t.signature!r}")


def format_value(value: Any, type: DBusType | str) -> str:
    """One value as xec prints it (possibly several lines, no final newline)."""
    t = parse_single_type(type) if isinstance(type, str) else type
    code = t.code
    if code == "b":
        if not isinstance(value, bool | int):
            raise _mismatch(value, t)
        return "true" if value else "false"
    if code in "ynqiuxt":
        if not isinstance(value, int):
            raise _mismatch(value, t)
        return str(int(value))
    if code == "h":
        fd = value if isinstance(value, int) else getattr(value, "fileno", lambda: None)()
        if not isinstance(fd, int):
            raise _mismatch(value, t)
        return str(fd)
    if code == "d":
        if not isinstance(value, float | int):
            raise _mismatch(value, t)
        return show_double(float(value))
    if code in "so":
        if not isinstance(value, str):
            raise _mismatch(value, t)
        return value
    if code == "g":
        if not isinstance(value, str):
            raise _mismatch(value, t)
        return show_signature(value)
    if code == "v":
        if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)):
            raise _mismatch(value, t)
        return format_value(value[1], value[0])
    if code == "a":
        element = t.children[0]
        if element.code == "{":
            if not isinstance(value, Mapping):
                raise _mismatch(value, t)
            key_t, value_t = element.children
            entries = (
                _entry(format_value(k, key_t), format_value(v, value_t), 30)
                for k, v in value.items()
            )
            return "{\n" + "".join(f"  {e}\n" for e in entries) + "}"
        if element.code == "y" and isinstance(value, bytes | bytearray):
            return show_bytes(bytes(value))
        if not isinstance(value, list | tuple):
            raise _mismatch(value, t)
        if element.code == "y":
            return show_bytes(bytes(value))
        return "\n".join(format_value(v, element) for v in value)
    if code == "(":
        if not isinstance(value, tuple | list) or len(value) != len(t.children):
            raise _mismatch(value, t)
        return "\n".join(format_value(v, f) for v, f in zip(value, t.children, strict=True))
    raise _mismatch(value, t)


def _entry(key: str, value: str, width: int) -> str:
    return f'"{key}"'.ljust(width) + " = " + value


def _values(values: Sequence[Any], signature: str | Sequence[DBusType]) -> list[str]:
    types = parse_signature(signature) if isinstance(signature, str) else tuple(signature)
    if len(types) != len(values):
        raise TypeError(f"{len(values)} values for signature with {len(types)} types")
    return [format_value(v, t) for v, t in zip(values, types, strict=True)]


def format_reply(values: Sequence[Any], signature: str | Sequence[DBusType]) -> str:
    """A method reply: each top-level value on its own line(s); nothing for no values."""
    return "".join(text + "\n" for text in _values(values, signature))


def format_error(name: str, values: Sequence[Any], signature: str | Sequence[DBusType]) -> str:
    """A DBus error line (no newline): ``<name>: <body values, joined by ", ">``."""
    return f"{name}: " + ", ".join(_values(values, signature))


def format_getall(interface: str, properties: Mapping[str, tuple[str, Any]]) -> str:
    """The ``getall`` block of one interface; ``""`` when it has no properties.

    ``properties`` maps names to variants as jeepney gives them: ``(signature, value)``.
    """
    if not properties:
        return ""
    lines = [interface, "{"]
    for name, variant in properties.items():
        lines.append("  " + _entry(name, format_value(variant, "v"), 35))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _arg_text(name: str, type: str) -> str:
    return f"{name}:{type}"


def _render_interface(interface: Interface) -> str:
    lines = [
        "|     -  " + f"{p.name.ljust(28)} {p.access.value}:{p.type}" for p in interface.properties
    ]
    for m in interface.methods:
        args = [_arg_text(a.name, a.type) for a in m.in_args]
        args += ["OUT " + _arg_text(a.name, a.type) for a in m.out_args]
        lines.append("|     +  " + m.name.replace("_", "-").ljust(28) + f" ( {', '.join(args)} )")
    return f"/------- {interface.name}\n" + "\n".join(lines)


def format_introspection(interfaces: Iterable[Interface]) -> str:
    """The listing xec prints with no command: blocks per interface, then a blank line.

    Blocks are separated by one blank line; signals are not listed (as the original).
    """
    return "\n\n".join(_render_interface(i) for i in interfaces) + "\n\n"


def format_interface_names(interfaces: Iterable[Interface]) -> str:
    """``--list-interfaces``: one name per line."""
    return "".join(f"{i.name}\n" for i in interfaces)


def _chosen(interfaces: Sequence[Interface], interface: str | None) -> Sequence[Interface]:
    match = [i for i in interfaces if interface is not None and i.name == interface]
    return match[:1] or interfaces


def format_method_names(interfaces: Sequence[Interface], interface: str | None = None) -> str:
    """``--list-methods``: names (``_`` shown as ``-``) of ``interface`` if present, else all."""
    return "".join(
        m.name.replace("_", "-") + "\n" for i in _chosen(interfaces, interface) for m in i.methods
    )


def format_property_names(interfaces: Sequence[Interface], interface: str | None = None) -> str:
    """``--list-properties``: names of ``interface`` if present, else of all interfaces."""
    return "".join(p.name + "\n" for i in _chosen(interfaces, interface) for p in i.properties)


class VmRow(NamedTuple):
    """One VM of the xec-vm table, from properties domid, name, uuid and state."""

    domid: int
    name: str
    uuid: str
    state: str


VM_TABLE_RULE = "-----+--------------------+--------------------------------------+--------"


def format_vm_table(rows: Iterable[VmRow]) -> str:
    """xec-vm's table: header, rule, rows by domid ascending, stopped VMs (domid < 0) last.

    The sort is stable (ties keep the given order); a negative domid shows as blank; nothing
    is truncated.
    """
    lines = [f" {'ID':<3} | {'Name':<18} | {'UUID':<36} | {'State':<10}", VM_TABLE_RULE]
    for row in sorted(rows, key=lambda r: (r.domid < 0, r.domid if r.domid >= 0 else 0)):
        domid = "" if row.domid < 0 else str(row.domid)
        lines.append(f" {domid:>3} | {row.name:<18} | {row.uuid:<36} | {row.state:<10}")
    return "\n".join(lines) + "\n"
