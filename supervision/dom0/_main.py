"""``oxt-supervisor``: the long-running dom0 supervisor (docs/supervisor.md).

``oxt-supervisor [--config FILE] [--backend sim|xc] [--bus private|system|ADDRESS]
[--state DIR] [--ready-file FILE] [--embedded] [--verbose]``

Builds the tree of ``supervision.dom0._tree`` from the configuration, starts it, adds the
configured VMs, then says it is ready (``READY=1`` to ``$NOTIFY_SOCKET``, and the ready file)
and runs until:

* SIGTERM or SIGINT: orderly stop, children in reverse order, each within its bound (the
  database is flushed); exit 0;
* SIGHUP: reload what can be reloaded: the log level from the configuration file, and the
  database from disk (after a flush); the tree itself is not rebuilt;
* the root supervisor giving up (escalation): exit 1.

A crash of the process loses nothing: the next start resumes every VM monitor from its
snapshot and replays the database log. ``--embedded`` (the ``make run`` default): start the
simulated host first if it is not running, and stop it after an orderly stop (after a failure
it keeps running, with its domains, for the next start).
Exit status: 0 stopped; 1 failed or escalated; 2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["main"]

logger = logging.getLogger("oxt-supervisor")

IDENTS = (("persistence", "dbd"), ("xen.xenvm", "xenvm"), ("xenvm", "xenvm"),
          ("xen.xenops", "xenops"), ("xenops", "xenops"), ("rpc", "rpc"),
          ("xen", "xen"), ("supervision", "oxt-supervisor"), ("actors", "oxt-supervisor"))


class _Ident(logging.Filter):
    """Adds ``record.ident``: the original daemon's syslog ident for the logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.ident = next((ident for prefix, ident in IDENTS
                             if record.name == prefix or record.name.startswith(prefix + ".")),
                            "oxt-supervisor")
        return True


def setup_logging(level: str, use_syslog: bool) -> None:
    """stderr always; syslog (``/dev/log``) with the original idents when there is one."""
    root = logging.getLogger()
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for handler in list(root.handlers):
        root.removeHandler(handler)
    err = logging.StreamHandler(sys.stderr)
    err.addFilter(_Ident())
    err.setFormatter(logging.Formatter("%(asctime)s %(ident)s: %(levelname)s %(message)s"))
    root.addHandler(err)
    if use_syslog and os.path.exists("/dev/log"):
        try:
            sys_handler = logging.handlers.SysLogHandler(address="/dev/log")
        except OSError:
            return
        sys_handler.addFilter(_Ident())
        sys_handler.setFormatter(logging.Formatter("%(ident)s[%(process)d]: %(message)s"))
        root.addHandler(sys_handler)


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


