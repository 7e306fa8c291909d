"""Group commit for the write-ahead log: many writers, one fsync per batch.

A :class:`GroupCommitter` owns a :class:`~persistence._wal.WalWriter` and one daemon thread.
Writers call :meth:`GroupCommitter.submit` with already-encoded frames (encode before the tree
changes again: the frames are the record). ``submit`` never blocks on I/O: it queues the frames
and returns a ``concurrent.futures.Future``. The thread takes everything queued so far,
appends it with one write and one fsync, and only then completes the futures of that batch, in
submission order. So a future is done only when its record, and every record submitted before
it, is durable; a writer (or an actor, through ``add_done_callback``) acknowledges its client
then. ``submit(())`` is a barrier: done once everything submitted before it is durable (for an
operation that changed nothing but must not be acknowledged ahead of earlier writes).

:meth:`GroupCommitter.rotate` is queued like a submission: the thread commits what precedes it,
starts a new segment and completes the future with the :class:`~persistence._wal.WalMark`.
The store takes its snapshot of dirty files and calls ``rotate`` in the same step, so the mark
covers exactly the records whose effects are in the snapshot.

Failure: if an append or fsync fails, every future of that batch and every later one fails with
the :class:`~persistence._wal.WalError`, and later ``submit`` calls raise it at once (the
committer is poisoned; its owner must restart from disk). :meth:`close` commits what is
queued, stops the thread (bounded wait) and closes the writer. Waiting has no timeout here;
callers pass one to ``Future.result(timeout)``.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from persistence._wal import WalError, WalMark, WalWriter

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["GroupCommitter"]

log = logging.getLogger(__name__)

# The thread wakes at least this often even when idle (no unbounded waits).
_IDLE_WAKE = 1.0


@dataclass(slots=True)
class _Item:
    frames: Sequence[bytes] | None  # None: a rotate request
    future: Future[object] = field(default_factory=Future)


class GroupCommitter:
    """Batches appends to a :class:`WalWriter` so concurrent writers share each fsync."""

    def __init__(
        self, writer: WalWriter, *, name: str = "dbd-wal-commit", start: bool = True
    ) -> None:
        self._writer = writer
        self._cond = threading.Condition()
        self._queue: list[_Item] = []
        self._closing = False
        self._failure: WalError | None = None
        self._batches = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        if start:
            self.start()

    def start(self) -> None:
        """Start the commit thread (only needed with ``start=False``; idempotent)."""
        with self._cond:
            if self._started:
                return
            self._started = True
        self._thread.start()

    @property
    def batches(self) -> int:
        """Number of appends (each one fsync) done so far."""
        return self._batches

    def _enqueue(self, item: _Item) -> Future[object]:
        with self._cond:
            if self._failure is not None:
                raise self._failure
            if self._closing:
                raise WalError("write-ahead log is closed")
            self._queue.append(item)
            self._cond.notify()
        return item.future

    def submit(self, frames: Sequence[bytes]) -> Future[object]:
        """Queue ``frames``; the future completes (result ``None``) once they are durable."""
        return self._enqueue(_Item(tuple(frames)))

    def rotate(self) -> Future[object]:
        """Queue a segment rotation; the future's result is the :class:`WalMark`."""
        return self._enqueue(_Item(None))

    def truncate_through(self, mark: WalMark) -> None:
        """Delete the log segments up to ``mark``: a step of ``_flusher.flush_files``, once the
        snapshot's files are durable and while its manifest is in place."""
        self._writer.truncate_through(mark)

    def close(self, timeout: float = 5.0) -> None:
        """Commit what is queued, stop the thread (waiting at most ``timeout``), close the log."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self.start()  # a committer never started still commits what was queued
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("write-ahead log commit thread did not stop within %.1f s", timeout)
            return
        self._writer.close()

    # ------------------------------------------------------------------ commit thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait(_IDLE_WAKE)
                batch, self._queue = self._queue, []
                if not batch and self._closing:
                    return
            self._process(batch)

    def _process(self, batch: list[_Item]) -> None:
        pending: list[_Item] = []
        try:
            for item in batch:
                if item.frames is None:
                    self._commit(pending)
                    pending = []
                    mark: WalMark = self._writer.rotate()
                    item.future.set_result(mark)
                else:
                    pending.append(item)
            self._commit(pending)
        except WalError as exc:
            self._poison(exc, batch)
        except Exception as exc:  # an unexpected bug must not leave waiters hanging
            log.exception("write-ahead log commit failed")
            self._poison(WalError(f"write-ahead log commit failed: {exc}"), batch)

    def _commit(self, items: list[_Item]) -> None:
        frames = [frame for item in items for frame in item.frames or ()]
        if frames:
            self._writer.append(frames)
            self._batches += 1
        for item in items:
            item.future.set_result(None)

    def _poison(self, failure: WalError, batch: list[_Item]) -> None:
        with self._cond:
            self._failure = failure
            rest, self._queue = self._queue, []
            self._closing = True
        for item in [*batch, *rest]:
            if not item.future.done():
                item.future.set_exception(failure)
