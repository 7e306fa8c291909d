"""The simulated device model as its own process against a simulated xenstored: it checks the
arguments our builder makes (bad ones exit 2), publishes qemu-pid, dm-ready and the VNC port,
answers save/continue, and cleans up on SIGTERM; the host actions and `xen.xenops._dm` start,
command and stop it within their timeouts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_until
from xen.hypervisor import Unsupported
from xen.sim.xenstored import XenstoredServer
from xen.xenops._dm import (
    DeviceModelError,
    device_model_command,
    start_device_model,
    stop_device_model,
)
from xen.xenops._dmargs import DmInfo, DmNic, Vnc, qemu_argv
from xen.xenops._host import SimHostActions
from xen.xenstore import XenstoreClient

pytestmark = pytest.mark.integration

DOMID = 7
HVM = DmInfo(hvm=True, memory_mib=256, vcpus=2, boot="dc", serial="pty",
             display=Vnc(use_unused_port=True), acpi=True,
             nics=(DmNic(0, "00:16:3e:00:00:01", "xenbr0"),), extras=(("std-vga", None),))


class Env:
    def __init__(self, tmp: Path) -> None:
        self.path = str(tmp / "xs.sock")
        self.server = XenstoredServer(self.path)
        self.server.start()
        self.xs = XenstoreClient(self.path, timeout=2.0).connect()
        self.xs.write(f"/local/domain/{DOMID}/name", "vm")
        self.host = SimHostActions(xenstore_path=self.path, log_dir=tmp / "logs")
        self.procs: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "xen.sim.qemu_dm", "--xenstore",
                                 self.path, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self.host.close()
        self.xs.close()
        self.server.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    try:
        yield e
    finally:
        e.close()


def dom(path: str) -> str:
    return f"/local/domain/{DOMID}/{path}"


def dm(path: str) -> str:
    return f"/local/domain/0/device-model/{DOMID}/{path}"


def test_start_publishes_pid_ready_and_vnc_then_sigterm_cleans_up(env: Env) -> None:
    proc = env.run(*qemu_argv("/unused", HVM, DOMID)[1:])
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line == f"ready {proc.pid}\n"
    assert env.xs.read(dom("qemu-pid")) == str(proc.pid)
    assert env.xs.read(dom("device-misc/dm-ready")) == "1"
    assert env.xs.read(dom("console/vnc-port")) == str(5900 + DOMID)
    assert env.xs.read(dm("state")) == "running"
    proc.terminate()
    assert proc.wait(5) == 0
    assert env.xs.try_read(dom("qemu-pid")) is None


def test_save_and_continue_are_answered(env: Env) -> None:
    pid = start_device_model(env.host, env.xs, DOMID, HVM, timeout=10)
    device_model_command(env.xs, DOMID, "save", timeout=3)
    assert env.xs.read(dm("state")) == "paused"
    device_model_command(env.xs, DOMID, "continue", timeout=3)
    assert env.xs.read(dm("state")) == "running"
    device_model_command(env.xs, DOMID, "pci-ins", timeout=3, parameter="0000:00:02.0")
    assert env.xs.read(dm("parameter")) == "0000:00:02.0"
    assert stop_device_model(env.host, env.xs, DOMID, timeout=5)
    assert not os.path.exists(f"/proc/{pid}")
    assert env.xs.try_read(dom("qemu-pid")) is None
    assert not env.xs.exists(f"/local/domain/0/device-model/{DOMID}")


def test_start_through_host_actions_waits_for_ready_and_returns_the_pid(env: Env) -> None:
    pv = DmInfo(hvm=False, memory_mib=64, display=None)
    pid = start_device_model(env.host, env.xs, DOMID, pv, timeout=10)
    assert env.xs.read(dom("qemu-pid")) == str(pid)
    assert env.xs.try_read(dom("console/vnc-port")) is None
    log = Path(env.host.log_dir or ".") / f"qemu-dm-{DOMID}.log"
    assert "ready" in log.read_text()
    env.host.kill_process(pid, 5)   # as the destroy plan's kill_process does
    assert not os.path.exists(f"/proc/{pid}")
    assert env.xs.try_read(dom("qemu-pid")) is None


def test_a_bad_command_line_exits_2_naming_the_option(env: Env) -> None:
    argv = qemu_argv("/unused", HVM, DOMID)[1:]
    cases = {
        "unknown option -frobnicate": [*argv, "-frobnicate"],
        "-d 8 is not the wrapper's domid 7": [str(DOMID), "/tmp/log",
                                              *qemu_argv("/u", HVM, 8)[3:]],
        "-smp 3 differs from -vcpus 2": [*argv[:-2], "-smp", "3"],
        "-net none together": [*argv, "-net", "none"],
        "-serial needs a value, got option -M": [
            a for i, a in enumerate(argv) if not (argv[i - 1] == "-serial" and a == "pty")],
        "ifname must be tap7.<nic id>": [
            a.replace("ifname=tap7.0", "ifname=eth0") for a in argv],
    }
    for message, bad in cases.items():
        proc = env.run(*bad)
        _out, err = proc.communicate(timeout=10)
        assert proc.returncode == 2, (message, err)
        assert message in err.decode(), err
    assert env.xs.try_read(dom("qemu-pid")) is None


def test_host_action_reports_an_early_exit(env: Env) -> None:
    bad = DmInfo(hvm=True, memory_mib=64, extras=(("no-such-extra", None),))
    with pytest.raises(DeviceModelError, match=r"status 2: .*unknown option -no-such-extra"):
        start_device_model(env.host, env.xs, DOMID, bad, timeout=10)
    assert env.xs.try_read(dom("device-misc/dm-ready")) is None


def test_no_domain_tree_exits_1(env: Env) -> None:
    info = DmInfo(hvm=False, memory_mib=64, display=None)
    with pytest.raises(DeviceModelError, match=r"status 1: .*no xenstore tree"):
        start_device_model(env.host, env.xs, 99, info, timeout=10)


def test_domain_tree_removed_ends_it(env: Env) -> None:
    pid = start_device_model(env.host, env.xs, DOMID, HVM, timeout=10)
    env.xs.rm(f"/local/domain/{DOMID}")
    child = env.host._children.pop(pid)
    assert child is not None
    assert child[0].wait(5) == 0
    if child[1] is not None:
        child[1].close()


def test_kill_process_refuses_a_process_that_is_not_a_simulated_device_model(
        env: Env) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(Unsupported, match="not one"):
            env.host.kill_process(proc.pid, 1)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(5)


def test_stale_nodes_are_removed_before_start(env: Env) -> None:
    env.xs.write(dom("device-misc/dm-ready"), "1")
    env.xs.write(dom("qemu-pid"), "999999")
    env.xs.write(dm("command"), "save")
    pid = start_device_model(env.host, env.xs, DOMID, HVM, timeout=10)
    assert env.xs.read(dom("qemu-pid")) == str(pid)
    assert env.xs.read(dm("state")) == "running"
    wait_until(lambda: env.xs.try_read(dom("console/vnc-port")), 2)
    stop_device_model(env.host, env.xs, DOMID, timeout=5)


def test_it_exits_when_the_simulated_host_goes_away(env: Env) -> None:
    proc = env.run(*qemu_argv("/unused", HVM, DOMID)[1:])
    assert proc.stdout is not None
    assert proc.stdout.readline().decode() == f"ready {proc.pid}\n"
    env.xs.close()
    env.server.close()  # xenstored gone: the host is gone, so is its device model
    assert proc.wait(20) == 0
