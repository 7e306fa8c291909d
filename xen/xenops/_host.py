"""Host-side actions of xenops plans: the real ones for a dom0, and the simulated host's.

`HostActions` (in ``_executor``) refuses every action clearly. :class:`SimHostActions` stands
in for host resources the simulated backends do not need: a file-backed PV disk gets a
made-up loop device (``/dev/loopN``, major 7) that is only written to xenstore, and detaching
forgets it. Its device model is the simulated one: `start_device_model` runs
``python -m xen.sim.qemu_dm`` with the wrapper's argv (the program path replaced), its stderr
in ``log_dir/qemu-dm-<domid>.log`` (or a temporary file), in its own session as a detached
qemu would be, and waits (bounded) for its ``ready`` line, i.e. after it wrote
``device-misc/dm-ready``; a process that exits first (bad arguments: status 2) raises
`DeviceModelError` with its status and last log line. `stop_device_model` and
`kill_process` send SIGTERM, wait (bounded), then SIGKILL; they only act on device models this
object started or, for a pid another process started, on one whose command line is the
simulated device model's; any other pid is refused (`Unsupported`), so a sim run never signals
an unrelated process. PCI (`pci_bind`, `pci_flr`, `pci_device`) goes to the simulated host's
sysfs stand-in on its hypervisor socket (``hypervisor_path``; by default the ``hypervisor/
socket`` beside the ``xenstored/`` directory of ``xenstore_path``, the simulated host's
layout). The dbus peers stay refused.

:class:`Dom0HostActions` does them for real on a dom0: ``losetup`` for loop devices, the
device model exec'd from the argv as given (the configured qemu-dm-wrapper path first) in its
own session with no inherited descriptors (readiness is then seen in xenstore by
`xen.xenops._dm`), SIGTERM then a bounded wait then SIGKILL for processes, PCI through
``/sys/bus/pci`` (pciback; unproven without a device to pass through). Children started
here are reaped when stopped.

Both record every device model they start in the daemon's process ledger when given one
(``ledger``; `supervision.ProcessLedger`), as a *detached* process named
``device-model-<domid>``: it belongs to its running domain and outlives a restart of the
toolstack on purpose; the record is dropped when the device model is stopped (the domain's
teardown does that).
"""

from __future__ import annotations

import itertools
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from supervision import ProcessLedger
from xen.hypervisor import HypervisorError, SimBackend, Unsupported
from xen.xenops._dm import DeviceModelError
from xen.xenops._executor import HostActions
from xen.xenops._sysfs import HostPciSysfs, PciSysfs, PciSysfsActions, SimPciSysfs

__all__ = ["Dom0HostActions", "SimHostActions"]

logger = logging.getLogger("xenops")

LOOP_MAJOR = 7
_SIM_DM_MODULE = "xen.sim.qemu_dm"
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


