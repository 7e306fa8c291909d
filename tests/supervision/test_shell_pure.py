"""The shell's pure parts: words, command parsing, help, completion, rendering, top's rates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from supervision.shell._commands import (
    BY_NAME,
    COMMANDS,
    MAX_LINE,
    Command,
    CompletionSources,
    UsageError,
    complete,
    help_text,
    parse_line,
    parse_task_table,
    parse_words,
    split_commands,
)
from supervision.shell._top import TopModel, render_top, restarts_by_path
from supervision.shell._view import (
    fmt_duration,
    render_actors,
    render_child,
    render_error,
    render_event,
    render_stats,
    render_table,
    render_trace_entry,
    render_tree,
    render_value,
    to_json,
    tree_paths,
)

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------ words


def test_words_quotes_escapes_separators_and_comments() -> None:
    line = """crash /x "boom; really" ; log -n 5 'a b'\\;c ;; state /y # a comment; tree"""
    assert split_commands(line) == [["crash", "/x", "boom; really"], ["log", "-n", "5", "a b;c"],
                                    [], ["state", "/y"]]
    assert split_commands('say "a \\"q\\" \\\\ \\n"') == [["say", 'a "q" \\ \\n']]
    assert split_commands("a '' b") == [["a", "", "b"]]
    assert split_commands("tree;") == [["tree"], []]
    assert split_commands("a#b") == [["a#b"]]


