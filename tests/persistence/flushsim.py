"""A simulated dbd on a real directory, for crash tests of the write-behind protocol.

:class:`Sim` plays the store's part (the tree, the dirty files, the log records, snapshots and
rotations) and runs the production code for the rest: ``WalWriter`` for the log,
``flush_files`` for a flush, ``recover`` for the restart. Crashes are simulated by
:class:`Disk`, the fsync every piece of that code is given: it raises :class:`Crash` at a
chosen fsync of a chosen phase of a flush (or at the end of the phase), and leaves the file it
was syncing torn, as a power cut could (the code's own clean-up of a temporary file, which a
killed process never runs, is undone). Nothing runs after a crash but the recovery.

:func:`check_recovery` states what a restart must give: the acknowledged tree up to what the
file layout cannot keep (:func:`canonical`), and exactly (key order included) one of the trees
a clean restart at a flush point would give: the files holding the state at that point, loaded,
plus every later record replayed (:func:`clean_restart`). Then the next flush from the
recovered state must leave files that load to the same tree.
"""

from __future__ import annotations

import copy
import os
import random
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from persistence import _flusher
from persistence._flusher import flush_files
from persistence._jsonfmt import dumps_pretty
from persistence._layout import DbFlushError, load_root
from persistence._tree import PLACEMENTS, DbTree, Node, Op
from persistence._wal import WAL_DIR, WalWriter, recover
from persistence._walcodec import (
    FlushManifest,
    WalError,
    WalMark,
    encode_manifest,
    encode_record,
)

PHASES = ("manifest", "files", "truncate", "remove")
# A crash point: the phase of the final flush, and the fsync in it to die at (None: at its end).
CrashPoint = tuple[str, int | None]


class Crash(Exception):
    """The process dies here."""


