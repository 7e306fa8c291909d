"""oxt-shell in a real pseudo-terminal (pexpect), as a user types: the prompt, completion and
history, and Ctrl-C at varied moments of ``top``, ``log -f`` and ``trace`` (and of a plain
request): every time the prompt comes back, the terminal is in its normal mode again and the
next command works.

Every wait is an ``expect`` with a bounded timeout or an event set by the server side: a
:class:`Gate` holds a request so that Ctrl-C lands while it is in flight. No sleeps.
"""

from __future__ import annotations

import os
import signal
import sys
import termios
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pexpect
import pytest

import actors
from supervision.control._ops import OpContext, Operation, base_operations
from supervision.shell._session import CANCEL_GRACE
from tests.helpers import wait_until
from tests.integration.shell_fixtures import (
    PROMPT,
    Block,
    Ctl,
    close_shell,
    control_tree,
    end_shell,
    spawn_shell,
)

pytestmark = pytest.mark.integration

FRAME_END = "(q or Ctrl-C: back to the prompt)"


class Gate:
    """Wraps an operation: after :meth:`hold`, its next request waits (until its connection
    closes, it is cancelled, or 10 s) and :attr:`held` is set while it waits."""

    def __init__(self, op: Operation) -> None:
        self.op = op
        self.held = threading.Event()
        self._hold = threading.Event()

    def hold(self) -> None:
        self.held.clear()
        self._hold.set()

    def __call__(self, ctx: OpContext, args: dict[str, Any]) -> Any:
        if self._hold.is_set():
            self._hold.clear()
            self.held.set()
            ctx.cancelled.wait(10)
        return self.op(ctx, args)


@pytest.fixture
def gates() -> dict[str, Gate]:
    ops = base_operations()
    return {name: Gate(ops[name]) for name in ("actors", "log.tail", "trace")}


@pytest.fixture
def ctl(gates: dict[str, Gate]) -> Iterator[Ctl]:
    with control_tree(gates) as tree:
        yield tree


@pytest.fixture
def shell(ctl: Ctl) -> Iterator[pexpect.spawn]:
    child = spawn_shell(ctl)
    try:
        yield child
    finally:
        close_shell(child)


def _lflag(child: pexpect.spawn) -> int:
    """The local modes of the shell's terminal, read from its side of the pty."""
    fd = os.open(os.readlink(f"/proc/{child.pid}/fd/0"), os.O_RDONLY | os.O_NOCTTY)
    try:
        return int(termios.tcgetattr(fd)[3])
    finally:
        os.close(fd)


def _next_command_works(child: pexpect.spawn, timeout: float = 5) -> None:
    """The prompt comes back within ``timeout`` s and the next command runs."""
    child.expect_exact(PROMPT, timeout=timeout)
    child.send("stats /sub/leaf\r")
    child.expect_exact("actor_class: Leaf")
    child.expect_exact(PROMPT)


def _terminal_is_cooked_again(child: pexpect.spawn) -> None:
    """While a command runs (a log follow), the terminal is in its normal mode: echo, lines."""
    child.send("log -n 0 -f\r")
    child.expect_exact("-- following the log (Ctrl-C to stop) --")
    lflag = _lflag(child)
    assert lflag & termios.ICANON and lflag & termios.ECHO, oct(lflag)
    child.sendintr()
    child.expect_exact(PROMPT)


# ------------------------------------------------------------------ prompt, completion, history

def test_terminal_prompt_tree_and_completion(shell: pexpect.spawn) -> None:
    shell.send("tre\t")
    shell.expect_exact("tree ")  # the command completed
    shell.send("\r")
    shell.expect_exact("├── busy  running  Ticker")
    shell.expect_exact(PROMPT)
    shell.send("stats /sub/l\t")
    shell.expect_exact("eaf ")  # the path completed from the tree
    shell.send("\r")
    shell.expect_exact("actor_class: Leaf")
    shell.expect_exact(PROMPT)
    shell.send("frobnicate\r")
    shell.expect_exact("error (usage): unknown command 'frobnicate'")
    shell.expect_exact(PROMPT)
    shell.send("quit\r")
    assert end_shell(shell) == 0


