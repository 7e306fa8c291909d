"""oxt-shell against a live tree with a control socket, in process: ``-c``, standard input and
``--json`` (the interactive shell in a pseudo-terminal: test_shell_terminal.py)."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import actors
from supervision.shell import main
from tests.helpers import wait_until
from tests.integration.shell_fixtures import Block, Ctl, control_tree

pytestmark = pytest.mark.integration


@pytest.fixture
def ctl() -> Iterator[Ctl]:
    with control_tree() as tree:
        yield tree


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


def test_log_follow_streams_until_ctrl_c(ctl: Ctl, monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)

    def interrupt_when_followed() -> None:
        wait_until(lambda: any(t.name == "control-log.follow" for t in threading.enumerate()))
        actors.tell("/sub/leaf", actors.InjectCrash("followed"))
        wait_until(lambda: "restarted   /sub/leaf" in out.getvalue())  # streamed, shown
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: cancels the stream

    thread = threading.Thread(target=interrupt_when_followed)
    thread.start()
    try:  # -n 1: the follow starts after the tail's last event, however late its thread runs
        assert ctl.run("log -n 1 -f /sub") == 0
    finally:
        thread.join(10)
    text = out.getvalue()
    assert "crashed     /sub/leaf reason=crashed error=InjectedCrash: followed" in text
    assert "restarted   /sub/leaf" in text and "/busy" not in text
    wait_until(lambda: not any(t.name == "control-log.follow" for t in threading.enumerate()))


def test_an_unexpected_failure_is_one_line_too(ctl: Ctl, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:

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
