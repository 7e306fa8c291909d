"""The suite's process guard: no test may leave an OS process behind.

At the start of the run every existing process is noted, and ``OXT_TEST_RUN`` is put in the
environment (children inherit it). After each test, /proc is scanned: a process that is new
and is ours (it carries the marker, or descends from the pytest process) is remembered with the
test during which it was first seen. At the end of the run (after every fixture is torn down)
the remembered processes still alive after a short grace are listed, with their tests and
command lines, and the run fails. Processes of other runs on the same machine carry another
marker and are ignored.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

__all__ = ["ProcessGuard"]

MARKER = "OXT_TEST_RUN"


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, or None (gone, or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except OSError:
        return None
    if not fields or fields[0] == b"Z":
        return None
    return int(fields[1]), int(fields[19])


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _has_marker(pid: int, value: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return value in f.read().split(b"\0")
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Leak:
    pid: int
    test: str
    cmdline: str


class ProcessGuard:
    """See the module docstring."""

    def __init__(self) -> None:
        self.me = os.getpid()
        self.marker = f"{self.me}-{time.time_ns()}"
        os.environ[MARKER] = self.marker
        self._env = f"{MARKER}={self.marker}".encode()
        self.known: set[tuple[int, int]] = set()
        for pid in _pids():
            st = _stat(pid)
            if st is not None:
                self.known.add((pid, st[1]))
        self.ours: dict[tuple[int, int], Leak] = {}

    def _descends_from_me(self, pid: int) -> bool:
        for _ in range(64):
            st = _stat(pid)
            if st is None:
                return False
            if st[0] == self.me:
                return True
            if st[0] <= 1:
                return False
            pid = st[0]
        return False

    def scan(self, test: str) -> None:
        """Remember the new processes of ours alive now (call after each test)."""
        for pid in _pids():
            if pid == self.me:
                continue
            st = _stat(pid)
            if st is None:
                continue
            key = (pid, st[1])
            if key in self.known:
                continue
            self.known.add(key)
            if _has_marker(pid, self._env) or self._descends_from_me(pid):
                self.ours[key] = Leak(pid, test, _cmdline(pid))

    def leaks(self, grace: float = 5.0) -> list[Leak]:
        """Remembered processes still alive after ``grace`` seconds."""
        deadline = time.monotonic() + grace
        while True:
            alive = [leak for (pid, start), leak in self.ours.items()
                     if (_stat(pid) or (0, -1))[1] == start]
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.1)