def test_terminal_log_follow_ctrl_c_and_history(ctl: Ctl) -> None:
    history = ctl.home / "history"
    history.write_text("stats /busy\n")
    child = spawn_shell(ctl, history)
    child.send("log -n 1 -f\r")
    child.expect_exact("-- following the log (Ctrl-C to stop) --")
    actors.tell("/sub/leaf", actors.InjectCrash("seen from the terminal"))
    child.expect_exact("InjectedCrash: seen from the terminal")
    child.sendintr()
    child.expect_exact(PROMPT)
    child.send("\x1b[A\x1b[A")  # up twice: back past "log -n 1 -f" to the saved history
    child.expect_exact("stats /busy")
    child.send("\r")
    child.expect_exact("actor_class: Ticker")
    child.expect_exact(PROMPT)
    child.sendeof()
    assert end_shell(child) == 0
    assert history.read_text().splitlines()[-3:] == ["stats /busy", "log -n 1 -f",
                                                     "stats /busy"]
    wait_until(lambda: not any(t.name == "control-log.follow" for t in threading.enumerate()))


def test_ctrl_c_at_the_prompt_clears_the_line(shell: pexpect.spawn) -> None:
    shell.send("crash /sub/leaf")
    shell.expect_exact("crash /sub/leaf")
    shell.sendintr()
    _next_command_works(shell)
    shell.send("tree\r")
    shell.expect(r"leaf  running  Leaf  up \S+  restarts 0  permanent")  # it did not run
    shell.expect_exact(PROMPT)


def _ctrl_c_right_after(child: pexpect.spawn, line: str, rounds: int = 8) -> None:
    """Type ``line`` and Ctrl-C at once (in the same write, then 50 ms later), ``rounds``
    times: each time the prompt comes back and the next command works."""
    for i in range(rounds):
        if i % 2:
            child.send(line + "\r")
            child.sendintr()  # pexpect waits 50 ms before each write
        else:
            child.send(line + "\r\x03")
        _next_command_works(child)


# ------------------------------------------------------------------ top

@pytest.mark.parametrize("moment", ["immediately", "first-frame", "between-frames",
                                    "request-in-flight"])
def test_ctrl_c_ends_top(shell: pexpect.spawn, gates: dict[str, Gate], moment: str) -> None:
    if moment == "immediately":
        _ctrl_c_right_after(shell, "top -d 0.1 -n 3")
        _terminal_is_cooked_again(shell)
        return
    shell.send("top -d 0.1 -n 3\r")
    shell.expect_exact(FRAME_END)
    assert not _lflag(shell) & termios.ICANON  # keys one by one while top runs
    if moment == "between-frames":
        shell.expect_exact(FRAME_END)
    if moment == "request-in-flight":
        gates["actors"].hold()
        assert gates["actors"].held.wait(5)
    shell.sendintr()
    _next_command_works(shell)
    _terminal_is_cooked_again(shell)


@pytest.mark.parametrize("moment", ["typed-ahead", "after-the-first-frame"])
def test_q_ends_top(shell: pexpect.spawn, moment: str) -> None:
    shell.send("top -d 0.1 -n 2\r")
    if moment == "after-the-first-frame":
        shell.expect_exact("by mailbox depth (top 2):")
        shell.expect_exact(FRAME_END)
    shell.send("q")
    _next_command_works(shell)
    _terminal_is_cooked_again(shell)


# ------------------------------------------------------------------ log -f

@pytest.mark.parametrize("moment", ["immediately", "tail-in-flight", "following",
                                    "mid-stream"])
def test_ctrl_c_ends_log_follow(shell: pexpect.spawn, gates: dict[str, Gate],
                                moment: str) -> None:
    if moment == "immediately":
        _ctrl_c_right_after(shell, "log -n 1 -f /sub")
        return
    if moment == "tail-in-flight":
        gates["log.tail"].hold()
    shell.send("log -n 1 -f /sub\r")
    if moment == "tail-in-flight":
        assert gates["log.tail"].held.wait(5)
    if moment in ("following", "mid-stream"):
        shell.expect_exact("-- following the log (Ctrl-C to stop) --")
    if moment == "mid-stream":
        actors.tell("/sub/leaf", actors.InjectCrash("mid-stream"))
        shell.expect_exact("InjectedCrash: mid-stream")
    shell.sendintr()
    _next_command_works(shell)
    wait_until(lambda: not any(t.name == "control-log.follow" for t in threading.enumerate()))


