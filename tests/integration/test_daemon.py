"""The daemon runner in a real process: ready and pid files, signals, reload, escalation, the
state directory's lock, and the processes a killed predecessor left behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from supervision import ProcessLedger, process_alive, process_start_time
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

_DAEMON = """
import logging, subprocess, sys
from pathlib import Path
from actors import Actor, handles
from supervision import (ChildSpec, DaemonConfig, ProcessLedger, Started, Supervisor, SupFlags,
                         run_daemon, start_actor)

state, mode = Path(sys.argv[1]), sys.argv[2]
log = logging.getLogger("demo")

class Worker(Actor):
    def on_start(self):
        if mode == "fail-start":
            raise RuntimeError("cannot start: no such thing")
        if mode == "escalate":
            self.send_after(0.3, "boom")
        if mode == "child":
            proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
            ProcessLedger.of_state(state).record("helper", proc.pid, ["sleep", "300"])

    @handles(str)
    def crash(self, msg):
        raise RuntimeError(msg)

def start(on_escalate):
    root = Supervisor.start_root(SupFlags(intensity=0),
                                 [ChildSpec("worker", start_actor(Worker))],
                                 on_escalate=on_escalate)
    return Started(root, {"mode": mode})

def reload():
    log.warning("reload hook ran")

config = DaemonConfig(name="demo", state_dir=state, pidfile=state / "demo.pid",
                      ready_file=state / "ready.json", stop_timeout=10)
sys.exit(run_daemon(config, start, reload=reload))
"""


class Demo:
    def __init__(self, state: Path, mode: str = "plain") -> None:
        self.state = state
        self.log = state.parent / f"{state.name}-{mode}.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-c", _DAEMON, str(state), mode],
                                         cwd=ROOT, stdout=out, stderr=out)

    @property
    def ready(self) -> Path:
        return self.state / "ready.json"

    def info(self) -> dict[str, object] | None:
        """The ready file if this process wrote it (a killed predecessor's may be there)."""
        try:
            info = dict(json.loads(self.ready.read_text()))
        except (OSError, ValueError):
            return None
        return info if info.get("pid") == self.proc.pid else None

    def wait_ready(self) -> dict[str, object]:
        wait_until(lambda: self.info() or self.proc.poll() is not None, timeout=30,
                   interval=0.02)
        info = self.info()
        assert info is not None, self.text()
        return info

    def text(self) -> str:
        return self.log.read_text()

    def finish(self, sig: int | None = signal.SIGTERM) -> int:
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(30)


def test_ready_then_an_orderly_stop_removes_what_it_wrote(tmp_path: Path) -> None:
    d = Demo(tmp_path / "state")
    info = d.wait_ready()
    assert info == {"pid": d.proc.pid, "mode": "plain"}
    assert (d.state / "demo.pid").read_text() == f"{d.proc.pid}\n"
    assert d.finish(signal.SIGTERM) == 0
    assert not d.ready.exists() and not (d.state / "demo.pid").exists()


def test_sighup_runs_the_reload_hook_and_the_daemon_goes_on(tmp_path: Path) -> None:
    d = Demo(tmp_path / "state")
    d.wait_ready()
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload hook ran" in d.text(), timeout=10)
    assert d.proc.poll() is None
    assert d.finish(signal.SIGINT) == 0


def test_a_failed_start_exits_1_with_the_reason(tmp_path: Path) -> None:
    d = Demo(tmp_path / "state", "fail-start")
    assert d.finish(None) == 1
    assert "cannot start: no such thing" in d.text()
    assert not d.ready.exists()


def test_an_escalation_exits_1(tmp_path: Path) -> None:
    d = Demo(tmp_path / "state", "escalate")
    assert d.finish(None) == 1  # intensity 0: the worker's crash makes the root give up
    assert "the root supervisor gave up" in d.text()
    assert not d.ready.exists()


def test_a_second_instance_on_the_same_state_directory_is_refused(tmp_path: Path) -> None:
    first = Demo(tmp_path / "state")
    first.wait_ready()
    second = Demo(tmp_path / "state", "second")
    assert second.finish(None) == 1
    assert f"in use by pid {first.proc.pid}" in second.text()
    assert first.finish() == 0


def test_a_start_after_a_sigkill_stops_what_the_killed_instance_left(tmp_path: Path) -> None:
    d = Demo(tmp_path / "state", "child")
    d.wait_ready()
    rec = ProcessLedger.of_state(d.state).get("helper")
    assert rec is not None and rec.alive
    assert d.finish(signal.SIGKILL) == -signal.SIGKILL
    assert rec.alive  # started in its own session: it survived its owner
    again = Demo(tmp_path / "state", "plain")
    again.wait_ready()
    assert not process_alive(rec.pid, rec.start_time)
    assert "left running by a previous instance" in again.text()
    assert again.finish() == 0


def test_an_orderly_stop_leaves_no_owned_process(tmp_path: Path) -> None:
    d = Demo(tmp_path / "state", "child")
    d.wait_ready()
    rec = ProcessLedger.of_state(d.state).get("helper")
    assert rec is not None
    start = process_start_time(rec.pid)
    assert d.finish() == 0
    assert start is not None and not process_alive(rec.pid, start)
    assert "still runs after the stop" in d.text()
