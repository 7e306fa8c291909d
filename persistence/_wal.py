"""dbd's write-ahead log: record format, segment files, replay.

Why: the original flushed the tree every 3 s and could lose 3 s of acknowledged writes on a
crash. Here every mutation is appended to the log and fsynced before it is acknowledged; the
JSON files are still written behind (docs/dbd-format.md has the whole protocol).

Record format (version 1). Each record is one frame::

    u32 big-endian  payload length (at most MAX_RECORD_BYTES)
    u32 big-endian  CRC-32 of the 4 length bytes followed by the payload
    payload         msgpack array [1, seq, opcode, path, argument]

``1`` is the record version; ``seq`` the store's sequence number (consecutive); ``opcode`` 1 =
write (argument: the string), 2 = inject (argument: the parsed JSON value; maps keep key
order), 3 = rm (argument: nil); ``path`` the list of path segments (after domstore
confinement). There is no file header: a segment is a plain sequence of frames.

Segments: the log is a directory (``<root>/db.wal``, :data:`WAL_DIR`) of files
``<20-digit number>.wal``. A writer always starts a
new segment (one more than the highest present) and never appends to an old one, so a torn
tail left by a crash is never followed by new records. :meth:`WalWriter.rotate` starts the
next segment and returns a :class:`WalMark`; after the files of a snapshot taken at that moment
are durable, :meth:`WalWriter.truncate_through` deletes the segments up to the mark, oldest
first, fsyncing the directory after each, so that what survives a crash is always a suffix.

Reading (:func:`scan`, :func:`replay`): a frame that is short, too long, or fails its CRC ends
the valid data. If no valid frame follows anywhere after it, the rest is a torn tail (normal
after SIGKILL or power loss: the record was never acknowledged) and is dropped with a warning.
If a valid frame follows, the bytes in between are corruption in the middle: it is reported in
``problems`` (and a copy of the segment is kept as ``<segment>.corrupt-<timestamp>``), and the
records after it are still returned. A CRC-valid frame that does not decode (unknown version,
wrong shape) is reported and skipped. Sequence gaps are reported.

Failure behaviour of :class:`WalWriter`: any error in append/fsync raises :class:`WalError`
and poisons the writer (every later call raises): after a failed fsync the state of the file
is unknown, so the owner must stop and recover from disk. Not thread-safe; the group committer
(``_groupcommit``) is its single user in the daemon.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgpack

from persistence._limits import DbError
from persistence._tree import DbTree, InjectOp, Op, RmOp, WriteOp

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from persistence._jsonfmt import JsonValue

__all__ = [
    "MAX_RECORD_BYTES",
    "WAL_DIR",
    "WAL_VERSION",
    "Replay",
    "Replayed",
    "Scan",
    "WalError",
    "WalMark",
    "WalRecord",
    "WalRecordError",
    "WalWriter",
    "apply_replay",
    "decode_payload",
    "encode_record",
    "replay",
    "scan",
]

log = logging.getLogger(__name__)

WAL_VERSION = 1
# Name of the log directory under the database root. The original ignores it (it only reads
# `db`, `vms/` and `dom-store/`).
WAL_DIR = "db.wal"
# A record carries at most one inject text (16 MiB by default) or one value (1 MiB) plus a
# path; 32 MiB bounds what a reader allocates for one frame.
MAX_RECORD_BYTES = 32 << 20
_HEADER = struct.Struct(">II")
_OP_WRITE, _OP_INJECT, _OP_RM = 1, 2, 3
_SEGMENT = re.compile(r"^(\d{20})\.wal$")


class WalError(DbError):
    """The write-ahead log could not be written (the writer is then unusable)."""


class WalRecordError(WalError):
    """A log record payload that does not decode."""


@dataclass(frozen=True, slots=True)
class WalRecord:
    """One logged mutation."""

    seq: int
    op: Op


@dataclass(frozen=True, slots=True)
class WalMark:
    """Everything logged up to the end of segment ``segment`` (see :meth:`WalWriter.rotate`)."""

    segment: int


# --------------------------------------------------------------------------- codec (pure)


def encode_record(seq: int, op: Op) -> bytes:
    """One framed record, ready to append."""
    path = list(op.path)
    argument: JsonValue
    if isinstance(op, WriteOp):
        opcode, argument = _OP_WRITE, op.value
    elif isinstance(op, InjectOp):
        opcode, argument = _OP_INJECT, op.value
    else:
        opcode, argument = _OP_RM, None
    payload = msgpack.packb([WAL_VERSION, seq, opcode, path, argument], use_bin_type=True)
    if len(payload) > MAX_RECORD_BYTES:
        raise WalRecordError(f"record of {len(payload)} bytes exceeds {MAX_RECORD_BYTES}")
    length = len(payload).to_bytes(4, "big")
    return _HEADER.pack(len(payload), zlib.crc32(payload, zlib.crc32(length))) + payload


def _is_json(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif not (item is None or isinstance(item, bool | int | float | str)):
            return False
    return True


def decode_payload(payload: bytes) -> WalRecord:
    """Decode one record payload; :class:`WalRecordError` says what is wrong."""
    try:
        fields = msgpack.unpackb(payload, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise WalRecordError(f"undecodable record: {exc}") from None
    if not isinstance(fields, list) or len(fields) != 5:
        raise WalRecordError("record is not a 5-element array")
    version, seq, opcode, path, argument = fields
    if version != WAL_VERSION:
        raise WalRecordError(f"unsupported record version {version!r}")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise WalRecordError(f"bad sequence number {seq!r}")
    if not isinstance(path, list) or not all(isinstance(s, str) for s in path):
        raise WalRecordError("bad path")
    segments = tuple(path)
    if opcode == _OP_WRITE and isinstance(argument, str):
        return WalRecord(seq, WriteOp(segments, argument))
    if opcode == _OP_INJECT and _is_json(argument):
        return WalRecord(seq, InjectOp(segments, argument))
    if opcode == _OP_RM and argument is None:
        return WalRecord(seq, RmOp(segments))
    raise WalRecordError(f"bad opcode {opcode!r} or argument")


def _frame_at(data: bytes, pos: int) -> tuple[bytes, int] | None:
    if len(data) - pos < _HEADER.size:
        return None
    length, crc = _HEADER.unpack_from(data, pos)
    end = pos + _HEADER.size + length
    if length > MAX_RECORD_BYTES or end > len(data):
        return None
    payload = data[pos + _HEADER.size : end]
    if zlib.crc32(payload, zlib.crc32(length.to_bytes(4, "big"))) != crc:
        return None
    return payload, end


def _resync(data: bytes, start: int) -> int | None:
    for pos in range(start, len(data) - _HEADER.size + 1):
        frame = _frame_at(data, pos)
        if frame is None:
            continue
        try:
            decode_payload(frame[0])
        except WalRecordError:
            continue
        return pos
    return None


@dataclass(frozen=True, slots=True)
class Scan:
    """The records of one segment's bytes, what was wrong, and the torn tail dropped."""

    records: tuple[WalRecord, ...]
    problems: tuple[str, ...]
    torn_tail: int  # bytes dropped at the end (0 when the segment ends cleanly)


