"""``xenvm-cmd``: run a VM monitor task over DBus, as the original client did.

``xenvm-cmd [--reply-timeout S] [--bus ADDRESS] [--session] <uuid> <task> [key=value ...]``

Sends ``<task>`` (``-`` written ``_``) with the ``a{ss}`` of the ``key=value`` arguments to
``org.xen.vm.uuid_<uuid with _>``, prints the answer when there is one, exits 0; a DBus error
prints ``<name>: <text>`` on stderr and exits 1; a usage error exits 2. The bus is found as
everywhere (``rpc.dbus.resolve_address``). ``--use-socket`` (the original's JSON-RPC socket)
is not implemented: a clear error.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run one task (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="xenvm-cmd", description=__doc__.splitlines()[0])
    parser.add_argument("--reply-timeout", type=float, default=60.0, metavar="S")
    parser.add_argument("--bus", default=None, help="bus address")
    parser.add_argument("--session", action="store_true", help="use the session bus")
    parser.add_argument("--use-socket", action="store_true",
                        help="the original's JSON-RPC socket (not implemented)")
    parser.add_argument("uuid")
    parser.add_argument("task")
    parser.add_argument("params", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    if args.use_socket:
        print("xenvm-cmd: not implemented: --use-socket (use DBus)", file=sys.stderr)
        return 1
    params = {}
    for item in args.params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"xenvm-cmd: bad argument {item!r}: expected key=value", file=sys.stderr)
            return 2
        params[key] = value
    from rpc.dbus import BusConnection, DBusError, method_call, resolve_address
    name = "org.xen.vm.uuid_" + args.uuid.replace("-", "_")
    try:
        conn = BusConnection(resolve_address(args.bus, session=args.session))
    except (DBusError, ValueError) as exc:
        print(f"xenvm-cmd: {exc}", file=sys.stderr)
        return 1
    try:
        msg = method_call(name, "/", name, args.task.replace("-", "_"), "a{ss}", (params,))
        reply = conn.call(msg, args.reply_timeout)
    except DBusError as exc:
        print(f"{exc.name}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if reply.body:
        print(reply.body[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
