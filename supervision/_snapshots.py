"""Durable snapshots of ``resume``-mode children, one file per child, msgpack.

A file holds ``{"path", "args", "state", "saved_at"}``: the child's tree path, the extra start
arguments of a dynamic child (so a ``simple_one_for_one`` supervisor can start it again after
the whole process died), and the last state the child handed over.

Writes are atomic and durable before :meth:`SnapshotStore.save` returns: write a temporary file
in the same directory, ``fdatasync`` it, rename it over the old file, fsync the directory. A
crash at any point leaves either the old or the new snapshot. An unchanged state is not written
again.

Each child's file has its own lock (:class:`_KeyLocks`), so one child's saves are ordered and
never interleave, while different children write in parallel: a VM monitor's fsync does not wait
for every other monitor's. The directory fsyncs of concurrent saves are shared (:class:`_DirSync`,
a group commit): a save whose rename is done joins the next directory fsync that starts after
it, so it still returns only once its rename is durable.
A file that does not decode is moved aside as ``<file>.corrupt-<UTC time>`` and reported with
``logging.error``; the child then starts without a snapshot (loud, never silent, never fatal).
Leftover temporary files are removed at load.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from actors import CodecError, decode, encode

__all__ = ["MemorySnapshotStore", "SnapshotRecord", "SnapshotStore", "atomic_write"]

logger = logging.getLogger(__name__)

_SUFFIX = ".snap"
_TMP = ".tmp"

SnapshotRecord = dict[str, Any]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    _write_and_rename(path, data)
    _fsync_dir(path.parent)


def _write_and_rename(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file, flush it to disk, rename it over ``path``.

    ``fdatasync`` is enough for the file: it writes the data and the metadata needed to read it
    back (the size, the blocks); only times are left out. The rename is durable once the
    directory is fsynced (the caller's job).
    """
    tmp = path.with_name(path.name + _TMP)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fdatasync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class _KeyLocks:
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


class _DirSync:
    """Group commit of one directory's fsync.

    :meth:`sync` returns once an fsync of the directory that *started after* the call did has
    finished, so every rename made before the call is durable. A caller that finds an fsync
    running waits for it to end (it may have started before the caller's rename) and then for
    the next one, which one of the waiters runs for all of them: N concurrent savers pay about
    two directory fsyncs, not N. A failed fsync raises in the thread that ran it; the others
    try again themselves.
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
        """Make every rename in the directory done before this call durable."""
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
                    _fsync_dir(self.directory)
                    done = True
                finally:
                    self._cond.acquire()
                    self._running = False
                    if done:
                        self.fsyncs += 1
                        self._durable = max(self._durable, covers)
                    self._cond.notify_all()


class SnapshotStore:
    """Snapshot files under ``directory``, keyed by the child's tree path."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._locks = _KeyLocks()
        self._dir_sync = _DirSync(self.directory)
        self._last: dict[str, bytes] = {}
        self._files: dict[str, Path] = {}  # a child's path -> its file (quoting is not free)
        for leftover in self.directory.glob(f"*{_SUFFIX}{_TMP}"):
            logger.warning("removing leftover temporary snapshot %s", leftover)
            leftover.unlink(missing_ok=True)

    def _file(self, path: str) -> Path:
        file = self._files.get(path)
        if file is None:
            file = self.directory / (urllib.parse.quote(path, safe="") + _SUFFIX)
            self._files[path] = file
        return file

    def save(self, path: str, state: Mapping[str, Any], args: tuple[Any, ...] = ()) -> bool:
        """Persist ``state`` for ``path``; False when it equals the last one saved."""
        body = encode(dict(state))
        with self._locks.hold(path):
            if self._last.get(path) == body:
                return False
            record = {"path": path, "args": list(args), "state": dict(state),
                      "saved_at": time.time()}
            _write_and_rename(self._file(path), encode(record))
            self._last.pop(path, None)  # written but not yet durable: never "unchanged"
            self._dir_sync.sync()
            self._last[path] = body
        return True

    def load(self, path: str) -> SnapshotRecord | None:
        """The record for ``path``, or None (missing, or corrupt and set aside)."""
        with self._locks.hold(path):
            return self._read(self._file(path), path)

    def _read(self, file: Path, path: str) -> SnapshotRecord | None:
        """Read ``path``'s ``file``; the caller holds ``path``'s lock."""
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            return None
        try:
            record = decode(data)
            if not (isinstance(record, dict) and isinstance(record.get("state"), dict)
                    and isinstance(record.get("path"), str)):
                raise CodecError("not a snapshot record")
        except CodecError as exc:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            aside = file.with_name(f"{file.name}.corrupt-{stamp}")
            os.replace(file, aside)
            logger.error("snapshot %s is corrupt (%s); moved aside to %s", file, exc, aside)
            return None
        record["args"] = tuple(record.get("args", ()))
        self._last[path] = encode(record["state"])
        return dict(record)

    def delete(self, path: str) -> None:
        """Forget the snapshot of ``path`` (the child was removed on purpose)."""
        with self._locks.hold(path):
            self._last.pop(path, None)
            file = self._file(path)
            self._files.pop(path, None)
            if file.exists():
                file.unlink()
                self._dir_sync.sync()

    def children_of(self, parent: str) -> list[SnapshotRecord]:
        """Records of the direct children of ``parent``, in file-name order."""
        prefix = parent.rstrip("/") + "/"
        records = []
        for file in sorted(self.directory.glob(f"*{_SUFFIX}")):
            path = urllib.parse.unquote(file.name[: -len(_SUFFIX)])
            rest = path[len(prefix):]
            if path.startswith(prefix) and rest and "/" not in rest:
                with self._locks.hold(path):
                    record = self._read(file, path)
                if record is not None:
                    records.append(record)
        return records


class MemorySnapshotStore(SnapshotStore):
    """The same interface kept in memory: resume across restarts, not across processes."""

    def __init__(self) -> None:  # no directory, no files (one lock: nothing slow under it)
        self._lock = threading.Lock()
        self._last = {}
        self._records: dict[str, SnapshotRecord] = {}

    def save(self, path: str, state: Mapping[str, Any], args: tuple[Any, ...] = ()) -> bool:
        """Keep ``state`` for ``path``; False when unchanged."""
        body = encode(dict(state))
        with self._lock:
            if self._last.get(path) == body:
                return False
            self._last[path] = body
            self._records[path] = {"path": path, "args": tuple(args),
                                   "state": decode(body), "saved_at": time.time()}
        return True

    def load(self, path: str) -> SnapshotRecord | None:
        """The record for ``path`` or None."""
        with self._lock:
            record = self._records.get(path)
            return dict(record) if record is not None else None

    def delete(self, path: str) -> None:
        """Forget ``path``."""
        with self._lock:
            self._records.pop(path, None)
            self._last.pop(path, None)

    def children_of(self, parent: str) -> list[SnapshotRecord]:
        """Records of the direct children of ``parent``."""
        prefix = parent.rstrip("/") + "/"
        with self._lock:
            return [dict(r) for p, r in sorted(self._records.items())
                    if p.startswith(prefix) and "/" not in p[len(prefix):]]
