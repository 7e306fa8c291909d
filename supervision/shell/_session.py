"""The shell's session: runs parsed commands on the control socket and prints the results.

:class:`Session` owns one :class:`ControlClient`, connected at the first command that needs
it and again after a connection error. Guarantees:

* Every request is bounded: the server bounds what waits on an actor (``state``, ``ask``: 2 s
  by default or ``-t``; child operations 30 s; VM tasks 120 s or ``-t``) and the client waits
  that long plus a margin, other requests the client's timeout (``--timeout``, 10 s). A stuck
  actor makes its command print a ``timeout`` error; the shell goes on.
* Ctrl-C (through :class:`Interrupts`, once installed) interrupts a command only where it
  waits: a request, a key of ``top``, a stream; anywhere else it waits for the next such
  place, so clean-up (the terminal mode, the connection) always completes. ``top`` ends on
  Ctrl-C at any moment, like on ``q``. Streams (``log -f``, ``trace``): the first Ctrl-C, at
  any moment of the command, asks for the end; the stream cancels itself on the server and
  waits for its end; a second Ctrl-C, or no end within :data:`CANCEL_GRACE` seconds, drops
  the connection (the next command reconnects). Ctrl-C during a plain request drops the
  connection too (a late answer cannot be mistaken for the next one's) and the command
  fails with kind ``interrupted``.
* A command never raises: usage errors, server errors (``error (<kind>): <text>``), connection
  errors, local errors (an unreadable file) and anything unexpected (kind ``internal``; the
  connection is dropped) are printed and make :meth:`Session.run` return False.
* With ``json_mode`` each command prints one JSON document (an error as
  ``{"error": text, "kind": kind}``); streams print one compact document per line.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from supervision.control import ControlClient, ControlError
from supervision.shell._commands import (
    Command,
    CompletionSources,
    UsageError,
    help_text,
    parse_line,
    parse_task_table,
)
from supervision.shell._interrupt import Interrupts, Stop
from supervision.shell._top import TopModel, render_top
from supervision.shell._view import (
    render_actors,
    render_child,
    render_error,
    render_event,
    render_stats,
    render_trace_entry,
    render_tree,
    render_value,
    to_json,
    tree_paths,
)

__all__ = ["CANCEL_GRACE", "KeyReader", "NoKeys", "Outcome", "Session", "complete_file"]

CANCEL_GRACE = 2.0
"""Seconds a cancelled stream may take to end before the connection is dropped."""
MARGIN = 3.0
"""Added to a server-side timeout to get the client's wait for the answer."""
COMPLETION_TTL = 2.0
"""Completion data (paths, VMs) is fetched again when older than this."""
CLEAR = "\x1b[H\x1b[2J"


class KeyReader(Protocol):
    """Keys typed during ``top`` (entered for its duration)."""

    def __enter__(self) -> KeyReader: ...

    def __exit__(self, *exc: object) -> None: ...

    def wait(self, timeout: float) -> str | None:
        """Wait up to ``timeout`` s for a key; the key, or None."""
        ...