@pytest.mark.parametrize(("line", "message"), [
    ('state "/x', 'unterminated " quote'),
    ("state '/x", "unterminated ' quote"),
    ("state /x\\", "ends with a backslash"),
    ("x" * (MAX_LINE + 1), "over the"),
])
def test_bad_words_are_usage_errors(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        split_commands(line)


def test_lenient_words_for_completion() -> None:
    assert split_commands('state "/v', lenient=True) == [["state", "/v"]]
    assert split_commands("log \\", lenient=True) == [["log"]]


# ------------------------------------------------------------------ parsing

def test_every_command_parses_with_its_defaults() -> None:
    assert parse_words(["tree"]) == Command("tree", {})
    assert parse_words(["ps"]).name == "actors"
    assert parse_words(["exit"]).name == "quit"
    assert parse_words(["top"]).args == {"n": 10, "delay": 1.0, "count": None}
    assert parse_words(["state", "/a"]).args == {"path": "/a", "timeout": None}
    assert parse_words(["log"]).args == {"n": 20, "follow": False, "tracebacks": False,
                                         "prefix": None}
    assert parse_words(["trace", "/a"]).args == {"path": "/a", "n": 20, "seconds": 10.0}
    assert parse_words(["ask", "/a", "ping"]).args == {"path": "/a", "message": "ping",
                                                       "timeout": None}
    assert parse_words(["crash", "/a"]).args == {"path": "/a", "reason": None}
    assert parse_words(["help"]).args == {"command": None}
    for verb in ("restart", "stop", "start", "stats"):
        assert parse_words([verb, "/a/b"]) == Command(verb, {"path": "/a/b"})


def test_options_values_and_forms() -> None:
    cmd = parse_words(["top", "-n", "3", "--delay=0.5", "--count", "2"])
    assert cmd.args == {"n": 3, "delay": 0.5, "count": 2}
    cmd = parse_words(["log", "-f", "/vms", "-n", "0", "--tb"])
    assert cmd.args == {"n": 0, "follow": True, "tracebacks": True, "prefix": "/vms"}
    assert parse_words(["trace", "-t", "2", "/a", "-n", "7"]).args == {
        "path": "/a", "n": 7, "seconds": 2.0}
    assert parse_words(["crash", "/a", "disk", "full", "-1"]).args["reason"] == "disk full -1"
    assert parse_words(["crash", "/a", "--", "-x", "y"]).args["reason"] == "-x y"
    assert parse_words(["state", "/a", "-t", "0.25"]).args["timeout"] == 0.25


@pytest.mark.parametrize(("words", "message"), [
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["tree", "/x"], "unexpected argument '/x'"),
    (["state"], "missing PATH"),
    (["state", "vms"], "actor path starting with /"),
    (["state", "/a", "--bogus"], "unknown option --bogus"),
    (["top", "-n"], "-n needs a value"),
    (["top", "-n", "x"], "-n takes an integer, not 'x'"),
    (["top", "-n", "0"], "must be at least 1"),
    (["top", "-d", "nan"], "must be at least"),
    (["top", "-d", "0"], "must be at least 0.05"),
    (["log", "-f=1"], "takes no value"),
    (["send", "/a"], "missing MSG"),
    (["vm"], "missing ARGS"),
    (["vm", "add", "u"], "vm add takes UUID CONFIGFILE"),
    (["vm", "u"], "which task"),
    (["vm", "u", "set", "novalue"], "key=value, not 'novalue'"),
    (["vm", "u", "set", "=x"], "key=value"),
])
def test_usage_errors_name_the_problem(words: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_words(words)


def test_vm_commands() -> None:
    assert parse_words(["vm", "add", "u1", "cfg"]) == Command("vm.add",
                                                              {"uuid": "u1", "file": "cfg"})
    cmd = parse_words(["vm", "u1", "set", "field=name", "value=a=b", "-t", "5"])
    assert cmd == Command("vm.task", {"uuid": "u1", "task": "set", "timeout": 5.0,
                                      "params": {"field": "name", "value": "a=b"}})


def test_a_line_is_parsed_whole_before_anything_runs() -> None:
    assert [c.name for c in parse_line("tree; ps ;state /a")] == ["tree", "actors", "state"]
    assert parse_line("   # nothing") == []
    with pytest.raises(UsageError, match="unknown command"):
        parse_line("tree; bogus")


def test_help_lists_every_command_and_each_command_has_usage() -> None:
    text = help_text()
    for spec in COMMANDS:
        assert spec.summary in text
        one = help_text(spec.name)
        assert one.startswith(f"usage: {spec.usage}")
        for opt in spec.opts:
            assert opt.flags[0] in one
    assert "also: ps" in help_text("actors")
    with pytest.raises(UsageError, match="unknown command 'nope'"):
        help_text("nope")


# ------------------------------------------------------------------ completion

SOURCES = CompletionSources(
    paths=["/", "/vms", "/vms/u-1", "/vms/u-2", "/control"], vms=["u-1", "u-2"],
    tasks={"start": ("paused",), "set": ("field", "value"), "get-status": ()},
    files=lambda text: [f"{text}x.cfg ", f"{text}dir/"])


@pytest.mark.parametrize(("before", "text", "expected"), [
    ("", "tre", ["tree "]),
    ("", "st", ["start ", "state ", "stats ", "stop "]),
    ("", "e", ["exit "]),
    ("tree; ", "q", ["quit "]),
    ("state ", "/v", ["/vms ", "/vms/u-1 ", "/vms/u-2 "]),
    ("state ", "/vms/u-1", ["/vms/u-1 "]),
    ("state -t 1 ", "/c", ["/control "]),
    ("trace -n 5 /control ", "", []),
    ("log -f ", "/vm", ["/vms ", "/vms/u-1 ", "/vms/u-2 "]),
    ("top ", "--c", ["--count "]),
    ("log ", "-", ["--follow ", "--tb ", "-f ", "-n "]),
    ("send /control ", "g", ["get-snapshot ", "get-stats "]),
    ("help ", "tr", ["trace ", "tree "]),
    ("vm ", "", ["add ", "u-1 ", "u-2 "]),
    ("vm u-1 ", "s", ["set ", "start "]),
    ("vm u-1 set ", "", ["field=", "value="]),
    ("vm u-1 set field=name ", "", ["value="]),
    ("vm add ", "", []),
    ("vm add u-9 ", "conf/", ["conf/dir/", "conf/x.cfg "]),
    ("bogus ", "", []),
    ("tree ", "", []),
])
def test_completion_candidates(before: str, text: str, expected: list[str]) -> None:
    assert complete(before, text, SOURCES) == expected


def test_completion_without_data_and_on_a_broken_line() -> None:
    empty = CompletionSources()
    assert complete("state ", "/", empty) == []
    assert complete('crash /x "unterminated ', "", SOURCES) == []
    assert complete("x" * (MAX_LINE + 1), "", SOURCES) == []


def test_task_table_of_the_vm_help_task() -> None:
    table = ("start            op    create, build and start the domain [paused=bool?]\n"
             "destroy          op    destroy the domain and its devices now\n"
             "set              op    change a config field [field=str value=str]\n"
             "\n  \n")
    assert parse_task_table(table) == {"start": ("paused",), "destroy": (),
                                       "set": ("field", "value")}


# ------------------------------------------------------------------ rendering

def _stats(name: str, cls: str, mailbox: int = 0, processed: int = 0, urn: str = "u",
           current: str | None = None, busy: float = 0.0, uptime: float = 100.0
           ) -> dict[str, Any]:
    return {"name": name, "urn": urn, "actor_class": cls, "alive": True,
            "mailbox_depth": mailbox, "processed": processed, "ask_errors": 0,
            "current_message": current, "busy_for": busy, "idle_for": 1.5, "uptime": uptime,
            "last_activity": 1_700_000_000.0}


TREE: dict[str, Any] = {
    "path": "/", "strategy": "one_for_one", "intensity": 3, "period": 5.0,
    "restarts_in_window": 1, "alive": True, "stats": _stats("/", "Supervisor"),
    "children": [
        {"id": "db", "path": "/db", "kind": "worker", "restart": "permanent", "status": "running",
         "restarts": 1, "uptime": 12.0,
         "last_exit": {"reason": "crashed", "error": "RuntimeError: boom"},
         "stats": _stats("/db", "DbStore", 4, 10, current="Write", busy=3.0)},
        {"id": "vms", "path": "/vms", "kind": "supervisor", "restart": "permanent",
         "status": "running", "restarts": 0, "uptime": 12.0, "last_exit": None,
         "stats": _stats("/vms", "Supervisor"),
         "tree": {"path": "/vms", "strategy": "simple_one_for_one", "intensity": 2,
                  "period": 10.0, "restarts_in_window": 2, "alive": True, "children": [
                      {"id": "u-1", "path": "/vms/u-1", "restart": "transient",
                       "status": "stopped", "restarts": 2, "uptime": 0.0, "stats": None,
                       "last_exit": {"reason": "killed", "after": 5.0}}]}},
    ],
}


def test_tree_drawing() -> None:
    lines = render_tree(TREE).splitlines()
    assert lines[0] == "/  [one_for_one restarts 1/3 in 5s]"
    assert lines[1].startswith("├── db  running  DbStore  up 12.0s  restarts 1  permanent")
    assert "mbox 4 msgs 10" in lines[1] and "BUSY 3.0s in Write" in lines[1]
    assert "(last exit: crashed: RuntimeError: boom)" in lines[1]
    assert lines[2].startswith("└── vms  running  Supervisor")
    assert "[simple_one_for_one restarts 2/2! in 10s]" in lines[2]
    assert lines[3] == ("    └── u-1  STOPPED  restarts 2  transient  (last exit: killed)")
    assert tree_paths(TREE) == ["/", "/db", "/vms", "/vms/u-1"]
    assert restarts_by_path(TREE) == {"/db": 1, "/vms": 0, "/vms/u-1": 2}


def test_tree_drawing_tolerates_missing_fields() -> None:
    assert render_tree({}) == "/  [? restarts 0/? in 0s]"
    assert "?" in render_tree({"children": [{}]})


def test_actor_table() -> None:
    text = render_actors([{"path": "/db", **_stats("/db", "DbStore", 4, 10, current="Write",
                                                   busy=3.0)},
                          {"path": "/vms/u-1", **_stats("/vms/u-1", "VmMonitor", 0, 123456)}])
    header, first, second, total = text.splitlines()
    assert header.split() == ["PATH", "CLASS", "MBOX", "MSGS", "ASKERR", "ACTIVITY", "UP"]
    assert first.split()[:4] == ["/db", "DbStore", "4", "10"] and "busy 3.0s in Write" in first
    assert "idle 1.5s" in second and total == "2 actors"
    assert header.index("MSGS") + len("MSGS") == second.index("123456") + len("123456")


def test_generic_table_alignment() -> None:
    assert render_table(("A", "NUM"), [("x", 5), ("long", 12345)], numeric=(1,)) == (
        "A       NUM\nx         5\nlong  12345")


def test_values_events_traces_and_errors() -> None:
    text = render_value({"a": 1, "b": {"c": [1, 2], "d": None}, "e": [{"f": True}], "g": (),
                         "h": b"xyz"})
    assert text.splitlines() == ["a: 1", "b:", "  c: [1, 2]", "  d: null", "e:",
                                 "  - f: true", "g: []", "h: <3 bytes>"]
    assert render_value("pong") == "pong"
    stats = render_stats(_stats("/db", "DbStore", uptime=90.0))
    assert "uptime: 1.5m" in stats and "idle_for: 1.5s" in stats
    event = {"seq": 3, "at": 1_700_000_000.25, "kind": "crashed", "path": "/db",
             "detail": {"reason": "crashed", "error": "E: x", "traceback": "Traceback\n  line"}}
    line = render_event(event)
    assert line.endswith("crashed     /db reason=crashed error=E: x") and ".250 " in line
    assert render_event(event, tracebacks=True).splitlines()[1:] == ["    Traceback",
                                                                      "      line"]
    entry = {"at": 1_700_000_000.0, "message_type": "Tick", "message": "Tick()",
             "duration": 0.0015, "outcome": "ok"}
    assert render_trace_entry(entry).split()[1:] == ["Tick", "1.50ms", "ok", "Tick()"]
    assert render_error("timeout", "no answer") == "error (timeout): no answer"
    assert render_child("restarted", "/db", {"status": "running", "restarts": 2}) == (
        "restarted /db: running (restarts 2)")
    assert render_child("stopped", "/db", None) == "stopped /db"
    assert [fmt_duration(x) for x in (0.04, 59.9, 90, 7200, 172800, None)] == [
        "0.0s", "59.9s", "1.5m", "2.0h", "2.0d", "-"]


def test_json_of_any_answer() -> None:
    assert json.loads(to_json({"a": (1, 2), "b": b"hi", "c": b"\xff", "d": {3}})) == {
        "a": [1, 2], "b": "hi", "c": "ff", "d": [3]}
    assert "\n" not in to_json({"a": [1, 2]}, compact=True)


# ------------------------------------------------------------------ top

def _actor(path: str, processed: int, mailbox: int = 0, urn: str = "u",
           uptime: float = 100.0) -> dict[str, Any]:
    return {"path": path, **_stats(path, "W", mailbox, processed, urn=urn, uptime=uptime)}


def _tree(restarts: dict[str, int]) -> dict[str, Any]:
    return {"path": "/", "children": [{"path": p, "restarts": n} for p, n in restarts.items()]}


def test_top_rates_growth_and_restarts() -> None:
    model = TopModel()
    assert model.feed([_actor("/a", 100), _actor("/b", 5, 1), _actor("/c", 0, 0)],
                      _tree({"/a": 0, "/b": 1, "/c": 0}), now=10.0) is None
    frame = model.feed([_actor("/a", 300, 2), _actor("/b", 3, 9, urn="v", uptime=0.5),
                        _actor("/c", 0, 0), _actor("/d", 4)],
                       _tree({"/a": 0, "/b": 2, "/c": 0, "/d": 0}), now=12.0, wall=1.0)
    assert frame is not None and frame.interval == 2.0 and frame.at == 1.0
    rows = {r.path: r for r in frame.rows}
    assert rows["/a"].rate == 100.0 and rows["/a"].growth == 2
    # /b was restarted (new urn): measured from its own start, its whole mailbox is growth
    assert rows["/b"].rate == 6.0 and rows["/b"].growth == 9
    assert rows["/b"].restarts == 2 and rows["/b"].new_restarts == 1
    assert rows["/d"].rate == 2.0 and rows["/d"].new_restarts == 0  # new actor
    assert frame.total_rate == 108.0 and frame.new_restarts == 1
    assert [r.path for r in frame.by_mailbox(2)] == ["/b", "/a"]
    assert [r.path for r in frame.by_growth(5)] == ["/b", "/a"]
    assert [r.path for r in frame.by_rate(5)] == ["/a", "/b", "/d"]
    doc = frame.to_dict(1)
    assert doc["actors"] == 4 and doc["by_mailbox"][0]["path"] == "/b"
    assert doc["by_growth"][0]["growth"] == 9 and doc["new_restarts"] == 1
    text = render_top(frame, 2)
    assert "actors 4  108.0 msg/s  restarts +1" in text
    assert "by mailbox depth (top 2):" in text and "by mailbox growth (top 2):" in text
    assert "2 (+1)" in text and "+9" in text
    # a counter that went down without a new urn is also measured from the start
    again = model.feed([_actor("/a", 10)], _tree({}), now=14.0)
    assert again is not None and again.rows[0].rate == 5.0
    assert "no mailbox grew" in render_top(again, 3)


def test_top_tolerates_missing_fields() -> None:
    model = TopModel()
    model.feed([{}], {}, now=1.0)
    frame = model.feed([{"path": "/x"}], {}, now=2.0)
    assert frame is not None and frame.rows[0].rate == 0.0


# ------------------------------------------------------------------ purity and lightness

def test_the_shell_loads_no_actor_runtime() -> None:
    """The shell process must start fast: importing it loads neither pykka nor the actors."""
    probe = ("import sys, supervision.shell._main; "
             "print(sorted(m for m in sys.modules if m == 'pykka' or m.startswith('actors._a')"
             " or m.startswith('supervision._sup')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_command_table_is_consistent() -> None:
    assert len(BY_NAME) == len(COMMANDS) + sum(len(s.aliases) for s in COMMANDS)
    for spec in COMMANDS:
        rest = [p for p in spec.params if p.rest]
        assert len(rest) <= 1 and (not rest or spec.params[-1].rest)
