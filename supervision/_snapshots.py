"""Durable snapshots of ``resume``-mode children, one file per child, msgpack.

A file holds ``{"path", "args", "state", "saved_at"}``: the child's tree path, the extra start
arguments of a dynamic child (so a ``simple_one_for_one`` supervisor can start it again after
the whole process died), and the last state the child handed over.

Writes are atomic and durable before :meth:`SnapshotStore.save` returns: write a temporary file
in the same directory, fsync it, rename it over the old file, fsync the directory. A crash at
any point leaves either the old or the new snapshot. An unchanged state is not written again.
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
from collections.abc import Mapping
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
    tmp = path.with_name(path.name + _TMP)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class SnapshotStore:
    """Snapshot files under ``directory``, keyed by the child's tree path."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
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
        with self._lock:
            if self._last.get(path) == body:
                return False
            record = {"path": path, "args": list(args), "state": dict(state),
                      "saved_at": time.time()}
            atomic_write(self._file(path), encode(record))
            self._last[path] = body
        return True

    def load(self, path: str) -> SnapshotRecord | None:
        """The record for ``path``, or None (missing, or corrupt and set aside)."""
        return self._read(self._file(path))

    def _read(self, file: Path) -> SnapshotRecord | None:
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
        with self._lock:
            self._last[record["path"]] = encode(record["state"])
        return dict(record)

    def delete(self, path: str) -> None:
        """Forget the snapshot of ``path`` (the child was removed on purpose)."""
        with self._lock:
            self._last.pop(path, None)
            file = self._file(path)
            self._files.pop(path, None)
            if file.exists():
                file.unlink()
                _fsync_dir(self.directory)

    def children_of(self, parent: str) -> list[SnapshotRecord]:
        """Records of the direct children of ``parent``, in file-name order."""
        prefix = parent.rstrip("/") + "/"
        records = []
        for file in sorted(self.directory.glob(f"*{_SUFFIX}")):
            path = urllib.parse.unquote(file.name[: -len(_SUFFIX)])
            rest = path[len(prefix):]
            if path.startswith(prefix) and rest and "/" not in rest:
                record = self._read(file)
                if record is not None:
                    records.append(record)
        return records


class MemorySnapshotStore(SnapshotStore):
    """The same interface kept in memory: resume across restarts, not across processes."""

    def __init__(self) -> None:  # no directory, no files
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