class Disk:
    """The fsync given to all the code under test: counts, fails, crashes (no real fsync)."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.phase = ""
        self.in_phase = 0
        self.crash: CrashPoint | None = None
        self.fail_at: int | None = None  # an I/O error at this fsync of a flush
        self.flush_calls = 0
        self.torn: tuple[str, bytes] | None = None
        self.crashed = ""  # where the last crash happened

    def __call__(self, fd: int) -> None:
        if self.phase:
            self.in_phase += 1
            self.flush_calls += 1
            if self.crash == (self.phase, self.in_phase - 1):
                path = os.readlink(f"/proc/self/fd/{fd}")
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    with open(path, "rb") as stream:
                        self.torn = (path, stream.read())
                self.crashed = f"{self.phase} fsync {self.in_phase - 1}"
                raise Crash(self.crashed)
            if self.fail_at == self.flush_calls - 1:
                raise OSError(5, "Input/output error")

    def enter(self, phase: str) -> None:
        self.phase, self.in_phase = phase, 0

    def leave(self, phase: str) -> None:
        if self.crash == (phase, None) or (
            self.crash is not None and self.crash[0] == phase and self.in_phase <= self.crash[1]
        ):
            self.crashed = f"after {phase}"  # fewer fsyncs than asked: die at the phase's end
            raise Crash(self.crashed)

    def tear(self) -> None:
        """What a power cut may leave of the file whose fsync was interrupted."""
        if self.torn is not None:
            path, data = self.torn
            with open(path, "wb") as stream:
                stream.write(data[: self.rnd.randint(0, len(data))])


def run(tree: DbTree, kind: str, path: str, arg: Any) -> Any:
    if kind == "write":
        return tree.write(path, arg)
    if kind == "inject":
        return tree.inject(path, arg)
    return tree.rm(path)


def canonical(root: Node) -> str:
    """What the layout keeps: /vm and /dom-store move to the end, their children sorted."""
    if not isinstance(root, dict):
        return dumps_pretty(root)
    out = {name: child for name, child in root.items() if name not in PLACEMENTS}
    for name in PLACEMENTS:
        if name in root:
            child = root[name]
            out[name] = dict(sorted(child.items())) if isinstance(child, dict) else child
    return dumps_pretty(out)


def clean_restart(root: Node, later: list[Op]) -> DbTree:
    """The tree loaded from files holding ``root`` (nothing on disk), then ``later`` replayed."""
    tree = DbTree(copy.deepcopy(root))
    files = tree.render_files(tree.file_keys())
    loaded = load_root("/nonexistent/flushsim", overlay=files).tree
    for op in later:
        loaded.apply(op)
    return loaded


class Sim:
    """The store's side of the protocol over a real root directory."""

    def __init__(self, root: str, rnd: random.Random) -> None:
        self.root = root
        self.rnd = rnd
        self.disk = Disk(rnd)
        self.writer = WalWriter(os.path.join(root, WAL_DIR), fsync=self.disk)
        self.live = DbTree()
        self.dirty: set[str] = set()
        self.unconfirmed: set[str] = set()
        self.ops: list[Op] = []
        # Flush points: (records before the point, the tree then).
        self.points: list[tuple[int, Node]] = [(0, None)]
        self.completed: FlushManifest | None = None  # the last flush, if it completed

    def apply(self, kind: str, path: str, arg: Any) -> None:
        change = run(self.live, kind, path, arg)
        self.dirty |= change.files
        if change.op is not None:
            self.ops.append(change.op)
            self.writer.append([encode_record(len(self.ops), change.op)])

    def snapshot(self) -> tuple[dict[str, bytes | None], WalMark]:
        keys = self.dirty | self.unconfirmed
        files = self.live.render_files(keys)
        self.unconfirmed, self.dirty = keys, set()
        self.points.append((len(self.ops), copy.deepcopy(self.live.root)))
        return files, self.writer.rotate()

    def flush(self, files: dict[str, bytes | None], mark: WalMark, *,
              crash: CrashPoint | None = None, fail_at: int | None = None) -> bool:
        """One flush with the production code; False if it failed (an I/O error)."""
        self.disk.crash, self.disk.fail_at, self.disk.flush_calls = crash, fail_at, 0
        self.disk.torn = None
        self.completed = None
        try:
            with self._phases():
                flush_files(self.root, files, mark, self._truncate, fsync=self.disk)
        except (DbFlushError, WalError, OSError):
            return False
        finally:
            self.disk.crash = self.disk.fail_at = None
            self.disk.phase = ""
        self.unconfirmed = set()
        self.completed = FlushManifest(mark, files)
        return True

    def _truncate(self, mark: WalMark) -> None:
        self.disk.enter("truncate")
        self.writer.truncate_through(mark)
        self.disk.leave("truncate")

    @contextmanager
    def _phases(self) -> Iterator[None]:
        def wrap(phase: str, func: Callable[..., None]) -> Callable[..., None]:
            def wrapped(*args: Any, **kwargs: Any) -> None:
                self.disk.enter(phase)
                func(*args, **kwargs)
                self.disk.leave(phase)
            return wrapped

        with mock.patch.object(_flusher, "write_manifest", wrap("manifest",
                                                                _flusher.write_manifest)), \
             mock.patch.object(_flusher, "write_files", wrap("files", _flusher.write_files)), \
             mock.patch.object(_flusher, "remove_manifest", wrap("remove",
                                                                 _flusher.remove_manifest)):
            yield

    def crash(self, *, resurrect: bool = False) -> None:
        """The process is gone; ``resurrect``: a power cut brings back the last manifest a
        completed flush removed (its removal is not fsynced)."""
        self.writer.close()
        self.disk.tear()
        if resurrect and self.completed is not None:
            mark = self.completed.mark.segment
            with open(os.path.join(self.root, WAL_DIR, f"{mark:020d}.flush"), "wb") as stream:
                stream.write(encode_manifest(self.completed))


def check_recovery(sim: Sim) -> DbTree:
    """Restart from disk and check the result (module docstring); return the recovered tree."""
    recovered = recover(sim.root, fsync=sim.disk)
    assert recovered.problems == ()
    tree = recovered.tree
    assert canonical(tree.root) == canonical(sim.live.root)
    restarts = [clean_restart(root, sim.ops[done:]).dump("/") for done, root in sim.points]
    assert tree.dump("/") in restarts
    # The first flush of the restarted daemon: every file the recovery marked dirty.
    writer = WalWriter(os.path.join(sim.root, WAL_DIR), fsync=sim.disk)
    mark = writer.rotate()
    flush_files(sim.root, tree.render_files(recovered.dirty), mark, writer.truncate_through,
                fsync=sim.disk)
    writer.close()
    assert [name for name in os.listdir(os.path.join(sim.root, WAL_DIR))
            if ".flush" in name] == []
    again = recover(sim.root, fsync=sim.disk)
    assert again.problems == () and again.replayed == 0
    assert again.tree.dump("/") == clean_restart(tree.root, []).dump("/")
    return tree
