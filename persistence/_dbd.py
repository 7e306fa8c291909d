"""``dbd``: the configuration database daemon, standalone (the persistence subtree alone).

``dbd [--root DIR] [--bus ADDRESS] [--flush-interval S] [--foreground] [--pidfile FILE]
[-v | --debug]``

* Runs a root supervisor with one child, the persistence subtree of
  :func:`persistence.db_supervisor_spec` (children ``/persistence/store``, ``flusher``,
  ``service``, the same names as inside the dom0 tree). ``--root`` is the database directory
  (default ``/config``), ``--bus`` the bus address (default: :func:`rpc.dbus.resolve_address`),
  ``--flush-interval`` the write-behind period (default 3 s; 0 = only on stop and reload).
  Guests are identified through the bus's identity service when there is one (proxies in
  other processes register there), else through this process's registry and the caller's uid.
* Without ``--foreground`` it daemonizes as the original did after owning its bus name: the
  command returns 0 once the service is on the bus (1, with the reason on stderr, if it could
  not start), and the daemon logs to syslog (ident ``dbd``) when ``/dev/log`` exists.
  ``--pidfile`` is written once the service is up and removed at exit.
* SIGTERM or SIGINT: orderly stop (the flusher writes every dirty file, the log is truncated),
  exit 0. SIGHUP: flush, then re-read the database from disk (``Reload``); acknowledged writes
  are kept. If the subtree gives up (its restart intensity is exceeded: say the bus stays
  away) the daemon exits 1.
* ``-v`` logs at INFO, ``--debug`` at DEBUG (every write/inject/rm with its sender, as the
  original's ``--debug``); default WARNING.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from actors import ask
from persistence._messages import Reload
from persistence._specs import db_supervisor_spec
from rpc.dbus import resolve_address
from supervision import DaemonConfig, Started, Strategy, Supervisor, SupFlags, run_daemon

__all__ = ["absolute_address", "main", "parse_args"]

log = logging.getLogger("dbd")

DEFAULT_ROOT = "/config"
_READY_TIMEOUT = 300.0
_STOP_TIMEOUT = 150.0
_IDENTS = (("persistence", "dbd"), ("rpc", "dbd"), ("supervision", "dbd"), ("actors", "dbd"))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="dbd", description="OpenXT configuration database daemon (com.citrix.xenclient.db)")
    parser.add_argument("--root", default=DEFAULT_ROOT, metavar="DIR",
                        help=f"database directory (default {DEFAULT_ROOT})")
    parser.add_argument("--bus", metavar="ADDRESS",
                        help="bus address (default: $DBUS_SYSTEM_BUS_ADDRESS, the embedded "
                             "default's address file, else the system bus)")
    parser.add_argument("--flush-interval", type=float, default=3.0, metavar="S",
                        help="seconds between flushes of dirty files (default 3; 0: only on "
                             "stop and reload)")
    parser.add_argument("--foreground", action="store_true", help="do not daemonize")
    parser.add_argument("--pidfile", metavar="FILE", help="write the daemon's pid here")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    parser.add_argument("--debug", action="store_true", help="log at DEBUG (every write)")
    args = parser.parse_args(argv)
    if args.flush_interval < 0:
        parser.error("--flush-interval must be >= 0")
    args.root = os.path.abspath(args.root)
    if args.pidfile:
        args.pidfile = os.path.abspath(args.pidfile)
    return args


def absolute_address(address: str) -> str:
    """``address`` with relative ``unix:path=`` sockets made absolute (the daemon leaves its
    working directory)."""
    parts = []
    for part in address.split(";"):
        transport, sep, params = part.partition(":")
        if transport == "unix" and sep:
            fields = [f"path={os.path.abspath(kv[5:])}" if kv.startswith("path=") else kv
                      for kv in params.split(",")]
            part = f"unix:{','.join(fields)}"
        parts.append(part)
    return ";".join(parts)


def _start(args: argparse.Namespace) -> Callable[[Callable[[object], None]], Started]:
    def start(on_escalate: Callable[[object], None]) -> Started:
        spec = db_supervisor_spec(args.root, args.bus, args.flush_interval,
                                  identity_service=True)
        root = Supervisor.start_root(SupFlags(Strategy.ONE_FOR_ONE, intensity=0), [spec],
                                     on_escalate=on_escalate, start_timeout=_READY_TIMEOUT)
        log.info("serving %s on %s", args.root, args.bus)
        return Started(root, {"root": args.root, "bus": args.bus})
    return start


def _reload(args: argparse.Namespace) -> Callable[[], None]:
    def reload() -> None:
        """SIGHUP: flush, then re-read the database from disk."""
        problems = ask("/persistence/flusher", Reload(), timeout=_STOP_TIMEOUT)
        log.warning("SIGHUP: database re-read from %s (%d problem(s))", args.root, len(problems))
    return reload


def main(argv: Sequence[str] | None = None) -> int:
    """The ``dbd`` console script; returns the exit status."""
    args = parse_args(argv)
    args.bus = absolute_address(resolve_address(args.bus))
    level = "debug" if args.debug else "info" if args.verbose else "warning"
    config = DaemonConfig(
        name="dbd", idents=_IDENTS, log_level=level, syslog=not args.foreground,
        pidfile=Path(args.pidfile) if args.pidfile else None, stop_timeout=_STOP_TIMEOUT,
        daemonize=not args.foreground)
    return run_daemon(config, _start(args), reload=_reload(args))
