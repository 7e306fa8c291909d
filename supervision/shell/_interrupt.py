"""Ctrl-C in the shell: where SIGINT may interrupt, what it does there, and that none is lost.

Python's own SIGINT handling raises ``KeyboardInterrupt`` wherever the main thread happens to
be: halfway through restoring the terminal, dropping a connection or printing the previous
interrupt's newline. And CPython's readline prompt looks at signals only when its ``select``
fails with EINTR: a SIGINT that lands while readline handles a key or draws the prompt stays
unseen until the next key, which then loses the line typed. :class:`Interrupts` replaces
that with rules the shell can rely on, once :meth:`Interrupts.installed` (main thread only):

* **Armed regions.** SIGINT raises ``KeyboardInterrupt`` only inside :meth:`armed`: the prompt
  (:meth:`read_line`) and each blocking wait of a command (a request, a key of ``top``, a
  stream). Anywhere else (printing, switching the terminal mode, connection bookkeeping,
  error reports) it is kept pending and raised on entering the next armed region, so that
  code always runs to its end. Raising disarms (one shot): the code handling a
  ``KeyboardInterrupt`` runs disarmed, and a second Ctrl-C cannot cut short the clean-up of
  the first.
* **Stopping.** Inside :meth:`stopping` (``log -f``, ``trace``) the first SIGINT (or one
  pending on entry) sets the region's :class:`Stop` instead; the streamed request notices it
  and cancels itself; a later one behaves as above.
* **The prompt.** :meth:`read_line` is ``input()`` in an armed region. Readline runs the tab
  completer inside it and swallows what the completer raises, so there SIGINT raises only
  in the frame waiting in ``input()``; a Ctrl-C handled while a completion is computed (its
  requests are bounded to 1 s) is ignored. ``input()`` checks signals once more after
  readline was interrupted, with the ``KeyboardInterrupt`` already set; a second SIGINT in
  that instant makes CPython raise ``SystemError`` from it, which :meth:`read_line` turns
  back into the ``KeyboardInterrupt``.
* **Kick** (``kick=True``: the interactive shell, with readline). A thread watches the signal
  wakeup fd, which the handler empties. A byte still there after :data:`KICK_AFTER` seconds
  means the main thread got a SIGINT but sits in C code that has not looked (readline's
  ``select``, or a blocking call entered just after the signal). The thread then sends it
  SIGWINCH (again after 2, 4, ... times as long, at most 1 s apart, until the byte is gone):
  readline's own handler for it only notes a resize, and the interrupted wait lets Python
  run the pending handler. SIGWINCH has no Python handler, so a kick can never run Python
  code at a bad moment nor count as a second Ctrl-C. The thread blocks every signal, so
  SIGINT always reaches the main thread.

Before :meth:`Interrupts.installed`, after it, or outside the main thread nothing is installed:
the regions do nothing, a :class:`Stop` is never set and SIGINT keeps Python's default
behaviour.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType

__all__ = ["KICK_AFTER", "Interrupts", "Stop"]

KICK_AFTER = 0.05
"""Seconds a received signal may wait for its Python handler before the main thread is kicked."""


class Stop:
    """Set by the first Ctrl-C of a :meth:`Interrupts.stopping` region (or by anyone)."""

    __slots__ = ("requested",)

    def __init__(self) -> None:
        self.requested = False

    def set(self) -> None:
        """Ask for the stop (only sets a flag: safe in a signal handler)."""
        self.requested = True

    def __call__(self) -> bool:
        """Whether the stop was asked for (a predicate for ``ControlClient.stream``)."""
        return self.requested


class Interrupts:
    """SIGINT for the shell (module docstring). One per process, used from the main thread."""

    def __init__(self) -> None:
        self._installed = False
        self._armed = False
        self._pending = False
        self._prompt: FrameType | None = None
        self._stop: Stop | None = None
        self._kicker: _Kicker | None = None

    @contextmanager
    def installed(self, *, kick: bool = False) -> Iterator[Interrupts]:
        """Install the handler (and the kicker with ``kick``) until the block ends.

        Does nothing outside the main thread. A SIGINT still pending at the end is dropped.
        """
        if threading.current_thread() is not threading.main_thread() or self._installed:
            yield self
            return
        self._armed = self._pending = False
        old = signal.signal(signal.SIGINT, self._on_sigint)
        self._installed = True
        try:
            if kick:
                self._kicker = _Kicker()
            yield self
        finally:
            if self._kicker is not None:
                self._kicker.close()
                self._kicker = None
            self._installed = False
            self._armed = self._pending = False
            signal.signal(signal.SIGINT, signal.default_int_handler if old is None else old)

    def armed(self) -> _Armed:
        """A region where SIGINT raises ``KeyboardInterrupt`` (one pending raises at entry)."""
        return _Armed(self)

    @contextmanager
    def stopping(self) -> Iterator[Stop]:
        """A region whose first SIGINT (or one pending on entry) sets the :class:`Stop` it
        yields instead of raising."""
        stop, outer = Stop(), self._stop
        if self._installed:
            self._stop = stop
            if self._pending:
                self._pending = False
                self._stop = None
                stop.set()
        try:
            yield stop
        finally:
            self._stop = outer

    def read_line(self, prompt: str) -> str | None:
        """``input(prompt)`` in an armed region: the line, or None at the end of input.

        While ``input`` runs, the only Python code in this thread is the prompt's frame
        (where readline looks at signals) or a readline callback: no helper is called
        between marking the prompt and ``input``, nor after."""
        was = self._enter_armed()
        try:
            self._prompt = sys._getframe()
            try:
                return input(prompt)
            finally:
                self._prompt = None
        except EOFError:
            return None
        except SystemError as exc:  # CPython's second look at signals (module docstring)
            if isinstance(exc.__cause__, KeyboardInterrupt):
                raise KeyboardInterrupt from None
            raise
        finally:
            self._armed = was

    # ------------------------------------------------------------------ the handler

    def _on_sigint(self, _signum: int, frame: FrameType | None) -> None:
        if self._kicker is not None:
            self._kicker.drain()
        stop, self._stop = self._stop, None
        if stop is not None:
            stop.set()
            return
        if self._prompt is not None and frame is not self._prompt:
            return  # in readline's completer, which would swallow it: ignored
        self._pending = True
        if self._armed:
            self._armed = self._pending = False
            raise KeyboardInterrupt

    def _enter_armed(self) -> bool:
        was = self._armed
        if self._installed:
            if self._pending:
                self._pending = False
                raise KeyboardInterrupt
            self._armed = True
        return was


class _Armed:
    __slots__ = ("_owner", "_was")

    def __init__(self, owner: Interrupts) -> None:
        self._owner = owner
        self._was = False

    def __enter__(self) -> None:
        self._was = self._owner._enter_armed()

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self._owner._armed = self._was


class _Kicker:
    """Kicks the main thread with SIGWINCH while a SIGINT's byte waits in the wakeup pipe.

    Owned by :meth:`Interrupts.installed`, which closes it; its thread waits on the wakeup
    pipe and on a stop pipe that :meth:`close` writes.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        self._stop_read, self._stop_write = os.pipe()
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)
        self._main = threading.main_thread().ident
        self._old_wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._run, name="oxt-shell-kick", daemon=True)
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:  # the thread inherits the mask: every signal goes to the main thread
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def drain(self) -> None:
        """Empty the wakeup pipe (the SIGINT handler does, as it runs)."""
        try:
            while os.read(self._read, 512):
                pass
        except BlockingIOError:
            pass

    def _run(self) -> None:
        while self._stop_read not in select.select([self._read, self._stop_read], [], [])[0]:
            delay = KICK_AFTER  # a SIGINT arrived: give the handler that long to run
            while not select.select([self._stop_read], [], [], delay)[0]:
                if not select.select([self._read], [], [], 0)[0]:
                    break  # it ran
                if self._main is not None:
                    signal.pthread_kill(self._main, signal.SIGWINCH)
                delay = min(2 * delay, 1.0)
            else:
                return  # stopped

    def close(self) -> None:
        """Restore the wakeup fd, stop the thread (bounded) and close the pipes."""
        signal.set_wakeup_fd(self._old_wakeup)
        os.write(self._stop_write, b"x")
        self._thread.join(2.0)
        for fd in (self._read, self._write, self._stop_read, self._stop_write):
            os.close(fd)
