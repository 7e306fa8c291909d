"""The ``oxt-supervisor`` process the lab's supervisor tests run in dom0, and how to reach it.

`LabSupervisor` writes its configuration (TOML) under its state directory, starts
``python3 -m supervision.dom0`` with it, waits for its ready file, and gives the control
socket, its log's tail, SIGKILL and an orderly stop. `xl_domids` and `console_text` read Xen's
own view (``xl list``, xenconsoled's log) of a guest by name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from supervision.control import ControlClient
from tests.helpers import stop_process
from tests.xenlab.dom0 import wait_for

__all__ = ["GUEST_DIR", "ROOT", "SYSTEM_BUS_SOCKET", "LabSupervisor", "console_text",
           "loops_of", "marked_disk", "needs_dbus", "xl_domids", "xs_read"]

ROOT = Path(__file__).resolve().parents[2]
#: dom0's system bus, started by the lab's init with examples/dbus/oxt-toolstack.conf.
SYSTEM_BUS_SOCKET = Path("/run/dbus/system_bus_socket")
GUEST_DIR = Path(os.environ.get("OXT_LAB_GUEST_DIR", "/xenlab/guest"))
needs_dbus = pytest.mark.skipif(
    shutil.which("dbus-daemon") is None,
    reason="dbus-daemon absent from the dom0 (tests/xenlab/lab.sh installs it with the rootfs)")


class LabSupervisor:
    """An oxt-supervisor process on real Xen (``backend = "xc"``), its state under ``state``;
    ``sections``: the rest of its configuration (TOML text); ``bus``: ``"private"`` (its own
    system-type bus) or ``"system"`` (dom0's, which must be running)."""

    def __init__(self, state: Path, sections: str, bus: str = "private") -> None:
        if bus == "system":
            assert SYSTEM_BUS_SOCKET.exists(), (
                f"dom0's system bus is not running ({SYSTEM_BUS_SOCKET} absent): the lab's "
                "init starts it (tests/xenlab/dom0-init.sh)")
        self.state = state
        self.config = state / "oxt.toml"
        self.config.write_text(f"""[supervisor]
state_dir = "{state}"
backend = "xc"
bus = "{bus}"
syslog = false
log_level = "info"
{sections}""")
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, object] = {}

    def start(self) -> None:
        """Start oxt-supervisor and wait for its ready file. Once more if it did not start
        (the first failure is printed, ``SUP: WARNING``): the identity service's bus connection
        once overran OTP's 5 s worker start bound on an emulated host at load 8-9; the bus
        workers now have ``BUS_WORKER_START_TIMEOUT`` (supervision/dom0), the retry stays as a
        second chance that is never silent."""
        try:
            self._start()
        except AssertionError as exc:
            last = str(exc).strip().splitlines()
            print(f"\nSUP: WARNING oxt-supervisor did not start: "
                  f"{last[-1] if last else exc}; starting it again")
            self.stop()
            self._start()

    def _start(self) -> None:
        ready = self.state / "ready.json"
        ready.unlink(missing_ok=True)
        with open(self.state / "dom0.log", "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "supervision.dom0", "--config", str(self.config),
                 "--ready-file", str(ready)],
                stdout=subprocess.DEVNULL, stderr=log, text=True, env=self.env(), cwd=ROOT)
        proc = self.proc
        wait_for(lambda: ready.exists() or proc.poll() is not None, 180,
                 "oxt-supervisor ready", interval=0.2)
        assert ready.exists(), self.log_tail()
        self.info = json.loads(ready.read_text())

    def env(self) -> dict[str, str]:
        """The environment of a client of this supervisor: the checkout on the path and, once
        started, its bus as the system bus (``xec``, ``xenvm-cmd``)."""
        extra = {"DBUS_SYSTEM_BUS_ADDRESS": str(self.info["bus"])} if self.info else {}
        return {**os.environ, "PYTHONPATH": str(ROOT), **extra}

    def log_tail(self, n: int = 40) -> str:
        path = self.state / "dom0.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() \
            else ""

    def control(self) -> ControlClient:
        return ControlClient(str(self.info["control"]), timeout=30)

    def kill(self) -> None:
        """SIGKILL the supervisor (its guests keep running)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def stop(self) -> None:
        stop_process(self.proc)

    def keep_log(self) -> None:
        """Copy the supervisor's log to the lab's output directory (``OXT_LAB_KEEP``)."""
        keep = os.environ.get("OXT_LAB_KEEP")  # in-dom0.sh: the run's out/ directory
        if keep and (self.state / "dom0.log").exists():
            (Path(keep) / f"supervisor-{self.state.name}.log").write_bytes(
                (self.state / "dom0.log").read_bytes())


def xl_domids(name: str) -> list[int]:
    """The domids ``xl list`` shows under ``name``."""
    out = subprocess.run(["xl", "list"], capture_output=True, text=True, timeout=30,
                         check=False).stdout
    return [int(line.split()[1]) for line in out.splitlines()[1:]
            if line.split() and line.split()[0] == name]


def console_text(name: str) -> str:
    """xenconsoled's log of the guest ``name`` ("" before it has one)."""
    log = Path(f"/var/log/xen/console/guest-{name}.log")
    return log.read_text(errors="replace") if log.exists() else ""


def xs_read(path: str) -> str | None:
    """A xenstore value read with Debian's ``xenstore-read`` (None when absent)."""
    done = subprocess.run(["xenstore-read", path], capture_output=True, text=True, timeout=30,
                          check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def loops_of(path: Path) -> list[str]:
    """The loop devices attached to ``path`` (``losetup -j``)."""
    done = subprocess.run(["losetup", "-j", str(path)], capture_output=True, text=True,
                          timeout=30, check=True)
    return [line.split(":")[0] for line in done.stdout.splitlines()]


def marked_disk(path: Path, size: int = 8 << 20) -> str:
    """Write a disk image of ``size`` bytes at ``path`` whose first sector starts with a marker
    line (the lab's guest prints its disk's first line); the marker."""
    marker = f"OXT-LAB-DISK {os.getpid()}-{path.name}-{os.stat(path.parent).st_ino}"
    with open(path, "wb") as f:
        f.write(marker.encode() + b"\n")
        f.truncate(size)
    return marker
