"""dbd's write-ahead log files: segments, the writer, flush manifests, and recovery at start.

Why: the original flushed the tree every 3 s and could lose 3 s of acknowledged writes on a
crash. Here every mutation is appended to the log and fsynced before it is acknowledged; the
JSON files are still written behind (docs/dbd-format.md §4-§7 has the whole protocol). The
record and manifest formats and their pure codec are ``_walcodec``.

Segments: the log is a directory (``<root>/db.wal``, :data:`WAL_DIR`) of files
``<20-digit number>.wal``. A writer always starts a new segment (one more than the highest
segment or manifest mark present) and never appends to an old one, so a torn tail left by a
crash is never followed by new records. :meth:`WalWriter.rotate` starts the next segment and
returns a :class:`WalMark`; :meth:`WalWriter.truncate_through` deletes the segments up to a
mark, oldest first, fsyncing the directory after each.

Flush manifests (``<20-digit mark>.flush``): the redo record of one flush. Before a flush
writes any file it writes, with :func:`write_manifest`, the mark and the new content of every
file it is about to write (temporary file, fsync, rename, fsync of the directory), then
removes the manifests of older flushes (a failed or crashed flush: their files are all in the
new one) and fsyncs the directory again if there were any. After the files it truncates the
log through the mark and removes the manifest (:func:`remove_manifest`, no fsync: a manifest
that comes back after a power cut says what the files already hold, and the next manifest's
directory fsync makes the removal durable before any file changes again).

Recovery (:func:`recover`), so that a crash between any two steps of a flush gives exactly the
acknowledged state, key order included: with a manifest (the newest, :func:`read_manifest`),
the database is the files with the manifest's contents in place of theirs (they hold every
record up to the mark), and only the records of the segments after the mark are replayed;
without one, no file of an unfinished flush was written, so the files hold none of the logged
records and the whole log is replayed. A manifest that cannot be read or decoded is moved
aside with every other manifest (``<name>.corrupt-<timestamp>``) and reported in ``problems``,
and the whole log is replayed (the contents are right, key order may be off); the start never
fails for it.

Reading (:func:`replay`): each segment is scanned by ``_walcodec.scan``; a torn tail is dropped
with a warning; corruption in the middle is reported in ``problems`` and a copy of the segment
is kept as ``<segment>.corrupt-<timestamp>``. Sequence gaps are reported.

Failure behaviour of :class:`WalWriter`: any error in append/fsync raises :class:`WalError`
and poisons the writer (every later call raises): after a failed fsync the state of the file
is unknown, so the owner must stop and recover from disk. Not thread-safe; the group committer
(``_groupcommit``) is its single user in the daemon. :func:`write_manifest` raises
:class:`WalError`; nothing has been written to the database files then.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from persistence._layout import load_root
from persistence._limits import DEFAULT_LIMITS
from persistence._tree import InteriorWrite
from persistence._walcodec import (
    MAX_MANIFEST_BYTES,
    FlushManifest,
    Replay,
    WalError,
    WalManifestError,
    WalMark,
    WalRecord,
    apply_replay,
    decode_manifest,
    encode_manifest,
    scan,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from persistence._limits import Limits
    from persistence._tree import DbTree

__all__ = [
    "WAL_DIR",
    "ManifestRead",
    "Recovered",
    "WalMark",
    "WalWriter",
    "read_manifest",
    "recover",
    "remove_manifest",
    "replay",
    "write_manifest",
]

log = logging.getLogger(__name__)

# Name of the log directory under the database root. The original ignores it (it only reads
# `db`, `vms/` and `dom-store/`).
WAL_DIR = "db.wal"
_SEGMENT = re.compile(r"^(\d{20})\.wal$")
_MANIFEST = re.compile(r"^(\d{20})\.flush$")
_MANIFEST_TEMP = re.compile(r"^\d{20}\.flush\.tmp$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- files


def _segment_path(directory: str, number: int) -> str:
    return os.path.join(directory, f"{number:020d}.wal")


def _numbered(directory: str, pattern: re.Pattern[str]) -> list[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    numbers = []
    for name in names:
        m = pattern.match(name)
        if m:
            numbers.append(int(m.group(1)))
    return sorted(numbers)


def _segments(directory: str) -> list[int]:
    return _numbered(directory, _SEGMENT)


def _manifests(directory: str) -> list[int]:
    return _numbered(directory, _MANIFEST)


def _manifest_path(directory: str, number: int) -> str:
    return os.path.join(directory, f"{number:020d}.flush")


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
        # Segments after a manifest's mark must be new: start above both.
        self._segment = max([0, *_segments(directory)[-1:], *_manifests(directory)[-1:]])
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
        """Delete the segments up to ``mark`` (never the current one), oldest first, fsyncing
        the directory after each (so every deletion is durable when this returns).

        Call it only while the manifest of ``mark`` is durable (the flush protocol): recovery
        skips the segments up to its mark whichever of them are left. Safe to call from another
        thread than the one appending (the flusher, while the group committer appends): it only
        touches segments the writer has left for good.
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


# --------------------------------------------------------------------------- reading


def replay(
    directory: str, *, after: WalMark | None = None, clock: Callable[[], datetime] = _utcnow
) -> Replay:
    """Read every segment of the log in ``directory`` (missing directory: no records).

    Records in segments up to ``after`` (a manifest's mark: the files hold them) are read and
    checked but not returned; ``covered_seq`` is the last of them.
    """
    records: list[WalRecord] = []
    problems: list[str] = []
    previous: int | None = None
    covered = -1
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
            if previous is not None and record.seq != previous + 1:
                problems.append(f"{path}: sequence jumps from {previous} to {record.seq}")
            previous = record.seq
            if after is not None and number <= after.segment:
                covered = record.seq
            else:
                records.append(record)
    for problem in problems:
        log.error("write-ahead log: %s", problem)
    return Replay(tuple(records), tuple(problems), covered)


