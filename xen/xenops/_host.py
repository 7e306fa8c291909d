"""Host-side actions of xenops plans: the real ones for a dom0, and the simulated host's.

`HostActions` (in ``_executor``) refuses every action clearly. :class:`SimHostActions` stands
in for host resources the simulated backends do not need: a file-backed PV disk gets a
made-up loop device (``/dev/loopN``, major 7) that is only written to xenstore, and detaching
forgets it; the other actions (PCI, processes, peers) stay refused. :class:`Dom0HostActions`
does them for real on a dom0: ``losetup`` for loop devices, SIGTERM then a bounded wait for
processes.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time

from xen._hverrors import HypervisorError
from xen.xenops._executor import HostActions

__all__ = ["Dom0HostActions", "SimHostActions"]

LOOP_MAJOR = 7


class SimHostActions(HostActions):
    """The simulated host's stand-ins (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers = itertools.count()
        self.attached: dict[str, str] = {}

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


class Dom0HostActions(HostActions):
    """A real dom0's host actions (see the module docstring)."""

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

    def kill_process(self, pid: int, timeout: float = 5.0) -> None:
        """SIGTERM ``pid``, wait up to ``timeout`` s for it to go, then SIGKILL."""
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + float(timeout)
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.03)
        if os.path.exists(f"/proc/{pid}"):
            os.kill(int(pid), signal.SIGKILL)
