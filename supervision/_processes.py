"""The processes a daemon starts, recorded in its state directory so none outlives it unnoticed.

Every OS process a daemon of this project starts outside its own (a bus daemon, a simulated
host, a device model) is recorded by a :class:`ProcessLedger` as one file
``<state>/run/processes/<name>.json``: the pid, the kernel's start time of that pid (field 22
of ``/proc/<pid>/stat``: a pid reused by another process has another start time, so a record
never points at a stranger), the command line, the owner's pid and start time, and its kind:

* ``owned``: lives and dies with its owner (the private bus daemon). A daemon starting on the
  state directory stops every owned process whose owner is dead (:meth:`ProcessLedger.reap`:
  SIGTERM, a bounded wait, then SIGKILL) before anything else, so a start after a SIGKILL
  cleans up what the killed instance left. Owned processes are also started with a parent-death
  signal where the system offers one (``setpriv --pdeathsig``, see :func:`die_with_parent`), so
  they normally go at once with their owner.
* ``detached``: outlives its owner on purpose (the simulated host of the embedded default, which
  plays the hypervisor; device models, which belong to their running domain). Never stopped at
  a start; whoever owns the decision stops it (:meth:`ProcessLedger.stop`).

A record whose process is gone is forgotten by :meth:`ProcessLedger.reap`. Writes are atomic
(write, then rename). Failures: unreadable records are set aside as ``<name>.json.bad`` and
reported; signalling a process we may not signal raises ``PermissionError``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "ProcessLedger",
    "ProcessRecord",
    "die_with_parent",
    "process_alive",
    "process_start_time",
    "stop_process",
]

logger = logging.getLogger(__name__)

Kind = Literal["owned", "detached"]
_LEDGER_DIR = Path("run") / "processes"


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None when there is no such
    process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except OSError:
        return None
    if not fields or fields[0] == b"Z":
        return None
    return int(fields[19])  # field 22 of the whole line; fields[0] is field 3 (the state)


def process_alive(pid: int, start_time: int) -> bool:
    """``pid`` runs and is the process that started at ``start_time`` (not a reused pid)."""
    return process_start_time(pid) == start_time


def stop_process(pid: int, start_time: int, timeout: float = 5.0) -> bool:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL and wait up to 2 s more; only if ``pid``
    is still the process that started at ``start_time``. True when it is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        if not process_alive(pid, start_time):
            return True
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not process_alive(pid, start_time):  # gone, or a zombie its parent will reap
                return True
            time.sleep(0.02)
    return not process_alive(pid, start_time)


def die_with_parent(argv: list[str]) -> list[str]:
    """``argv`` wrapped so that the process gets SIGKILL when its parent dies
    (``setpriv --pdeathsig KILL``). Some kernels deliver it already when the *thread* that
    started it ends: start it from a thread that lives as long as the process should (an
    actor's own thread, the main thread). Unchanged when ``setpriv`` is missing: the ledger
    still catches the process at the next start."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else list(argv)


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """One recorded process (see the module docstring)."""

    name: str
    pid: int
    start_time: int
    argv: tuple[str, ...]
    kind: Kind
    owner_pid: int
    owner_start_time: int

    @property
    def alive(self) -> bool:
        """The recorded process still runs."""
        return process_alive(self.pid, self.start_time)

    @property
    def owner_alive(self) -> bool:
        """The process that recorded it still runs."""
        return process_alive(self.owner_pid, self.owner_start_time)


class ProcessLedger:
    """The records of one state directory (see the module docstring). Thread-safe as far as
    each record is one file written atomically."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    @classmethod
    def of_state(cls, state_dir: Path | str) -> ProcessLedger:
        """The ledger of a daemon's state directory (``<state>/run/processes``)."""
        return cls(Path(state_dir) / _LEDGER_DIR)

    def _file(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad process name {name!r}")
        return self.directory / f"{name}.json"

    def record(self, name: str, pid: int, argv: list[str] | tuple[str, ...],
               kind: Kind = "owned") -> ProcessRecord:
        """Record ``pid`` (which must be running) under ``name``, owned by this process."""
        start = process_start_time(pid)
        me = os.getpid()
        mine = process_start_time(me)
        if start is None or mine is None:
            raise ProcessLookupError(f"cannot record {name}: process {pid} is not running")
        rec = ProcessRecord(name, pid, start, tuple(argv), kind, me, mine)
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self._file(name)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps({**asdict(rec), "argv": list(rec.argv)}) + "\n")
        os.replace(tmp, target)
        return rec

    def get(self, name: str) -> ProcessRecord | None:
        """The record ``name``, or None."""
        return self._read(self._file(name))

    def records(self) -> list[ProcessRecord]:
        """Every readable record, by name."""
        if not self.directory.is_dir():
            return []
        out = [self._read(p) for p in sorted(self.directory.glob("*.json"))]
        return [r for r in out if r is not None]

    def forget(self, name: str) -> None:
        """Drop the record ``name`` (the process is not touched)."""
        self._file(name).unlink(missing_ok=True)

    def stop(self, name: str, timeout: float = 5.0) -> bool:
        """Stop the process recorded as ``name`` (if it still runs) and forget it. True when
        nothing of it runs any more."""
        rec = self.get(name)
        if rec is None:
            return True
        gone = stop_process(rec.pid, rec.start_time, timeout)
        if gone:
            self.forget(name)
        return gone

    def reap(self, timeout: float = 5.0) -> list[ProcessRecord]:
        """Stop the owned processes whose owner is dead, forget records of processes that are
        gone; returns the processes stopped."""
        stopped: list[ProcessRecord] = []
        for rec in self.records():
            if not rec.alive:
                self.forget(rec.name)
            elif rec.kind == "owned" and not rec.owner_alive:
                logger.warning("stopping %s (pid %d), left running by a previous instance "
                               "(pid %d)", rec.name, rec.pid, rec.owner_pid)
                if stop_process(rec.pid, rec.start_time, timeout):
                    self.forget(rec.name)
                    stopped.append(rec)
                else:
                    logger.error("%s (pid %d) did not stop", rec.name, rec.pid)
        return stopped

    def _read(self, path: Path) -> ProcessRecord | None:
        try:
            data = json.loads(path.read_text())
            return ProcessRecord(
                str(data["name"]), int(data["pid"]), int(data["start_time"]),
                tuple(str(a) for a in data["argv"]), _kind(data["kind"]),
                int(data["owner_pid"]), int(data["owner_start_time"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = path.with_name(path.name + ".bad")
            logger.error("process record %s is unreadable (%s); set aside as %s", path, exc,
                         aside.name)
            os.replace(path, aside)
            return None


def _kind(value: object) -> Kind:
    if value == "owned":
        return "owned"
    if value == "detached":
        return "detached"
    raise ValueError(f"unknown process kind {value!r}")
