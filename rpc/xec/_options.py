"""Command lines of xec and xec-vm: the original hand-written option parser and command choice.

Parsing (both tools): argv is walked from the left. A token equal to ``--<long>`` or ``-<short>``
of a known option is consumed with its fixed number of values (0, 1 or 2), whatever those
values look like (``-i -x`` makes ``-x`` the interface). The first token that is not a known
option ends option parsing: it and everything after it are positional, so options must come
before the method, ``get``, ``set`` or ``getall``. There is no bundling (``-qx``), no
``--opt=value`` and no ``--`` terminator. An option given twice: the first occurrence wins.

xec command, by precedence: ``-h`` > ``--list-interfaces`` > ``--list-methods`` >
``--list-properties`` > ``-g P`` > ``-x P V`` > positional. Positional forms: ``getall ...``;
``get P ...``; ``set P V ...`` (extra tokens ignored, as the original); anything else calls the
method named by the first token with every ``-`` turned into ``_`` (so ``get`` alone and ``set``
with fewer than two arguments call methods named ``get``/``set``); nothing introspects.
Defaults: service ``com.citrix.xenclient.xenmgr``, object ``/``, no interface, domid -1.

xec-vm: VM selection ``-o PATH`` (``--object``; ``--path`` accepted too) > ``-n NAME`` >
``-u UUID`` > ``-d DOMID``; none selects the VM table. With a VM, ``--list-disks`` >
``--list-nics`` > ``-k ID`` > ``-c ID`` > the VM object itself, run by re-invoking xec with
`xec_vm_forward_argv`.

Deliberate fixes (docs/compatibility.md): an option missing its value(s) at the end of argv is
a `UsageError` naming it (the original silently dropped it and introspected); ``-t`` must be a
whole integer (the original read ``5x`` as 5 and garbage as -1); the xec-vm forward strips
selector options only from the option part of argv, never from positionals.
All functions are pure; errors raise `UsageError` with a message for stderr.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "DEFAULT_OBJECT",
    "DEFAULT_SERVICE",
    "XEC_OPTIONS",
    "XEC_USAGE",
    "XEC_VM_OPTIONS",
    "XEC_VM_USAGE",
    "Action",
    "Command",
    "Location",
    "OptionSpec",
    "ParsedArgs",
    "ParsedOption",
    "UsageError",
    "VmSelector",
    "XecRequest",
    "XecVmRequest",
    "parse_argv",
    "parse_xec_argv",
    "parse_xec_vm_argv",
    "xec_vm_forward_argv",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

DEFAULT_SERVICE = "com.citrix.xenclient.xenmgr"
DEFAULT_OBJECT = "/"


class UsageError(ValueError):
    """The command line cannot be used; the message says why."""


class OptionSpec(NamedTuple):
    """One option: ``--long``, optional ``-short``, fixed arity, extra long spellings."""

    long: str
    short: str | None
    arity: int
    aliases: tuple[str, ...] = ()

    def matches(self, token: str) -> bool:
        if self.short is not None and token == "-" + self.short:
            return True
        return token.startswith("--") and (token[2:] == self.long or token[2:] in self.aliases)

    @property
    def label(self) -> str:
        return (f"-{self.short}/" if self.short else "") + f"--{self.long}"


class ParsedOption(NamedTuple):
    """An option as given: its long name, its values, the raw tokens it consumed."""

    name: str
    values: tuple[str, ...]
    tokens: tuple[str, ...]


class ParsedArgs(NamedTuple):
    """Options in command-line order, then the positional tokens."""

    options: tuple[ParsedOption, ...]
    positionals: tuple[str, ...]

    def present(self, name: str) -> bool:
        return any(o.name == name for o in self.options)

    def values(self, name: str) -> tuple[str, ...] | None:
        """Values of the first occurrence of option ``name``, or None."""
        for option in self.options:
            if option.name == name:
                return option.values
        return None

    def value(self, name: str) -> str | None:
        values = self.values(name)
        return values[0] if values else None


def parse_argv(argv: Sequence[str], specs: Sequence[OptionSpec]) -> ParsedArgs:
    """Split argv into options and positionals (rules in the module docstring)."""
    options: list[ParsedOption] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        spec = next((s for s in specs if s.matches(token)), None)
        if spec is None:
            break
        values = tuple(argv[i + 1 : i + 1 + spec.arity])
        if len(values) < spec.arity:
            need = "an argument" if spec.arity == 1 else f"{spec.arity} arguments"
            raise UsageError(f"option {token} ({spec.label}) requires {need}")
        options.append(ParsedOption(spec.long, values, tuple(argv[i : i + 1 + spec.arity])))
        i += 1 + spec.arity
    return ParsedArgs(tuple(options), tuple(argv[i:]))


XEC_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("help", "h", 0),
    OptionSpec("query", "q", 0),
    OptionSpec("session", None, 0),
    OptionSpec("list-interfaces", None, 0),
    OptionSpec("list-methods", None, 0),
    OptionSpec("list-properties", None, 0),
    OptionSpec("service", "s", 1),
    OptionSpec("object", "o", 1),
    OptionSpec("interface", "i", 1),
    OptionSpec("get", "g", 1),
    OptionSpec("set", "x", 2),
    OptionSpec("target-domid", "t", 1),
)

XEC_VM_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("help", "h", 0),
    OptionSpec("query", "q", 0),
    OptionSpec("session", None, 0),
    OptionSpec("list-interfaces", None, 0),
    OptionSpec("list-methods", None, 0),
    OptionSpec("list-properties", None, 0),
    OptionSpec("list-disks", None, 0),
    OptionSpec("list-nics", None, 0),
    OptionSpec("disk", "k", 1),
    OptionSpec("nic", "c", 1),
    OptionSpec("name", "n", 1),
    OptionSpec("uuid", "u", 1),
    OptionSpec("domid", "d", 1),
    OptionSpec("service", "s", 1),
    OptionSpec("object", "o", 1, aliases=("path",)),
    OptionSpec("interface", "i", 1),
    OptionSpec("get", "g", 1),
    OptionSpec("set", "x", 2),
)


# -- xec -----------------------------------------------------------------------------------------


class Location(NamedTuple):
    """Where a command goes: bus name, object path, interface (None: found by introspection)."""

    service: str = DEFAULT_SERVICE
    object: str = DEFAULT_OBJECT
    interface: str | None = None


class Command(enum.Enum):
    """What an xec command line asks for."""

    HELP = "help"  # print the usage text
    LIST_INTERFACES = "list-interfaces"  # interface names
    LIST_METHODS = "list-methods"  # method names (-i only, if it exists)
    LIST_PROPERTIES = "list-properties"  # property names (-i only, if it exists)
    INTROSPECT = "introspect"  # the introspection listing
    GET_ALL = "getall"  # every property of -i, or of each interface
    GET = "get"  # one property: name
    SET = "set"  # one property: name, value
    CALL = "call"  # a method: name (already - -> _), args (strings, typed later)


class Action(NamedTuple):
    """A command with its operands: ``name`` for GET/SET/CALL, ``value`` for SET, ``args``
    for CALL."""

    command: Command
    name: str = ""
    value: str = ""
    args: tuple[str, ...] = ()


class XecRequest(NamedTuple):
    """A parsed xec command line."""

    action: Action
    location: Location
    query: bool = False
    session: bool = False
    target_domid: int = -1


_INT = re.compile(r"-?[0-9]+")


def _domid(text: str) -> int:
    if _INT.fullmatch(text) is None:
        raise UsageError(f"invalid target domid {text!r}: expected an integer")
    return int(text)


def parse_xec_argv(argv: Sequence[str]) -> XecRequest:
    """Parse xec's argv (without the program name) into a request; `UsageError` if unusable."""
    args = parse_argv(argv, XEC_OPTIONS)
    domid_text = args.value("target-domid")
    location = Location(
        service=_first(args.value("service"), DEFAULT_SERVICE),
        object=_first(args.value("object"), DEFAULT_OBJECT),
        interface=args.value("interface"),
    )
    return XecRequest(
        action=_xec_action(args),
        location=location,
        query=args.present("query"),
        session=args.present("session"),
        target_domid=-1 if domid_text is None else _domid(domid_text),
    )


