"""The ``xec`` console script: call a method or get/set properties of a DBus object.

Behaviour (the command line itself is `rpc.xec._options`):

- Every command but ``-h`` and ``get`` with ``-i`` first introspects the object, to find the
  interface (the first, in introspection order, that declares the method or property) and to
  type the arguments (`rpc.xec._literal`). Method names were mangled ``-`` -> ``_`` already.
- ``getall``: ``GetAll`` of ``-i``, or of every introspected interface except
  ``org.freedesktop.DBus.Properties``, printed block by block as they come.
- No command: the introspection listing; ``--list-*``: names. Output formats:
  `rpc.xec._format`, written as UTF-8 bytes.
- Outcomes: success exits 0. A DBus error reply is printed to STDOUT as ``<name>: <body>`` and
  exits 1 (what was printed before it stays). A local failure (bad command line, no such
  method, argument that does not parse, no bus, no reply in time) is printed to STDERR as
  ``xec: <message>`` and exits 1.
- Without ``-q`` the invocation is logged to syslog (ident ``xec``, facility user, level
  info) as ``invoked with: <args>``; a missing syslog daemon never fails the command.
- ``-t N`` (N >= 0, a domain's bus over Argo) is not available: a local error.

Start-up is kept short: a plain method call goes the fast path (`rpc.xec._fast`: no jeepney,
no `typing`, no XML model; it hands anything else back before sending the call); otherwise
only the modules a command needs are imported, jeepney only when connecting, and nothing of
the actor runtime. Run as the console script, the process ends with ``os._exit`` once stdout
and stderr are flushed (see `exit_now`).
"""

from __future__ import annotations

import re
import sys

TYPE_CHECKING = False  # not `typing`'s: importing typing costs xec's fast path ~35 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn

    from rpc.idl import Interface
    from rpc.xec._bus import Bus, ReplyError
    from rpc.xec._options import XecRequest

    Write = Callable[[str], None]

__all__ = [
    "LocalError",
    "execute",
    "exit_now",
    "main",
    "run_xec",
    "silence_stdout",
    "write_err",
    "write_out",
]

PROPERTIES = "org.freedesktop.DBus.Properties"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"

_PATH_RE = re.compile(r"/|(?:/[A-Za-z0-9_]+)+")
_NAME_ELEMENT = r"[A-Za-z_-][A-Za-z0-9_-]*"
_BUS_NAME_RE = re.compile(
    rf":[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+|{_NAME_ELEMENT}(?:\.{_NAME_ELEMENT})+")


class LocalError(Exception):
    """A failure of xec itself (its message goes to stderr)."""


def _write(stream: Any, text: str) -> None:
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(text)
    else:
        stream.flush()
        buffer.write(text.encode("utf-8", "surrogateescape"))
        buffer.flush()


def write_out(text: str) -> None:
    """Write to stdout as UTF-8 bytes (argv's undecodable bytes written back as they came)."""
    _write(sys.stdout, text)


def write_err(text: str) -> None:
    """Write to stderr as UTF-8 bytes."""
    _write(sys.stderr, text)


