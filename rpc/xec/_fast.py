"""xec's fast path: a plain method call without jeepney, `typing` or the XML model.

Most xec invocations are one method call with scalar arguments (``xec -o /vm/x start``), and
most of their time went on imports. This module carries such a call on its own small client
(`rpc.xec._wire`) with its own scans; the output is byte for byte the full path's
(`rpc.xec._cli`), which tests/integration/test_xec_fast.py checks call by call.

`try_call` takes the command only if, before the method call is sent, everything is within
its limits; otherwise it answers `FALL_BACK` and the full path runs the command from the start
(the fast path may have sent ``Hello`` and ``Introspect``, which change nothing; the method
call itself is never sent twice). Its limits:

- the command line: only ``-q``, ``--session``, ``-s``, ``-o``, ``-i`` (long forms too)
  before the method name, which is not ``get``, ``set`` or ``getall``;
- the bus: a ``unix:path=`` or ``unix:abstract=`` address that answers (any failure to
  connect falls back, so the full path words the error);
- the introspection: well formed, no entity declaration, no ``tp:enum``, every element the model
  reads has its required attributes and a valid signature (a conservative check); the method
  is found, with as many arguments as given, each of a basic type other than ``h``, ``g``
  and ``v``, and each argument parses (`parse_basic`); otherwise the full path says why;
- the reply: any. Basic top-level values are formatted here, anything else by
  `rpc.xec._format` (imported only then).

After the call is sent, a failure is reported as the full path reports it (stderr, exit 1).
``XEC_FULL_PATH=1`` in the environment turns the fast path off (the tests compare both).
"""

from __future__ import annotations

import os
import re

from rpc.xec._cli import (
    _BUS_NAME_RE,
    _PATH_RE,
    INTROSPECTABLE,
    log_invocation,
    write_err,
    write_out,
)
from rpc.xec._wire import Unsupported, WireBus, WireReply

