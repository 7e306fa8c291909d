"""examples/hotplug/oxt-hotplug, the dom0 hotplug script, against the simulated xenstored.

The script runs for the kernel's xen-backend uevents (udev, or ``busybox uevent`` in the lab)
with the kernel's environment; here that environment is given by hand, Debian's xenstore-utils
reach the simulated xenstored through XENSTORED_PATH, and Xen's scripts are stand-ins in a
temporary directory (``XEN_SCRIPTS``) that record how they were called and succeed or fail on
request. On real Xen the lab runs it with Xen's own scripts (tests/xenlab/test_dom0_supervisor).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from xen.sim.xenstored import XenstoredServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("xenstore-read") is None,
                       reason="Debian's xenstore-utils is not installed"),
]

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "hotplug" / "oxt-hotplug"
TIMEOUT = 10.0
STANDIN = """#!/bin/sh
echo "$(basename "$0") $* vif=${vif:-} XENBUS_PATH=$XENBUS_PATH" >>"$CALLS"
[ ! -e "$FAIL" ]
"""


@dataclass
class Host:
    """The simulated xenstored, the stand-in Xen scripts and what they recorded."""

    server: XenstoredServer
    scripts: Path

    @property
    def calls_file(self) -> Path:
        return self.scripts / "calls"

    def calls(self) -> list[str]:
        return self.calls_file.read_text().splitlines() if self.calls_file.exists() else []

    def env(self, **kernel: str) -> dict[str, str]:
        return {**os.environ, "XENSTORED_PATH": self.server.socket_path,
                "XEN_SCRIPTS": str(self.scripts), "CALLS": str(self.calls_file),
                "FAIL": str(self.scripts / "fail"), "SUBSYSTEM": "xen-backend", **kernel}

    def event(self, **kernel: str) -> None:
        done = subprocess.run([str(SCRIPT)], env=self.env(**kernel), capture_output=True,
                              text=True, timeout=TIMEOUT, check=False)
        assert done.returncode == 0, done.stderr

    def tool(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env=self.env(), capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)

    def read(self, path: str) -> str | None:
        done = self.tool("xenstore-read", path)
        return done.stdout.strip() if done.returncode == 0 else None


@pytest.fixture
def host() -> Iterator[Host]:
    tmp = Path(tempfile.mkdtemp(prefix="hp-"))  # short: unix socket paths are limited
    server = XenstoredServer(tmp / "sock")
    server.start()
    scripts = tmp / "scripts"
    scripts.mkdir()
    for name in ("block", "vif-bridge"):
        (scripts / name).write_text(STANDIN)
        (scripts / name).chmod(0o755)
    try:
        yield Host(server, scripts)
    finally:
        server.close()
        shutil.rmtree(tmp, ignore_errors=True)


VBD = "backend/vbd/5/51712"
VIF = "backend/vif/5/0"
VBD_REPORT = "/xapi/5/hotplug/vbd/51712"
VIF_REPORT = "/xapi/5/hotplug/vif/0"


def test_a_disk_of_ours_runs_xens_block_script_then_reports_online(host: Host) -> None:
    host.tool("xenstore-write", VBD_REPORT, "")  # the add plan makes it with the backend
    host.event(ACTION="add", XENBUS_TYPE="vbd", XENBUS_PATH=VBD)
    assert host.calls() == [f"block add vif= XENBUS_PATH={VBD}"]
    assert host.read(f"{VBD_REPORT}/hotplug") == "online"
    host.event(ACTION="remove", XENBUS_TYPE="vbd", XENBUS_PATH=VBD)
    assert host.read(f"{VBD_REPORT}/hotplug") is None
    assert host.read(VBD_REPORT) is not None  # the directory is the teardown plan's to remove


def test_a_disk_whose_loop_device_we_wrote_needs_no_block_script(host: Host) -> None:
    host.tool("xenstore-write", VBD_REPORT, "", f"{VBD}/physical-device", "7:0")
    host.event(ACTION="add", XENBUS_TYPE="vbd", XENBUS_PATH=VBD)
    assert host.calls() == []
    assert host.read(f"{VBD_REPORT}/hotplug") == "online"


def test_a_vif_goes_on_the_bridge_then_reports_its_interface(host: Host) -> None:
    host.tool("xenstore-write", VIF_REPORT, "")
    host.event(ACTION="add", XENBUS_TYPE="vif", XENBUS_PATH=VIF)  # netback's probe: nothing
    host.event(ACTION="online", XENBUS_TYPE="vif", XENBUS_PATH=VIF, vif="vif5.0")
    assert host.calls() == [f"vif-bridge online type_if=vif vif=vif5.0 XENBUS_PATH={VIF}"]
    assert (host.read(f"{VIF_REPORT}/hotplug"), host.read(f"{VIF_REPORT}/vif")) == \
        ("online", "vif5.0")
    host.tool("xenstore-write", f"{VIF}/bridge", "xenbr0")  # the backend is there
    host.event(ACTION="offline", XENBUS_TYPE="vif", XENBUS_PATH=VIF, vif="vif5.0")
    assert host.calls()[-1] == f"vif-bridge offline type_if=vif vif=vif5.0 XENBUS_PATH={VIF}"
    assert host.read(f"{VIF_REPORT}/hotplug") is None and host.read(f"{VIF_REPORT}/vif") is None


def test_a_vif_script_of_our_choice_replaces_vif_bridge(host: Host) -> None:
    (host.scripts / "quick-vif").write_text(STANDIN)
    (host.scripts / "quick-vif").chmod(0o755)
    host.tool("xenstore-write", VIF_REPORT, "")
    done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=TIMEOUT,
                          check=False, env={**host.env(ACTION="online", XENBUS_TYPE="vif",
                                                       XENBUS_PATH=VIF, vif="vif5.0"),
                                            "OXT_VIF_SCRIPT": str(host.scripts / "quick-vif")})
    assert done.returncode == 0, done.stderr
    assert host.calls() == [f"quick-vif online type_if=vif vif=vif5.0 XENBUS_PATH={VIF}"]
    assert host.read(f"{VIF_REPORT}/hotplug") == "online"


def test_a_vif_whose_backend_a_teardown_removed_only_loses_its_report(host: Host) -> None:
    host.tool("xenstore-write", f"{VIF_REPORT}/hotplug", "online", f"{VIF_REPORT}/vif", "vif5.0")
    host.event(ACTION="offline", XENBUS_TYPE="vif", XENBUS_PATH=VIF, vif="vif5.0")
    assert host.calls() == []  # vif-bridge would write its error under the removed backend
    assert host.read(f"{VIF_REPORT}/hotplug") is None and host.read(VIF) is None


def test_a_failing_xen_script_leaves_no_report(host: Host) -> None:
    host.tool("xenstore-write", VBD_REPORT, "", VIF_REPORT, "")
    (host.scripts / "fail").touch()
    host.event(ACTION="add", XENBUS_TYPE="vbd", XENBUS_PATH=VBD)
    host.event(ACTION="online", XENBUS_TYPE="vif", XENBUS_PATH=VIF, vif="vif5.0")
    assert len(host.calls()) == 2
    assert host.read(f"{VBD_REPORT}/hotplug") is None
    assert host.read(f"{VIF_REPORT}/hotplug") is None


def test_devices_of_other_toolstacks_and_other_events_are_left_alone(host: Host) -> None:
    # no report directory: a device libxl made for a domain xl started
    host.event(ACTION="add", XENBUS_TYPE="vbd", XENBUS_PATH=VBD)
    host.event(ACTION="online", XENBUS_TYPE="vif", XENBUS_PATH=VIF, vif="vif5.0")
    host.event(ACTION="offline", XENBUS_TYPE="vif", XENBUS_PATH=VIF, vif="vif5.0")
    host.tool("xenstore-write", VBD_REPORT, "")
    host.event(ACTION="add", XENBUS_TYPE="vbd", XENBUS_PATH=VBD, SUBSYSTEM="block")
    host.event(ACTION="change", XENBUS_TYPE="vbd", XENBUS_PATH=VBD)
    assert host.calls() == []
    assert host.read("/xapi/5/hotplug/vif") is None
    assert host.read(f"{VBD_REPORT}/hotplug") is None


def test_each_event_is_logged_when_asked(host: Host, tmp_path: Path) -> None:
    log = tmp_path / "hotplug.log"
    host.tool("xenstore-write", VBD_REPORT, "")
    host.event(ACTION="add", XENBUS_TYPE="vbd", XENBUS_PATH=VBD, OXT_HOTPLUG_LOG=str(log))
    (line,) = log.read_text().splitlines()
    assert line.split(" ", 1)[1] == "add vbd 5/51712: reported online"
