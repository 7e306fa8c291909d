"""dbd's write-ahead log files: segments, the writer, and reading a log directory back.

Why: the original flushed the tree every 3 s and could lose 3 s of acknowledged writes on a
crash. Here every mutation is appended to the log and fsynced before it is acknowledged; the
JSON files are still written behind (docs/dbd-format.md has the whole protocol). The record
format and its pure codec are ``_walcodec``.

Segments: the log is a directory (``<root>/db.wal``, :data:`WAL_DIR`) of files
``<20-digit number>.wal``. A writer always starts a new segment (one more than the highest
present) and never appends to an old one, so a torn tail left by a crash is never followed by
new records. :meth:`WalWriter.rotate` starts the next segment and returns a :class:`WalMark`;
after the files of a snapshot taken at that moment are durable,
:meth:`WalWriter.truncate_through` deletes the segments up to the mark, oldest first, fsyncing
the directory after each, so that what survives a crash is always a suffix.

Reading (:func:`replay`): each segment is scanned by ``_walcodec.scan``; a torn tail is dropped
with a warning; corruption in the middle is reported in ``problems`` and a copy of the segment
is kept as ``<segment>.corrupt-<timestamp>``. Sequence gaps are reported.

Failure behaviour of :class:`WalWriter`: any error in append/fsync raises :class:`WalError`
and poisons the writer (every later call raises): after a failed fsync the state of the file
is unknown, so the owner must stop and recover from disk. Not thread-safe; the group committer
(``_groupcommit``) is its single user in the daemon.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from persistence._walcodec import Replay, WalError, WalRecord, scan

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "WAL_DIR",
    "WalMark",
    "WalWriter",
    "replay",
]

log = logging.getLogger(__name__)

# Name of the log directory under the database root. The original ignores it (it only reads
# `db`, `vms/` and `dom-store/`).
WAL_DIR = "db.wal"
_SEGMENT = re.compile(r"^(\d{20})\.wal$")


@dataclass(frozen=True, slots=True)
class WalMark:
    """Everything logged up to the end of segment ``segment`` (see :meth:`WalWriter.rotate`)."""

    segment: int


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