__all__ = ["FALL_BACK", "parse_basic", "scan_argv", "scan_introspection", "try_call"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

FALL_BACK = -1
CALL_TIMEOUT = 300.0  # as rpc.xec._bus
CONNECT_TIMEOUT = 5.0
MAX_XML = 4 * 1024 * 1024  # rpc.idl's bound: a bigger document is the full path's to refuse

_VALUE_OPTIONS = {"-s": "service", "--service": "service", "-o": "object",
                  "--object": "object", "-i": "interface", "--interface": "interface"}
_FLAGS = {"-q": "query", "--query": "query", "--session": "session"}
_OTHER_OPTIONS = frozenset(("-h", "--help", "--list-interfaces", "--list-methods",
                            "--list-properties", "-g", "--get", "-x", "--set", "-t",
                            "--target-domid"))
# patterns, compiled on first use (`re`'s cache): each costs start-up time
_INTERFACE_RE = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+"
_MEMBER_RE = r"[A-Za-z_][A-Za-z0-9_]*"
_INT_RE = r"-?[0-9]+"
_DOUBLE_RE = r"-?[0-9]+(?:\.[0-9]+)?"
_UNSIGNED_BITS = {"y": 8, "q": 16, "u": 32, "t": 64}
_SIGNED_BITS = {"n": 16, "i": 32, "x": 64}
_ARG_CODES = frozenset("ybnqiuxtdso")
_BASIC = frozenset("ybnqiuxtdsogh")


class _Fallback(Exception):
    """The fast path does not take this command."""


# -- command line --------------------------------------------------------------------------------


def scan_argv(args: Sequence[str]) -> dict[str, Any] | None:
    """The request of a plain method call, or None if the full parser must read ``args``.

    Same rules as `rpc.xec._options` (first occurrence wins, the first non-option token ends
    the options) for the options this path takes.
    """
    found: dict[str, Any] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if token in _FLAGS:
            found.setdefault(_FLAGS[token], True)
            i += 1
        elif token in _VALUE_OPTIONS:
            if i + 1 >= len(args):
                return None
            found.setdefault(_VALUE_OPTIONS[token], args[i + 1])
            i += 2
        elif token in _OTHER_OPTIONS:
            return None
        else:
            break
    positionals = args[i:]
    if not positionals or positionals[0] in ("get", "set", "getall"):
        return None
    found.setdefault("service", "com.citrix.xenclient.xenmgr")
    found.setdefault("object", "/")
    if _PATH_RE.fullmatch(found["object"]) is None or len(found["service"]) > 255 \
            or _BUS_NAME_RE.fullmatch(found["service"]) is None:
        return None
    found["method"] = positionals[0].replace("-", "_")
    found["args"] = list(positionals[1:])
    found["argv"] = list(args)
    return found


def bus_address(session: bool) -> str | None:
    """The address as `rpc.dbus.resolve_address` finds it; None where it would fail."""
    if session:
        return os.environ.get("DBUS_SESSION_BUS_ADDRESS") or None
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    if address:
        return address
    state = os.environ.get("OXT_STATE_DIR") or "state"
    try:
        with open(os.path.join(state, "dbus", "address")) as file:
            text = file.read().strip()
    except (OSError, ValueError):
        text = ""
    return text or "unix:path=/var/run/dbus/system_bus_socket"


# -- arguments -----------------------------------------------------------------------------------


def parse_basic(text: str, code: str) -> Any:
    """``text`` as a top-level argument of basic type ``code``, as `rpc.xec._literal` reads it;
    `ValueError` where that would fail or the code is not one this path takes."""
    if code in "so":
        text.encode("utf-8")  # UnicodeEncodeError is a ValueError
        if "\0" in text or (code == "o" and _PATH_RE.fullmatch(text) is None):
            raise ValueError(text)
        return text
    word = text.strip()
    if code == "b":
        if word in ("true", "1"):
            return True
        if word in ("false", "0"):
            return False
        raise ValueError(text)
    if code == "d":
        if re.fullmatch(_DOUBLE_RE, word) is None:
            raise ValueError(text)
        return float(word)
    if re.fullmatch(_INT_RE, word) is None:
        raise ValueError(text)
    number = int(word)
    if code in _UNSIGNED_BITS:
        return number % (1 << _UNSIGNED_BITS[code])
    bits = _SIGNED_BITS[code]  # KeyError for any other code
    if not -(1 << (bits - 1)) <= number < (1 << (bits - 1)):
        raise ValueError(text)
    return number


# -- introspection -------------------------------------------------------------------------------


def _valid_type(sig: str) -> bool:
    """A conservative check that ``sig`` is one complete type (rpc.idl's rules hold)."""
    if not sig or len(sig) > 255 or sig.count("a") > 32:
        return False
    depth = 0
    for char in sig:
        depth += char in "({"
        depth -= char in ")}"
        if depth < 0 or depth > 30 or char not in "ybnqiuxtdsoghva(){}":
            return False
    try:
        end = _type_end(sig, 0, False)
    except IndexError:
        return False
    return end == len(sig)


def _type_end(sig: str, i: int, in_array: bool) -> int:
    code = sig[i]
    if code in _BASIC or code == "v":
        return i + 1
    if code == "a":
        return _type_end(sig, i + 1, True)
    if code == "(":
        i += 1
        if sig[i] == ")":
            raise IndexError
        while sig[i] != ")":
            i = _type_end(sig, i, False)
        return i + 1
    if code == "{" and in_array and sig[i + 1] in _BASIC:
        end = _type_end(sig, i + 2, False)
        if sig[end] == "}":
            return end + 1
    raise IndexError


_REQUIRED = {"interface": ("name",), "method": ("name",), "signal": ("name",),
             "property": ("name", "type", "access"), "arg": ("type",),
             "annotation": ("name", "value")}
_PARENTS = {"interface": ("node",), "method": ("interface",), "signal": ("interface",),
            "property": ("interface",), "arg": ("method", "signal"),
            "annotation": ("interface", "method", "signal", "property", "arg")}


def scan_introspection(xml: str) -> list[tuple[str, dict[str, list[str]]]]:
    """Interfaces in order (first of a name wins) with each method's in-arg types (first of a
    name wins); `_Fallback` for anything `rpc.idl.parse_node` might read otherwise."""
    if len(xml) > MAX_XML // 4:  # at most 4 bytes a character
        raise _Fallback
    import pyexpat

    interfaces: list[tuple[str, dict[str, list[str]]]] = []
    # the open elements: (tag, read: whether parse_node reads it) from the root down
    stack: list[tuple[str, bool]] = []
    method: list[list[str] | None] = [None]

    def start(tag: str, attrs: dict[str, str]) -> None:
        if not stack:
            if tag != "node":
                raise _Fallback
            stack.append((tag, True))
            return
        parent, read = stack[-1]
        if "}" in tag:
            if "enum" in tag:
                raise _Fallback
            stack.append((tag, False))
            return
        read = read and parent in _PARENTS.get(tag, ()) and not (tag == "node")
        stack.append((tag, read))
        if not read:
            return
        for attr in _REQUIRED[tag]:
            if attr not in attrs:
                raise _Fallback
        _check_element(tag, parent, attrs)
        if tag == "interface":
            interfaces.append((attrs["name"], {}))
        elif tag == "method":
            methods = interfaces[-1][1]
            method[0] = [] if attrs["name"] in methods else methods.setdefault(attrs["name"], [])
        elif tag == "arg" and parent == "method" and attrs.get("direction", "in") == "in":
            args = method[0]
            assert args is not None
            args.append(attrs["type"])

    def end(_tag: str) -> None:
        stack.pop()

    def entity(*_args: object) -> None:
        raise _Fallback

    parser = pyexpat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.EntityDeclHandler = entity
    try:
        parser.Parse(xml, True)
    except pyexpat.ExpatError:
        raise _Fallback from None
    seen: set[str] = set()
    firsts = []
    for name, methods in interfaces:
        if name not in seen:
            seen.add(name)
            firsts.append((name, methods))
    return firsts


def _check_element(tag: str, parent: str, attrs: dict[str, str]) -> None:
    if tag in ("arg", "property") and not _valid_type(attrs["type"]):
        raise _Fallback
    if tag == "property" and attrs["access"] not in ("read", "write", "readwrite"):
        raise _Fallback
    if tag == "arg" and attrs.get("direction", "in" if parent == "method" else "out") not in (
            ("in", "out") if parent == "method" else ("out",)):
        raise _Fallback


# -- the call ------------------------------------------------------------------------------------


def try_call(args: Sequence[str]) -> int:
    """Run ``args`` as a plain method call; `FALL_BACK` if the full path must run it (then
    nothing but ``Hello`` and ``Introspect`` went out, and nothing was written)."""
    if os.environ.get("XEC_FULL_PATH"):
        return FALL_BACK
    request = scan_argv(args)
    if request is None:
        return FALL_BACK
    address = bus_address(request.get("session", False))
    if address is None:
        return FALL_BACK
    try:
        bus = WireBus.connect(address, CONNECT_TIMEOUT)
    except (OSError, ValueError, Unsupported):
        return FALL_BACK
    try:
        return _call(bus, request, address)
    except _Fallback:
        return FALL_BACK
    finally:
        bus.close()


def _call(bus: WireBus, request: dict[str, Any], address: str) -> int:
    service, path, method = request["service"], request["object"], request["method"]
    try:
        reply = bus.call(service, path, INTROSPECTABLE, "Introspect", "", [], CALL_TIMEOUT)
    except (OSError, ValueError, IndexError):
        raise _Fallback from None
    if reply.error is not None or reply.signature != "s":
        raise _Fallback
    interfaces = scan_introspection(reply.body[0])
    wanted = request.get("interface")
    owner = next((i for i in interfaces if (wanted is None or i[0] == wanted)
                  and method in i[1]), None)
    if owner is None or re.fullmatch(_INTERFACE_RE, owner[0]) is None or len(owner[0]) > 255 \
            or re.fullmatch(_MEMBER_RE, method) is None or len(method) > 255:
        raise _Fallback
    types = owner[1][method]
    given = request["args"]
    if len(types) != len(given) or not all(t in _ARG_CODES for t in types):
        raise _Fallback
    try:
        body = [(t, parse_basic(text, t)) for t, text in zip(types, given, strict=True)]
    except ValueError:
        raise _Fallback from None
    if not request.get("query"):
        log_invocation("xec", request["argv"])
    try:
        reply = bus.call(service, path, owner[0], method, "".join(types), body, CALL_TIMEOUT)
    except TimeoutError:
        write_err(f"xec: no reply to {method} within {CALL_TIMEOUT:g} s\n")
        return 1
    except (OSError, ValueError, IndexError) as exc:
        write_err(f"xec: call failed on the bus at {address}: "
                  f"{exc or type(exc).__name__}\n")
        return 1
    return _show(reply)


def _show(reply: WireReply) -> int:
    if reply.error is not None:
        write_out(_error_line(reply) + "\n")
        return 1
    if all(code in _ARG_CODES for code in reply.signature):
        write_out("".join(_basic_text(v, c) + "\n" for v, c in zip(reply.body, reply.signature,
                                                                     strict=True)))
        return 0
    from rpc.xec._format import format_reply

    try:
        text = format_reply(reply.body, reply.signature)
    except (TypeError, ValueError) as exc:
        write_err(f"xec: cannot show the reply: {exc}\n")
        return 1
    write_out(text)
    return 0


def _basic_text(value: Any, code: str) -> str:
    if code == "b":
        return "true" if value else "false"
    if code == "d":
        from rpc.xec._haskell import show_double

        return show_double(float(value))
    return value if code in "so" else str(value)


def _error_line(reply: WireReply) -> str:
    name = reply.error or ""
    if all(code in _ARG_CODES for code in reply.signature):
        return f"{name}: " + ", ".join(_basic_text(v, c) for v, c in zip(
            reply.body, reply.signature, strict=True))
    from rpc.xec._format import format_error

    try:
        return format_error(name, reply.body, reply.signature)
    except (TypeError, ValueError):
        return f"{name}: "
