"""The db flusher actor: writes the dirty database files behind the write-ahead log.

Semantics (docs/dbd.md):

* **When.** Once right after start (forced: it also deletes the log segments the store found at
  start), then every ``interval`` seconds (3 s by default, as the original) if anything is
  dirty, on :class:`FlushNow`, before a :class:`Reload`, and on orderly stop. One flush at a
  time: the flusher is the only writer of the files while the tree runs, so an older snapshot
  can never overwrite a newer one.
* **What.** Only the files the store marked dirty since the last confirmed flush (plus those of
  any flush that failed), rendered by the store in the original's pretty style, and the removal
  of the files of VMs (and domstores) that no longer exist.
* **How.** Ask the store for a snapshot (:class:`TakeSnapshot`: rendered files plus a log
  mark); wait until the mark is durable; then :func:`flush_files`: write the flush manifest
  (the mark and every new file content, durable, in the log directory), write every file
  atomically (temporary file, fsync, rename, fsync the directory: ``write_files``), truncate
  the log through the mark, remove the manifest; then confirm (:class:`FlushDone`). A crash
  between any two of these steps recovers exactly the acknowledged state (``_wal.recover``:
  the manifest's contents stand in for the files, and only the records after the mark are
  replayed). If the manifest or any file fails, nothing is truncated or confirmed: the log
  (and the manifest, if written) keep every change, the store offers the same files again at
  the next flush, whose manifest replaces this one, and the error is logged. An answer to
  :class:`FlushNow` raises it (``DbFlushError`` or ``WalError``).
* **Reload** (SIGHUP): a flush, then :class:`ReloadFromDisk` to the store; the answer is the
  tuple of problems found while loading.
* A store that is restarting (its name does not resolve) is skipped until the next tick; the
  flusher restarts with it anyway (``rest_for_one``).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from actors import Actor, AskTimeout, NoSuchActor, ask, handles, tell
from persistence._layout import write_files
from persistence._messages import (
    FlushDone,
    FlushNow,
    FlushResult,
    FlushSnapshot,
    Reload,
    ReloadFromDisk,
    TakeSnapshot,
)
from persistence._wal import WAL_DIR, remove_manifest, write_manifest
from persistence._walcodec import FlushManifest

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from persistence._walcodec import WalMark

__all__ = ["DEFAULT_FLUSH_INTERVAL", "DbFlusher", "flush_files", "sibling"]

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL = 3.0


def sibling(name: str, child_id: str) -> str:
    """The name of child ``child_id`` of the supervisor that runs ``name``."""
    if not name.startswith("/"):
        raise ValueError(f"{name!r} is not a supervised child's name; pass the store's name")
    return f"{name.rsplit('/', 1)[0]}/{child_id}"


def flush_files(
    root: str,
    files: Mapping[str, bytes | None],
    mark: WalMark,
    truncate: Callable[[WalMark], None],
    *,
    fsync: Callable[[int], None] = os.fsync,
) -> None:
    """Write a snapshot's files behind the log (docs/dbd-format.md §5): manifest, files,
    ``truncate(mark)`` (which must make its deletions durable), manifest removal.

    ``mark`` must be durable and cover every record whose effect is in ``files``. Raises what
    failed (``WalError`` for the manifest, ``DbFlushError`` for files, ``OSError`` from the
    truncation); the steps not reached are left to the next flush.
    """
    directory = os.path.join(root, WAL_DIR)
    write_manifest(directory, FlushManifest(mark, files), fsync=fsync)
    write_files(root, files, fsync=fsync)
    truncate(mark)
    remove_manifest(directory, mark)


@dataclass(frozen=True, slots=True)
class _Tick:
    force: bool = False


class DbFlusher(Actor):
    """Flushes the store's dirty files (see the module docstring)."""

    def __init__(
        self,
        store: str | None = None,
        *,
        interval: float = DEFAULT_FLUSH_INTERVAL,
        timeout: float = 30.0,
        fsync: Callable[[int], None] = os.fsync,
    ) -> None:
        super().__init__()
        if interval < 0:
            raise ValueError(f"flush interval must be >= 0 seconds, got {interval}")
        self.interval = interval
        self.timeout = timeout
        self._store_name = store
        self._fsync = fsync
        self.flushes = 0
        self.last: FlushResult | None = None

    @property
    def store(self) -> str:
        """The store's name (by default the sibling ``store``)."""
        if self._store_name is None:
            self._store_name = sibling(self.name, "store")
        return self._store_name

    def on_start(self) -> None:
        """Flush once at once (forced), then every ``interval`` seconds (0: only on demand)."""
        self._tell_self(_Tick(force=True))
        if self.interval > 0:
            self.send_every(self.interval, _Tick())

    def on_stop(self) -> None:
        """Orderly stop: flush what is dirty."""
        self._quietly(force=False)

    @handles(_Tick)
    def _tick(self, msg: _Tick) -> None:
        self._quietly(msg.force)

    @handles(FlushNow)
    def _flush_now(self, _msg: FlushNow) -> FlushResult:
        return self.flush(force=False)

    @handles(Reload)
    def _reload(self, _msg: Reload) -> tuple[str, ...]:
        self.flush(force=True)
        problems: tuple[str, ...] = ask(self.store, ReloadFromDisk(), timeout=self.timeout)
        return problems

    def _quietly(self, force: bool) -> None:
        try:
            self.flush(force)
        except (NoSuchActor, AskTimeout) as exc:
            log.warning("%s: flush skipped: %s", self.name, exc)
        except Exception as exc:
            log.error("%s: flush failed; the write-ahead log keeps every change and the "
                      "files are tried again at the next flush: %s", self.name, exc)

    def flush(self, force: bool) -> FlushResult:
        """One flush (see the module docstring); raises what went wrong."""
        started = time.monotonic()
        snapshot: FlushSnapshot | None = ask(self.store, TakeSnapshot(force), timeout=self.timeout)
        if snapshot is None:
            return FlushResult(0, 0, 0.0)
        mark = snapshot.mark.result(self.timeout)
        flush_files(snapshot.root, snapshot.files, mark, snapshot.committer.truncate_through,
                    fsync=self._fsync)
        tell(self.store, FlushDone(snapshot.serial))
        removed = sum(1 for data in snapshot.files.values() if data is None)
        result = FlushResult(len(snapshot.files) - removed, removed, time.monotonic() - started)
        self.flushes += 1
        self.last = result
        if snapshot.files:
            log.debug("%s: flushed %d file(s), removed %d, in %.3f s", self.name,
                      result.written, result.removed, result.seconds)
        return result