def log_invocation(ident: str, args: Sequence[str]) -> None:
    """``invoked with: <args>`` to syslog (facility user, level info); never raises."""
    try:
        import syslog

        syslog.openlog(ident, 0, syslog.LOG_USER)
        syslog.syslog(syslog.LOG_INFO, "invoked with: " + " ".join(args))
        syslog.closelog()
    except Exception:  # no syslog, or a string it cannot take: the command goes on
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xec`` with ``argv``; returns the exit code.

    Without ``argv`` (the console script) the process's arguments are used and the process
    ends here through `exit_now`.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = run_xec(args)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        silence_stdout()
        code = 1
    if argv is None:
        exit_now(code)
    return code


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` at once: flush stdout and stderr, then ``os._exit``.

    This skips the interpreter's teardown (clearing every module, final collections), about
    5 ms of a 45 ms run. Nothing of xec needs it: its only buffered output is stdout and
    stderr, flushed here; its bus connection is closed already; it registers no atexit
    handlers and starts no threads.
    """
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def silence_stdout() -> None:
    """Point stdout at /dev/null (after a broken pipe, so that exiting does not fail again)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run_xec(args: Sequence[str], bus: Bus | None = None) -> int:
    """xec's whole run on ``args``, on ``bus`` if given (xec-vm passes its connection).

    Without ``bus``, a plain method call goes the fast path (`rpc.xec._fast`) when it can.
    """
    if bus is None:
        from rpc.xec._fast import FALL_BACK, try_call

        code = try_call(args)
        if code != FALL_BACK:
            return code
    from rpc.xec._bus import Bus, BusFailure, ReplyError, resolve_bus_address
    from rpc.xec._options import Command, UsageError, parse_xec_argv

    try:
        request = parse_xec_argv(args)
    except UsageError as exc:
        write_err(f"xec: {exc}\n")
        return 1
    if not request.query:
        log_invocation("xec", args)
    if request.action.command is Command.HELP:
        from rpc.xec._options import XEC_USAGE

        write_out(XEC_USAGE)
        return 0
    try:
        if request.target_domid >= 0:
            raise LocalError("not implemented: -t (Argo transport)")
        _check_location(request)
        if bus is not None:
            execute(bus, request, write_out)
        else:
            with Bus.connect(resolve_bus_address(request.session)) as own:
                execute(own, request, write_out)
    except ReplyError as exc:
        from rpc.xec._format import format_error

        write_out(_error_line(exc, format_error) + "\n")
        return 1
    except (LocalError, BusFailure) as exc:
        write_err(f"xec: {exc}\n")
        return 1
    return 0


def _error_line(exc: ReplyError, format_error: Callable[[str, Any, str], str]) -> str:
    try:
        return format_error(exc.name, exc.body, exc.signature)
    except (TypeError, ValueError):  # a body our formats cannot show: still say the name
        return f"{exc.name}: "


def _check_location(request: XecRequest) -> None:
    location = request.location
    if _PATH_RE.fullmatch(location.object) is None:
        raise LocalError(f"invalid object path {location.object!r}")
    if len(location.service) > 255 or _BUS_NAME_RE.fullmatch(location.service) is None:
        raise LocalError(f"invalid bus name {location.service!r}")


# -- commands ------------------------------------------------------------------------------------


def execute(bus: Bus, request: XecRequest, write: Write) -> None:
    """Carry out ``request`` on ``bus``, writing its output with ``write``.

    Raises `ReplyError` for a DBus error reply, `LocalError` or `BusFailure` otherwise.
    """
    from rpc.xec._options import Command

    action = request.action
    command = action.command
    location = request.location
    if command is Command.GET and location.interface is not None:
        _get(bus, request, location.interface, action.name, write)
        return
    interfaces = introspect(bus, location.service, location.object)
    if command is Command.CALL:
        _call(bus, request, interfaces, write)
    elif command is Command.GET:
        _get(bus, request, _property_owner(interfaces, action.name).name, action.name, write)
    elif command is Command.SET:
        _set(bus, request, interfaces)
    elif command is Command.GET_ALL:
        _get_all(bus, request, interfaces, write)
    else:
        _listing(request, interfaces, write)


def introspect(bus: Bus, service: str, path: str) -> list[Interface]:
    """The object's interfaces in introspection order; `LocalError` if unreadable."""
    reply = bus.call(service, path, INTROSPECTABLE, "Introspect")
    if reply.signature != "s":
        raise LocalError(f"Introspect of {path} at {service} answered signature "
                         f"{reply.signature!r}, not 's'")
    from rpc.idl import IdlError, parse_node

    try:
        node = parse_node(reply.body[0], source=f"{service} {path}", strict=False)
    except IdlError as exc:
        raise LocalError(f"cannot read the introspection data: {exc}") from None
    return list(node.interfaces)


def _listing(request: XecRequest, interfaces: list[Interface], write: Write) -> None:
    from rpc.xec._format import (
        format_interface_names,
        format_introspection,
        format_method_names,
        format_property_names,
    )
    from rpc.xec._options import Command

    command = request.action.command
    interface = request.location.interface
    if command is Command.LIST_INTERFACES:
        write(format_interface_names(interfaces))
    elif command is Command.LIST_METHODS:
        write(format_method_names(interfaces, interface))
    elif command is Command.LIST_PROPERTIES:
        write(format_property_names(interfaces, interface))
    else:
        write(format_introspection(interfaces))


def _call(bus: Bus, request: XecRequest, interfaces: list[Interface], write: Write) -> None:
    name = request.action.name
    given = request.action.args
    wanted = request.location.interface
    if wanted is None:
        owner = next((i for i in interfaces if i.method(name) is not None), None)
        if owner is None:
            raise LocalError(f"method {name} not found in any of the interfaces")
    else:
        owner = _interface(interfaces, wanted)
        if owner.method(name) is None:
            raise LocalError(f"method {wanted}.{name} not found")
    method = owner.method(name)
    assert method is not None
    in_args = method.in_args
    if len(in_args) != len(given):
        raise LocalError(f"method {name} expects {len(in_args)} args, but {len(given)} "
                         "were given")
    from rpc.idl import SignatureError
    from rpc.xec._literal import LiteralError, parse_argument

    try:
        values = [parse_argument(text, arg.type, n)
                  for n, (text, arg) in enumerate(zip(given, in_args, strict=True), 1)]
    except (LiteralError, SignatureError) as exc:
        raise LocalError(str(exc)) from None
    location = request.location
    reply = bus.call(location.service, location.object, owner.name, name,
                     method.in_signature, values)
    from rpc.xec._format import format_reply

    write(_formatted(format_reply, reply.body, reply.signature))


def _formatted(formatter: Callable[[Any, Any], str], first: Any, second: Any) -> str:
    try:
        return formatter(first, second)
    except (TypeError, ValueError) as exc:
        raise LocalError(f"cannot show the reply: {exc}") from None


def _interface(interfaces: list[Interface], name: str) -> Interface:
    found = next((i for i in interfaces if i.name == name), None)
    if found is None:
        raise LocalError(f"interface {name} not found")
    return found


def _property_owner(interfaces: list[Interface], name: str) -> Interface:
    owner = next((i for i in interfaces if i.property(name) is not None), None)
    if owner is None:
        raise LocalError(f"property {name} not found in any of the interfaces")
    return owner


def _get(bus: Bus, request: XecRequest, interface: str, name: str, write: Write) -> None:
    location = request.location
    reply = bus.call(location.service, location.object, PROPERTIES, "Get", "ss",
                     (interface, name))
    from rpc.xec._format import format_reply

    write(_formatted(format_reply, reply.body, reply.signature))


def _set(bus: Bus, request: XecRequest, interfaces: list[Interface]) -> None:
    name, text = request.action.name, request.action.value
    wanted = request.location.interface
    if wanted is None:
        owner = _property_owner(interfaces, name)
    else:
        owner = _interface(interfaces, wanted)
        if owner.property(name) is None:
            raise LocalError(f"property {wanted}.{name} not found")
    prop = owner.property(name)
    assert prop is not None
    from rpc.idl import SignatureError
    from rpc.xec._literal import LiteralError, parse_argument

    try:
        value = parse_argument(text, prop.type, 1)
    except (LiteralError, SignatureError) as exc:
        raise LocalError(str(exc)) from None
    location = request.location
    bus.call(location.service, location.object, PROPERTIES, "Set", "ssv",
             (owner.name, name, (prop.type, value)))


def _get_all(bus: Bus, request: XecRequest, interfaces: list[Interface], write: Write) -> None:
    from rpc.xec._format import format_getall

    wanted = request.location.interface
    names = [wanted] if wanted is not None else [i.name for i in interfaces
                                                  if i.name != PROPERTIES]
    location = request.location
    for name in names:
        reply = bus.call(location.service, location.object, PROPERTIES, "GetAll", "s", (name,))
        if reply.signature != "a{sv}":
            raise LocalError(f"GetAll({name}) answered signature {reply.signature!r}, "
                             "not 'a{sv}'")
        write(_formatted(format_getall, name, reply.body[0]))


if __name__ == "__main__":
    main()
