"""A real ``oxt-supervisor`` (with xenmgr) against a simulated host, for xenmgr's tests.

:func:`xenmgr_dom0` starts the simulated host (``SimHost``) and the supervisor as its own
process on a private bus, waits for ``com.citrix.xenclient.xenmgr`` to answer, and stops both
at the end (SIGTERM, then the host). :class:`Xenmgr` gives a bus connection and helpers to call
xenmgr and its VMs, and to run ``xec``/``xec-vm`` as subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rpc.dbus import BusConnection, DBusError, RemoteObject
from tests.helpers import stop_process, wait_until
from xen.sim import SimHost

ROOT = Path(__file__).resolve().parents[2]
XENMGR = "com.citrix.xenclient.xenmgr"
VM = "com.citrix.xenclient.xenmgr.vm"
BIN = Path(sys.executable).parent


class Xenmgr:
    """A running supervisor with xenmgr, and how to reach it."""

    def __init__(self, state: Path, *, extra: str = "", autostart: bool = False) -> None:
        self.state = state
        self.config = state / "oxt.toml"
        self.config.write_text(f"""
[supervisor]
state_dir = "{state}"
backend = "sim"
bus = "private"
syslog = false
[sim]
state_dir = "simhost"
[persistence]
flush_interval = 0.5
[xenmgr]
autostart = {"true" if autostart else "false"}
hook_timeout = 2.0
workers = 16
{extra}
""")
        self.proc: subprocess.Popen[str] | None = None
        self.host: SimHost | None = None  # the simulated host, set by xenmgr_dom0
        self.info: dict[str, Any] = {}
        self._conns: list[BusConnection] = []

    def start(self) -> None:
        ready = self.state / "ready.json"
        ready.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.state / "dom0.log", "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "supervision.dom0", "--config", str(self.config),
                 "--ready-file", str(ready)],
                stdout=subprocess.DEVNULL, stderr=log, text=True, env=env, cwd=ROOT)
        wait_until(lambda: ready.exists() or self.proc.poll() is not None,  # type: ignore[union-attr]
                   timeout=40)
        assert ready.exists(), self.log()[-3000:]
        self.info = json.loads(ready.read_text())
        wait_until(self._answers, timeout=30)

    def _answers(self) -> bool:
        try:
            self.root().call(XENMGR, "list_templates", timeout=2)
            return True
        except DBusError:
            return False

    def log(self) -> str:
        return (self.state / "dom0.log").read_text()

    @property
    def address(self) -> str:
        return str(self.info["bus"])

    def connection(self) -> BusConnection:
        conn = BusConnection(self.address)
        self._conns.append(conn)
        return conn

    def obj(self, path: str, conn: BusConnection | None = None) -> RemoteObject:
        return RemoteObject(conn or self.connection(), XENMGR, path, timeout=30)

    def root(self) -> RemoteObject:
        return self.obj("/")

    def env(self) -> dict[str, str]:
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address, "PYTHONPATH": str(ROOT)}

    def xec(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "xec"), *args], capture_output=True, text=True,
                              env=self.env(), timeout=timeout, check=False)

    def xec_vm(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "xec-vm"), *args], capture_output=True, text=True,
                              env=self.env(), timeout=timeout, check=False)

    def close_connections(self) -> None:
        for conn in self._conns:
            conn.close()
        self._conns.clear()

    def stop(self) -> None:
        self.close_connections()
        stop_process(self.proc)

    def sigkill_and_restart(self) -> None:
        """SIGKILL the whole supervisor, then start a new one on the same state (its own
        connections are closed: callers make new objects)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(20)
        self.close_connections()
        self.start()


@contextmanager
def xenmgr_dom0(state: Path, **kwargs: Any) -> Iterator[Xenmgr]:
    """A simulated host and a supervisor with xenmgr (module docstring)."""
    state.mkdir(parents=True, exist_ok=True)
    with SimHost(state / "simhost", memory_mib=16384, with_dbus=False) as host:
        dom0 = Xenmgr(state, **kwargs)
        dom0.host = host
        try:
            dom0.start()
            yield dom0
        finally:
            dom0.stop()
