"""The shell at a terminal: readline (completion, history, keys) and single keys for ``top``.

:func:`setup_readline` binds tab completion to :func:`supervision.shell._commands.complete` fed by
the session's completion data, makes ``/``, ``-``, ``.`` and ``=`` part of words (paths and
options complete as one word), binds the arrow keys to history, turns bracketed paste off,
and loads the history file; :func:`save_history` writes it back (bounded to
:data:`HISTORY_LENGTH` lines). A history file that cannot be read or written is reported once
on stderr and otherwise ignored. A completer never raises (readline would swallow it) and
never blocks for long: the data comes from bounded requests, cached for a few seconds.

:func:`typeahead_kept` sets ``NOFLSH`` while the prompt reads a line: the kernel then does not
discard typed-ahead input when it turns Ctrl-C into SIGINT. That discard can fall between
readline's ``select`` (input ready) and its ``read``, which then blocks, retried on EINTR,
until the next key, deaf to Ctrl-C; the shell discards the typeahead itself
(:func:`discard_typeahead`) once it has handled the interrupt.

:class:`TtyKeys` puts the terminal in cbreak mode while ``top`` runs (keys arrive one by one,
keys typed ahead included; Ctrl-C still sends SIGINT) and restores it on exit, whatever
happens. Both switches take effect at once (``TCSANOW``: nothing to drain, no blocking call
a signal could cut short) and are made where the shell's Ctrl-C handling does not interrupt
(:mod:`supervision.shell._interrupt`), so the terminal is never left in cbreak mode.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from supervision.shell._commands import complete

if TYPE_CHECKING:
    from supervision.shell._session import Session

__all__ = ["HISTORY_LENGTH", "TtyKeys", "discard_typeahead", "history_path", "save_history",
           "setup_readline", "typeahead_kept"]

HISTORY_LENGTH = 2000


def history_path() -> Path:
    """``$OXT_SHELL_HISTORY``, else ``~/.oxt_shell_history``."""
    env = os.environ.get("OXT_SHELL_HISTORY")
    return Path(env) if env else Path.home() / ".oxt_shell_history"


def setup_readline(session: Session, history: Path, err: TextIO) -> Any:
    """Configure readline for ``session``; returns the module (None if there is none)."""
    try:
        import readline
    except ImportError:  # a Python built without readline: plain input()
        return None
    matches: list[str] = []

    def completer(text: str, state: int) -> str | None:
        if state == 0:
            try:
                before = readline.get_line_buffer()[:readline.get_begidx()]
                matches[:] = complete(before, text, session.completion_sources())
            except Exception:  # never let a completion error reach readline
                matches[:] = []
        return matches[state] if state < len(matches) else None

    readline.set_completer(completer)
    readline.set_completer_delims(" \t;")
    if "libedit" in (readline.__doc__ or ""):
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        for binding in ("tab: complete", "set enable-bracketed-paste off",
                        r'"\e[A": previous-history', r'"\e[B": next-history',
                        r'"\eOA": previous-history', r'"\eOB": next-history'):
            readline.parse_and_bind(binding)
    readline.set_history_length(HISTORY_LENGTH)
    if history.exists():
        try:
            readline.read_history_file(str(history))
        except OSError as exc:
            err.write(f"oxt-shell: cannot read the history {history}: {exc.strerror}\n")
    return readline


def save_history(readline: Any, history: Path, err: TextIO) -> None:
    """Write the history file (mode 0600)."""
    if readline is None:
        return
    try:
        history.parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(str(history))
        os.chmod(history, 0o600)
    except OSError as exc:
        err.write(f"oxt-shell: cannot write the history {history}: {exc.strerror}\n")


@contextmanager
def typeahead_kept(fd: int) -> Iterator[None]:
    """``NOFLSH`` on the terminal ``fd`` while entered (module docstring); no-op if not one."""
    try:
        saved = termios.tcgetattr(fd)
        mode = list(saved)
        mode[3] |= termios.NOFLSH
        termios.tcsetattr(fd, termios.TCSANOW, mode)
    except termios.error:
        yield
        return
    try:
        yield
    finally:
        try:
            termios.tcsetattr(fd, termios.TCSANOW, saved)
        except termios.error:  # the terminal is gone
            pass


def discard_typeahead(fd: int) -> None:
    """Drop what was typed on the terminal ``fd`` and not read yet (as Ctrl-C would)."""
    try:
        termios.tcflush(fd, termios.TCIFLUSH)
    except termios.error:
        pass


class TtyKeys:
    """Single keys from a terminal on ``fd`` (cbreak mode while entered)."""

    def __init__(self, fd: int | None = None) -> None:
        self.fd = sys.stdin.fileno() if fd is None else fd
        self._saved: list[Any] | None = None
        self._eof = False

    def __enter__(self) -> TtyKeys:
        try:
            saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd, termios.TCSANOW)
        except termios.error:  # not a terminal (any more): keys are just not read
            return self
        self._saved = saved
        return self

    def __exit__(self, *exc: object) -> None:
        saved, self._saved = self._saved, None
        if saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSANOW, saved)
            except termios.error:  # the terminal is gone: nothing to restore
                pass

    def wait(self, timeout: float) -> str | None:
        """Wait up to ``timeout`` s for one key (Ctrl-C interrupts)."""
        if self._eof:  # the terminal is gone: only the time passes
            time.sleep(timeout)
            return None
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return None
        data = os.read(self.fd, 32)
        if not data:
            self._eof = True
            return None
        return data.decode(errors="replace")[:1]