def _simhost_running(sim_dir: Path) -> bool:
    info = sim_dir / "simhost.json"
    try:
        pid = int(json.loads(info.read_text())["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError):
        return False
    return True


def start_simhost(sim_dir: Path, memory_mib: int = 16384) -> None:
    """Start ``oxt-simhost`` (detached) unless it already runs on ``sim_dir``."""
    if _simhost_running(sim_dir):
        logger.info("simulated host already running on %s", sim_dir)
        return
    done = subprocess.run([sys.executable, "-m", "xen.sim.simhost", "--state", str(sim_dir),
                           "--memory-mib", str(memory_mib)], capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"oxt-simhost did not start: {done.stderr.strip()}")
    logger.info("simulated host started on %s", sim_dir)


def stop_simhost(sim_dir: Path) -> None:
    """Stop the simulated host running on ``sim_dir``."""
    subprocess.run([sys.executable, "-m", "xen.sim.simhost", "--state", str(sim_dir), "--stop"],
                   capture_output=True, timeout=30)


def main(argv: list[str] | None = None) -> int:
    """Run the dom0 supervisor (see the module docstring)."""
    args = _parser().parse_args(argv)
    from supervision.dom0._config import Dom0Config, Dom0ConfigError, load_config
    try:
        cfg = load_config(args.config) if args.config else Dom0Config()
    except Dom0ConfigError as exc:
        print(f"oxt-supervisor: {args.config}: {exc}", file=sys.stderr)
        return 2
    import dataclasses
    overrides = {k: v for k, v in (("backend", args.backend), ("bus", args.bus),
                                   ("state_dir", args.state)) if v is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    setup_logging("debug" if args.verbose else cfg.log_level, cfg.syslog)
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    sim_dir = cfg.under_state(cfg.sim_state_dir)
    if args.embedded and cfg.backend == "sim":
        try:
            start_simhost(sim_dir)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            logger.error("%s", exc)
            return 1
    status = run(cfg, args)
    if args.embedded and cfg.backend == "sim" and status == 0:
        stop_simhost(sim_dir)  # after a failure the host (and its domains) stays for the next run
    return status


def run(cfg: object, args: argparse.Namespace) -> int:
    """Start the tree, wait for a signal or an escalation, stop the tree."""
    from actors import NoSuchActor, ask, tell
    from actors import stop as stop_actor
    from supervision._events import EventLog
    from supervision._messages import StartChild, SupervisorError, SupervisorStartError
    from supervision._supervisor import Supervisor
    from supervision.dom0._config import Dom0Config
    from supervision.dom0._tree import (
        build_specs,
        bus_address,
        root_flags,
        sd_notify,
        write_ready_file,
    )
    from xen.xenvm import VmStart

    assert isinstance(cfg, Dom0Config)
    stop = threading.Event()
    escalated = threading.Event()
    reload = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    sd_notify("STATUS=starting")  # also takes NOTIFY_SOCKET away from our children
    events = EventLog()

    def on_escalate(_reason: object) -> None:
        escalated.set()
        stop.set()

    try:
        root = Supervisor.start_root(root_flags(cfg), build_specs(cfg), events=events,
                                     snapshot_dir=cfg.state_dir / "snapshots",
                                     on_escalate=on_escalate)
    except SupervisorStartError as exc:
        logger.error("the tree did not start: %s", exc)
        return 1
    for entry in cfg.vm_entries:
        try:
            ask("/vms", StartChild(entry.uuid, (VmStart(entry.uuid, entry.config.read_text()),)),
                timeout=30)
        except SupervisorError as exc:
            if "already exists" not in str(exc):
                logger.error("VM %s: %s", entry.uuid, exc)
        except OSError as exc:
            logger.error("VM %s: cannot read %s: %s", entry.uuid, entry.config, exc.strerror)
    info = {"pid": os.getpid(), "bus": bus_address(cfg),
            "control": str(cfg.under_state(cfg.control_socket).resolve()),
            "state": str(cfg.state_dir.resolve()), "backend": cfg.backend}
    if args.ready_file:
        write_ready_file(args.ready_file, json.dumps(info) + "\n")
    sd_notify("READY=1")
    logger.info("ready: %s", json.dumps(info))
    if args.embedded:
        print(_banner(cfg, info), file=sys.stderr, flush=True)
    while not stop.wait(0.2):
        if reload.is_set():
            reload.clear()
            _reload(args, tell, NoSuchActor)
    sd_notify("STOPPING=1")
    if escalated.is_set():
        logger.error("the root supervisor gave up; exiting with status 1")
        return 1
    t0 = time.monotonic()
    ok = stop_actor(root, 120.0)
    logger.info("stopped in %.1f s%s", time.monotonic() - t0, "" if ok else " (timed out)")
    return 0 if ok else 1


def _banner(cfg: object, info: dict[str, object]) -> str:
    vms = " ".join(e.uuid for e in getattr(cfg, "vm_entries", ())) or "<uuid>"
    first = vms.split()[0]
    return f"""
The embedded default is running (pid {info['pid']}): the simulated Xen host and the dom0 tree,
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


def _reload(args: argparse.Namespace, tell: object, no_such: type) -> None:
    """SIGHUP: log level from the file, database from disk."""
    from supervision.dom0._config import Dom0ConfigError, load_config
    if args.config:
        try:
            cfg = load_config(args.config)
            logging.getLogger().setLevel(
                "DEBUG" if args.verbose else cfg.log_level.upper())
        except Dom0ConfigError as exc:
            logger.error("reload: %s (keeping the running configuration)", exc)
    try:
        from persistence import Reload
        tell("/persistence/flusher", Reload())  # type: ignore[operator]
    except Exception as exc:  # no persistence in this tree
        logger.info("reload: database not reloaded (%s)", exc)
    logger.info("reloaded")


if __name__ == "__main__":
    raise SystemExit(main())
