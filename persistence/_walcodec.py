"""dbd's write-ahead log records and flush manifests: the frame format, encoding, decoding,
scanning, replay onto a tree. Pure: no I/O (the files are ``_wal``'s).

Record format (version 1). Each record is one frame::

    u32 big-endian  payload length (at most MAX_RECORD_BYTES)
    u32 big-endian  CRC-32 of the 4 length bytes followed by the payload
    payload         msgpack array [1, seq, opcode, path, argument]

``1`` is the record version; ``seq`` the store's sequence number (consecutive); ``opcode`` 1 =
write (argument: the string), 2 = inject (argument: the parsed JSON value; maps keep key
order), 3 = rm (argument: nil); ``path`` the list of path segments (after domstore
confinement). There is no file header: a segment is a plain sequence of frames.

Reading (:func:`scan`): a frame that is short, too long, or fails its CRC ends the valid data.
If no valid frame follows anywhere after it, the rest is a torn tail (normal after SIGKILL or
power loss: the record was never acknowledged) and is dropped (its length is reported). If a
valid frame follows, the bytes in between are corruption in the middle: reported in
``problems``, and the records after it are still returned. A CRC-valid frame that does not
decode (unknown version, wrong shape) is reported and skipped. :func:`apply_replay` re-applies
records to a tree and reports those that fail.

Flush manifest (version 1): the redo record of one flush (docs/dbd-format.md §5), one frame
with the same header as a record and nothing after it::

    payload         msgpack array ["dbd-flush", 1, mark, [[file key, content or nil], ...]]

``mark`` is the :class:`WalMark`'s segment number: the contents are the files rendered from
the tree holding every record up to the end of that segment; nil means the file must not
exist. :func:`decode_manifest` accepts exactly what :func:`encode_manifest` produces and
raises :class:`WalManifestError` naming the first thing wrong (a short file, a bad CRC, bytes
after the frame, a wrong shape); a manifest is never partly used.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from persistence._limits import DbError
from persistence._tree import DbTree, InjectOp, Op, RmOp, WriteOp

if TYPE_CHECKING:
    from collections.abc import Mapping

    from persistence._jsonfmt import JsonValue

__all__ = [
    "MAX_MANIFEST_BYTES",
    "MAX_RECORD_BYTES",
    "WAL_VERSION",
    "FlushManifest",
    "Replay",
    "Replayed",
    "Scan",
    "WalError",
    "WalManifestError",
    "WalMark",
    "WalRecord",
    "WalRecordError",
    "apply_replay",
    "decode_manifest",
    "decode_payload",
    "encode_manifest",
    "encode_record",
    "scan",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

WAL_VERSION = 1
# A record carries at most one inject text (16 MiB by default) or one value (1 MiB) plus a
# path; 32 MiB bounds what a reader allocates for one frame.
MAX_RECORD_BYTES = 32 << 20
# A manifest carries the content of every file of one flush: at most the whole database
# (a few MiB on a real dom0); this bounds what a reader allocates.
MAX_MANIFEST_BYTES = 1 << 30
_MANIFEST_TAG = "dbd-flush"
_MANIFEST_VERSION = 1
_HEADER = struct.Struct(">II")
_OP_WRITE, _OP_INJECT, _OP_RM = 1, 2, 3


class WalError(DbError):
    """The write-ahead log could not be written (the writer is then unusable)."""


class WalRecordError(WalError):
    """A log record payload that does not decode."""


class WalManifestError(WalError):
    """A flush manifest that does not decode (or would be too large to write)."""


@dataclass(frozen=True, slots=True)
class WalMark:
    """Everything logged up to the end of segment ``segment`` (``WalWriter.rotate``)."""

    segment: int


@dataclass(frozen=True, slots=True)
class WalRecord:
    """One logged mutation."""

    seq: int
    op: Op


def _frame(payload: bytes) -> bytes:
    length = len(payload).to_bytes(4, "big")
    return _HEADER.pack(len(payload), zlib.crc32(payload, zlib.crc32(length))) + payload


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
    return _frame(payload)


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


def _frame_at(
    data: bytes, pos: int, limit: int = MAX_RECORD_BYTES
) -> tuple[bytes, int] | None:
    if len(data) - pos < _HEADER.size:
        return None
    length, crc = _HEADER.unpack_from(data, pos)
    end = pos + _HEADER.size + length
    if length > limit or end > len(data):
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
class FlushManifest:
    """What one flush is about to write: the files holding every record up to ``mark``.

    ``files`` maps a file key (``db``, ``vms/<name>.db``, ``dom-store/<name>.db``) to its new
    content, or to ``None`` when the file must not exist.
    """

    mark: WalMark
    files: Mapping[str, bytes | None]


def encode_manifest(manifest: FlushManifest) -> bytes:
    """The bytes of a manifest file; :class:`WalManifestError` if it would be too large."""
    entries = [[key, None if data is None else bytes(data)]
               for key, data in manifest.files.items()]
    payload = msgpack.packb(
        [_MANIFEST_TAG, _MANIFEST_VERSION, manifest.mark.segment, entries], use_bin_type=True
    )
    if len(payload) > MAX_MANIFEST_BYTES:
        raise WalManifestError(f"manifest of {len(payload)} bytes exceeds {MAX_MANIFEST_BYTES}")
    return _frame(payload)


def decode_manifest(data: bytes) -> FlushManifest:
    """The manifest in ``data`` (a whole file); :class:`WalManifestError` says what is wrong."""
    frame = _frame_at(data, 0, MAX_MANIFEST_BYTES)
    if frame is None:
        raise WalManifestError(f"no valid frame in {len(data)} bytes (short, too long or bad CRC)")
    payload, end = frame
    if end != len(data):
        raise WalManifestError(f"{len(data) - end} unexpected bytes after the manifest")
    try:
        fields = msgpack.unpackb(payload, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise WalManifestError(f"undecodable manifest: {exc}") from None
    if not isinstance(fields, list) or len(fields) != 4 or fields[0] != _MANIFEST_TAG:
        raise WalManifestError("not a flush manifest")
    _tag, version, mark, entries = fields
    if version != _MANIFEST_VERSION:
        raise WalManifestError(f"unsupported manifest version {version!r}")
    if not isinstance(mark, int) or isinstance(mark, bool) or mark < 0:
        raise WalManifestError(f"bad mark {mark!r}")
    if not isinstance(entries, list):
        raise WalManifestError("bad file list")
    files: dict[str, bytes | None] = {}
    for entry in entries:
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or not (entry[1] is None or isinstance(entry[1], bytes))
            or entry[0] in files
        ):
            raise WalManifestError(f"bad file entry {str(entry)[:80]}")
        files[entry[0]] = entry[1]
    return FlushManifest(WalMark(mark), files)


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


@dataclass(frozen=True, slots=True)
class Replay:
    """The records of a log directory to replay, oldest first, and what was wrong with them.

    ``covered_seq`` is the highest sequence number of the records read but not to be replayed
    because the files already hold them (segments up to a flush manifest's mark; -1: none).
    """

    records: tuple[WalRecord, ...]
    problems: tuple[str, ...]
    covered_seq: int = -1

    @property
    def last_seq(self) -> int:
        """The highest sequence number seen (-1 when there is none)."""
        return max([self.covered_seq, *(record.seq for record in self.records)])


@dataclass(frozen=True, slots=True)
class Replayed:
    """What :func:`apply_replay` did: files to flush, records that failed, the last seq."""

    files: frozenset[str]
    problems: tuple[str, ...]
    last_seq: int


def apply_replay(tree: DbTree, log_records: Replay) -> Replayed:
    """Re-apply the records to a tree loaded from files that hold none of them (the recovery
    protocol guarantees it: docs/dbd-format.md §6); the records that fail are listed in
    ``problems`` (the caller logs them)."""
    files: set[str] = set()
    problems = list(log_records.problems)
    for record in log_records.records:
        try:
            files |= tree.apply(record.op).files
        except DbError as exc:
            problems.append(f"record {record.seq} not applied: {exc}")
    return Replayed(frozenset(files), tuple(problems), log_records.last_seq)
