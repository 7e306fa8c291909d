"""oxt-shell against a live tree with a control socket: ``-c`` and ``--json`` in process, and
the interactive shell in a real pseudo-terminal (pexpect) as a user would type."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect
import pytest

import actors
from actors import Actor, handles
from supervision import ChildKind, ChildSpec, EventLog, Supervisor, SupFlags, start_actor
from supervision.control._ops import OpContext, Operation
from supervision.control._server import ControlActor
from supervision.shell import main
from tests.helpers import wait_until

pytestmark = pytest.mark.integration


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
        argv = ["--socket", self.socket, *(["--json"] if json_mode else [])]
        for command in commands:
            argv += ["-c", command]
        return main(argv)


@pytest.fixture
def ctl() -> Iterator[Ctl]:
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
        ChildSpec("control", start_actor(ControlActor, sock, VM_OPS)),
    ]
    ref = Supervisor.start_root(SupFlags(intensity=10, period=5), specs, events=events)
    try:
        yield Ctl(sock, events, release, home)
    finally:
        release.set()
        ref.stop(block=True, timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def _docs(text: str) -> list[Any]:
    decoder = json.JSONDecoder()
    out, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = decoder.raw_decode(text, i)
        out.append(doc)
    return out


# ------------------------------------------------------------------ -c and --json

def test_tree_and_actors(ctl: Ctl, capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.run("tree", "actors; ps") == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith("/  [one_for_one restarts 0/10 in 5s]\n├── busy  running  Ticker")
    assert "├── sub  running  Supervisor" in out and "│   └── leaf  running  Leaf" in out
    assert "[one_for_one restarts 0/5 in 5s]" in out
    assert out.count("6 actors") == 2 and "/sub/leaf" in out


def test_json_prints_one_document_per_command(ctl: Ctl,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.run("tree; actors", "stats /busy; state /sub/leaf; help", json_mode=True) == 0
    tree, actor_list, stats, state, help_doc = _docs(capsys.readouterr().out)
    assert [c["id"] for c in tree["children"]] == ["busy", "stuck", "sub", "control"]
    assert {a["path"] for a in actor_list} >= {"/", "/busy", "/sub", "/sub/leaf", "/control"}
    assert stats["actor_class"] == "Ticker" and stats["processed"] >= 0
    assert state == {"leaf": True, "items": [1, 2]}
    assert "commands" in help_doc["help"]


def test_state_and_stats_text(ctl: Ctl, capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.run("state /sub/leaf", "stats /sub/leaf") == 0
    out = capsys.readouterr().out
    assert "leaf: true\nitems: [1, 2]\n" in out
    assert "actor_class: Leaf" in out and "mailbox_depth: 0" in out


def test_a_stuck_actor_answers_a_timeout_quickly(ctl: Ctl,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    actors.tell("/stuck", Block())
    wait_until(lambda: actors.actor_of(actors.resolve("/stuck")).stats().current_message)
    t0 = time.monotonic()
    assert ctl.run("state /stuck -t 0.3", "stats /stuck; tree") == 1
    assert time.monotonic() - t0 < 1.5
    out, err = capsys.readouterr()
    assert err.startswith("error (timeout): state of /stuck: no answer within 0.3 s; busy for ")
    assert err.rstrip().endswith("in Block") and "Traceback" not in err
    assert "current_message: Block" in out  # stats never goes through the mailbox
    assert "stuck  running  Stuck" in out and "BUSY" in out


def test_crash_is_seen_in_the_log_with_the_restart(ctl: Ctl,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    since = ctl.events.last_seq
    assert ctl.run("crash /sub/leaf disk on fire") == 0
    assert ctl.events.wait_for(lambda e: e.kind == "restarted" and e.path == "/sub/leaf", 5,
                               since=since)
    assert ctl.run("log -n 5 /sub", "log -n 2 --tb /sub/leaf", "tree") == 0
    out = capsys.readouterr().out
    assert "crash injected into /sub/leaf" in out
    assert "crashed     /sub/leaf reason=crashed error=InjectedCrash: disk on fire" in out
    assert "restarted   /sub/leaf restarts=1" in out
    assert "│   └── leaf  running  Leaf" in out and "restarts 1  permanent" in out
    assert "(last exit: crashed: InjectedCrash: disk on fire)" in out
    assert ctl.run("log -n 3", json_mode=True) == 0
    (events,) = _docs(capsys.readouterr().out)
    assert len(events) == 3 and events[-1]["kind"] == "restarted"


def test_trace_of_a_busy_worker(ctl: Ctl, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    assert ctl.run("trace /busy -n 5 -t 2") == 0
    assert time.monotonic() - t0 < 1.5
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(" Tick " in line and "Tick()" in line for line in lines)
    assert ctl.run("trace /busy -n 3 -t 2", json_mode=True) == 0
    entries = _docs(capsys.readouterr().out)
    assert [e["message_type"] for e in entries] == ["Tick"] * 3
    assert ctl.run("trace /sub/leaf -n 3 -t 0.2") == 0  # idle: ends by time, nothing traced
    assert capsys.readouterr().out == ""


def test_restart_stop_start(ctl: Ctl, capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.run("stop /sub/leaf", "stats /sub/leaf") == 1
    out, err = capsys.readouterr()
    assert out == "stopped /sub/leaf\n"
    assert err == "error (not-found): no running actor at /sub/leaf\n"
    assert ctl.run("tree") == 0
    assert "└── leaf  STOPPED  restarts 0  permanent  (last exit: shutdown)" in (
        capsys.readouterr().out)
    assert ctl.run("start /sub/leaf", "restart /sub/leaf") == 0
    assert capsys.readouterr().out == ("started /sub/leaf: running (restarts 1)\n"
                                       "restarted /sub/leaf: running (restarts 2)\n")
    assert ctl.run("start /busy", "restart /nope/x") == 1
    err = capsys.readouterr().err
    assert "error (refused): /busy is already running" in err
    assert "error (not-found): /nope is not a running supervisor" in err


def test_send_and_ask(ctl: Ctl, capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.run("send /sub/leaf ping; ask /sub/leaf ping; ask /busy get-stats -t 1") == 0
    out = capsys.readouterr().out
    assert out.startswith("sent ping to /sub/leaf\npong\nname: /busy\n")
    assert "actor_class: Ticker" in out
    assert ctl.run("send /busy hello") == 1
    assert capsys.readouterr().err.startswith("error (bad-request): unknown message 'hello'")


def test_vm_commands_send_the_file_text_params_and_timeout(
        ctl: Ctl, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ctl.home / "vm.cfg"
    cfg.write_text("name = alpha\n")
    assert ctl.run(f"vm add u-1 {cfg}", "vm u-1 set field=name 'value=a b' -t 5",
                   json_mode=True) == 0
    added, task = _docs(capsys.readouterr().out)
    assert added == {"echo": {"uuid": "u-1", "config": "name = alpha\n"}}
    assert task == {"echo": {"uuid": "u-1", "task": "set", "timeout": 5.0,
                             "params": {"field": "name", "value": "a b"}}}
    assert ctl.run(f"vm add u-2 {ctl.home}/missing.cfg") == 1
    assert capsys.readouterr().err.startswith("error (local): ")


def test_errors_are_one_line_and_set_the_status(ctl: Ctl,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.run("frobnicate", "tree /x", "state vms", "stats /nope", "tree") == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "error (usage): unknown command 'frobnicate' (help lists the commands)",
        "error (usage): tree: unexpected argument '/x' (usage: tree)",
        "error (usage): state: PATH is an actor path starting with /, not 'vms'",
        "error (not-found): no running actor at /nope"]
    assert out.startswith("/  [")  # the last command still ran
    assert ctl.run("stats /nope", json_mode=True) == 1
    assert _docs(capsys.readouterr().out) == [{"error": "no running actor at /nope",
                                               "kind": "not-found"}]
    assert main(["--socket", str(ctl.home / "absent.sock"), "-c", "tree"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error (connection): cannot connect to the control socket")
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(["--timeout", "0"])
    assert exc.value.code == 2


def test_commands_from_standard_input(ctl: Ctl, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    monkeypatch.setattr(sys, "stdin", io.StringIO("# a script\nstats /busy\nquit\ntree\n"))
    assert main(["--socket", ctl.socket]) == 0
    out = capsys.readouterr().out
    assert "actor_class: Ticker" in out and "├──" not in out


def test_top_in_scripts(ctl: Ctl, capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.run("top -d 0.1 --count 2 -n 3", json_mode=True) == 0
    frames = _docs(capsys.readouterr().out)
    assert len(frames) == 2
    for frame in frames:
        assert frame["actors"] == 6 and len(frame["by_mailbox"]) == 3
        busiest = frame["by_rate"][0]
        assert busiest["path"] == "/busy" and busiest["rate"] > 20
    assert ctl.run("top -d 0.1 --count 1") == 0
    out = capsys.readouterr().out
    assert "by mailbox depth (top 10):" in out and "/busy" in out and "MSG/S" in out


def test_log_follow_streams_until_ctrl_c(ctl: Ctl, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupt_when_following() -> None:
        wait_until(lambda: any(t.name == "control-log.follow" for t in threading.enumerate()))
        since = ctl.events.last_seq
        actors.tell("/sub/leaf", actors.InjectCrash("followed"))
        ctl.events.wait_for(lambda e: e.kind == "restarted", 5, since=since)
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: cancels the stream

    thread = threading.Thread(target=interrupt_when_following)
    thread.start()
    try:
        assert ctl.run("log -n 0 -f /sub") == 0
    finally:
        thread.join(10)
    out = capsys.readouterr().out
    assert "crashed     /sub/leaf reason=crashed error=InjectedCrash: followed" in out
    assert "restarted   /sub/leaf" in out and "/busy" not in out
    wait_until(lambda: not any(t.name == "control-log.follow" for t in threading.enumerate()))


# ------------------------------------------------------------------ a real terminal

def _spawn(ctl: Ctl, history: Path) -> pexpect.spawn:
    script = Path(sys.executable).with_name("oxt-shell")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "supervision.shell"]
    env = dict(os.environ, OXT_SHELL_HISTORY=str(history), TERM="xterm")
    child = pexpect.spawn(argv[0], [*argv[1:], "--socket", ctl.socket], env=env,
                          encoding="utf-8", timeout=5, dimensions=(50, 200))
    child.expect_exact("help lists the commands")
    child.expect_exact("oxt> ")
    return child


def _end(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus or 0)


def test_terminal_prompt_tree_and_completion(ctl: Ctl) -> None:
    child = _spawn(ctl, ctl.home / "history")
    child.send("tre\t")
    child.expect_exact("tree ")  # the command completed
    child.send("\r")
    child.expect_exact("├── busy  running  Ticker")
    child.expect_exact("oxt> ")
    child.send("stats /sub/l\t")
    child.expect_exact("eaf ")  # the path completed from the tree
    child.send("\r")
    child.expect_exact("actor_class: Leaf")
    child.expect_exact("oxt> ")
    child.send("frobnicate\r")
    child.expect_exact("error (usage): unknown command 'frobnicate'")
    child.expect_exact("oxt> ")
    child.send("quit\r")
    assert _end(child) == 0


def test_terminal_log_follow_ctrl_c_and_history(ctl: Ctl) -> None:
    history = ctl.home / "history"
    history.write_text("stats /busy\n")
    child = _spawn(ctl, history)
    child.send("log -n 1 -f\r")
    child.expect_exact("-- following the log (Ctrl-C to stop) --")
    actors.tell("/sub/leaf", actors.InjectCrash("seen from the terminal"))
    child.expect_exact("InjectedCrash: seen from the terminal")
    child.sendintr()
    child.expect_exact("oxt> ")
    child.send("\x1b[A\x1b[A")  # up twice: back past "log -n 1 -f" to the saved history
    child.expect_exact("stats /busy")
    child.send("\r")
    child.expect_exact("actor_class: Ticker")
    child.expect_exact("oxt> ")
    child.sendeof()
    assert _end(child) == 0
    assert history.read_text().splitlines()[-3:] == ["stats /busy", "log -n 1 -f",
                                                     "stats /busy"]
    wait_until(lambda: not any(t.name == "control-log.follow" for t in threading.enumerate()))


def test_terminal_top_quits_on_q(ctl: Ctl) -> None:
    child = _spawn(ctl, ctl.home / "history")
    child.send("top -d 0.1 -n 2\r")
    child.expect_exact("by mailbox depth (top 2):")
    child.expect_exact("(q or Ctrl-C: back to the prompt)")
    child.send("q")
    child.expect_exact("oxt> ")
    child.send("top -d 0.1\r")
    child.expect_exact("(q or Ctrl-C: back to the prompt)")
    child.sendintr()
    child.expect_exact("oxt> ")
    child.send("quit\r")
    assert _end(child) == 0


def test_an_unexpected_failure_is_one_line_too(ctl: Ctl, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    import io

    import supervision.shell._session as shellrun

    def broken(_s: shellrun.Session, _cmd: object) -> None:
        raise RuntimeError("renderer bug")

    monkeypatch.setitem(shellrun._HANDLERS, "tree", broken)
    out, err = io.StringIO(), io.StringIO()
    session = shellrun.Session(ctl.socket, out=out, err=err)
    try:
        assert session.run_line("tree; stats /busy") == shellrun.Outcome(False)
    finally:
        session.close()
    assert err.getvalue() == "error (internal): tree: RuntimeError: renderer bug\n"
    assert "actor_class: Ticker" in out.getvalue()  # the next command ran on a new connection
