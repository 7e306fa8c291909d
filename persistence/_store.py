"""The db store actor: the only owner and writer of the database tree.

Semantics (docs/dbd.md; the record format and recovery rules are docs/dbd-format.md):

* **One writer.** Every mutation of the tree happens in this actor's thread, under its tree
  lock: through its mailbox (the messages of :mod:`persistence._messages`) or through DBus calls
  the db service dispatches into the same mailbox (:class:`rpc.dbus.DBusJob`; the handlers find
  the store with :func:`current_store`). Requests are handled one at a time, in arrival order.
  Reads happen there too, except a DBus read that arrives when nothing the db service sent is
  still queued or running here: the service's bus reader answers it in its own thread under the
  tree lock (:meth:`DbStore.reading`), which saves a thread hop and keeps every order (all
  earlier calls of the service are done, so the read sees their changes).
* **Reads** are answered from memory at once. A read may show a write whose log record is not
  durable yet; if the daemon dies at that moment that value is gone after the restart (its
  writer was never acknowledged). Acknowledgements, not reads, carry the durability promise.
* **Mutations** check first and act second: a refused request (``DbError``: bad path, limits,
  binary node, malformed JSON) changes nothing. An accepted one changes the tree, marks the
  files it touched dirty, encodes its log record and hands it to the group committer, which
  returns a future; the store goes on with its mailbox at once (it never waits for an fsync).
  The future completes when the record and every earlier one are durable, and only then is the
  writer acknowledged (``call.reply`` from the future's callback for a DBus call; the future
  itself for an in-process caller). A mutation that changed nothing is logged as a barrier, so
  it is not acknowledged ahead of earlier writes.
* **Log failure.** If the log cannot be written (a failed write or fsync) every pending and
  later writer gets the ``WalError`` and the store crashes on purpose: its supervisor restarts
  it (``rest_for_one``: the flusher and the service with it), and the new instance rebuilds the
  tree from the files and the log, i.e. from what was durable.
* **Flushing** is the flusher's job; the store renders the dirty files for it
  (:class:`TakeSnapshot`) and rotates the log in the same step, so the log mark covers exactly
  the records whose effects are in the snapshot. Files handed out stay "unconfirmed" until the
  flusher confirms them (:class:`FlushDone`) and are included again in every later snapshot
  until then, so a flusher that failed or died loses nothing.
* **Start.** Recover from disk (``_wal.recover``: the files, with the contents of an
  unfinished flush's manifest in place of theirs, then the log records the files do not hold;
  corrupt files are set aside and reported with ``logging.error`` and as ``db_problem`` events
  in the supervision event log; the rest loads); the replayed files and the manifest's files
  are dirty; open a new log segment. The flusher flushes once right after, which also deletes
  the segments and the manifest present at start.
* **Reload** (:class:`ReloadFromDisk`, sent by the flusher after a flush: SIGHUP): wait until
  every submitted record is durable (the only time the store waits for an fsync, bounded by
  ``commit_timeout``), then recover from disk again and replace the tree.
* **Orderly stop** (``on_stop``): flush whatever is still dirty (normally the flusher, stopped
  first, has done it), truncate the log, close it. A crash closes the log without flushing.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors import Actor, Target, ask, handles
from persistence._flusher import flush_files
from persistence._groupcommit import GroupCommitter
from persistence._limits import DEFAULT_LIMITS, Caller, Limits, confine_path
from persistence._messages import (
    DbDump,
    DbExists,
    DbInject,
    DbList,
    DbRead,
    DbReadBinary,
    DbRm,
    DbStatus,
    DbWrite,
    FlushDone,
    FlushSnapshot,
    GetDbStatus,
    ReloadFromDisk,
    TakeSnapshot,
    WatchChanges,
)
from persistence._tree import DbTree, InteriorWrite
from persistence._wal import WAL_DIR, WalError, WalWriter, recover
from persistence._walcodec import encode_record
from rpc.dbus import DBusJob

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from concurrent.futures import Future

    from persistence._tree import Change

__all__ = ["DbStore", "commit", "current_store"]

log = logging.getLogger(__name__)

_local = threading.local()


def current_store() -> DbStore:
    """The store whose thread is running the caller (DBus handlers dispatched into its mailbox),
    or whose tree the caller reads (:meth:`DbStore.reading`).

    Raises ``RuntimeError`` when called from any other thread.
    """
    store = getattr(_local, "store", None)
    if not isinstance(store, DbStore):
        raise RuntimeError("not running in a db store's thread")
    return store


def commit(store: Target, msg: DbWrite | DbInject | DbRm, *, timeout: float) -> None:
    """Send a mutation to the store and wait until it is durable (at most ``timeout`` s).

    Raises the refusal (``DbError``), the log failure (``WalError``), ``AskTimeout`` or
    ``TimeoutError``.
    """
    future: Future[object] = ask(store, msg, timeout=timeout)
    future.result(timeout)


@dataclass(frozen=True, slots=True)
class _Poisoned:
    """The write-ahead log failed: crash, so the supervisor rebuilds the store from disk."""

    reason: str


class DbStore(Actor):
    """The database tree and its write-ahead log (see the module docstring)."""

    def __init__(
        self,
        root: str,
        *,
        limits: Limits = DEFAULT_LIMITS,
        interior_write: InteriorWrite = InteriorWrite.IGNORE,
        commit_timeout: float = 30.0,
        fsync: Callable[[int], None] = os.fsync,
    ) -> None:
        super().__init__()
        self.root = os.path.abspath(root)
        self.limits = limits
        self.interior_write = interior_write
        self.commit_timeout = commit_timeout
        self._fsync = fsync
        self._tree = DbTree(limits=limits, interior_write=interior_write)
        self._tree_lock = threading.Lock()
        self._committer: GroupCommitter | None = None
        self._dirty: set[str] = set()
        self._unconfirmed: set[str] = set()
        self._seq = 0
        self._serial = 0
        self._reloads = 0
        self._poisoned: str | None = None
        self._watchers: dict[str, Callable[[str], None]] = {}
        self._problems: tuple[str, ...] = ()

    # ------------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        """Load the root, replay the log, open a new log segment (see the module docstring)."""
        os.makedirs(self.root, mode=0o755, exist_ok=True)
        self._problems = self._load()
        writer = WalWriter(os.path.join(self.root, WAL_DIR), fsync=self._fsync)
        self._committer = GroupCommitter(writer, name=f"dbd-wal-{self.actor_urn[-8:]}")
        _local.store = self
        log.info("%s: database %s loaded (%d files to flush, last log record %d)",
                 self.name, self.root, len(self._dirty), self._seq)

    def _load(self) -> tuple[str, ...]:
        recovered = recover(self.root, limits=self.limits, interior_write=self.interior_write,
                            fsync=self._fsync)
        with self._tree_lock:
            self._tree = recovered.tree
        self._dirty = set(recovered.dirty)
        self._unconfirmed = set()
        self._seq = max(self._seq, recovered.last_seq)
        if recovered.replayed:
            log.info("%s: replayed %d log records", self.name, recovered.replayed)
        self._report(list(recovered.problems))
        return recovered.problems

    def _report(self, problems: list[str]) -> None:
        if not problems:
            return
        log.error("%s: %d problem(s) loading the database under %s (the rest loaded):\n  %s",
                  self.name, len(problems), self.root, "\n  ".join(problems))
        events = self.context.extras.get("events")
        if events is not None:
            for text in problems:
                events.append("db_problem", self.name, problem=text)

    def on_stop(self) -> None:
        """Flush what is still dirty, truncate the log, close it."""
        try:
            if self._poisoned is None and (self._dirty or self._unconfirmed):
                self._flush_here()
        finally:
            self._close()

    def on_failure(self, *_exc: Any) -> None:
        """Close the log without flushing (its group committer's thread stopped): the next
        instance recovers from disk. The same after a kill."""
        self._close()

    on_killed = on_failure

    def _close(self) -> None:
        if getattr(_local, "store", None) is self:
            _local.store = None
        if self._committer is not None:
            self._committer.close(self.commit_timeout)

    def _flush_here(self) -> None:
        snapshot = self._take_snapshot(force=True)
        try:
            mark = snapshot.mark.result(self.commit_timeout)
            flush_files(self.root, snapshot.files, mark, snapshot.committer.truncate_through,
                        fsync=self._fsync)
        except Exception:
            log.exception("%s: final flush failed; the write-ahead log keeps every change",
                          self.name)
            return
        self._unconfirmed = set()
        log.info("%s: flushed %d file(s) on stop", self.name, len(snapshot.files))

    # ------------------------------------------------------------------ the tree, in this thread

    @property
    def tree(self) -> DbTree:
        """The tree (only from this actor's thread, or within :meth:`reading`; never modify
        it directly)."""
        return self._tree

    @contextmanager
    def reading(self) -> Iterator[DbTree]:
        """Read the tree from another thread: under the tree lock, with this store as that
        thread's :func:`current_store`. Only for a caller whose earlier requests are all done
        (the db service's reader, module docstring)."""
        with self._tree_lock:
            before = getattr(_local, "store", None)
            _local.store = self
            try:
                yield self._tree
            finally:
                _local.store = before

    @property
    def committer(self) -> GroupCommitter:
        if self._committer is None:
            raise WalError("the store has not started")
        return self._committer

    def _check_usable(self) -> None:
        if self._poisoned is not None:
            raise WalError(f"write-ahead log failed, the store is restarting: {self._poisoned}")

    def write(self, path: str, value: str) -> Future[object]:
        """Write; the future completes when durable (see the module docstring)."""
        self._check_usable()
        with self._tree_lock:
            change = self._tree.write(path, value)
        return self._log(change, path)

    def inject(self, path: str, text: str) -> Future[object]:
        """Inject; the future completes when durable."""
        self._check_usable()
        with self._tree_lock:
            change = self._tree.inject(path, text)
        return self._log(change, path)

    def rm(self, path: str) -> Future[object]:
        """Remove; the future completes when durable."""
        self._check_usable()
        with self._tree_lock:
            change = self._tree.rm(path)
        return self._log(change, path)

    def _changed(self, path: str) -> None:
        """Tell the watchers (in this thread, before the change can be acknowledged)."""
        for owner, watcher in list(self._watchers.items()):
            try:
                watcher(path)
            except Exception as exc:  # a watcher whose connection is gone: it restarts
                log.debug("%s: change watcher of %s failed: %s", self.name, owner, exc)

    @handles(WatchChanges)
    def _watch_changes(self, msg: WatchChanges) -> None:
        if msg.watcher is None:
            self._watchers.pop(msg.owner, None)
        else:
            self._watchers[msg.owner] = msg.watcher

    def _log(self, change: Change, path: str) -> Future[object]:
        self._dirty |= change.files
        frames: tuple[bytes, ...] = ()
        if change.op is not None:
            self._seq += 1
            frames = (encode_record(self._seq, change.op),)
        try:
            future = self.committer.submit(frames)
        except WalError as exc:
            self._poison(str(exc))
            raise
        if change.op is not None and self._watchers:
            self._changed(path)
        future.add_done_callback(self._watch)
        return future

    def _watch(self, future: Future[object]) -> None:
        """In the commit thread: a failed commit poisons the store."""
        if not future.cancelled() and future.exception() is not None:
            self._tell_self(_Poisoned(str(future.exception())))

    def _poison(self, reason: str) -> None:
        if self._poisoned is None:
            self._poisoned = reason
            self._tell_self(_Poisoned(reason))

    @handles(_Poisoned)
    def _on_poisoned(self, msg: _Poisoned) -> None:
        self._poisoned = self._poisoned or msg.reason
        raise WalError(f"write-ahead log failed, restarting from disk: {msg.reason}")

    # ------------------------------------------------------------------ messages

    @staticmethod
    def _path(path: str, caller: Caller | None) -> str:
        return path if caller is None else confine_path(path, caller)

    @handles(DBusJob)
    def _run_job(self, msg: DBusJob) -> None:
        msg.run()

    @handles(DbRead)
    def _read(self, msg: DbRead) -> str:
        return self._tree.read(self._path(msg.path, msg.caller))

    @handles(DbReadBinary)
    def _read_binary(self, msg: DbReadBinary) -> bytes:
        return self._tree.read_binary(self._path(msg.path, msg.caller))

    @handles(DbDump)
    def _dump(self, msg: DbDump) -> str:
        return self._tree.dump(self._path(msg.path, msg.caller))

    @handles(DbList)
    def _list(self, msg: DbList) -> list[str]:
        return self._tree.list(self._path(msg.path, msg.caller))

    @handles(DbExists)
    def _exists(self, msg: DbExists) -> bool:
        return self._tree.exists(self._path(msg.path, msg.caller))

    @handles(DbWrite)
    def _write(self, msg: DbWrite) -> Future[object]:
        return self.write(self._path(msg.path, msg.caller), msg.value)

    @handles(DbInject)
    def _inject(self, msg: DbInject) -> Future[object]:
        return self.inject(self._path(msg.path, msg.caller), msg.text)

    @handles(DbRm)
    def _rm(self, msg: DbRm) -> Future[object]:
        return self.rm(self._path(msg.path, msg.caller))

    @handles(GetDbStatus)
    def _status(self, _msg: GetDbStatus) -> DbStatus:
        return self.status()

    def status(self) -> DbStatus:
        """The current figures."""
        return DbStatus(
            root=self.root,
            last_seq=self._seq,
            dirty_files=len(self._dirty),
            unconfirmed_files=len(self._unconfirmed),
            wal_batches=self._committer.batches if self._committer is not None else 0,
            snapshots=self._serial,
            reloads=self._reloads,
            problems=self._problems,
        )

    def snapshot(self) -> dict[str, Any]:
        """For inspection (the store is ``fresh``: it rebuilds from disk, not from this)."""
        status = self.status()
        return {"root": status.root, "last_seq": status.last_seq,
                "dirty_files": status.dirty_files, "problems": list(status.problems)}

    # ------------------------------------------------------------------ flushing

    @handles(TakeSnapshot)
    def _snapshot_for_flush(self, msg: TakeSnapshot) -> FlushSnapshot | None:
        if not (msg.force or self._dirty or self._unconfirmed):
            return None
        self._check_usable()
        return self._take_snapshot(msg.force)

    def _take_snapshot(self, force: bool) -> FlushSnapshot:
        keys = self._dirty | self._unconfirmed
        files = self._tree.render_files(keys)
        try:
            mark = self.committer.rotate()
        except WalError as exc:
            self._poison(str(exc))
            raise
        self._serial += 1
        self._unconfirmed = keys
        self._dirty = set()
        return FlushSnapshot(self._serial, self.root, files, mark, self.committer)

    @handles(FlushDone)
    def _flush_done(self, msg: FlushDone) -> None:
        if msg.serial == self._serial:
            self._unconfirmed = set()

    @handles(ReloadFromDisk)
    def _reload(self, _msg: ReloadFromDisk) -> tuple[str, ...]:
        self._check_usable()
        try:
            barrier = self.committer.submit(())
            barrier.result(self.commit_timeout)  # every acknowledged record is on disk to replay
        except WalError as exc:
            self._poison(str(exc))
            raise
        self._problems = self._load()
        self._reloads += 1
        self._changed("/")
        log.info("%s: database re-read from %s", self.name, self.root)
        return self._problems
