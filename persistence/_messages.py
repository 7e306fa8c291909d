"""Messages of the dbd actors: the db store, the db flusher, and what they say to each other.

Every message is a frozen dataclass (STYLE point 6). Send them with ``actors.ask(name, msg,
timeout=...)`` to the child's name in the tree (``/persistence/store``, ``/persistence/flusher``
when the persistence supervisor is a child ``persistence`` of the root).

To the store (``<sup>/store``):

* reads: :class:`DbRead`, :class:`DbReadBinary`, :class:`DbDump`, :class:`DbList`,
  :class:`DbExists` answer from memory with the value the DBus method would return; a read may
  show a write whose log record is not durable yet (its writer has not been acknowledged);
* mutations: :class:`DbWrite`, :class:`DbInject`, :class:`DbRm` answer at once with a
  ``concurrent.futures.Future`` that completes (result ``None``) when the change, and every
  change before it, is durable in the write-ahead log; it fails with the
  :class:`~persistence._wal.WalError` if the log could not be written. A refused request
  (bad path, limits, binary node, malformed JSON) raises :class:`~persistence._limits.DbError`
  to the asker and changes nothing. :func:`persistence.commit` asks and waits in one call;
* ``caller``: ``None`` (the default) is dom0, which addresses the whole tree; a
  :class:`~persistence._limits.Caller` of another domain is confined to
  ``/dom-store/<uuid>/`` as a DBus request from that domain would be;
* :class:`GetDbStatus` -> :class:`DbStatus`.

To the flusher (``<sup>/flusher``): :class:`FlushNow` (flush now, answer when the files are
durable) and :class:`Reload` (flush, then make the store re-read everything from disk: the
SIGHUP of the original; acknowledged writes are kept, see docs/dbd.md).

Between them (not for other callers): :class:`TakeSnapshot` -> :class:`FlushSnapshot` or
``None``, :class:`FlushDone`, :class:`ReloadFromDisk`. From the db service to the store:
:class:`WatchChanges` (tell the service of every change, in the store's thread).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from concurrent.futures import Future

    from persistence._groupcommit import GroupCommitter
    from persistence._limits import Caller

__all__ = [
    "DbDump",
    "DbExists",
    "DbInject",
    "DbList",
    "DbRead",
    "DbReadBinary",
    "DbRm",
    "DbStatus",
    "DbWrite",
    "FlushDone",
    "FlushNow",
    "FlushResult",
    "FlushSnapshot",
    "GetDbStatus",
    "Reload",
    "ReloadFromDisk",
    "TakeSnapshot",
    "WatchChanges",
]


# ------------------------------------------------------------------ reads (answered from memory)


@dataclass(frozen=True, slots=True)
class DbRead:
    """-> ``str``: the rendered value at ``path`` (``""`` when there is none)."""

    path: str
    caller: Caller | None = None


@dataclass(frozen=True, slots=True)
class DbReadBinary:
    """-> ``bytes``: the file behind a binary node (``DbNotBinaryError`` otherwise)."""

    path: str
    caller: Caller | None = None


@dataclass(frozen=True, slots=True)
class DbDump:
    """-> ``str``: the pretty JSON of the subtree (``null`` when missing)."""

    path: str
    caller: Caller | None = None


@dataclass(frozen=True, slots=True)
class DbList:
    """-> ``list[str]``: child names in insertion order."""

    path: str
    caller: Caller | None = None


@dataclass(frozen=True, slots=True)
class DbExists:
    """-> ``bool``: whether every segment of ``path`` exists."""

    path: str
    caller: Caller | None = None


# ------------------------------------------------------------ mutations (acked when durable)


@dataclass(frozen=True, slots=True)
class DbWrite:
    """-> ``Future[None]``: store ``value`` as a string leaf at ``path``."""

    path: str
    value: str
    caller: Caller | None = None


@dataclass(frozen=True, slots=True)
class DbInject:
    """-> ``Future[None]``: replace the subtree at ``path`` by the JSON ``text``."""

    path: str
    text: str
    caller: Caller | None = None


@dataclass(frozen=True, slots=True)
class DbRm:
    """-> ``Future[None]``: remove the subtree at ``path``."""

    path: str
    caller: Caller | None = None


# ------------------------------------------------------------------ status


@dataclass(frozen=True, slots=True)
class GetDbStatus:
    """-> :class:`DbStatus`."""


@dataclass(frozen=True, slots=True)
class DbStatus:
    """What the store holds: for the shell, tests and benchmarks."""

    root: str
    last_seq: int
    dirty_files: int
    unconfirmed_files: int
    wal_batches: int
    snapshots: int
    reloads: int
    problems: tuple[str, ...] = ()


# ------------------------------------------------------------------ flusher


@dataclass(frozen=True, slots=True)
class FlushNow:
    """-> :class:`FlushResult`: flush every dirty file now (to the flusher)."""


@dataclass(frozen=True, slots=True)
class FlushResult:
    """One flush: files written and removed, and how long it took (seconds)."""

    written: int
    removed: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Reload:
    """-> ``tuple[str, ...]`` of problems: flush, then re-read everything from disk (SIGHUP)."""


# ------------------------------------------------------------------ store <-> flusher


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """-> :class:`FlushSnapshot` or ``None`` (nothing to write and ``force`` not set)."""

    force: bool = False


@dataclass(frozen=True, slots=True)
class FlushSnapshot:
    """The rendered files to write and the log mark they cover.

    ``mark`` completes with the :class:`~persistence._wal.WalMark` once every record whose
    effect is in ``files`` is durable; after the files are durable the flusher truncates the
    log through it with ``committer`` and confirms with :class:`FlushDone` ``(serial)``.
    """

    serial: int
    root: str
    files: Mapping[str, bytes | None]
    mark: Future[Any]
    committer: GroupCommitter = field(repr=False)


@dataclass(frozen=True, slots=True)
class FlushDone:
    """The files of snapshot ``serial`` are durable and the log is truncated."""

    serial: int


@dataclass(frozen=True, slots=True)
class ReloadFromDisk:
    """-> ``tuple[str, ...]`` of problems: re-load the files and replay the log (flush first)."""


@dataclass(frozen=True, slots=True)
class WatchChanges:
    """From ``owner`` (the db service): call ``watcher(path)`` in the store's thread after
    every change of the tree at or below ``path`` (``"/"``: everything, after a reload), before
    the change is acknowledged; ``None`` stops it. One watcher per owner (a restarted owner
    replaces its own)."""

    owner: str
    watcher: Callable[[str], None] | None