def _first(value: str | None, default: str) -> str:
    return default if value is None else value


def _xec_action(args: ParsedArgs) -> Action:
    for flag, command in _FLAG_COMMANDS:
        if args.present(flag):
            return Action(command)
    get = args.values("get")
    if get is not None:
        return Action(Command.GET, get[0])
    put = args.values("set")
    if put is not None:
        return Action(Command.SET, put[0], put[1])
    pos = args.positionals
    if not pos:
        return Action(Command.INTROSPECT)
    if pos[0] == "getall":
        return Action(Command.GET_ALL)
    if pos[0] == "get" and len(pos) >= 2:
        return Action(Command.GET, pos[1])
    if pos[0] == "set" and len(pos) >= 3:
        return Action(Command.SET, pos[1], pos[2])
    return Action(Command.CALL, pos[0].replace("-", "_"), args=tuple(pos[1:]))


_FLAG_COMMANDS = (
    ("help", Command.HELP),
    ("list-interfaces", Command.LIST_INTERFACES),
    ("list-methods", Command.LIST_METHODS),
    ("list-properties", Command.LIST_PROPERTIES),
)


# -- xec-vm --------------------------------------------------------------------------------------


class VmSelector(NamedTuple):
    """How the VM is chosen: ``kind`` is object, name, uuid or domid; ``value`` as given."""

    kind: str
    value: str