# ------------------------------------------------------------------ trace

@pytest.mark.parametrize("moment", ["immediately", "request-in-flight", "first-entries",
                                    "mid-stream"])
def test_ctrl_c_ends_trace(shell: pexpect.spawn, gates: dict[str, Gate], moment: str) -> None:
    if moment == "immediately":
        _ctrl_c_right_after(shell, "trace /busy -n 100000 -t 30")
        return
    if moment == "request-in-flight":
        gates["trace"].hold()
    shell.send("trace /busy -n 100000 -t 30\r")
    if moment == "request-in-flight":
        assert gates["trace"].held.wait(5)
    if moment in ("first-entries", "mid-stream"):
        shell.expect_exact(" Tick ")
    if moment == "mid-stream":
        for _ in range(20):
            shell.expect_exact(" Tick ")
    shell.sendintr()
    shell.expect(r"-- \d+ messages, interrupted --")  # it ended early, and says so
    _next_command_works(shell)
    wait_until(lambda: not any(t.name == "control-trace" for t in threading.enumerate()))


# ------------------------------------------------------------------ a deaf server, a stuck actor

def test_a_stream_whose_server_ignores_the_cancel() -> None:
    following, cancelled, released = threading.Event(), threading.Event(), threading.Event()

    def deaf_follow(ctx: OpContext, _args: dict[str, Any]) -> Any:
        following.set()
        ctx.cancelled.wait(10)
        cancelled.set()  # the cancel (or the connection closing) came: ignore it
        released.wait(10)
        return None

    with control_tree({"log.follow": deaf_follow}) as ctl:
        child = spawn_shell(ctl)
        try:
            # one Ctrl-C: the shell cancels, waits CANCEL_GRACE seconds, drops the connection
            child.send("log -n 0 -f\r")
            assert following.wait(5)
            child.sendintr()
            assert cancelled.wait(5)
            _next_command_works(child)
            # a second Ctrl-C: the connection is dropped at once
            following.clear()
            cancelled.clear()
            child.send("log -n 0 -f\r")
            assert following.wait(5)
            child.sendintr()
            assert cancelled.wait(5)
            child.sendintr()
            _next_command_works(child, timeout=CANCEL_GRACE - 0.5)
        finally:
            released.set()
            close_shell(child)


def test_ctrl_c_during_a_plain_request(ctl: Ctl, shell: pexpect.spawn) -> None:
    actors.tell("/stuck", Block())
    shell.send("state /stuck -t 5\r")
    wait_until(lambda: any(t.name == "control-state" for t in threading.enumerate()))
    shell.sendintr()
    shell.expect_exact("error (interrupted): state interrupted")
    _next_command_works(shell)


# ------------------------------------------------------------------ the kick

KICK_SCRIPT = textwrap.dedent("""
    import readline, signal, threading
    from supervision.shell._interrupt import Interrupts

    interrupts = Interrupts()
    with interrupts.installed(kick=True):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

        def receiver():  # takes the process's SIGINT: the prompt's select never sees EINTR
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            threading.Event().wait(30)

        threading.Thread(target=receiver, daemon=True).start()
        try:
            interrupts.read_line("p> ")
        except KeyboardInterrupt:
            print("interrupted at the prompt")
""")


def test_a_sigint_the_prompt_did_not_see_still_interrupts_it() -> None:
    """CPython's readline looks at signals only when its select is interrupted; a SIGINT
    handled elsewhere (here: by another thread, as when it lands while readline is busy)
    would wait for the next key. The kicker interrupts the select."""
    child = pexpect.spawn(sys.executable, ["-c", KICK_SCRIPT], encoding="utf-8", timeout=5,
                          env=dict(os.environ, TERM="xterm"))
    try:
        child.expect_exact("p> ")
        os.kill(child.pid, signal.SIGINT)
        child.expect_exact("interrupted at the prompt")
        child.expect(pexpect.EOF)
    finally:
        close_shell(child)
