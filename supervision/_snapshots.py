"""Durable snapshots of ``resume``-mode children, two slot files per child, msgpack.

A snapshot is ``{"path", "args", "state", "saved_at"}``: the child's tree path, the extra start
arguments of a dynamic child (so a ``simple_one_for_one`` supervisor can start it again after
the whole process died), and the last state the child handed over.

**Two slots.** A child's snapshots alternate between two files, ``<quoted path>.snap0`` and
``.snap1``. Each holds one frame: a header (magic, a sequence number, the body's length, its
CRC-32) and the msgpack body; bytes after the body are ignored. :meth:`SnapshotStore.save`
overwrites, in place, the slot that does *not* hold the newest snapshot, with the next sequence
number, and flushes it (``fdatasync``) before returning: durable with one flush, no rename and
no directory fsync (the files already exist; a store's first save of a child, which may create
them, fsyncs the directory: another process may have died before its fsync).
A crash during a save tears only the slot being written, whose CRC (or older sequence number)
then loses to the other slot, which holds the previous save, complete: a crash leaves either
the old or the new snapshot. :meth:`SnapshotStore.load` takes the valid slot with the highest
sequence number (once it knows which slot it wrote last, it reads that one alone, and both
only when that one is not the valid save it expects). A slot this store wrote itself is not
even read while the file's inode, size and modification and change times are the ones it had
after the write: the record comes from the bytes kept in memory (one ``stat`` instead of
opening and reading; a file changed under the store has new times or size, and is read as
before). An unchanged state is not written again.

Each child has its own lock (:class:`~supervision._filesync.KeyLocks`): one child's saves are
ordered and never interleave, different children's run in parallel. Directory fsyncs (first
saves, deletes) of concurrent savers are shared (:class:`~supervision._filesync.DirSync`).

A child none of whose slots is valid has its files moved aside as ``<file>.corrupt-<UTC
time>``, reported with ``logging.error``; it then starts without a snapshot (loud, never
silent, never fatal). One torn slot beside a valid one is the normal trace of a crash and is
overwritten by the next save. A single ``<quoted path>.snap`` file (written atomically by
:func:`atomic_write`, the layout before the slots) is read when no slot is valid, and removed
once a save has made the slots durable; leftover temporary files of that layout are removed.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import urllib.parse
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actors import CodecError, decode, encode
from supervision._filesync import DirSync, KeyLocks, fsync_dir

__all__ = ["MemorySnapshotStore", "SnapshotRecord", "SnapshotStore", "atomic_write"]

logger = logging.getLogger(__name__)

_SLOTS = (".snap0", ".snap1")
_LEGACY = ".snap"
_TMP = ".tmp"
_MAGIC = b"OXS1"
_HEADER = struct.Struct(">4sQII")  # magic, sequence number, body length, CRC-32 of the body

SnapshotRecord = dict[str, Any]


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (temporary file, rename)."""
    tmp = path.with_name(path.name + _TMP)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, data)
        os.fdatasync(fd)  # the data and what reading it needs (the size); not the times
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        offset += os.pwrite(fd, view[offset:], offset)


def _write_slot(file: str, data: bytes) -> tuple[bool, _Stamp]:
    """Overwrite ``file`` from its start with ``data`` and flush it; whether it was created,
    and its stamp (`_stamp`) after the write."""
    try:
        fd = os.open(file, os.O_WRONLY)
        created = False
    except FileNotFoundError:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT, 0o600)
        created = True
    try:
        _write_all(fd, data)
        os.fdatasync(fd)
        stamp = _stamp(os.fstat(fd))
    finally:
        os.close(fd)
    return created, stamp


_Stamp = tuple[int, int, int, int, int]


def _stamp(st: os.stat_result) -> _Stamp:
    """What changes when a file is written: its identity, size and times."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _frame(seq: int, body: bytes) -> bytes:
    return _HEADER.pack(_MAGIC, seq, len(body), zlib.crc32(body)) + body


def _record(data: bytes) -> SnapshotRecord:
    """Decode a snapshot record; CodecError when it is not one."""
    record = decode(data)
    if not (isinstance(record, dict) and isinstance(record.get("state"), dict)
            and isinstance(record.get("path"), str)):
        raise CodecError("not a snapshot record")
    record["args"] = tuple(record.get("args", ()))
    return record


def _unframe(data: bytes) -> tuple[int, SnapshotRecord] | None:
    """The sequence number and record of a slot's content, or None when it is not valid."""
    if len(data) < _HEADER.size:
        return None
    magic, seq, length, crc = _HEADER.unpack_from(data)
    body = data[_HEADER.size:_HEADER.size + length]
    if magic != _MAGIC or len(body) != length or zlib.crc32(body) != crc:
        return None
    try:
        return seq, _record(body)
    except CodecError:
        return None