# --------------------------------------------------------------------------- flush manifests


def write_manifest(
    directory: str, manifest: FlushManifest, *, fsync: Callable[[int], None] = os.fsync
) -> None:
    """Make ``manifest`` durable, then remove older manifests (see the module docstring)."""
    path = _manifest_path(directory, manifest.mark.segment)
    temp = path + ".tmp"
    try:
        data = memoryview(encode_manifest(manifest))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            while data:
                data = data[os.write(fd, data):]
            fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        _fsync_dir(directory, fsync)
        stale = False
        for name in os.listdir(directory):
            m = _MANIFEST.match(name)
            if m and int(m.group(1)) < manifest.mark.segment:
                os.unlink(os.path.join(directory, name))
                stale = True
            elif _MANIFEST_TEMP.match(name) and name != os.path.basename(temp):
                os.unlink(os.path.join(directory, name))  # left by a crash: never used
        if stale:  # before any file of this flush changes, no older manifest may come back
            _fsync_dir(directory, fsync)
    except OSError as exc:
        raise WalError(f"cannot write the flush manifest {path}: {exc.strerror or exc}") from exc
    except WalManifestError as exc:
        raise WalError(f"cannot write the flush manifest {path}: {exc}") from exc


def remove_manifest(directory: str, mark: WalMark) -> None:
    """Remove the manifest of ``mark`` (call after :meth:`WalWriter.truncate_through`)."""
    try:
        os.unlink(_manifest_path(directory, mark.segment))
    except FileNotFoundError:
        pass


@dataclass(frozen=True, slots=True)
class ManifestRead:
    """The manifest recovery uses (``None``: replay the whole log) and what was wrong."""

    manifest: FlushManifest | None
    problems: tuple[str, ...]


def _set_aside(path: str, stamp: str) -> str:
    target = f"{path}.corrupt-{stamp}"
    n = 0
    while os.path.lexists(target):
        n += 1
        target = f"{path}.corrupt-{stamp}-{n}"
    try:
        os.rename(path, target)
    except OSError as exc:
        return f"{path} could not be moved aside ({exc.strerror}); left in place"
    return f"{path} moved aside to {target}"


def read_manifest(
    directory: str,
    *,
    clock: Callable[[], datetime] = _utcnow,
    fsync: Callable[[int], None] = os.fsync,
) -> ManifestRead:
    """The newest manifest in ``directory``; an unreadable one is set aside and reported."""
    numbers = _manifests(directory)
    if not numbers:
        return ManifestRead(None, ())
    path = _manifest_path(directory, numbers[-1])
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_MANIFEST_BYTES + 64)
        manifest = decode_manifest(data)
        if manifest.mark.segment != numbers[-1]:
            raise WalManifestError(f"it names mark {manifest.mark.segment}, not its own")
        return ManifestRead(manifest, ())
    except OSError as exc:
        reason = f"cannot read: {exc.strerror or exc}"
    except WalManifestError as exc:
        reason = str(exc)
    # Set every manifest aside, so that an older one is not taken for the newest at the next
    # start; the whole log is replayed over the files.
    stamp = clock().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    actions = [_set_aside(_manifest_path(directory, n), stamp) for n in numbers]
    try:
        _fsync_dir(directory, fsync)
    except OSError as exc:  # not durable: at worst reported again at the next start
        log.warning("cannot fsync %s: %s", directory, exc.strerror)
    problem = (f"flush manifest {path}: {reason}; {'; '.join(actions)}; the whole log is "
               f"replayed over the files (key order may differ from before the crash)")
    log.error("write-ahead log: %s", problem)
    return ManifestRead(None, (problem,))


# --------------------------------------------------------------------------- recovery


@dataclass(frozen=True, slots=True)
class Recovered:
    """The database rebuilt from disk by :func:`recover`."""

    tree: DbTree
    dirty: frozenset[str]  # files to write at the next flush (replayed, or from a manifest)
    last_seq: int  # the last sequence number read from the log (-1: none)
    replayed: int  # records applied
    problems: tuple[str, ...]  # files set aside, log or manifest damage, records that failed


def recover(
    root: str,
    *,
    limits: Limits = DEFAULT_LIMITS,
    interior_write: InteriorWrite = InteriorWrite.IGNORE,
    clock: Callable[[], datetime] = _utcnow,
    fsync: Callable[[int], None] = os.fsync,
) -> Recovered:
    """Load the database under ``root``: files, newest manifest, log (the module docstring)."""
    directory = os.path.join(root, WAL_DIR)
    found = read_manifest(directory, clock=clock, fsync=fsync)
    manifest = found.manifest
    overlay = manifest.files if manifest is not None else None
    loaded = load_root(root, limits=limits, interior_write=interior_write, clock=clock,
                       fsync=fsync, overlay=overlay)
    records = replay(directory, after=manifest.mark if manifest else None, clock=clock)
    replayed = apply_replay(loaded.tree, records)
    problems = [f"{p.path}: {p.problem}; {p.action}" for p in loaded.problems]
    problems.extend(f"write-ahead log: {text}" for text in (*found.problems, *replayed.problems))
    dirty = set(replayed.files) | set(overlay or ())
    return Recovered(loaded.tree, frozenset(dirty), replayed.last_seq, len(records.records),
                     tuple(problems))