def _gone(pid: int) -> bool:
    """The process ended (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[:1] == ["Z"]
    except OSError:
        return True


def _terminate(pid: int, timeout: float, proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, wait up to ``timeout`` s (reaping our own child), then SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    if proc is not None:
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)
            return
    deadline = time.monotonic() + float(timeout)
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.03)
    if not _gone(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _ledger_name(domid: int) -> str:
    return f"device-model-{domid}"


class _Children:
    """Processes started by one host-actions object, by pid (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: dict[int, tuple[subprocess.Popen[bytes], IO[bytes] | None]] = {}

    def add(self, proc: subprocess.Popen[bytes], log: IO[bytes] | None) -> None:
        with self._lock:
            self._procs[proc.pid] = (proc, log)

    def pop(self, pid: int) -> tuple[subprocess.Popen[bytes], IO[bytes] | None] | None:
        with self._lock:
            return self._procs.pop(pid, None)

    def pids(self) -> list[int]:
        with self._lock:
            return list(self._procs)


class SimHostActions(PciSysfsActions, HostActions):
    """The simulated host's stand-ins (see the module docstring).

    ``xenstore_path``: the socket given to the simulated device model (default: its
    ``$XENSTORED_PATH``); ``log_dir``: where its logs go (default: temporary files);
    ``hypervisor_path``: the simulated host's hypervisor socket, for PCI.
    """

    def __init__(self, xenstore_path: str | os.PathLike[str] | None = None,
                 log_dir: str | os.PathLike[str] | None = None,
                 ledger: ProcessLedger | None = None,
                 hypervisor_path: str | os.PathLike[str] | None = None) -> None:
        if hypervisor_path is None and xenstore_path is not None:
            hypervisor_path = Path(xenstore_path).parent.parent / "hypervisor" / "socket"
        self.hypervisor_path = None if hypervisor_path is None else str(hypervisor_path)
        self._sysfs: SimPciSysfs | None = None
        self._lock = threading.Lock()
        self.ledger = ledger
        self._numbers = itertools.count()
        self.attached: dict[str, str] = {}
        self.xenstore_path = None if xenstore_path is None else str(xenstore_path)
        self.log_dir = None if log_dir is None else Path(log_dir)
        self._children = _Children()

    def attach_file(self, path: str) -> tuple[str, int, int]:
        """A made-up loop device for ``path``: (device, major, minor)."""
        with self._lock:
            minor = next(self._numbers)
            device = f"/dev/loop{minor}"
            self.attached[device] = path
        return device, LOOP_MAJOR, minor

    def loop_detach(self, device: str) -> None:
        """Forget a made-up loop device."""
        with self._lock:
            self.attached.pop(device, None)

    def start_device_model(self, domid: int, argv: Sequence[str], timeout: float) -> int:
        """Run the simulated device model with the wrapper's ``argv``; its pid once ready."""
        cmd = [sys.executable, "-m", _SIM_DM_MODULE]
        if self.xenstore_path is not None:
            cmd += ["--xenstore", self.xenstore_path]
        cmd += [str(a) for a in argv[1:]]
        log: IO[bytes]
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = open(self.log_dir / f"qemu-dm-{domid}.log", "a+b")
        else:
            log = tempfile.TemporaryFile(prefix=f"qemu-dm-{domid}-")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT,
                                                        env.get("PYTHONPATH")) if p)
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=log, env=env, close_fds=True,
                                    start_new_session=True)
        except OSError as exc:
            log.close()
            raise DeviceModelError(f"domain {domid}: cannot run the simulated device model: "
                                   f"{exc}") from exc
        assert proc.stdout is not None
        try:
            line = _read_line(proc.stdout, timeout)
        finally:
            proc.stdout.close()
        if line is not None and line.split()[:1] == ["ready"]:
            self._children.add(proc, log)
            _record(self.ledger, domid, proc.pid, cmd)
            return proc.pid
        if line is None:
            _terminate(proc.pid, 5.0, proc)
            log.close()
            raise DeviceModelError(f"domain {domid}: the simulated device model was not "
                                   f"ready within {timeout:g} s")
        try:
            status: int | str = proc.wait(5.0)
        except subprocess.TimeoutExpired:
            _terminate(proc.pid, 1.0, proc)
            status = "unknown (closed its stdout without a ready line)"
        detail = _last_line(log)
        log.close()
        raise DeviceModelError(f"domain {domid}: the simulated device model exited with "
                               f"status {status}: {detail}")

    def stop_device_model(self, pid: int, timeout: float = 5.0) -> None:
        """Stop a simulated device model (see the module docstring)."""
        self.kill_process(pid, timeout)

    def kill_process(self, pid: int, timeout: float = 5.0) -> None:
        """SIGTERM, bounded wait, SIGKILL: only for simulated device models."""
        pid = int(pid)
        child = self._children.pop(pid)
        _forget(self.ledger, pid)
        if child is not None:
            proc, log = child
            _terminate(pid, float(timeout), proc)
            if log is not None:
                log.close()
            return
        if _gone(pid):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return
        if _SIM_DM_MODULE.encode() not in cmdline:
            raise Unsupported(f"the simulated host stops only simulated device models; "
                              f"pid {pid} is not one")
        _terminate(pid, float(timeout), None)

    def pci_sysfs(self) -> PciSysfs:
        """The simulated host's sysfs stand-in (one connection, opened at first use)."""
        if self.hypervisor_path is None:
            raise Unsupported("not implemented: PCI on a simulated host whose hypervisor "
                              "socket is not known (give hypervisor_path)")
        with self._lock:
            if self._sysfs is None:
                self._sysfs = SimPciSysfs(SimBackend(self.hypervisor_path))
            return self._sysfs

    def close(self, timeout: float = 5.0) -> None:
        """Stop every device model this object started; close the PCI connection."""
        for pid in self._children.pids():
            self.kill_process(pid, timeout)
        with self._lock:
            sysfs, self._sysfs = self._sysfs, None
        if sysfs is not None:
            sysfs.close()


