"""Benchmarks stop what they start, however they end: a result, an exception, Ctrl-C, SIGTERM.

A benchmark runs its work inside :func:`cleaning_up` and its ``main`` through :func:`run`::

    def main() -> int:
        with cleaning_up() as procs:
            bus, address = procs.adopt(*start_bus(directory))   # started elsewhere
            server = procs.spawn([sys.executable, "-m", "xen.sim.xenstored", ...])
            ...                                                 # measure, print

    if __name__ == "__main__":
        raise SystemExit(run(main))

Guarantees:

* Inside :func:`cleaning_up`, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (a
  ``KeyboardInterrupt``) in the main thread, so every ``finally`` and ``with`` of the
  benchmark runs. Once the clean-up has begun, further signals are noted and ignored: it is
  bounded, and it is what they ask for.
* :meth:`Processes.spawn` starts a process in its own session, hence its own process group
  without a terminal: a Ctrl-C at the terminal reaches the benchmark alone, which then stops
  the rest, and a whole group can be signalled at once. :meth:`Processes.adopt` registers a
  process started elsewhere (``rpc.dbus.start_bus``); :meth:`Processes.stop` stops one early.
* On leaving :func:`cleaning_up`, for whatever reason, every registered process still
  running, the latest first, gets SIGTERM (its whole group when it leads one), up to its
  ``grace`` seconds to end, then SIGKILL. Then every other process carrying this run's marker
  in its environment (:data:`MARKER`, set on entry and inherited by children: a grandchild,
  a daemon that left its parent's session) is terminated and killed the same way. Every wait
  is bounded; processes that cannot be signalled (gone, not ours) are skipped.
* :func:`run` returns ``main``'s status when it completes; after an interruption it prints
  one line on stderr and ends the process with status 128 + the signal number (at once:
  worker threads of an interrupted measurement are not waited for).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["MARKER", "Interrupted", "Processes", "cleaning_up", "run"]

MARKER = "OXT_BENCH_RUN"
"""Environment variable naming the benchmark run a process belongs to."""
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
POLL = 0.02
"""Seconds between two looks while waiting for processes to end."""
SWEEP_GRACE = 3.0
"""Seconds a leftover process found by its marker has to end after SIGTERM."""


class Interrupted(KeyboardInterrupt):
    """The benchmark got ``signum`` (SIGINT, SIGTERM or SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Processes:
    """The processes a benchmark started (see the module docstring)."""

    def __init__(self) -> None:
        self._procs: list[_Started] = []

    def spawn(self, argv: list[str], *, grace: float = 5.0, **popen: Any
              ) -> subprocess.Popen[Any]:
        """``subprocess.Popen(argv, **popen)`` in a new session, registered; ``grace``: the
        seconds it has to end after SIGTERM before SIGKILL."""
        proc: subprocess.Popen[Any] = subprocess.Popen(argv, start_new_session=True, **popen)
        self._procs.append(_Started(proc, proc.pid, grace))
        return proc

    def adopt(self, proc: subprocess.Popen[Any], *rest: Any, grace: float = 5.0) -> Any:
        """Register ``proc``; returns ``proc``, or ``(proc, *rest)`` when more are given (as
        ``procs.adopt(*start_bus(...))``)."""
        self._procs.append(_Started(proc, _own_group(proc), grace))
        return (proc, *rest) if rest else proc

    def stop(self, proc: subprocess.Popen[Any]) -> int | None:
        """Stop ``proc`` now (SIGTERM, its grace, SIGKILL) and forget it; its exit status."""
        for started in self._procs:
            if started.proc is proc:
                self._procs.remove(started)
                return started.stop()
        return _Started(proc, _own_group(proc), 5.0).stop()

    def close(self) -> list[int]:
        """Stop every registered process (latest first), then sweep the run's leftovers; the
        pids of the leftovers found."""
        while self._procs:
            self._procs.pop().stop()
        return _sweep(os.environ.get(MARKER, ""))


@contextmanager
def cleaning_up() -> Iterator[Processes]:
    """Signals raise :class:`Interrupted` and every started process is stopped at the end."""
    token = f"{os.getpid()}-{secrets.token_hex(8)}"
    outer = os.environ.get(MARKER)
    os.environ[MARKER] = token
    procs = Processes()
    closing = [False]

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        if not closing[0]:
            closing[0] = True
            raise Interrupted(signum)

    old = {sig: signal.signal(sig, interrupt) for sig in SIGNALS}
    try:
        yield procs
    finally:
        closing[0] = True  # a signal from here on is ignored: the clean-up is bounded
        try:
            procs.close()
        finally:
            for sig, handler in old.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
            if outer is None:
                os.environ.pop(MARKER, None)
            else:
                os.environ[MARKER] = outer


def run(main: Callable[[], int]) -> int:
    """``main()``'s exit status; after an interruption, 128 + the signal (module docstring)."""
    try:
        return main()
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        name = signal.Signals(signum).name
        print(f"{Path(sys.argv[0]).name}: interrupted by {name}; what it started is stopped",
              file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signum)


# ------------------------------------------------------------------ stopping processes

class _Started:
    """A registered process, the group it leads (None: it leads none) and its grace."""

    def __init__(self, proc: subprocess.Popen[Any], group: int | None, grace: float) -> None:
        self.proc = proc
        self.group = group
        self.grace = grace

    def stop(self) -> int | None:
        """SIGTERM to the process (to its whole group if it leads one), its grace, SIGKILL;
        the process's exit status."""
        self._signal(signal.SIGTERM)
        if not self._wait(self.grace):
            self._signal(signal.SIGKILL)
            self._wait(5.0)
        return self.proc.poll()

    def _signal(self, sig: int) -> None:
        try:
            if self.group is not None:  # the group outlives its leader while members remain
                os.killpg(self.group, sig)
            else:
                self.proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _wait(self, timeout: float) -> bool:
        """Wait until the process has ended and its group is empty; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            ended = self.proc.poll() is not None and (
                self.group is None or not _members(self.group))
            if ended or time.monotonic() > deadline:
                return ended
            time.sleep(POLL)


def _own_group(proc: subprocess.Popen[Any]) -> int | None:
    """``proc``'s process group when it leads one (started in its own session), else None."""
    if proc.returncode is not None:
        return None
    try:
        return proc.pid if os.getpgid(proc.pid) == proc.pid else None
    except ProcessLookupError:
        return None


def _members(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(_running(pid) for pid in _pids() if _stat(pid, 5) == str(group))


# ------------------------------------------------------------------ the sweep

def _sweep(token: str) -> list[int]:
    """Terminate, then kill, every other process whose environment names run ``token``."""
    if not token:
        return []
    needle = f"{MARKER}={token}".encode()
    found = [pid for pid in _pids() if pid != os.getpid() and _running(pid)
             and needle in _environ(pid).split(b"\0")]
    for sig, wait in ((signal.SIGTERM, SWEEP_GRACE), (signal.SIGKILL, 5.0)):
        alive = [pid for pid in found if _running(pid)]
        for pid in alive:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while any(_running(pid) for pid in alive) and time.monotonic() < deadline:
            time.sleep(POLL)
    for pid in found:  # our own children among them: reap them
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return found


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _stat(pid: int, field: int) -> str:
    """Field ``field`` (1-based, as in proc(5): 3 state, 4 ppid, 5 pgrp) of /proc/pid/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = text.rpartition(")")[2].split()
    return fields[field - 3] if len(fields) > field - 3 else ""


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    state = _stat(pid, 3)
    return state not in ("", "Z", "X")
