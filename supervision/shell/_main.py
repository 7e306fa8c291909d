"""``oxt-shell``: look inside the running dom0 supervisor through its control socket.

``oxt-shell [--socket PATH] [--json] [--timeout SECS] [-c COMMANDS ...]`` (docs/shell.md).

* At a terminal, without ``-c``: an interactive prompt with tab completion of commands and
  actor paths, history kept in ``$OXT_SHELL_HISTORY`` (default ``~/.oxt_shell_history``),
  Ctrl-D or ``quit`` to leave. Exit status 0. Ctrl-C at any moment returns to the prompt
  with the terminal restored: it clears the line at the prompt, ends a ``top``, ``log -f``
  or ``trace`` and interrupts any other command (:mod:`supervision.shell._interrupt` says
  where it takes effect; a Ctrl-C is never lost nor leaves the shell).
* ``-c "CMD; CMD"`` (repeatable): run the commands in order, every one even after a failure,
  then exit 0 if all succeeded, 1 if any failed. Without ``-c`` and with standard input not a
  terminal, the lines of standard input are run the same way.
* ``--json``: each command prints one JSON document instead of text (an error as
  ``{"error": ..., "kind": ...}``); streams print one document per line.

The socket is ``--socket``, else ``$OXT_STATE_DIR/run/control.sock``, else
``./state/run/control.sock``. Every request is bounded (see :mod:`supervision.shell._session`): a
stuck actor gives a ``timeout`` error, never a hung shell. Bad command lines, server errors and
connection errors are printed as one line, never as a traceback. Exit status 2: bad options.

The shell process imports only the control client, the protocol codec and its own modules;
none of them imports the actor runtime (but ``supervision/__init__`` does: see docs/shell.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from supervision.control import ControlError
from supervision.shell._session import Session
from supervision.shell._tty import (
    TtyKeys,
    discard_typeahead,
    history_path,
    save_history,
    setup_readline,
    typeahead_kept,
)
from supervision.shell._view import fmt_duration

__all__ = ["PROMPT", "default_socket", "main"]

PROMPT = "oxt> "


def default_socket() -> Path:
    """``$OXT_STATE_DIR/run/control.sock``, else ``./state/run/control.sock``."""
    state = os.environ.get("OXT_STATE_DIR")
    return Path(state or "state") / "run" / "control.sock"


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be in (0, 3600], not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oxt-shell", description="Inspect and control the dom0 supervision tree.",
        epilog="Type help at the prompt for the commands (docs/shell.md).")
    p.add_argument("--socket", type=Path, default=None,
                   help="control socket (default $OXT_STATE_DIR/run/control.sock or "
                        "./state/run/control.sock)")
    p.add_argument("-c", dest="commands", action="append", default=[], metavar="COMMANDS",
                   help="run these commands (separated by ;) and exit; repeatable")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--timeout", type=_positive, default=10.0, metavar="SECS",
                   help="how long to wait for an answer that waits on no actor (default 10)")
    return p


def _run_lines(session: Session, lines: Iterable[str]) -> int:
    ok = True
    for line in lines:
        outcome = session.run_line(line)
        ok = ok and outcome.ok
        if outcome.quit:
            break
    return 0 if ok else 1


def _script(session: Session, source: TextIO) -> Iterator[str]:
    """The lines of ``source``; Ctrl-C while waiting for one ends the script."""
    while True:
        with session.interrupts.armed():
            line = source.readline()
        if not line:
            return
        yield line


def _banner(session: Session) -> None:
    try:
        with session.interrupts.armed():
            info = session.client().server
    except ControlError as exc:
        session.error(exc.kind, f"{exc} (commands will try again)")
        return
    except KeyboardInterrupt:
        session.drop()
        session.error("interrupted", "not connected (commands will try again)")
        return
    uptime = info.get("uptime") if isinstance(info, dict) else None
    pid = info.get("pid", "?") if isinstance(info, dict) else "?"
    session.err.write(f"connected to {session.socket_path} (supervisor pid {pid}, up "
                      f"{fmt_duration(uptime)}); help lists the commands\n")
    session.err.flush()


def _interactive(session: Session) -> int:
    # SIGINT raises only inside armed regions (the prompt, a command's waits) and raising
    # disarms: this loop, outside them, cannot be interrupted (supervision.shell._interrupt).
    history = history_path()
    readline = setup_readline(session, history, session.err)
    _banner(session)
    terminal = sys.stdin.fileno()
    try:
        while True:
            try:
                with typeahead_kept(terminal):
                    line = session.interrupts.read_line(PROMPT)
            except KeyboardInterrupt:  # Ctrl-C at the prompt: a new line
                discard_typeahead(terminal)
                session.out.write("\n")
                session.out.flush()
                continue
            if line is None:
                session.out.write("\n")
                break
            if session.run_line(line).quit:
                break
    finally:
        save_history(readline, history, session.err)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the shell (see the module docstring); returns the exit status."""
    args = _parser().parse_args(argv)
    socket_path = str(args.socket or default_socket())
    interactive = not args.commands and sys.stdin.isatty()
    session = Session(socket_path, out=sys.stdout, err=sys.stderr, json_mode=args.json,
                      timeout=args.timeout, interactive=interactive,
                      keys=TtyKeys() if sys.stdin.isatty() else None)
    try:
        with session.interrupts.installed(kick=interactive):
            if args.commands:
                return _run_lines(session, args.commands)
            if interactive:
                return _interactive(session)
            return _run_lines(session, _script(session, sys.stdin))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into head: nothing more to say
        try:  # the interpreter's last flush of stdout would fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    finally:
        session.close()


if __name__ == "__main__":
    raise SystemExit(main())