def _read(file: str) -> bytes | None:
    """``file``'s bytes (None: no such file), in four system calls where ``open().read()``
    makes ten (it looks at the file's size, position and terminal mode first)."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _unlink(file: str) -> bool:
    """Remove ``file``; False when it was not there."""
    try:
        os.unlink(file)
    except FileNotFoundError:
        return False
    return True


class _Found:
    """What is on disk for one child: the newest valid snapshot and the files that are not."""

    def __init__(self) -> None:
        self.record: SnapshotRecord | None = None
        self.slot = -1  # the slot holding ``record``; -1: none (nothing, or the old layout)
        self.seq = 0
        self.bad: list[str] = []  # files present but not valid


class SnapshotStore:
    """Snapshot slot files under ``directory``, keyed by the child's tree path."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._locks = KeyLocks()
        self._dir_sync = DirSync(self.directory)
        self._last: dict[str, bytes] = {}  # a child's path -> its last durable state, encoded
        self._head: dict[str, tuple[int, int]] = {}  # path -> (newest slot, its sequence no.)
        self._files: dict[str, str] = {}  # a child's path -> its files' path without suffix
        self._synced: set[str] = set()  # paths whose slots' names this store made durable
        self._legacy: set[str] = set()  # paths with a file of the old layout
        self._kept: dict[str, tuple[_Stamp, bytes]] = {}  # path -> its newest slot as written
        for leftover in self.directory.glob(f"*{_LEGACY}{_TMP}"):
            logger.warning("removing leftover temporary snapshot %s", leftover)
            leftover.unlink(missing_ok=True)

    def _file(self, path: str) -> tuple[str, str, str]:
        """``path``'s two slot files and its file of the old layout."""
        base = self._files.get(path)
        if base is None:  # quoting is not free; a string is smaller than Path objects
            base = os.path.join(self.directory, urllib.parse.quote(path, safe=""))
            self._files[path] = base
        return base + _SLOTS[0], base + _SLOTS[1], base + _LEGACY

    def save(self, path: str, state: Mapping[str, Any], args: tuple[Any, ...] = ()) -> bool:
        """Persist ``state`` for ``path``, durably; False when it equals the last one saved."""
        encoded = encode(dict(state))
        with self._locks.hold(path):
            if self._last.get(path) == encoded:
                return False
            files = self._file(path)
            head = self._head.get(path)
            if head is None:
                found = self._find(path)
                head = (found.slot, found.seq)
            slot = 1 - head[0] if head[0] >= 0 else 0
            record = {"path": path, "args": list(args), "state": dict(state),
                      "saved_at": time.time()}
            self._last.pop(path, None)  # until this save is durable
            self._head.pop(path, None)
            self._kept.pop(path, None)
            body = encode(record)
            created, stamp = _write_slot(files[slot], _frame(head[1] + 1, body))
            if created:
                # both slots exist from now on: no more directory fsyncs
                os.close(os.open(files[1 - slot], os.O_WRONLY | os.O_CREAT, 0o600))
            if created or path not in self._synced:  # the first save here: names durable
                self._synced.discard(path)
                self._dir_sync.sync()
                self._synced.add(path)
            self._head[path] = (slot, head[1] + 1)
            self._kept[path] = (stamp, body)
            if path in self._legacy:  # the slots are durable: the old file is shadowed
                _unlink(files[2])
                self._legacy.discard(path)
            self._last[path] = encoded
        return True

    def load(self, path: str) -> SnapshotRecord | None:
        """The record for ``path``, or None (missing, or corrupt and set aside)."""
        with self._locks.hold(path):
            record = self._newest(path)
            if record is not None:
                return record
            found = self._find(path)
            if found.record is None and found.bad:
                stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                for file in found.bad:
                    aside = f"{file}.corrupt-{stamp}"
                    os.replace(file, aside)
                    logger.error("snapshot %s is corrupt; moved aside to %s", file, aside)
            self._head[path] = (found.slot, found.seq)
            if found.record is None:
                self._last.pop(path, None)
                return None
            self._last[path] = encode(found.record["state"])
            return dict(found.record)

    def _newest(self, path: str) -> SnapshotRecord | None:
        """The record of the slot this store last wrote or found newest, when that slot still
        holds it (the other slot holds an older save: reading it would change nothing);
        None: look at every file. The caller holds ``path``'s lock."""
        head = self._head.get(path)
        if head is None or head[0] < 0 or path not in self._last or path in self._legacy:
            return None
        file = self._file(path)[head[0]]
        kept = self._kept.get(path)
        if kept is not None:
            try:
                unchanged = _stamp(os.stat(file)) == kept[0]
            except OSError:
                unchanged = False
            if unchanged:
                return _record(kept[1])
            del self._kept[path]
        data = _read(file)
        framed = _unframe(data) if data is not None else None
        return framed[1] if framed is not None and framed[0] == head[1] else None

    def _find(self, path: str) -> _Found:
        """Read ``path``'s files; the caller holds ``path``'s lock."""
        found = _Found()
        files = self._file(path)
        for slot in (0, 1):
            data = _read(files[slot])
            if data is None:
                continue
            framed = _unframe(data)
            if framed is None:
                found.bad.append(files[slot])
            elif found.record is None or framed[0] > found.seq:
                found.seq, found.record = framed
                found.slot = slot
        data = _read(files[2])
        if data is not None:
            self._legacy.add(path)
        if data is not None and found.record is None:
            try:
                found.record = _record(data)
            except CodecError:
                found.bad.append(files[2])
        if found.record is not None:
            found.bad = []  # a torn slot beside a valid one: the next save overwrites it
        return found

    def delete(self, path: str) -> None:
        """Forget the snapshot of ``path`` (the child was removed on purpose)."""
        with self._locks.hold(path):
            self._last.pop(path, None)
            self._head.pop(path, None)
            self._kept.pop(path, None)
            self._synced.discard(path)
            self._legacy.discard(path)
            removed = False
            for file in self._file(path):
                removed |= _unlink(file)
            self._files.pop(path, None)
            if removed:
                self._dir_sync.sync()

    def children_of(self, parent: str) -> list[SnapshotRecord]:
        """Records of the direct children of ``parent``, in file-name order."""
        prefix = parent.rstrip("/") + "/"
        names = {file.name[: -len(suffix)]
                 for suffix in (*_SLOTS, _LEGACY)
                 for file in self.directory.glob(f"*{suffix}")}
        records = []
        for name in sorted(names):
            path = urllib.parse.unquote(name)
            rest = path[len(prefix):]
            if path.startswith(prefix) and rest and "/" not in rest:
                record = self.load(path)
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
