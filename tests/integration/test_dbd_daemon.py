"""The ``dbd`` command: daemon mode and its pidfile, orderly stop on SIGTERM, reload on SIGHUP,
a bus name held by someone else, and giving up when the bus stays away."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence import DB_SERVICE
from rpc.dbus import BusConnection, socket_path, start_bus
from tests.helpers import wait_until
from tests.integration.dbd_helpers import BIN, Client, Dbd, T

pytestmark = pytest.mark.integration


@pytest.fixture
def private_bus() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    directory = Path(tempfile.mkdtemp(prefix="oxt-dbd-daemon-", dir="/tmp"))
    proc, address = start_bus(directory, ("com.citrix.xenclient",))
    yield proc, address
    if proc.poll() is None:
        proc.terminate()
    proc.wait(5)
    if proc.stderr is not None:
        proc.stderr.close()
    shutil.rmtree(directory, ignore_errors=True)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie nobody reaps (no init in a container) is gone too
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def test_daemon_mode_pidfile_and_orderly_stop(tmp_path: Path, bus_address: str) -> None:
    root, pidfile = tmp_path / "db", tmp_path / "dbd.pid"
    socket = socket_path(bus_address)
    relative = bus_address.replace(f"path={socket}", f"path={os.path.basename(socket)}")
    started = time.monotonic()
    proc = subprocess.run([str(BIN / "dbd"), "--root", str(root), "--bus", relative,
                           "--pidfile", str(pidfile)], capture_output=True, timeout=30,
                          check=False, cwd=os.path.dirname(socket))  # the daemon leaves its cwd
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert time.monotonic() - started < T
    pid = int(pidfile.read_text())
    try:
        client = Client(bus_address)  # ready as soon as the command returned
        try:
            client.write("/vm/u1/name", "daemon")
        finally:
            client.close()
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: gone(pid), timeout=T)
    assert not pidfile.exists()
    assert json.loads((root / "vms" / "u1.db").read_text()) == {"name": "daemon"}


def test_sighup_rereads_the_files(tmp_path: Path, bus_address: str) -> None:
    root = tmp_path / "db"
    dbd = Dbd(root, bus_address, "--flush-interval", "0.05")
    try:
        dbd.wait_ready()
        client = Client(bus_address)
        try:
            client.write("/vm/u1/name", "before")
            wait_until(lambda: (root / "vms" / "u1.db").exists())
            (root / "vms" / "u1.db").write_text('{\n  "name": "edited by hand"\n}\n')
            client.write("/other", "acknowledged")
            dbd.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: client.read("/vm/u1/name") == "edited by hand", timeout=T)
            assert client.read("/other") == "acknowledged"
        finally:
            client.close()
    finally:
        assert dbd.stop() == 0
    assert "SIGHUP: database re-read" in dbd.log.read_text()


def test_a_bus_name_held_by_another_connection_fails_the_start(
        tmp_path: Path, bus_address: str) -> None:
    with BusConnection(bus_address) as holder:
        assert holder.request_name(DB_SERVICE) == 1
        proc = subprocess.run([str(BIN / "dbd"), "--root", str(tmp_path / "db"), "--bus",
                               bus_address], capture_output=True, timeout=30, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith(b"dbd: ") and b"is owned by another connection" in proc.stderr


def test_gives_up_with_status_1_when_the_bus_stays_away(
        tmp_path: Path, private_bus: tuple[subprocess.Popen[bytes], str]) -> None:
    bus, address = private_bus
    root = tmp_path / "db"
    dbd = Dbd(root, address, "--flush-interval", "60")
    dbd.wait_ready()
    client = Client(address)
    try:
        client.write("/vm/u1/name", "kept")
    finally:
        client.close()
    bus.terminate()
    assert dbd.proc.wait(T) == 1
    assert "gave up" in dbd.log.read_text()
    assert json.loads((root / "vms" / "u1.db").read_text()) == {"name": "kept"}  # flushed
