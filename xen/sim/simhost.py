"""Command line of the simulated Xen host (console script ``oxt-simhost``).

``python -m xen.sim.simhost --state DIR [--memory-mib N] [--dom0-mib N] [--cpus N]
[--with-dbus] [--behaviour FILE] [--pci FILE] [--foreground] [--stop] [--pci-state] [-v]``

- ``--foreground``: run a `SimHost` in this process until SIGTERM or SIGINT, then stop it
  (bounded) and exit 0.
- default (background): start ``--foreground`` as a detached process in its own session (so it
  outlives the shell and the toolstack, as a real host does), logging to ``DIR/simhost.log``;
  wait until it has written ``DIR/simhost.json`` (ready), print that JSON and exit 0.
- ``--stop``: send SIGTERM to the host recorded in ``DIR/simhost.json`` and wait for it to end.

Behaviour defaults: the JSON document in ``$OXT_SIMHOST_BEHAVIOUR`` and then ``--behaviour
FILE`` (same shape, later wins key by key): ``{"default": {"hang": 1}, "name": {"vm1":
{"crash": 2}}, "uuid": {...}, "domain": {...}}``, written into ``/sim/behaviour`` at start.

PCI devices: the JSON list in ``$OXT_SIMHOST_PCI`` or, instead, ``--pci FILE``
(``[{"bdf": "0000:03:00.0", "class": "0x020000", "vendor": "0x8086", "device": "0x10d3",
"irq": 18, "driver": "e1000e", "bars": [{"type": "mem", "start": "0xf7c00000", "size":
"0x20000"}]}]``, see `xen.sim.hypervisor.pci_devices_from_doc`); without either, the default
set. ``--pci-state`` prints the PCI bus of the host running in DIR (drivers, assignments,
resets, grants) as JSON, asked over its hypervisor socket.

Exit status: 0 on success, 1 if the host cannot start (or stop), 2 for bad arguments or a bad
behaviour document (the reason is logged).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from xen.hypervisor import HypervisorError, SimBackend
from xen.sim._control import BehaviourError
from xen.sim._host import SimHost
from xen.sim.hypervisor import SimPciDevice, pci_devices_from_doc

__all__ = ["main"]

log = logging.getLogger("xen.sim.simhost")

BEHAVIOUR_ENV = "OXT_SIMHOST_BEHAVIOUR"
PCI_ENV = "OXT_SIMHOST_PCI"
_READY_TIMEOUT = 20.0
_STOP_TIMEOUT = 15.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oxt-simhost",
        description="The simulated Xen host: xenstored, hypervisor, PV backends and guests.")
    parser.add_argument("--state", required=True, type=Path, help="state directory")
    parser.add_argument("--memory-mib", type=int, default=8192, help="host memory (MiB)")
    parser.add_argument("--dom0-mib", type=int, default=None, help="dom0 memory (MiB)")
    parser.add_argument("--cpus", type=int, default=4, help="host cpus")
    parser.add_argument("--with-dbus", action="store_true",
                        help="also run the private dbus-daemon (address in DIR/dbus/address)")
    parser.add_argument("--behaviour", type=Path, default=None,
                        help="JSON file of behaviour defaults (after $" + BEHAVIOUR_ENV + ")")
    parser.add_argument("--pci", type=Path, default=None,
                        help="JSON file of the PCI devices (instead of $" + PCI_ENV + ")")
    parser.add_argument("--pci-state", action="store_true",
                        help="print the PCI bus of the host running in DIR")
    parser.add_argument("--foreground", action="store_true",
                        help="run in this process until SIGTERM/SIGINT")
    parser.add_argument("--stop", action="store_true", help="stop the host running in DIR")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    levels = (logging.WARNING, logging.INFO, logging.DEBUG)
    logging.basicConfig(level=levels[min(args.verbose + (1 if args.foreground else 0), 2)],
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    state: Path = args.state.resolve()
    if args.stop:
        return _stop(state)
    if args.pci_state:
        return _pci_state(state)
    try:
        behaviour = _behaviour(args.behaviour)
    except (OSError, ValueError) as exc:
        log.error("bad behaviour defaults: %s", exc)
        return 2
    try:
        args.pci_devices = _pci_devices(args.pci)
    except (OSError, ValueError) as exc:
        log.error("bad PCI devices: %s", exc)
        return 2
    if not args.foreground:
        return _background(state, argv if argv is not None else sys.argv[1:])
    return _foreground(state, args, behaviour)


def _behaviour(path: Path | None) -> dict[str, object]:
    merged: dict[str, object] = {}
    texts = [os.environ.get(BEHAVIOUR_ENV, "")]
    if path is not None:
        texts.append(path.read_text())
    for text in texts:
        if not text.strip():
            continue
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BehaviourError(f"not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise BehaviourError("the behaviour document must be a JSON object")
        _merge(merged, doc)
    return merged


def _pci_devices(path: Path | None) -> tuple[SimPciDevice, ...] | None:
    text = path.read_text() if path is not None else os.environ.get(PCI_ENV, "")
    if not text.strip():
        return None
    try:
        return pci_devices_from_doc(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None


def _pci_state(state: Path) -> int:
    info = _read_info(state / "simhost.json")
    path = info.get("hypervisor_socket") if info is not None else None
    if not isinstance(path, str):
        log.error("no simulated host is recorded in %s", state / "simhost.json")
        return 1
    try:
        with SimBackend(path) as backend:
            print(json.dumps(backend.pci_state(), indent=2, sort_keys=True), flush=True)
    except HypervisorError as exc:
        log.error("%s", exc)
        return 1
    return 0


def _merge(into: dict[str, object], doc: Mapping[str, object]) -> None:
    for key, value in doc.items():
        old = into.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            _merge(old, value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _foreground(state: Path, args: argparse.Namespace, behaviour: dict[str, object]) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        host = SimHost(state, memory_mib=args.memory_mib, dom0_mib=args.dom0_mib,
                       cpus=args.cpus, with_dbus=args.with_dbus, behaviour=behaviour,
                       pci_devices=args.pci_devices)
    except (BehaviourError, HypervisorError) as exc:
        log.error("bad host: %s", exc)
        return 2
    try:
        host.start()
    except Exception as exc:
        log.error("the simulated host cannot start: %s", exc)
        return 1
    print(f"simulated host ready: {host.info_path}", file=sys.stderr, flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        try:
            host.close()
        except TimeoutError as exc:
            log.error("%s", exc)
            return 1
    return 0


def _background(state: Path, argv: list[str]) -> int:
    state.mkdir(parents=True, exist_ok=True)
    info = state / "simhost.json"
    logfile = state / "simhost.log"
    with open(logfile, "ab") as log_out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xen.sim.simhost", *argv, "--foreground"],
            stdin=subprocess.DEVNULL, stdout=log_out, stderr=log_out, start_new_session=True)
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.error("the simulated host exited with status %s; see %s", proc.returncode,
                      logfile)
            sys.stderr.write(_tail(logfile))
            return 1
        current = _read_info(info)
        if current is not None and current.get("pid") == proc.pid:
            print(json.dumps(current, indent=2), flush=True)
            return 0
        time.sleep(0.05)
    log.error("the simulated host (pid %d) was not ready within %.0f s; see %s", proc.pid,
              _READY_TIMEOUT, logfile)
    return 1


def _stop(state: Path) -> int:
    info = _read_info(state / "simhost.json")
    pid = info.get("pid") if info is not None else None
    if not isinstance(pid, int):
        log.error("no simulated host is recorded in %s", state / "simhost.json")
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        log.warning("the simulated host (pid %d) was not running", pid)
        return 0
    deadline = time.monotonic() + _STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not _alive(pid):
            return 0
        time.sleep(0.05)
    log.error("the simulated host (pid %d) did not stop within %.0f s", pid, _STOP_TIMEOUT)
    return 1


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaped yet counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _read_info(path: Path) -> dict[str, object] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(True)[-lines:])
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
