"""``db-cmd`` and its wrappers (``db-read`` ...): the original's command-line client of dbd.

Behaviour, as the original ``db_cmd.ml``; the command line is matched whole:

=====================  ==================================================================
``read P``             prints the value and a newline
``write P V``          writes; refuses ``/`` and ``/vm`` (any spelling: ``//``, ``vm/``) with
                       "Nope, not doing that." on stderr, exit 1, before touching the bus
``rm P``               removes; a path with no segment prints "bad path" (stdout, exit 0)
``exists P``           prints ``true`` or ``false``
``nodes P``            prints the children separated by spaces, and a newline
``cat P``              writes the bytes of a binary node to stdout, nothing more
``ls [-f] [P]``        ``P`` (default ``/``) and everything below it, depth first: a node
                       with children is ``name =`` followed by its children one space further
                       in; anything else ``name = "value"`` (the raw value of ``read``); the
                       name is the last segment of the path (``-f``: the whole path, children
                       joined with ``/``); the output is printed once everything was read
anything else          ``Usage: db-cmd <cmd> <parameters>`` on stdout, exit 1
=====================  ==================================================================

The wrappers are the original's shell scripts: ``db-read P`` is ``db-cmd read "$1"`` (a
missing argument is the empty string, extra ones are ignored), likewise ``db-rm``,
``db-exists``, ``db-nodes`` and ``db-cat``; ``db-write`` passes ``"$1" "$2"``; ``db-ls``
passes ``$*`` unquoted, so its arguments are split at whitespace (not glob-expanded).

The bus: ``DBUS_SYSTEM_BUS_ADDRESS``, else the embedded default's address file, else the
system bus (the order of :func:`rpc.dbus.resolve_address`, repeated here so that the command
starts without the actor runtime; a test keeps the two equal). Failure: a DBus error reply or
no bus prints ``db-cmd: <error name>: <message>`` on stderr and exits 2 (the original died
of an uncaught exception, also with status 2). Each call waits at most 30 s.

Only jeepney is imported: no actors, no pykka, so the command starts in a few tens of ms.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "USAGE",
    "DbCmdError",
    "bus_address",
    "db_cat",
    "db_exists",
    "db_ls",
    "db_nodes",
    "db_read",
    "db_rm",
    "db_write",
    "format_ls",
    "main",
    "wrapper_argv",
]

USAGE = "Usage: db-cmd <cmd> <parameters>\n"
REFUSED = "Nope, not doing that.\n"
SERVICE = "com.citrix.xenclient.db"
INTERFACE = "com.citrix.xenclient.db"
CALL_TIMEOUT = 30.0
SYSTEM_BUS = "unix:path=/var/run/dbus/system_bus_socket"


class DbCmdError(Exception):
    """A DBus error reply, or no bus: ``name`` and ``message`` as the bus gave them."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def bus_address() -> str:
    """The bus to use, in :func:`rpc.dbus.resolve_address`'s order."""
    addr = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    if addr:
        return addr
    state = Path(os.environ.get("OXT_STATE_DIR") or "state")
    try:
        text = (state / "dbus" / "address").read_text().strip()
    except OSError:
        text = ""
    return text or SYSTEM_BUS


def _segments(path: str) -> list[str]:
    return [segment for segment in path.split("/") if segment]


def _join(parent: str, child: str) -> str:
    return parent + ("" if parent.endswith("/") else "/") + child


def format_ls(path: str, full: bool, list_: Callable[[str], Sequence[str]],
              read: Callable[[str], str]) -> str:
    """The text of ``ls [-f] path``, asking ``list_`` and ``read`` for each node in turn."""
    out: list[str] = []
    stack: list[tuple[int, str]] = [(0, path)]
    while stack:
        depth, here = stack.pop()
        name = here if full else " " * depth + here.split("/")[-1]
        children = list_(here)
        if not children:
            out.append(f'{name} = "{read(here)}"\n')
            continue
        out.append(f"{name} =\n")
        stack.extend((depth + 1, _join(here, child)) for child in reversed(children))
    return "".join(out)


