"""``com.citrix.xenclient.xenmgr.testing``: the FIFO of UI automation scripts.

``script_queue(script)`` appends a script; ``script_dequeue()`` answers the oldest one, waiting
for one when the queue is empty, as the original did, but bounded: a waiting call fails after
``wait`` seconds (default 20 s, under a DBus client's usual 25 s reply timeout) with
``Failed`` "no script queued within N s", and nothing is lost (a script queued later goes to
the next caller). Waiting callers are served first come, first served, and each script goes
to exactly one caller. A waiting call holds no thread: its answer is deferred
(``rpc.dbus.DEFERRED``) and given by ``script_queue`` or by the timer. At most ``max_waiters``
calls wait at once (more fail at once) and at most ``max_scripts`` scripts are kept (more are
refused), so a client cannot grow the service without bound. The queue lives in the service:
a restart of the service empties it (as a restart of the original's process did).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from actors import Timer, schedule
from rpc.dbus import DEFERRED, Call, dbus_method
from xen.xenmgr._errors import plain

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["ScriptQueue", "TestingMethods"]

TESTING = "com.citrix.xenclient.xenmgr.testing"


class ScriptQueue:
    """The FIFO and its waiting callers (module docstring); thread-safe."""

    def __init__(self, wait: float = 20.0, max_waiters: int = 64,
                 max_scripts: int = 10_000) -> None:
        self.wait = wait
        self.max_waiters = max_waiters
        self.max_scripts = max_scripts
        self._lock = threading.Lock()
        self._scripts: deque[str] = deque()
        self._waiters: deque[tuple[Call, Timer]] = deque()

    def __len__(self) -> int:
        with self._lock:
            return len(self._scripts)

    def put(self, script: str) -> None:
        """Give ``script`` to the oldest waiting call, or keep it."""
        with self._lock:
            while self._waiters:
                call, timer = self._waiters.popleft()
                timer.cancel()
                if not call.answered:
                    break
            else:
                if len(self._scripts) >= self.max_scripts:
                    raise plain(f"the script queue is full ({self.max_scripts} scripts)")
                self._scripts.append(script)
                return
        call.reply(script)

    def take(self, call: Call) -> Any:
        """The oldest script, or :data:`DEFERRED` with ``call`` waiting (bounded)."""
        with self._lock:
            if self._scripts:
                return self._scripts.popleft()
            if len(self._waiters) >= self.max_waiters:
                raise plain(f"too many callers wait for a script ({self.max_waiters})")
            entry: list[tuple[Call, Timer]] = []
            timer = schedule(self.wait, lambda: self._expire(entry[0]))
            entry.append((call, timer))
            self._waiters.append(entry[0])
        return DEFERRED

    def _expire(self, waiter: tuple[Call, Timer]) -> None:
        with self._lock:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                return  # served meanwhile
        waiter[0].fail(plain(f"no script queued within {self.wait:g} s"))

    def close(self) -> None:
        """Fail every waiting call (the service is stopping)."""
        with self._lock:
            waiters, self._waiters = list(self._waiters), deque()
        for call, timer in waiters:
            timer.cancel()
            call.fail(plain("xenmgr is stopping"))


class TestingMethods:
    """``script_queue``/``script_dequeue`` on ``/`` (mixed into the root object)."""

    ctx: ServiceContext

    @dbus_method(TESTING, "script_queue")
    def script_queue(self, call: Call, script: str) -> None:
        self.ctx.scripts.put(script)

    @dbus_method(TESTING, "script_dequeue")
    def script_dequeue(self, call: Call) -> Any:
        return self.ctx.scripts.take(call)
