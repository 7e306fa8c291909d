"""The ``xenmgr`` console script: the VM manager as its own daemon, for a dom0 that runs the
daemons apart (``dbd`` on its own, as the original).

::

    xenmgr [--no-daemonize] [--no-autostart] [--writepid[=FILE]] [--debug] [-v]
           [--bus ADDRESS] [--state DIR] [--backend sim|xc] [--storage DIR]
           [--templates DIR] [--xenstore-socket PATH] [--hypervisor-socket PATH]

The original's options keep their meaning: it daemonizes unless ``--no-daemonize`` (the
command returns 0 once the service is on the bus, 1 with the reason otherwise), skips the
autostart with ``--no-autostart``, writes its pid to ``/var/run/xenmgr.pid`` (or ``FILE``) with
``--writepid``, and logs at debug level with ``--debug``. Like the original, which drove its
VMs itself, this process holds the VM monitors: the tree is ``xen`` (hypervisor, xenstore,
domain watcher), ``vms`` (one monitor per VM, resumed from their snapshots under the state
directory), ``xenvm-bus`` and the ``manager`` branch (docs/xenmgr.md); dbd must be on the bus.
At start it waits (bounded, 120 s) for dbd's name on the bus, as the original did. It runs on
the shared daemon runner (``supervision.run_daemon``): the state directory is
locked, SIGTERM stops in order, SIGHUP is accepted (nothing to reload), exit 1 when the tree
gives up. Do not run it beside an ``oxt-supervisor`` that has its own manager branch.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rpc.dbus import BusConnection, ConnectionLost, DBusError, resolve_address
from supervision import (
    Backoff,
    ChildSpec,
    DaemonConfig,
    EventLog,
    ProcessLedger,
    Started,
    Strategy,
    Supervisor,
    SupFlags,
    run_daemon,
    start_actor,
)
from xen.xenmgr._dbclient import DB_SERVICE
from xen.xenmgr._settings import DEFAULT_STORAGE_DIR, ManagerSettings
from xen.xenmgr._specs import manager_supervisor_spec

__all__ = ["main", "parse_args"]

log = logging.getLogger("xenmgr")

DEFAULT_PIDFILE = "/var/run/xenmgr.pid"
DB_WAIT = 120.0
_IDENTS = (("xenmgr", "xenmgr"), ("xenvm", "xenvm"), ("xenops", "xenops"), ("xen", "xen"),
           ("rpc", "xenmgr"), ("supervision", "xenmgr"), ("actors", "xenmgr"))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="xenmgr", description="OpenXT VM manager "
                                "(com.citrix.xenclient.xenmgr) and its VM monitors")
    p.add_argument("--no-daemonize", action="store_true", help="stay in the foreground")
    p.add_argument("--no-autostart", action="store_true", help="start no VM at start")
    p.add_argument("--writepid", nargs="?", const=DEFAULT_PIDFILE, metavar="FILE",
                   help=f"write the pid (default file {DEFAULT_PIDFILE})")
    p.add_argument("--debug", action="store_true", help="log at debug level")
    p.add_argument("-v", "--verbose", action="store_true", help="log at info level")
    p.add_argument("--bus", metavar="ADDRESS", help="bus address (default: "
                   "$DBUS_SYSTEM_BUS_ADDRESS, the embedded default's, else the system bus)")
    p.add_argument("--state", default="/var/lib/xenmgr", metavar="DIR",
                   help="state directory: lock, monitor snapshots, process ledger")
    p.add_argument("--backend", choices=("sim", "xc"), default="xc")
    p.add_argument("--storage", default=DEFAULT_STORAGE_DIR, metavar="DIR",
                   help=f"where create_vhd puts VHDs (default {DEFAULT_STORAGE_DIR})")
    p.add_argument("--templates", default="/config/xenmgr/templates", metavar="DIR",
                   help="the administrator's template directory")
    p.add_argument("--xenstore-socket", metavar="PATH")
    p.add_argument("--hypervisor-socket", metavar="PATH",
                   help="the simulated hypervisor's socket (--backend sim)")
    args = p.parse_args(argv)
    if args.backend == "sim" and not (args.xenstore_socket and args.hypervisor_socket):
        p.error("--backend sim needs --xenstore-socket and --hypervisor-socket")
    for name in ("state", "storage", "templates", "writepid"):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    return args


def _specs(args: argparse.Namespace, address: str) -> list[ChildSpec]:
    from xen.tree import vms_spec, xen_spec
    from xen.xenops import Dom0HostActions, SimBuilder, SimHostActions, XcBuilder
    from xen.xenvm import XENVM_BUS, TreeEnv, XenvmBus
    state = Path(args.state)
    ledger = ProcessLedger.of_state(state)
    settings = ManagerSettings(address=address, storage_dir=args.storage,
                               admin_templates=args.templates,
                               autostart=not args.no_autostart,
                               argo_table="sim" if args.backend == "sim" else "viptables",
                               host_power="sim" if args.backend == "sim" else "dom0",
                               pci_inventory="sim" if args.backend == "sim" else "dom0")
    notify = (XENVM_BUS, settings.queue)
    if args.backend == "sim":
        env = TreeEnv(builder=SimBuilder(), host=SimHostActions(
            xenstore_path=args.xenstore_socket, ledger=ledger,
            hypervisor_path=args.hypervisor_socket), state_dir=state, notify=notify)
    else:
        env = TreeEnv(builder=XcBuilder(), host=Dom0HostActions(ledger=ledger),
                      state_dir=state, notify=notify)
    return [xen_spec(backend=args.backend, hypervisor_socket=args.hypervisor_socket,
                     xenstore_socket=args.xenstore_socket),
            vms_spec(env=env),
            ChildSpec("xenvm-bus", start_actor(XenvmBus, address)),
            manager_supervisor_spec(settings)]


def wait_for_db(address: str, timeout: float = DB_WAIT) -> None:
    """Wait until ``com.citrix.xenclient.db`` has an owner on the bus (polled every 0.2 s, as
    the original polled every second); ``RuntimeError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with BusConnection(address) as conn:
                while True:
                    if conn.bus_call("NameHasOwner", "s", (DB_SERVICE,))[0]:
                        return
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
        except (ConnectionLost, OSError, DBusError) as exc:
            log.info("waiting for the bus at %s: %s", address, exc)
            time.sleep(0.2)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{DB_SERVICE} did not appear on {address} within {timeout:g} s")


