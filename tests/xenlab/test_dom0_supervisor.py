"""``oxt-supervisor --backend xc`` runs the lab's PV guest on real Xen, driven by ``xenvm-cmd``.

The supervisor runs as its own process in the lab's dom0 (``python3 -m supervision.dom0``)
with the ``xc`` backend, dom0's oxenstored, and its own dbus-daemon (``bus = "private"``: a
system-type bus under its state directory, standing in for dom0's system bus; the dom0 has no
system bus running). One VM, the lab's PV guest, is declared in the configuration
(``[[vm]]``); every task goes through ``xenvm-cmd`` (``python3 -m xen.xenvm.cmd``) over DBus:
start (XcBackend.create + XcBuilder + the xenops plans, in the VM monitor), the guest's hello
on its console, pause / unpause (``xl list`` agrees), a crash of the VM monitor (control
socket ``crash``): the restarted monitor adopts the running domain, same domid; a reboot (the
guest's kernel restarts on control/shutdown = reboot; ``on_reboot = restart``: a new domain
is built); a clean
shutdown (the guest's kernel powers off on control/shutdown; ``on_poweroff = destroy``); start
again and destroy; start again and a guest crash (control/sysrq = c; ``on_crash =
destroy``). Afterwards neither Xen nor xenstore holds anything of the guest.

Prints ``SUP:`` lines. Skipped off Xen and without dbus-daemon in the dom0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervision.control import ControlClient, ControlError
from tests.xenlab.dom0 import GONE_TIMEOUT, domain_exists, on_xen, run, wait_for

pytestmark = [
    on_xen,
    pytest.mark.skipif(shutil.which("dbus-daemon") is None,
                       reason="dbus-daemon absent from the dom0 (tests/xenlab/lab.sh installs "
                              "it with the rootfs)"),
]

ROOT = Path(__file__).resolve().parents[2]
GUEST_DIR = Path(os.environ.get("OXT_LAB_GUEST_DIR", "/xenlab/guest"))
VM = "00000000-0000-4000-8000-00000000b001"
NAME = "oxt-sup-guest"
HELLO_TIMEOUT = 90.0
TASK_TIMEOUT = 120.0


class Supervisor:
    """The oxt-supervisor process under test and how to reach it."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.config = state / "oxt.toml"
        (state / "vm.cfg").write_text(
            f"name = {NAME}\nmemory = 128\nvcpus = 1\nkernel = {GUEST_DIR / 'vmlinuz'}\n"
            f"initrd = {GUEST_DIR / 'initrd.gz'}\ncmdline = console=hvc0 rdinit=/init quiet\n"
            "on_poweroff = destroy\non_reboot = restart\non_crash = destroy\n")
        self.config.write_text(f"""
[supervisor]
state_dir = "{state}"
backend = "xc"
bus = "private"
syslog = false
log_level = "info"
[persistence]
enabled = false
[xenmgr]
enabled = false
[[vm]]
uuid = "{VM}"
config = "{state / 'vm.cfg'}"
""")
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, object] = {}

    def start(self) -> None:
        ready = self.state / "ready.json"
        ready.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.state / "dom0.log", "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "supervision.dom0", "--config", str(self.config),
                 "--ready-file", str(ready)],
                stdout=subprocess.DEVNULL, stderr=log, text=True, env=env, cwd=ROOT)
        proc = self.proc
        wait_for(lambda: ready.exists() or proc.poll() is not None, 90,
                 "oxt-supervisor ready", interval=0.2)
        assert ready.exists(), self.log_tail()
        self.info = json.loads(ready.read_text())

    def log_tail(self, n: int = 40) -> str:
        path = self.state / "dom0.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() \
            else ""

    def xenvm_cmd(self, task: str, *params: str) -> str:
        """``xenvm-cmd --bus <the tree's bus> <uuid> <task> [k=v ...]``; its output."""
        done = subprocess.run(
            [sys.executable, "-m", "xen.xenvm.cmd", "--reply-timeout", str(TASK_TIMEOUT),
             "--bus", str(self.info["bus"]), VM, task, *params],
            capture_output=True, text=True, timeout=TASK_TIMEOUT + 10, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
        assert done.returncode == 0, (f"xenvm-cmd {task} failed: {done.stderr.strip()}\n"
                                      f"{self.log_tail()}")
        return done.stdout.strip()

    def control(self) -> ControlClient:
        return ControlClient(str(self.info["control"]), timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[Supervisor]:
    s = Supervisor(tmp_path)
    s.start()
    try:
        yield s
    finally:
        s.stop()
        for domid in xl_domids(NAME):  # a failed test must not leave its guest behind
            subprocess.run(["xl", "destroy", str(domid)], capture_output=True, timeout=60,
                           check=False)
            wait_for(lambda d=domid: not domain_exists(d), GONE_TIMEOUT, f"domain {domid} gone")
            subprocess.run(["xenstore-rm", f"/local/domain/{domid}"], capture_output=True,
                           timeout=30, check=False)
        subprocess.run(["xenstore-rm", f"/vm/{VM}"], capture_output=True, timeout=30,
                       check=False)


def xl_domids(name: str) -> list[int]:
    out = subprocess.run(["xl", "list"], capture_output=True, text=True, timeout=30,
                         check=False).stdout
    return [int(line.split()[1]) for line in out.splitlines()[1:]
            if line.split() and line.split()[0] == name]


def xl_state(domid: int) -> str:
    return run("xl", "list", str(domid)).splitlines()[1].split()[4]


def console_text() -> str:
    log = Path(f"/var/log/xen/console/guest-{NAME}.log")
    return log.read_text(errors="replace") if log.exists() else ""


def hello_count() -> int:
    return len(re.findall(r"OXT-XENLAB-GUEST: PV domU up", console_text()))


def hello_since(offset: int) -> bool:
    """A hello in the console log after ``offset`` characters (the whole log if xenconsoled
    started it again, shorter, for a new domain of the same name)."""
    text = console_text()
    return "OXT-XENLAB-GUEST: PV domU up" in (text[offset:] if len(text) >= offset else text)


@pytest.mark.timeout(600)
def test_the_supervisor_runs_the_guest_through_its_life(sup: Supervisor) -> None:
    hellos = hello_count()
    assert sup.xenvm_cmd("get-status") == "shutdown"
    t0 = time.monotonic()
    sup.xenvm_cmd("start")
    domid = int(sup.xenvm_cmd("get-domid"))
    print(f"\nSUP: xenvm-cmd start -> domain {domid} in {time.monotonic() - t0:.1f} s, "
          f"status {sup.xenvm_cmd('get-status')}, xl list state {xl_state(domid)}")
    assert sup.xenvm_cmd("get-status") == "running"
    assert xl_domids(NAME) == [domid]
    wait_for(lambda: hello_count() > hellos, HELLO_TIMEOUT, "the guest's hello on its console",
             interval=0.5)
    print(f"SUP: guest console after {time.monotonic() - t0:.1f} s: "
          f"{re.findall(r'OXT-XENLAB-GUEST: PV domU up.*', console_text())[-1]}")

    sup.xenvm_cmd("pause")
    assert sup.xenvm_cmd("get-status") == "paused" and "p" in xl_state(domid)
    sup.xenvm_cmd("unpause")
    assert sup.xenvm_cmd("get-status") == "running" and "p" not in xl_state(domid)
    print("SUP: pause -> paused (xl: p), unpause -> running")

    with sup.control() as ctl:
        seq = ctl.call("log.tail", n=1)[-1]["seq"]
        ctl.call("crash", path=f"/vms/{VM}")

    def adopted() -> bool:
        try:
            return sup.xenvm_cmd("get-status") == "running"
        except AssertionError:
            return False  # the monitor is restarting

    wait_for(adopted, 30, "the restarted monitor answers", interval=0.2)
    with sup.control() as ctl:
        events = [e for e in ctl.call("log.tail", n=200) if e["seq"] > seq]
    assert any(e["kind"] == "crashed" and e["path"] == f"/vms/{VM}" for e in events), events
    assert int(sup.xenvm_cmd("get-domid")) == domid and xl_domids(NAME) == [domid]
    print(f"SUP: VM monitor crashed and restarted: adopted domain {domid} (still the only one)")

    t0 = time.monotonic()
    mark = len(console_text())
    sup.xenvm_cmd("reboot")
    wait_for(lambda: not domain_exists(domid), GONE_TIMEOUT, f"rebooted domain {domid} gone")
    wait_for(lambda: sup.xenvm_cmd("get-status") == "running", 120,
             "the VM running again after its reboot", interval=1.0)
    old, domid = domid, int(sup.xenvm_cmd("get-domid"))
    assert domid != old and xl_domids(NAME) == [domid]
    wait_for(lambda: hello_since(mark), HELLO_TIMEOUT, "the guest's hello after reboot",
             interval=0.5)
    text = console_text()
    assert "Restarting system" in text[mark:] or len(text) < mark  # the guest's kernel did it
    print(f"SUP: xenvm-cmd reboot -> the guest's kernel restarted, on_reboot = restart: "
          f"domain {old} destroyed, domain {domid} built and booted after "
          f"{time.monotonic() - t0:.1f} s")
    assert_clean(old, vm=False)

    t0 = time.monotonic()
    sup.xenvm_cmd("shutdown")
    wait_for(lambda: not domain_exists(domid), GONE_TIMEOUT, f"domain {domid} gone")
    assert sup.xenvm_cmd("get-status") == "shutdown"
    assert "poweroff requested" in console_text()
    print(f"SUP: xenvm-cmd shutdown -> guest powered off, domain gone, status shutdown after "
          f"{time.monotonic() - t0:.1f} s")
    assert_clean(domid)

    sup.xenvm_cmd("start")
    domid = int(sup.xenvm_cmd("get-domid"))
    sup.xenvm_cmd("destroy")
    wait_for(lambda: not domain_exists(domid), GONE_TIMEOUT, f"domain {domid} gone")
    assert sup.xenvm_cmd("get-status") == "shutdown" and xl_domids(NAME) == []
    assert_clean(domid)
    print(f"SUP: start again -> domain {domid}; xenvm-cmd destroy -> gone, xenstore clean")

    mark = len(console_text())
    sup.xenvm_cmd("start")
    domid = int(sup.xenvm_cmd("get-domid"))
    wait_for(lambda: hello_since(mark), HELLO_TIMEOUT, "the guest's hello", interval=0.5)
    run("xenstore-write", f"/local/domain/{domid}/control/sysrq", "c")
    wait_for(lambda: not domain_exists(domid), 60, f"crashed domain {domid} gone")
    wait_for(lambda: sup.xenvm_cmd("get-status") == "shutdown", 30,
             "the VM shut down after the crash", interval=1.0)
    assert xl_domids(NAME) == []
    assert_clean(domid)
    print(f"SUP: start, then control/sysrq=c -> guest crashed, on_crash = destroy: domain "
          f"{domid} gone, status shutdown, xenstore clean")


def assert_clean(domid: int, *, vm: bool = True) -> None:
    for path in (f"/local/domain/{domid}", *((f"/vm/{VM}",) if vm else ())):
        assert subprocess.run(["xenstore-read", path], capture_output=True,
                              timeout=30).returncode != 0, f"{path} left in xenstore"


def test_xenvm_cmd_errors_name_what_failed(sup: Supervisor) -> None:
    with pytest.raises(AssertionError, match="not allowed in state shutdown"):
        sup.xenvm_cmd("pause")
    with pytest.raises(ControlError):
        with sup.control() as ctl:
            ctl.call("vm.task", uuid=VM, task="no-such-task", params={}, timeout=10, wait=20)
