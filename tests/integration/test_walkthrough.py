"""The embedded default end to end: `oxt-supervisor --embedded` (what `make run` runs) with the
example configuration, then the scripted walk-through of the README against it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A working directory with a short path: the bus socket's path under ./state must fit a
    unix socket address (108 bytes), which a parallel worker's tmp_path may not leave room for."""
    path = Path(tempfile.mkdtemp(prefix="oxt-walk-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(not (BIN / "oxt-supervisor").exists(), reason="console scripts not installed")
def test_make_run_and_the_walkthrough(short_dir: Path) -> None:
    tmp_path = short_dir
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    ready = tmp_path / "ready.json"
    with open(tmp_path / "supervisor.log", "w") as log:
        sup = subprocess.Popen([str(BIN / "oxt-supervisor"), "--config",
                                "examples/oxt-supervisor.toml", "--embedded", "--ready-file",
                                str(ready)], cwd=tmp_path, stdout=log, stderr=log)
    try:
        wait_until(lambda: ready.exists() or sup.poll() is not None, timeout=60, interval=0.1)
        assert ready.exists(), (tmp_path / "supervisor.log").read_text()[-2000:]
        info = json.loads(ready.read_text())
        banner = (tmp_path / "supervisor.log").read_text()
        assert "oxt-shell" in banner and "Ctrl-C stops everything" in banner
        env = {**os.environ, "BIN": str(BIN), "OXT_STATE_DIR": str(tmp_path / "state")}
        env.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        done = subprocess.run([str(ROOT / "examples" / "walkthrough.sh")], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert "hello from xec" in out
        assert "status: running" in out
        assert "restarted   /vms/00000000-0000-4000-8000-00000000a001" in out
        assert "adopted: the same domain kept running" in out
    finally:
        sup.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop of everything
        status = sup.wait(60)
        if status != 0:  # a failed supervisor keeps its host on purpose: stop it here
            subprocess.run([str(BIN / "python"), "-m", "xen.sim.simhost", "--state",
                            str(tmp_path / "state" / "simhost"), "--stop"], timeout=30)
        assert status == 0
    assert not ready.exists()  # not ready any more
    assert not Path(info["control"]).exists()
    assert not (tmp_path / "state" / "simhost" / "simhost.json").exists()  # host stopped too