class XecVmRequest(NamedTuple):
    """A parsed xec-vm command line; ``selector`` None means: print the VM table."""

    args: ParsedArgs
    help: bool
    selector: VmSelector | None


_SELECTORS = ("object", "name", "uuid", "domid")
_STRIPPED = frozenset({"object", "name", "uuid", "domid", "disk", "nic"})


def parse_xec_vm_argv(argv: Sequence[str]) -> XecVmRequest:
    """Parse xec-vm's argv (without the program name); `UsageError` if unusable."""
    args = parse_argv(argv, XEC_VM_OPTIONS)
    selector = None
    for kind in _SELECTORS:
        value = args.value(kind)
        if value is not None:
            selector = VmSelector(kind, value)
            break
    return XecVmRequest(args=args, help=args.present("help"), selector=selector)


def xec_vm_forward_argv(request: XecVmRequest, vm_path: str) -> list[str]:
    """The xec argv (without program name) that runs the command on the selected VM.

    ``--list-disks``/``--list-nics`` become ``-o <vm> list-disks``/``list-nics``; ``-k ID``
    and ``-c ID`` target ``<vm>/disk/ID`` and ``<vm>/nic/ID``; otherwise ``<vm>`` itself. The
    remaining options (all but the selector, disk and nic options) and every positional token
    follow unchanged, in their original order.
    """
    args = request.args
    if args.present("list-disks"):
        return ["-o", vm_path, "list-disks"]
    if args.present("list-nics"):
        return ["-o", vm_path, "list-nics"]
    target = vm_path
    disk = args.value("disk")
    nic = args.value("nic")
    if disk is not None:
        target = f"{vm_path}/disk/{disk}"
    elif nic is not None:
        target = f"{vm_path}/nic/{nic}"
    kept = [t for o in args.options if o.name not in _STRIPPED for t in o.tokens]
    return ["-o", target, *kept, *args.positionals]


XEC_USAGE = """\
Usage: xec [options] [get PROPERTY | set PROPERTY VALUE | getall | METHOD [ARG...]]

Calls a method or reads/writes properties of a DBus object; with no command, lists the
object's interfaces, properties and methods. Method names may be written with - for _.
Arguments are typed by introspection: top-level strings are taken as given; containers are
written [a, b] (arrays, structs) and {key: value} (dicts) with strings quoted "..." or '...'.

Options (all before the command):
    -s, --service SERVICE            bus name (default com.citrix.xenclient.xenmgr)
    -o, --object OBJECT              object path (default /)
    -i, --interface INTERFACE        use this interface instead of searching for one
    -g, --get PROPERTY               print a property
    -x, --set PROPERTY VALUE         set a property
    -t, --target-domid DOMID         talk to the bus of domain DOMID
        --session                    use the session bus
        --list-interfaces            list interfaces
        --list-methods               list methods (of -i only, if it exists)
        --list-properties            list properties (of -i only, if it exists)
    -q, --query                      do not log the invocation to syslog
    -h, --help                       show this text
"""

XEC_VM_USAGE = """\
Usage: xec-vm [VM] [options] [get PROPERTY | set PROPERTY VALUE | getall | METHOD [ARG...]]

Runs an xec command on a VM object of com.citrix.xenclient.xenmgr; with no VM selected, prints
a table of all VMs.

Selecting the VM (first match wins: object, name, uuid, domid):
    -o, --object PATH                VM object path (--path is accepted too)
    -n, --name NAME                  VM whose name property is NAME
    -u, --uuid UUID                  VM whose uuid property is UUID
    -d, --domid DOMID                VM whose domid property is DOMID
    -k, --disk ID                    act on disk ID of the VM
    -c, --nic ID                     act on network interface ID of the VM
        --list-disks                 list the VM's disk objects
        --list-nics                  list the VM's network interface objects

Passed on to xec:
    -s, --service SERVICE            bus name
    -i, --interface NAME             use this interface instead of searching for one
    -g, --get PROPERTY               print a property
    -x, --set PROPERTY VALUE         set a property
        --session                    use the session bus
        --list-interfaces            list interfaces
        --list-methods               list methods
        --list-properties            list properties
    -q, --query                      do not log the invocation to syslog
    -h, --help                       show this text
"""