class NoKeys:
    """No keyboard (scripts): ``wait`` just lets the time pass."""

    def __enter__(self) -> NoKeys:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def wait(self, timeout: float) -> str | None:
        """Sleep ``timeout`` s (Ctrl-C interrupts it)."""
        time.sleep(timeout)
        return None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What running a line did: every command succeeded; the line asked to quit."""

    ok: bool
    quit: bool = False


def complete_file(text: str) -> list[str]:
    """File-name candidates for ``text`` (directories end with ``/``, files with a space)."""
    out = []
    for name in glob.glob(glob.escape(os.path.expanduser(text)) + "*")[:200]:
        out.append(name + "/" if os.path.isdir(name) else name + " ")
    return out


class Session:
    """Runs shell lines against the control socket at ``socket_path`` (module docstring)."""

    def __init__(self, socket_path: str, *, out: TextIO, err: TextIO, json_mode: bool = False,
                 timeout: float = 10.0, interactive: bool = False,
                 keys: KeyReader | None = None, interrupts: Interrupts | None = None) -> None:
        self.socket_path = socket_path
        self.out = out
        self.err = err
        self.json_mode = json_mode
        self.timeout = timeout
        self.interactive = interactive
        self.keys: KeyReader = keys or NoKeys()
        self.interrupts = interrupts or Interrupts()
        self._client: ControlClient | None = None
        self._sources = CompletionSources(files=complete_file)
        self._sources_at = float("-inf")
        self._tasks: dict[str, tuple[str, ...]] | None = None

    # ------------------------------------------------------------------ connection

    def client(self) -> ControlClient:
        """The connection, opened now if needed (``ControlError`` kind ``connection``)."""
        if self._client is None:
            self._client = ControlClient(self.socket_path, timeout=self.timeout)
        return self._client

    def drop(self) -> None:
        """Close the connection; the next request opens a new one."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    close = drop

    def call(self, op: str, args: dict[str, Any] | None = None,
             wait: float | None = None) -> Any:
        """One request; its result, or ``ControlError``. ``wait``: the client's bound.

        Ctrl-C while it waits (connecting included) drops the connection and raises
        ``KeyboardInterrupt``."""
        try:
            with self.interrupts.armed():
                return self.client().call(op, wait=wait, **(args or {}))
        except ControlError as exc:
            if exc.kind == "connection":
                self.drop()
            raise
        except KeyboardInterrupt:
            self.drop()
            raise

    def stream(self, op: str, args: dict[str, Any], each: Callable[[Any], None],
               stop: Stop) -> bool:
        """Run a streamed request, calling ``each`` per event; False if Ctrl-C ended it.

        ``stop`` (from :meth:`Interrupts.stopping`) set, before or during the stream, cancels
        it on the server; a ``KeyboardInterrupt`` (a second Ctrl-C) or a server that does not
        end it within :data:`CANCEL_GRACE` s drops the connection."""
        if stop.requested:
            self.note("")  # the terminal echoed ^C without a newline
            return False
        try:
            with self.interrupts.armed():
                for item in self.client().stream(op, cancelled=stop, grace=CANCEL_GRACE,
                                                 **args):
                    each(item)
        except KeyboardInterrupt:
            self.drop()
            stop.set()
        except ControlError as exc:
            if exc.kind == "connection" or stop.requested:
                self.drop()
            if not (stop.requested and exc.kind == "timeout"):
                raise
        if stop.requested:
            self.note("")
        return not stop.requested

    # ------------------------------------------------------------------ output

    def say(self, text: str) -> None:
        """Print a line of text and flush."""
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """A hint for a person at the terminal (not printed in scripts or JSON mode)."""
        if self.interactive and not self.json_mode:
            self.err.write(text + "\n")
            self.err.flush()

    def show(self, value: Any, render: Callable[[Any], str]) -> None:
        """One result: JSON, or rendered text."""
        self.say(to_json(value) if self.json_mode else render(value))

    def show_item(self, value: Any, render: Callable[[Any], str]) -> None:
        """One streamed item: a compact JSON line, or rendered text."""
        self.say(to_json(value, compact=True) if self.json_mode else render(value))

    def error(self, kind: str, text: str) -> None:
        """Report a failed command."""
        if self.json_mode:
            self.say(to_json({"error": text, "kind": kind}, compact=True))
        else:
            self.err.write(render_error(kind, text) + "\n")
            self.err.flush()

    # ------------------------------------------------------------------ running

    def run_line(self, line: str) -> Outcome:
        """Parse and run every command of ``line``; never raises."""
        try:
            commands = parse_line(line)
        except UsageError as exc:
            self.error("usage", str(exc))
            return Outcome(False)
        ok = True
        for cmd in commands:
            if cmd.name == "quit":
                return Outcome(ok, True)
            ok = self.run(cmd) and ok
        return Outcome(ok)

    def run(self, cmd: Command) -> bool:
        """Run one command; True if it succeeded."""
        try:
            _HANDLERS[cmd.name](self, cmd)
        except ControlError as exc:
            self.error(exc.kind, str(exc))
            return False
        except UsageError as exc:
            self.error("usage", str(exc))
            return False
        except OSError as exc:
            self.error("local", f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
            return False
        except KeyboardInterrupt:
            self.drop()
            self.error("interrupted", f"{cmd.name} interrupted")
            return False
        except Exception as exc:  # a bug or an unreadable answer: say it, start afresh
            self.drop()
            self.error("internal", f"{cmd.name}: {type(exc).__name__}: {exc}")
            return False
        return True

    # ------------------------------------------------------------------ completion data

    def completion_sources(self) -> CompletionSources:
        """Paths, VMs and tasks for completion (refreshed when stale; never raises; runs in
        readline's completer, where Ctrl-C is ignored: the requests are bounded to 1 s)."""
        now = time.monotonic()
        if now - self._sources_at < COMPLETION_TTL:
            return self._sources
        self._sources_at = now
        try:
            tree = self.call("tree", wait=1.0)
        except (ControlError, KeyboardInterrupt):
            return self._sources
        paths = tree_paths(tree)
        vms = [p[len("/vms/"):] for p in paths if p.startswith("/vms/") and p.count("/") == 2]
        if self._tasks is None and vms:
            try:
                table = self.call("vm.task", {"uuid": vms[0], "task": "help"}, wait=1.0)
                self._tasks = parse_task_table(str(table))
            except (ControlError, KeyboardInterrupt):
                pass
        self._sources = CompletionSources(paths=paths, vms=vms, tasks=self._tasks or {},
                                          files=complete_file)
        return self._sources


# ------------------------------------------------------------------ the commands

def _tree(s: Session, _cmd: Command) -> None:
    s.show(s.call("tree"), render_tree)


def _actors(s: Session, _cmd: Command) -> None:
    s.show(list(s.call("actors")), render_actors)


def _waiting(args: dict[str, Any], timeout: Any, default: float) -> float:
    if timeout is not None:
        args["timeout"] = timeout
        return float(timeout) + MARGIN
    return default + MARGIN


def _state(s: Session, cmd: Command) -> None:
    args: dict[str, Any] = {"path": cmd.args["path"]}
    wait = _waiting(args, cmd.args["timeout"], 2.0)
    s.show(s.call("state", args, wait), render_value)


def _stats(s: Session, cmd: Command) -> None:
    s.show(s.call("stats", {"path": cmd.args["path"]}), render_stats)


def _log(s: Session, cmd: Command) -> None:
    prefix = cmd.args["prefix"] or ""
    tb = bool(cmd.args["tracebacks"])
    follow = bool(cmd.args["follow"])
    try:
        events = list(s.call("log.tail", {"n": cmd.args["n"], "prefix": prefix}))
    except KeyboardInterrupt:
        if not follow:
            raise
        s.note("")  # Ctrl-C is how a follow ends: not an error, even this early
        return
    if not follow:
        s.show(events, lambda evs: "\n".join(render_event(e, tb) for e in evs)
               or "(no events)")
        return
    for event in events:
        s.show_item(event, lambda e: render_event(e, tb))
    args: dict[str, Any] = {"prefix": prefix}
    if events and isinstance(events[-1].get("seq"), int):
        args["since"] = events[-1]["seq"]
    with s.interrupts.stopping() as stop:
        if not stop.requested:
            s.note("-- following the log (Ctrl-C to stop) --")
        s.stream("log.follow", args, lambda e: s.show_item(e, lambda ev: render_event(ev, tb)),
                 stop)


def _trace(s: Session, cmd: Command) -> None:
    path, n, secs = cmd.args["path"], cmd.args["n"], cmd.args["seconds"]
    count = [0]

    def each(entry: Any) -> None:
        count[0] += 1
        s.show_item(entry, render_trace_entry)

    with s.interrupts.stopping() as stop:
        s.note(f"-- tracing {path}: at most {n} messages or {secs:g} s (Ctrl-C to stop) --")
        finished = s.stream("trace", {"path": path, "max_messages": n, "max_seconds": secs},
                            each, stop)
    s.note(f"-- {count[0]} messages{'' if finished else ', interrupted'} --")


def _send(s: Session, cmd: Command) -> None:
    s.call("send", {"path": cmd.args["path"], "message": cmd.args["message"]})
    s.show(None, lambda _: f"sent {cmd.args['message']} to {cmd.args['path']}")


def _ask(s: Session, cmd: Command) -> None:
    args: dict[str, Any] = {"path": cmd.args["path"], "message": cmd.args["message"]}
    wait = _waiting(args, cmd.args["timeout"], 2.0)
    s.show(s.call("ask", args, wait), lambda result: render_stats(result)
           if isinstance(result, dict) and "mailbox_depth" in result else render_value(result))


def _crash(s: Session, cmd: Command) -> None:
    args: dict[str, Any] = {"path": cmd.args["path"]}
    if cmd.args["reason"]:
        args["reason"] = cmd.args["reason"]
    s.call("crash", args)
    s.show(None, lambda _: f"crash injected into {cmd.args['path']}")


def _child(op: str, verb: str) -> Callable[[Session, Command], None]:
    def run(s: Session, cmd: Command) -> None:
        path = cmd.args["path"]
        s.show(s.call(op, {"path": path}, 30.0 + MARGIN),
               lambda result: render_child(verb, path, result))
    return run


def _vm_add(s: Session, cmd: Command) -> None:
    text = Path(cmd.args["file"]).read_text()
    uuid = cmd.args["uuid"]
    s.show(s.call("vm.add", {"uuid": uuid, "config": text}, 30.0 + MARGIN),
           lambda result: render_child("added VM", uuid, result))


def _vm_task(s: Session, cmd: Command) -> None:
    args: dict[str, Any] = {"uuid": cmd.args["uuid"], "task": cmd.args["task"],
                            "params": dict(cmd.args["params"])}
    wait = _waiting(args, cmd.args["timeout"], 120.0)
    s.show(s.call("vm.task", args, wait),
           lambda result: render_value(result) if result not in ("", None) else "ok")


def _help(s: Session, cmd: Command) -> None:
    text = help_text(cmd.args["command"])
    s.show({"help": text}, lambda _: text)


def _top(s: Session, cmd: Command) -> None:
    n, delay, count = cmd.args["n"], cmd.args["delay"], cmd.args["count"]
    model = TopModel()
    clear = not s.json_mode and count is None and s.out.isatty()
    frames = 0
    try:  # Ctrl-C raises only in s.call and in the armed key wait: the terminal is restored
        model.feed(s.call("actors"), s.call("tree"), time.monotonic())
        with s.keys as keys:
            while count is None or frames < count:
                with s.interrupts.armed():
                    key = keys.wait(delay)
                if key in ("q", "Q"):
                    break
                frame = model.feed(s.call("actors"), s.call("tree"), time.monotonic())
                assert frame is not None
                frames += 1
                if s.json_mode:
                    s.say(to_json(frame.to_dict(n), compact=True))
                    continue
                text = render_top(frame, n)
                if clear:
                    text = CLEAR + text + "\n\n(q or Ctrl-C: back to the prompt)"
                elif frames > 1:
                    text = "\n" + text
                s.say(text)
    except KeyboardInterrupt:
        s.say("")


_HANDLERS: dict[str, Callable[[Session, Command], None]] = {
    "tree": _tree, "actors": _actors, "top": _top, "state": _state, "stats": _stats,
    "log": _log, "trace": _trace, "send": _send, "ask": _ask, "crash": _crash,
    "restart": _child("child.restart", "restarted"), "stop": _child("child.stop", "stopped"),
    "start": _child("child.start", "started"), "vm.add": _vm_add, "vm.task": _vm_task,
    "help": _help,
}
