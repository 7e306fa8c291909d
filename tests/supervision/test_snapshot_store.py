"""The file snapshot store: two slots per child, torn writes, the old layout, concurrent savers
(per-child locks), shared directory fsyncs."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import supervision._filesync as filesync
import supervision._snapshots as snapshots
from actors import encode
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
    assert len(list(tmp_path.glob("*.snap0"))) == len(list(tmp_path.glob("*.snap1"))) == keys
    fresh = SnapshotStore(tmp_path)  # what a new process would read
    for i in range(keys):
        record = fresh.load(f"/vms/k{i}")
        assert record is not None
        assert record["state"]["n"] == writes - 1
        assert record["args"] == (f"arg{i}",)
    assert len(store._locks) == 0  # every per-key lock was dropped after use


def test_one_key_never_written_twice_at_once_but_keys_in_parallel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = snapshots._write_slot
    guard = threading.Lock()
    inside: dict[str, int] = {}
    worst = {"per_key": 0, "total": 0}

    def watched(path: str, data: bytes) -> bool:
        with guard:
            key = os.path.basename(path)[:-1]  # both slots of one child
            inside[key] = inside.get(key, 0) + 1
            worst["per_key"] = max(worst["per_key"], inside[key])
            worst["total"] = max(worst["total"], sum(inside.values()))
        time.sleep(0.005)  # widen the window an overlap would show in
        created = real(path, data)
        with guard:
            inside[key] -= 1
        return created

    monkeypatch.setattr(snapshots, "_write_slot", watched)
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
    monkeypatch.setattr(filesync, "fsync_dir", fake)
    sync = filesync.DirSync(tmp_path)
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


def test_saves_flush_one_slot_and_fsync_the_directory_only_at_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append("data"), real_fdatasync(fd)))
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("dir"), real_fsync(fd)))
    store = SnapshotStore(tmp_path)
    assert store.save("/x", {"a": 1})
    assert calls == ["data", "dir"]  # the first save creates both slots
    for n in range(2, 5):
        calls.clear()
        assert store.save("/x", {"a": n})
        assert calls == ["data"]  # then one flush of one slot per save
    calls.clear()
    assert not store.save("/x", {"a": 4})
    assert calls == []
    fresh = SnapshotStore(tmp_path)  # another process: the slots' names may not be durable yet
    assert fresh.save("/x", {"a": 5})
    assert calls == ["data", "dir"]
    calls.clear()
    assert fresh.save("/x", {"a": 6})
    assert calls == ["data"]
    calls.clear()
    store.delete("/x")
    assert calls == ["dir"] and not list(tmp_path.iterdir())


def test_failed_directory_fsync_is_done_again_and_the_state_written_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SnapshotStore(tmp_path)
    fake = FakeDirFsync(fail_first=True)
    monkeypatch.setattr(filesync, "fsync_dir", fake)
    with pytest.raises(OSError):
        store.save("/x", {"a": 1})
    assert store.save("/x", {"a": 1}) is True  # not durable the first time: written again
    assert len(fake.runs) == 1  # and the slots' names made durable this time
    assert store.save("/x", {"a": 2}) is True
    assert len(fake.runs) == 1


def slot_files(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("*.snap[01]"))


@pytest.mark.parametrize("damage", ["flip a body byte", "cut the body", "zero the header"])
def test_a_torn_newest_slot_gives_the_previous_save(tmp_path: Path, damage: str) -> None:
    store = SnapshotStore(tmp_path)
    for n in range(3):
        store.save("/x", {"n": n})  # slot 0: n=0 then n=2; slot 1: n=1
    newest = tmp_path / "%2Fx.snap0"
    data = bytearray(newest.read_bytes())
    if damage == "flip a body byte":
        data[-3] ^= 0x40
    elif damage == "cut the body":
        data = data[:-4]
    else:
        data[:snapshots._HEADER.size] = bytes(snapshots._HEADER.size)
    newest.write_bytes(bytes(data))
    fresh = SnapshotStore(tmp_path)
    record = fresh.load("/x")
    assert record is not None and record["state"] == {"n": 1}
    assert len(slot_files(tmp_path)) == 2  # a torn slot beside a valid one is not corrupt
    assert fresh.save("/x", {"n": 3})  # overwrites the torn slot, not the good one
    assert SnapshotStore(tmp_path).load("/x")["state"] == {"n": 3}
    assert snapshots._unframe((tmp_path / "%2Fx.snap1").read_bytes()) is not None


def test_no_valid_slot_is_corrupt_and_set_aside(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.save("/x", {"n": 1})
    store.save("/x", {"n": 2})
    for file in slot_files(tmp_path):
        file.write_bytes(b"garbage")
    assert SnapshotStore(tmp_path).load("/x") is None
    assert len(list(tmp_path.glob("*.corrupt-*"))) == 2
    assert slot_files(tmp_path) == []


def test_the_single_file_layout_is_read_then_replaced(tmp_path: Path) -> None:
    old = tmp_path / "%2Fvms%2Fa.snap"
    snapshots.atomic_write(old, encode({"path": "/vms/a", "args": ["x"], "state": {"n": 7},
                                        "saved_at": 1.0}))
    store = SnapshotStore(tmp_path)
    assert [r["state"] for r in store.children_of("/vms")] == [{"n": 7}]
    assert store.load("/vms/a")["args"] == ("x",)
    assert store.save("/vms/a", {"n": 8}, ("x",))
    assert not old.exists()
    assert [r["state"] for r in SnapshotStore(tmp_path).children_of("/vms")] == [{"n": 8}]


def test_a_slot_it_wrote_is_taken_from_memory_while_the_file_is_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SnapshotStore(tmp_path)
    store.save("/x", {"n": 1}, ("arg",))
    reads: list[str] = []
    real_read = snapshots._read
    monkeypatch.setattr(snapshots, "_read", lambda file: (reads.append(file), real_read(file))[1])
    first, second = store.load("/x"), store.load("/x")
    assert first is not None and first["state"] == {"n": 1} and first["args"] == ("arg",)
    assert first == second and first is not second and first["state"] is not second["state"]
    assert reads == []  # one stat each, no read
    assert first == SnapshotStore(tmp_path).load("/x")  # the same as a fresh store reads


def test_a_slot_changed_under_the_store_with_the_same_size_is_read_again(
        tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.save("/x", {"n": 1})
    store.save("/x", {"n": 2})  # slot 1 newest, slot 0 holds n=1
    newest = tmp_path / "%2Fx.snap1"
    data = bytearray(newest.read_bytes())
    data[-1] ^= 0x01  # same size, bad CRC
    before = newest.stat()
    newest.write_bytes(bytes(data))
    os.utime(newest, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    record = store.load("/x")
    assert record is not None and record["state"] == {"n": 1}  # the other slot, as on disk
