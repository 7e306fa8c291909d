"""The file snapshot store under concurrent savers: per-child locks, shared directory fsyncs."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import supervision._snapshots as snapshots
from supervision import SnapshotStore

T = 30.0  # bound on every join; the machine may be loaded


def run_threads(n: int, body: Callable[[int], None]) -> list[BaseException]:
    """Run ``body(i)`` in ``n`` threads started together; the exceptions they raised."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def main(i: int) -> None:
        try:
            barrier.wait(T)
            body(i)
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=main, args=(i,), name=f"saver-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T)
        assert not t.is_alive(), f"{t.name} did not finish"
    return errors


def test_concurrent_savers_each_key_ends_with_its_last_write(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    keys, writes = 12, 15

    def body(i: int) -> None:
        for n in range(writes):
            assert store.save(f"/vms/k{i}", {"n": n, "pad": "x" * (n * 37)}, (f"arg{i}",))

    assert run_threads(keys, body) == []
    assert not list(tmp_path.glob("*.tmp"))
    assert len(list(tmp_path.glob("*.snap"))) == keys
    fresh = SnapshotStore(tmp_path)  # what a new process would read
    for i in range(keys):
        record = fresh.load(f"/vms/k{i}")
        assert record is not None
        assert record["state"]["n"] == writes - 1
        assert record["args"] == (f"arg{i}",)
    assert len(store._locks) == 0  # every per-key lock was dropped after use


def test_one_key_never_written_twice_at_once_but_keys_in_parallel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = snapshots._write_and_rename
    guard = threading.Lock()
    inside: dict[str, int] = {}
    worst = {"per_key": 0, "total": 0}

    def watched(path: Path, data: bytes) -> None:
        with guard:
            inside[path.name] = inside.get(path.name, 0) + 1
            worst["per_key"] = max(worst["per_key"], inside[path.name])
            worst["total"] = max(worst["total"], sum(inside.values()))
        time.sleep(0.005)  # widen the window an overlap would show in
        real(path, data)
        with guard:
            inside[path.name] -= 1

    monkeypatch.setattr(snapshots, "_write_and_rename", watched)
    store = SnapshotStore(tmp_path)

    def body(i: int) -> None:  # two threads per key, each saving distinct states
        for n in range(10):
            assert store.save(f"/k{i % 4}", {"v": i * 100 + n})

    assert run_threads(8, body) == []
    assert worst["per_key"] == 1
    assert worst["total"] > 1  # different keys did overlap: no store-wide lock
    fresh = SnapshotStore(tmp_path)
    for key in range(4):
        record = fresh.load(f"/k{key}")
        assert record is not None
        # the file holds the last save to take the key's lock: one thread's last state
        assert record["state"]["v"] in {key * 100 + 9, (key + 4) * 100 + 9}
    assert not list(tmp_path.glob("*.tmp"))


class FakeDirFsync:
    """Stands in for the directory fsync: slow, ordered against callers, may fail once."""

    def __init__(self, fail_first: bool = False) -> None:
        self.clock = itertools.count()
        self.lock = threading.Lock()
        self.runs: list[tuple[int, int]] = []  # (start tick, end tick) of each fsync that worked
        self.fail_first = fail_first

    def tick(self) -> int:
        with self.lock:
            return next(self.clock)

    def __call__(self, _path: Path) -> None:
        start = self.tick()
        time.sleep(0.01)
        with self.lock:
            if self.fail_first:
                self.fail_first = False
                raise OSError(5, "Input/output error")
            self.runs.append((start, next(self.clock)))


@pytest.mark.parametrize("fail_first", [False, True])
def test_directory_fsync_is_shared_and_covers_every_caller(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_first: bool) -> None:
    fake = FakeDirFsync(fail_first)
    monkeypatch.setattr(snapshots, "_fsync_dir", fake)
    sync = snapshots._DirSync(tmp_path)
    spans: list[tuple[int, int]] = []

    def body(_i: int) -> None:
        called = fake.tick()
        try:
            sync.sync()
        finally:
            spans.append((called, fake.tick()))

    errors = run_threads(20, body)
    if fail_first:
        assert len(errors) == 1 and isinstance(errors[0], OSError)
    else:
        assert errors == []
    assert 1 <= len(fake.runs) < 20  # shared
    assert sync.fsyncs == len(fake.runs)
    failed = len(errors)
    covered = 0
    for called, returned in spans:
        # a caller returned only after an fsync that started after its call had finished
        if any(called < start and end < returned for start, end in fake.runs):
            covered += 1
    assert covered == len(spans) - failed


def test_a_single_save_syncs_the_file_data_and_the_directory_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append("data"), real_fdatasync(fd)))
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("dir"), real_fsync(fd)))
    store = SnapshotStore(tmp_path)
    assert store.save("/x", {"a": 1})
    assert calls == ["data", "dir"]
    calls.clear()
    assert not store.save("/x", {"a": 1})
    assert calls == []
    store.delete("/x")
    assert calls == ["dir"] and not list(tmp_path.iterdir())


def test_failed_directory_fsync_is_not_taken_for_an_unchanged_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SnapshotStore(tmp_path)
    fake = FakeDirFsync(fail_first=True)
    monkeypatch.setattr(snapshots, "_fsync_dir", fake)
    with pytest.raises(OSError):
        store.save("/x", {"a": 1})
    assert store.save("/x", {"a": 1}) is True  # not durable the first time: written again
    assert len(fake.runs) == 1