def _read_line(stream: IO[bytes], timeout: float) -> str | None:
    """One line from a pipe within ``timeout`` s; "" at EOF, None on timeout."""
    poller = select.poll()
    poller.register(stream.fileno(), select.POLLIN | select.POLLHUP)
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(max(1, int(left * 1000))):
            return None
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            return ""
        data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace")


def _last_line(log: IO[bytes]) -> str:
    try:
        log.flush()
        log.seek(0)
        lines = [line for line in log.read()[-4096:].decode(errors="replace").splitlines()
                 if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(nothing logged)"


class Dom0HostActions(PciSysfsActions, HostActions):
    """A real dom0's host actions (see the module docstring)."""

    def __init__(self, ledger: ProcessLedger | None = None,
                 sysfs: PciSysfs | None = None) -> None:
        self._children = _Children()
        self.ledger = ledger
        self._sysfs = sysfs or HostPciSysfs()

    def pci_sysfs(self) -> PciSysfs:
        """``/sys/bus/pci``."""
        return self._sysfs

    def attach_file(self, path: str) -> tuple[str, int, int]:
        """``losetup --find --show path``: (device, major, minor)."""
        try:
            done = subprocess.run(["losetup", "--find", "--show", path], capture_output=True,
                                  text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise HypervisorError(f"cannot attach {path} to a loop device: {exc}") from exc
        device = done.stdout.strip()
        st = os.stat(device)
        return device, os.major(st.st_rdev), os.minor(st.st_rdev)

    def loop_detach(self, device: str) -> None:
        """``losetup -d device``."""
        subprocess.run(["losetup", "-d", device], capture_output=True, timeout=10, check=True)

    def start_device_model(self, domid: int, argv: Sequence[str], timeout: float) -> int:
        """Exec ``argv`` (qemu-dm-wrapper path first) detached; its pid. Readiness is
        checked in xenstore by the caller."""
        try:
            proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    close_fds=True, start_new_session=True)
        except OSError as exc:
            raise DeviceModelError(f"domain {domid}: cannot run {argv[0]}: {exc}") from exc
        self._children.add(proc, None)
        _record(self.ledger, domid, proc.pid, [str(a) for a in argv])
        return proc.pid

    def stop_device_model(self, pid: int, timeout: float = 5.0) -> None:
        """SIGTERM, bounded wait, SIGKILL."""
        self.kill_process(pid, timeout)

    def kill_process(self, pid: int, timeout: float = 5.0) -> None:
        """SIGTERM ``pid``, wait up to ``timeout`` s for it to go, then SIGKILL."""
        child = self._children.pop(int(pid))
        _forget(self.ledger, int(pid))
        _terminate(int(pid), float(timeout), child[0] if child is not None else None)


def _record(ledger: ProcessLedger | None, domid: int, pid: int, argv: Sequence[str]) -> None:
    """Record a device model in the process ledger: detached, it belongs to its domain."""
    if ledger is not None:
        try:
            ledger.record(_ledger_name(domid), pid, list(argv), kind="detached")
        except ProcessLookupError:
            logger.warning("device model %d of domain %d ended before it was recorded", pid,
                           domid)


def _forget(ledger: ProcessLedger | None, pid: int) -> None:
    """Forget the ledger's record of device model ``pid`` (it is being stopped)."""
    if ledger is not None:
        for rec in ledger.records():
            if rec.pid == pid and rec.name.startswith("device-model-"):
                ledger.forget(rec.name)
