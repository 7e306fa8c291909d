"""``oxt-supervisor``: the long-running dom0 supervisor (docs/supervisor.md).

``oxt-supervisor [--config FILE] [--backend sim|xc] [--bus private|system|ADDRESS]
[--state DIR] [--ready-file FILE] [--embedded] [--verbose]``

Builds the tree of ``supervision.dom0._tree`` from the configuration and runs it on the daemon
runner (``supervision.run_daemon``: the state directory's lock and process ledger, signals,
readiness, orderly stop): it starts the tree, adds the configured VMs, then says it is ready
(``READY=1`` to ``$NOTIFY_SOCKET``, and the ready file) and runs until:

* SIGTERM or SIGINT: orderly stop, children in reverse order, each within its bound (the
  database is flushed); exit 0;
* SIGHUP: reload what can be reloaded: the log level from the configuration file, and the
  database from disk (after a flush); the tree itself is not rebuilt;
* the root supervisor giving up (escalation): exit 1.

A crash of the process loses nothing: the next start stops the bus daemon the killed instance
left, resumes every VM monitor from its snapshot and replays the database log.
``--embedded`` (the ``make run`` default): start the simulated host first if it is not
running, and stop it after an orderly stop (after a failure it keeps running, with its
domains, for the next start: it plays the hypervisor, which outlives a toolstack crash).
Exit status: 0 stopped; 1 failed or escalated; 2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from actors import NoSuchActor, ask, tell
from persistence import Reload
from supervision import (
    DaemonConfig,
    EventLog,
    ProcessLedger,
    StartChild,
    Started,
    Supervisor,
    SupervisorError,
    run_daemon,
)
from supervision.dom0._config import Dom0Config, Dom0ConfigError, load_config
from supervision.dom0._tree import build_specs, bus_address, root_flags
from xen.xenvm import VmStart

__all__ = ["main"]

logger = logging.getLogger("oxt-supervisor")

IDENTS = (("persistence", "dbd"), ("xen.xenmgr", "xenmgr"), ("xen.xenvm", "xenvm"),
          ("xenvm", "xenvm"), ("xen.xenops", "xenops"), ("xenops", "xenops"), ("rpc", "rpc"),
          ("xen", "xen"), ("supervision", "oxt-supervisor"), ("actors", "oxt-supervisor"))
_SIMHOST = "simhost"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oxt-supervisor", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    p.add_argument("--backend", choices=("sim", "xc"), default=None)
    p.add_argument("--bus", default=None, help="private, system or a bus address")
    p.add_argument("--state", type=Path, default=None, help="state directory")
    p.add_argument("--ready-file", type=Path, default=None)
    p.add_argument("--embedded", action="store_true",
                   help="run (and stop) the simulated host too")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _simhost_pid(sim_dir: Path) -> int | None:
    try:
        pid = int(json.loads((sim_dir / "simhost.json").read_text())["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError):
        return None
    return pid


def start_simhost(sim_dir: Path, ledger: ProcessLedger, memory_mib: int = 16384) -> None:
    """Start ``oxt-simhost`` (detached: it plays the hypervisor and outlives a crash of the
    supervisor) unless it already runs on ``sim_dir``; record it in the ledger."""
    pid = _simhost_pid(sim_dir)
    if pid is None:
        done = subprocess.run([sys.executable, "-m", "xen.sim.simhost", "--state", str(sim_dir),
                               "--memory-mib", str(memory_mib)], capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"oxt-simhost did not start: {done.stderr.strip()}")
        pid = _simhost_pid(sim_dir)
        logger.info("simulated host started on %s", sim_dir)
    else:
        logger.info("simulated host already running on %s", sim_dir)
    if pid is not None:
        ledger.record(_SIMHOST, pid, ["oxt-simhost", "--state", str(sim_dir)], kind="detached")


def stop_simhost(sim_dir: Path, ledger: ProcessLedger) -> None:
    """Stop the simulated host running on ``sim_dir`` and forget it."""
    subprocess.run([sys.executable, "-m", "xen.sim.simhost", "--state", str(sim_dir), "--stop"],
                   capture_output=True, timeout=30)
    ledger.stop(_SIMHOST)


def _start(cfg: Dom0Config, embedded: bool) -> Callable[[Callable[[object], None]], Started]:
    def start(on_escalate: Callable[[object], None]) -> Started:
        sim_dir, ledger = cfg.under_state(cfg.sim_state_dir), ProcessLedger.of_state(cfg.state_dir)
        started_host = embedded and cfg.backend == "sim" and _simhost_pid(sim_dir) is None
        if embedded and cfg.backend == "sim":
            start_simhost(sim_dir, ledger)
        try:
            root = Supervisor.start_root(root_flags(cfg), build_specs(cfg), events=EventLog(),
                                         snapshot_dir=cfg.state_dir / "snapshots",
                                         on_escalate=on_escalate)
        except Exception:
            if started_host:  # nothing ran on the host we just started: do not leave it
                stop_simhost(sim_dir, ledger)
            raise
        for entry in cfg.vm_entries:
            try:
                start = VmStart(entry.uuid, entry.config.read_text())
                ask("/vms", StartChild(entry.uuid, (start,)), timeout=30)
            except SupervisorError as exc:
                if "already exists" not in str(exc):
                    logger.error("VM %s: %s", entry.uuid, exc)
            except OSError as exc:
                logger.error("VM %s: cannot read %s: %s", entry.uuid, entry.config,
                             exc.strerror)
        info = {"bus": bus_address(cfg),
                "control": str(cfg.under_state(cfg.control_socket).resolve()),
                "state": str(cfg.state_dir.resolve()), "backend": cfg.backend}
        return Started(root, info, _banner(cfg, info) if embedded else "")
    return start


def _reload(args: argparse.Namespace) -> Callable[[], None]:
    def reload() -> None:
        """SIGHUP: log level from the file, database from disk."""
        if args.config:
            try:
                cfg = load_config(args.config)
                logging.getLogger().setLevel("DEBUG" if args.verbose else cfg.log_level.upper())
            except Dom0ConfigError as exc:
                logger.error("reload: %s (keeping the running configuration)", exc)
        try:
            tell("/persistence/flusher", Reload())
        except NoSuchActor as exc:  # no persistence in this tree
            logger.info("reload: database not reloaded (%s)", exc)
        logger.info("reloaded")
    return reload


def main(argv: list[str] | None = None) -> int:
    """Run the dom0 supervisor (see the module docstring)."""
    args = _parser().parse_args(argv)
    try:
        cfg = load_config(args.config) if args.config else Dom0Config()
    except Dom0ConfigError as exc:
        print(f"oxt-supervisor: {args.config}: {exc}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("backend", args.backend), ("bus", args.bus),
                                   ("state_dir", args.state)) if v is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    daemon = DaemonConfig(
        name="oxt-supervisor", idents=IDENTS,
        log_level="debug" if args.verbose else cfg.log_level, syslog=cfg.syslog,
        state_dir=cfg.state_dir, ready_file=args.ready_file)
    status = run_daemon(daemon, _start(cfg, args.embedded), reload=_reload(args))
    if args.embedded and cfg.backend == "sim" and status == 0:
        # after a failure the host (and its domains) stays for the next run
        stop_simhost(cfg.under_state(cfg.sim_state_dir), ProcessLedger.of_state(cfg.state_dir))
    return status


def _banner(cfg: Dom0Config, info: dict[str, str]) -> str:
    vms = " ".join(e.uuid for e in getattr(cfg, "vm_entries", ())) or "<uuid>"
    first = vms.split()[0]
    return f"""
The embedded default is running (pid {os.getpid()}): the simulated Xen host and the dom0 tree,
all state in {info['state']}. In another terminal, from the checkout:

  .venv/bin/oxt-shell                            # tree, actors, top, state, log -f, crash ...
  .venv/bin/xec -s com.citrix.xenclient.db read /     # dbd over the private bus
  .venv/bin/xenvm-cmd {first} start              # a VM through its monitor
  .venv/bin/oxt-shell -c "crash /vms/{first}"    # and watch it adopt its domain
  examples/walkthrough.sh                        # all of this, scripted

Bus: {info['bus']}   (clients find it in {info['state']}/dbus/address)
Control socket: {info['control']}
Ctrl-C stops everything.
"""

if __name__ == "__main__":
    raise SystemExit(main())
