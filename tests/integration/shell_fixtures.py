"""A live tree with a control socket for the oxt-shell tests, and the shell in a pseudo-terminal.

:func:`control_tree` starts a root supervisor with a busy worker (``/busy``, a Tick every
5 ms), a worker that blocks on demand (``/stuck``), a sub-supervisor with a quiet leaf
(``/sub/leaf``) and the ``control`` child serving the socket, with ``vm.add`` and
``vm.task`` answered by an echo and any extra operations given. :func:`spawn_shell` runs
``oxt-shell`` on it in a pseudo-terminal (pexpect) and waits for its first prompt.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect

from actors import Actor, handles
from supervision import ChildKind, ChildSpec, EventLog, Supervisor, SupFlags, start_actor
from supervision.control._ops import OpContext, Operation
from supervision.control._server import ControlActor
from supervision.shell import main

PROMPT = "oxt> "


@dataclass(frozen=True, slots=True)
class Tick:
    """The ticker's periodic message."""


@dataclass(frozen=True, slots=True)
class Block:
    """Makes the stuck actor wait until the test releases it."""


class Ticker(Actor):
    """A busy worker: handles a Tick every 5 ms."""

    def __init__(self) -> None:
        super().__init__()
        self.ticks = 0

    def on_start(self) -> None:
        self.send_every(0.005, Tick())

    @handles(Tick)
    def _tick(self, _msg: Tick) -> None:
        self.ticks += 1

    def snapshot(self) -> dict[str, Any]:
        return {"ticks": self.ticks}


class Stuck(Actor):
    """Blocks in its handler until ``release`` is set (at most 10 s)."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    @handles(Block)
    def _block(self, _msg: Block) -> None:
        self.release.wait(10)


class Leaf(Actor):
    """A quiet worker with a state."""

    def snapshot(self) -> dict[str, Any]:
        return {"leaf": True, "items": [1, 2]}


def _echo(ctx: OpContext, args: dict[str, Any]) -> Any:
    return {"echo": args}


VM_OPS: dict[str, Operation] = {"vm.add": _echo, "vm.task": _echo}


@dataclass
class Ctl:
    """A running tree with a control socket."""

    socket: str
    events: EventLog
    release: threading.Event
    home: Path

    def run(self, *commands: str, json_mode: bool = False) -> int:
        """``oxt-shell -c`` in this process; its exit status."""
        argv = ["--socket", self.socket, *(["--json"] if json_mode else [])]
        for command in commands:
            argv += ["-c", command]
        return main(argv)


@contextmanager
def control_tree(extra_ops: Mapping[str, Operation] | None = None) -> Iterator[Ctl]:
    """The tree (module docstring), stopped and cleaned up at the end."""
    home = Path(tempfile.mkdtemp(prefix="oxtsh-"))  # short: unix socket paths are bounded
    sock = str(home / "control.sock")
    events = EventLog()
    release = threading.Event()
    specs = [
        ChildSpec("busy", start_actor(Ticker)),
        ChildSpec("stuck", start_actor(Stuck, release)),
        ChildSpec("sub", start_actor(Supervisor, SupFlags(intensity=5, period=5),
                                     [ChildSpec("leaf", start_actor(Leaf))]),
                  kind=ChildKind.SUPERVISOR),
        ChildSpec("control", start_actor(ControlActor, sock, {**VM_OPS, **(extra_ops or {})})),
    ]
    ref = Supervisor.start_root(SupFlags(intensity=10, period=5), specs, events=events)
    try:
        yield Ctl(sock, events, release, home)
    finally:
        release.set()
        ref.stop(block=True, timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def spawn_shell(ctl: Ctl, history: Path | None = None, timeout: float = 5) -> pexpect.spawn:
    """``oxt-shell`` on ``ctl``'s socket in a 50x200 pseudo-terminal, at its first prompt
    (within twice ``timeout``: a loaded machine starts an interpreter slowly); ``timeout``
    is the child's default for each later ``expect``."""
    script = Path(sys.executable).with_name("oxt-shell")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "supervision.shell"]
    env = dict(os.environ, OXT_SHELL_HISTORY=str(history or ctl.home / "history"),
               TERM="xterm", PYTHONFAULTHANDLER="1")
    child = pexpect.spawn(argv[0], [*argv[1:], "--socket", ctl.socket], env=env,
                          encoding="utf-8", timeout=timeout, dimensions=(50, 200))
    try:
        child.expect_exact("help lists the commands", timeout=2 * timeout)
        child.expect_exact(PROMPT)
    except pexpect.TIMEOUT:
        faulthandler.dump_traceback(all_threads=True)  # this process: the server's side
        raise AssertionError(f"the shell did not start; its threads:\n{_stacks(child)}"
                             ) from None
    except BaseException:
        close_shell(child)
        raise
    return child


def _stacks(child: pexpect.spawn) -> str:
    """What the shell prints when SIGABRT makes its fault handler dump every thread."""
    child.kill(signal.SIGABRT)
    try:
        child.expect(pexpect.EOF, timeout=5)
    except pexpect.TIMEOUT:
        pass
    finally:
        close_shell(child)
    return str(child.before)


def close_shell(child: pexpect.spawn) -> None:
    """Kill the shell if it still runs and reap it (pexpect's own forced close gives up
    after 0.1 s waits, too short on a loaded machine)."""
    if child.isalive():
        child.kill(signal.SIGKILL)
    child.wait()
    child.close()


def end_shell(child: pexpect.spawn) -> int:
    """Wait for the shell to exit; its exit status."""
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus or 0)