def _start(args: argparse.Namespace, address: str) -> Callable[[Callable[[object], None]],
                                                               Started]:
    def start(on_escalate: Callable[[object], None]) -> Started:
        wait_for_db(address)
        flags = SupFlags(Strategy.ONE_FOR_ONE, 10, 30.0, backoff=Backoff(0.1, 5.0))
        root = Supervisor.start_root(flags, _specs(args, address), events=EventLog(),
                                     snapshot_dir=Path(args.state) / "snapshots",
                                     on_escalate=on_escalate, start_timeout=300.0)
        return Started(root, {"bus": address, "state": args.state, "backend": args.backend})
    return start


def main(argv: Sequence[str] | None = None) -> int:
    """The ``xenmgr`` console script; returns the exit status."""
    args = parse_args(argv)
    address = resolve_address(args.bus)
    if address.startswith("unix:path="):
        address = "unix:path=" + os.path.abspath(address[len("unix:path="):])
    Path(args.state).mkdir(parents=True, exist_ok=True)
    level = "debug" if args.debug else "info" if args.verbose else "warning"
    config = DaemonConfig(name="xenmgr", idents=_IDENTS, log_level=level,
                          syslog=not args.no_daemonize, state_dir=Path(args.state),
                          pidfile=Path(args.writepid) if args.writepid else None,
                          stop_timeout=150.0, daemonize=not args.no_daemonize)
    return run_daemon(config, _start(args, address), reload=lambda: None)