class _Client:
    """One connection to the bus and calls to the db service at ``/``."""

    def __init__(self, address: str) -> None:
        from jeepney.io.blocking import open_dbus_connection

        try:
            self.conn = open_dbus_connection(address, auth_timeout=5.0)
        except Exception as exc:  # OSError, auth failures
            raise DbCmdError("org.freedesktop.DBus.Error.NoServer",
                             f"cannot connect to the bus at {address}: {exc}") from None

    def call(self, member: str, signature: str, *args: Any) -> Any:
        from jeepney import DBusAddress, MessageType, new_method_call
        from jeepney.low_level import HeaderFields

        target = DBusAddress("/", bus_name=SERVICE, interface=INTERFACE)
        reply = self.conn.send_and_get_reply(new_method_call(target, member, signature, args),
                                             timeout=CALL_TIMEOUT)
        if reply.header.message_type is MessageType.error:
            name = str(reply.header.fields.get(HeaderFields.error_name, "?"))
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise DbCmdError(name, text)
        return reply.body[0] if reply.body else None

    def close(self) -> None:
        self.conn.close()


def _out(text: str) -> None:
    sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))


def _run(args: Sequence[str], client: Callable[[], _Client]) -> int:
    match list(args):
        case ["ls", "-f", path]:
            full, target = True, path
        case ["ls", "-f"]:
            full, target = True, "/"
        case ["ls", path]:
            full, target = False, path
        case ["ls"]:
            full, target = False, "/"
        case ["read", path]:
            _out(client().call("read", "s", path) + "\n")
            return 0
        case ["cat", path]:
            sys.stdout.buffer.write(bytes(client().call("read_binary", "s", path)))
            return 0
        case ["write", path, value]:
            if _segments(path) in ([], ["vm"]):
                sys.stderr.write(REFUSED)
                return 1
            client().call("write", "ss", path, value)
            return 0
        case ["nodes", path]:
            _out(" ".join(client().call("list", "s", path)) + "\n")
            return 0
        case ["exists", path]:
            _out("true\n" if client().call("exists", "s", path) else "false\n")
            return 0
        case ["rm", path]:
            if not _segments(path):
                _out("bad path\n")
                return 0
            client().call("rm", "s", path)
            return 0
        case _:
            _out(USAGE)
            return 1
    db = client()
    _out(format_ls(target, full, lambda p: db.call("list", "s", p),
                   lambda p: db.call("read", "s", p)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``db-cmd <cmd> <parameters>``; returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    made: list[_Client] = []

    def client() -> _Client:
        if not made:
            made.append(_Client(bus_address()))
        return made[0]

    try:
        return _run(args, client)
    except DbCmdError as exc:
        sys.stderr.write(f"db-cmd: {exc.name}: {exc.message}\n")
        return 2
    except (TimeoutError, OSError, ConnectionError) as exc:
        sys.stderr.write(f"db-cmd: {exc}\n")
        return 2
    finally:
        sys.stdout.flush()
        for db in made:
            db.close()


def wrapper_argv(command: str, args: Sequence[str]) -> list[str]:
    """The ``db-cmd`` arguments the original's wrapper script ``db-<command>`` passed."""
    if command == "ls":
        return ["ls", *(word for arg in args for word in re.split(r"[ \t\n]+", arg) if word)]
    count = 2 if command == "write" else 1
    padded = [*args[:count], *([""] * (count - len(args)))]
    return [command, *padded]


def _wrapper(command: str) -> Callable[[], int]:
    def run() -> int:
        return main(wrapper_argv(command, sys.argv[1:]))

    run.__name__ = f"db_{command}"
    run.__doc__ = f"``db-{command}``: ``db-cmd {command}`` as the original's wrapper script."
    return run


db_read = _wrapper("read")
db_write = _wrapper("write")
db_rm = _wrapper("rm")
db_exists = _wrapper("exists")
db_nodes = _wrapper("nodes")
db_ls = _wrapper("ls")
db_cat = _wrapper("cat")
