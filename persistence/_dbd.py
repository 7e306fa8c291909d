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
import logging.handlers
import os
import select
import signal
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["absolute_address", "main", "parse_args"]

log = logging.getLogger("dbd")

DEFAULT_ROOT = "/config"
_READY_TIMEOUT = 300.0
_STOP_TIMEOUT = 150.0


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


def _logging(args: argparse.Namespace, daemon: bool) -> None:
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    handler: logging.Handler
    if daemon and os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler("/dev/log")
        handler.ident = "dbd: "
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("dbd: %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def run(args: argparse.Namespace, ready: Callable[[str | None], None]) -> int:
    """Run until SIGTERM/SIGINT; ``ready(None)`` once up, ``ready(reason)`` if not."""
    from actors import ask
    from persistence._messages import Reload
    from persistence._specs import db_supervisor_spec
    from rpc.dbus import resolve_address
    from supervision import Strategy, Supervisor, SupervisorStartError, SupFlags

    wake = threading.Event()
    hup = threading.Event()
    stopping = threading.Event()
    status = [0]

    def on_signal(signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            hup.set()
        else:
            stopping.set()
        wake.set()

    def on_escalate(reason: object) -> None:
        log.error("the database subtree gave up: %s", getattr(reason, "error", reason))
        status[0] = 1
        stopping.set()
        wake.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    address = resolve_address(args.bus)
    spec = db_supervisor_spec(args.root, address, args.flush_interval, identity_service=True)
    try:
        root = Supervisor.start_root(SupFlags(Strategy.ONE_FOR_ONE, intensity=0), [spec],
                                     on_escalate=on_escalate, start_timeout=_READY_TIMEOUT)
    except SupervisorStartError as exc:
        log.error("cannot start: %s", exc)
        ready(str(exc))
        return 1
    from actors import actor_of

    if args.pidfile:
        with open(args.pidfile, "w") as stream:
            stream.write(f"{os.getpid()}\n")
    log.info("serving %s on %s", args.root, address)
    ready(None)
    try:
        while not stopping.is_set():
            wake.wait(1.0)
            wake.clear()
            if hup.is_set() and not stopping.is_set():
                hup.clear()
                try:
                    problems = ask("/persistence/flusher", Reload(), timeout=_STOP_TIMEOUT)
                    log.warning("SIGHUP: database re-read from %s (%d problem(s))", args.root,
                                len(problems))
                except Exception as exc:
                    log.error("SIGHUP: reload failed: %s", exc)
    finally:
        supervisor = actor_of(root)
        supervisor.request_stop()
        if not supervisor.wait_dead(_STOP_TIMEOUT):
            log.error("the tree did not stop within %.0f s", _STOP_TIMEOUT)
            status[0] = 1
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass
    return status[0]


def _daemonize(args: argparse.Namespace) -> int:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid > 0:  # the command: wait for the daemon's word
        os.close(write_fd)
        chunks: list[bytes] = []
        while True:
            readable, _, _ = select.select([read_fd], [], [], _READY_TIMEOUT)
            chunk = os.read(read_fd, 4096) if readable else b""
            if not chunk:
                break
            chunks.append(chunk)
        os.close(read_fd)
        answer = b"".join(chunks).decode(errors="replace")
        if answer == "ok":
            return 0
        sys.stderr.write(f"dbd: {answer or 'the daemon died before it was ready'}\n")
        return 1
    os.close(read_fd)
    from rpc.dbus import resolve_address

    args.bus = absolute_address(resolve_address(args.bus))
    os.setsid()
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    _logging(args, daemon=True)

    def ready(reason: str | None) -> None:
        os.write(write_fd, b"ok" if reason is None else reason.encode())
        os.close(write_fd)
        os.dup2(null, 1)
        os.dup2(null, 2)

    return run(args, ready)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``dbd`` console script; returns the exit status."""
    args = parse_args(argv)
    if not args.foreground:
        return _daemonize(args)
    _logging(args, daemon=False)
    return run(args, lambda _reason: None)
