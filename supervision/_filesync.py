"""Durable-file helpers for the snapshot store: per-key locks and a shared directory fsync.

:class:`KeyLocks` gives each key (a child's tree path) its own lock, so one child's writes are
ordered and never interleave while different children write in parallel. :class:`DirSync` is a
group commit of a directory's fsync: savers that need it at the same time share one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["DirSync", "KeyLocks", "fsync_dir"]


def fsync_dir(path: Path) -> None:
    """fsync the directory ``path``: the names created, renamed or removed in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class KeyLocks:
    """One lock per key, made on first use, dropped when no thread holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, _KeyLock] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold ``key``'s lock for the ``with`` body."""
        with self._guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = _KeyLock()
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._locks[key]

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


class _KeyLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0  # threads holding or waiting for the lock


class DirSync:
    """Group commit of one directory's fsync.

    :meth:`sync` returns once an fsync of the directory that *started after* the call did has
    finished, so every change to the directory's names made before the call is durable. A
    caller that finds an fsync running waits for it to end (it may have started before the
    caller's change) and then for the next one, which one of the waiters runs for all of them:
    N concurrent callers pay about two directory fsyncs, not N. A failed fsync raises in the
    thread that ran it; the others try again themselves.
    """

    _POLL = 1.0  # seconds between re-checks; a wait lasts as long as another thread's fsync

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fsyncs = 0
        self._cond = threading.Condition(threading.Lock())
        self._ticket = 0  # calls so far
        self._durable = 0  # every call with a ticket up to this one is covered
        self._running = False

    def sync(self) -> None:
        """Make every change to the directory's names done before this call durable."""
        with self._cond:
            self._ticket += 1
            mine = self._ticket
            while self._durable < mine:
                if self._running:
                    self._cond.wait(self._POLL)
                    continue
                self._running = True
                covers = self._ticket
                self._cond.release()
                done = False
                try:
                    fsync_dir(self.directory)
                    done = True
                finally:
                    self._cond.acquire()
                    self._running = False
                    if done:
                        self.fsyncs += 1
                        self._durable = max(self._durable, covers)
                    self._cond.notify_all()