def scan(data: bytes) -> Scan:
    """Decode every frame of one segment (see the module docstring for the rules). Pure."""
    records: list[WalRecord] = []
    problems: list[str] = []
    pos = 0
    while pos < len(data):
        frame = _frame_at(data, pos)
        if frame is not None:
            payload, end = frame
            try:
                records.append(decode_payload(payload))
            except WalRecordError as exc:
                problems.append(f"record at offset {pos} skipped: {exc}")
            pos = end
            continue
        following = _resync(data, pos + 1)
        if following is None:
            return Scan(tuple(records), tuple(problems), len(data) - pos)
        problems.append(f"corrupt bytes at offsets {pos}..{following} skipped")
        pos = following
    return Scan(tuple(records), tuple(problems), 0)


# --------------------------------------------------------------------------- files


def _segment_path(directory: str, number: int) -> str:
    return os.path.join(directory, f"{number:020d}.wal")


def _segments(directory: str) -> list[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    numbers = []
    for name in names:
        m = _SEGMENT.match(name)
        if m:
            numbers.append(int(m.group(1)))
    return sorted(numbers)


def _fsync_dir(directory: str, fsync: Callable[[int], None]) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fsync(fd)
    finally:
        os.close(fd)


class WalWriter:
    """Appends framed records to the newest segment of a log directory, durably."""

    def __init__(self, directory: str, *, fsync: Callable[[int], None] = os.fsync) -> None:
        self._directory = directory
        self._fsync = fsync
        self._fd: int | None = None
        self._failed: str | None = None
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o755, exist_ok=True)
            _fsync_dir(os.path.dirname(os.path.abspath(directory)), fsync)
        existing = _segments(directory)
        self._segment = existing[-1] if existing else 0
        self._open_next()

    @property
    def directory(self) -> str:
        return self._directory

    @property
    def segment(self) -> int:
        """The number of the segment being appended to."""
        return self._segment

    def _open_next(self) -> None:
        while True:
            self._segment += 1
            path = _segment_path(self._directory, self._segment)
            try:
                fd = os.open(
                    path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644
                )
            except FileExistsError:
                continue
            break
        self._fd = fd
        _fsync_dir(self._directory, self._fsync)  # the new segment's name must survive a crash

    def _check(self) -> int:
        if self._failed is not None:
            raise WalError(f"write-ahead log unusable after an earlier failure: {self._failed}")
        if self._fd is None:
            raise WalError("write-ahead log is closed")
        return self._fd

    def append(self, frames: Sequence[bytes]) -> None:
        """Append ``frames`` (from :func:`encode_record`) with one write and one fsync."""
        fd = self._check()
        data = memoryview(b"".join(frames))
        try:
            while data:
                written = os.write(fd, data)
                data = data[written:]
            self._fsync(fd)
        except OSError as exc:
            self._failed = f"{exc.strerror or exc}"
            raise WalError(f"cannot append to the write-ahead log: {self._failed}") from exc

    def rotate(self) -> WalMark:
        """Start a new segment; the mark covers everything appended before this call."""
        fd = self._check()
        mark = WalMark(self._segment)
        try:
            os.close(fd)
            self._fd = None
            self._open_next()
        except OSError as exc:
            self._failed = f"{exc.strerror or exc}"
            raise WalError(f"cannot start a new log segment: {self._failed}") from exc
        return mark

    def truncate_through(self, mark: WalMark) -> None:
        """Delete the segments up to ``mark`` (never the current one), oldest first.

        Safe to call from another thread than the one appending (the flusher, while the group
        committer appends): it only touches segments the writer has left for good.
        """
        for number in _segments(self._directory):
            if number > mark.segment or number >= self._segment:
                break
            os.unlink(_segment_path(self._directory, number))
            _fsync_dir(self._directory, self._fsync)

    def close(self) -> None:
        """Close the current segment (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# --------------------------------------------------------------------------- replay


@dataclass(frozen=True, slots=True)
class Replay:
    """All records of a log directory, oldest first, and what was wrong with them."""

    records: tuple[WalRecord, ...]
    problems: tuple[str, ...]

    @property
    def last_seq(self) -> int:
        """The highest sequence number seen (-1 when there is none)."""
        return max((record.seq for record in self.records), default=-1)


def replay(
    directory: str, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Replay:
    """Read every segment of the log in ``directory`` (missing directory: no records)."""
    records: list[WalRecord] = []
    problems: list[str] = []
    for number in _segments(directory):
        path = _segment_path(directory, number)
        with open(path, "rb") as stream:
            data = stream.read()
        result = scan(data)
        if result.torn_tail:
            log.warning("%s: dropped a torn tail of %d bytes", path, result.torn_tail)
        if result.problems:
            stamp = clock().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
            copy = f"{path}.corrupt-{stamp}"
            with open(copy, "wb") as stream:
                stream.write(data)
            for problem in result.problems:
                problems.append(f"{path}: {problem} (copy kept as {copy})")
        for record in result.records:
            if records and record.seq != records[-1].seq + 1:
                problems.append(
                    f"{path}: sequence jumps from {records[-1].seq} to {record.seq}"
                )
            records.append(record)
    for problem in problems:
        log.error("write-ahead log: %s", problem)
    return Replay(tuple(records), tuple(problems))


@dataclass(frozen=True, slots=True)
class Replayed:
    """What :func:`apply_replay` did: files to flush, records that failed, the last seq."""

    files: frozenset[str]
    problems: tuple[str, ...]
    last_seq: int


def apply_replay(tree: DbTree, log_records: Replay) -> Replayed:
    """Re-apply the records to a tree loaded from the files (idempotent, see the docs)."""
    files: set[str] = set()
    problems = list(log_records.problems)
    for record in log_records.records:
        try:
            files |= tree.apply(record.op).files
        except DbError as exc:
            problems.append(f"record {record.seq} not applied: {exc}")
            log.error("write-ahead log record %d not applied: %s", record.seq, exc)
    return Replayed(frozenset(files), tuple(problems), log_records.last_seq)
