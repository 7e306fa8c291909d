"""Recovery after a crash at every point of a flush (the flush manifest protocol,
docs/dbd-format.md §5-§7), the manifest format and files, and the loader's overlay.

The crash tests enumerate, for fixed scenarios chosen to make replay order-sensitive, every
crash point: each fsync of each phase of a flush (manifest, files, truncation) and the end of
each phase, with and without the manifest of a completed flush coming back (its removal is not
fsynced). tests/persistence/test_wal.py runs the same check on random operations.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from persistence._flusher import flush_files
from persistence._layout import load_root
from persistence._tree import DbTree, WriteOp
from persistence._wal import (
    WAL_DIR,
    ManifestRead,
    WalWriter,
    read_manifest,
    recover,
    remove_manifest,
    replay,
    write_manifest,
)
from persistence._walcodec import (
    FlushManifest,
    WalManifestError,
    WalMark,
    decode_manifest,
    encode_manifest,
    encode_record,
)
from tests.persistence.flushsim import PHASES, Crash, CrashPoint, Sim, check_recovery

Step = tuple[str, str, Any]

# Each: operations, then the final flush (which crashes), with `tail` applied meanwhile.
SCENARIOS: dict[str, tuple[list[Step], list[Step]]] = {
    # the bug found by hypothesis: replay moved b after a
    "reorder": ([("write", "/b", ""), ("rm", "/b", None), ("write", "/b", ""),
                 ("write", "/a", "")], []),
    # VMs: a VM file removed, /vm emptied then refilled (it moves between db and vms/)
    "vms": ([("write", "/vm/u1/a", "1"), ("flush", "", None), ("rm", "/vm/u1", None),
             ("write", "/x", ""), ("write", "/vm/u2/b", ""), ("rm", "/x", None),
             ("write", "/x", "2"), ("inject", "/dom-store/d", '{"k": null, "j": 1}')],
            [("rm", "/vm/u2/b", None), ("write", "/x", "3")]),
    # a failed flush first: two segments to truncate and an older manifest to replace
    "after-a-failed-flush": ([("write", "/a", "1"), ("write", "/vm/u1/k", ""),
                              ("failed-flush", "", None), ("rm", "/a", None),
                              ("write", "/b", ""), ("write", "/a", "2"),
                              ("rm", "/vm/u1/k", None), ("write", "/vm/u1/k", "z")],
                             [("write", "/c", "")]),
}


def crash_points() -> list[CrashPoint]:
    points: list[CrashPoint] = []
    for phase in PHASES:
        points.append((phase, None))
        if phase != "remove":  # no fsync there
            points.extend((phase, k) for k in range(12))
    return points


def play(root: Path, steps: list[Step], tail: list[Step], crash: CrashPoint | None,
         resurrect: bool) -> Sim:
    sim = Sim(str(root), random.Random(7))
    for kind, path, arg in steps:
        if kind in ("flush", "failed-flush"):
            files, mark = sim.snapshot()
            # a failed flush: the manifest is written, the first file fails
            assert sim.flush(files, mark, fail_at=2 if kind != "flush" else None) == (
                kind == "flush")
        else:
            sim.apply(kind, path, arg)
    files, mark = sim.snapshot()
    for step in tail:
        sim.apply(*step)
    try:
        sim.flush(files, mark, crash=crash)
    except Crash:
        pass
    sim.crash(resurrect=resurrect)
    return sim


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_crash_at_every_point_of_a_flush_recovers_exactly(
        tmp_path: Path, scenario: str) -> None:
    steps, tail = SCENARIOS[scenario]
    reached = set()
    for n, crash in enumerate([None, *crash_points()]):
        for resurrect in (False, True) if crash is None else (False,):
            sim = play(tmp_path / f"{n}-{resurrect}", steps, tail, crash, resurrect)
            reached.add(sim.disk.crashed if crash else "done")
            try:
                check_recovery(sim)
            except AssertionError as exc:
                raise AssertionError(f"crash at {crash}, resurrect={resurrect}") from exc
    assert {"manifest fsync 0", "manifest fsync 1", "after manifest", "files fsync 0",
            "files fsync 1", "after files", "truncate fsync 0", "after truncate",
            "after remove", "done"} <= reached


def test_without_the_manifest_the_reorder_scenario_is_the_old_bug(tmp_path: Path) -> None:
    """The scenario does catch the bug: with the files written and the log whole, replaying
    all of it (what recovery did before manifests) moves b after a."""
    steps, tail = SCENARIOS["reorder"]
    sim = play(tmp_path, steps, tail, ("files", None), False)
    assert sim.disk.crashed == "after files"
    assert recover(sim.root).tree.list("/") == sim.live.list("/") == ["b", "a"]
    for name in os.listdir(tmp_path / WAL_DIR):
        if name.endswith(".flush"):
            os.unlink(tmp_path / WAL_DIR / name)
    assert recover(sim.root).tree.list("/") == ["a", "b"]


# ------------------------------------------------------------------ the manifest


MANIFEST = FlushManifest(WalMark(7), {"db": b'{\n  "a": "1"\n}\n', "vms/u1.db": None,
                                      "dom-store/d.db": b"null\n"})


def test_manifest_round_trip_keeps_contents_and_order() -> None:
    decoded = decode_manifest(encode_manifest(MANIFEST))
    assert decoded == MANIFEST and list(decoded.files) == list(MANIFEST.files)


def test_every_truncated_or_damaged_manifest_is_refused() -> None:
    data = encode_manifest(MANIFEST)
    for cut in range(len(data)):
        with pytest.raises(WalManifestError):
            decode_manifest(data[:cut])
    for pos in range(len(data)):
        damaged = bytearray(data)
        damaged[pos] ^= 0x40
        with pytest.raises(WalManifestError):
            decode_manifest(bytes(damaged))
    with pytest.raises(WalManifestError, match="1 unexpected bytes"):
        decode_manifest(data + b"\n")


def test_write_manifest_replaces_older_ones_and_leftover_temporaries(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000003.flush").write_bytes(b"older")
    (tmp_path / "00000000000000000004.flush.tmp").write_bytes(b"torn")
    (tmp_path / "00000000000000000009.flush").write_bytes(b"newer: not ours to remove")
    write_manifest(str(tmp_path), MANIFEST)
    assert sorted(os.listdir(tmp_path)) == ["00000000000000000007.flush",
                                            "00000000000000000009.flush"]
    remove_manifest(str(tmp_path), WalMark(7))
    remove_manifest(str(tmp_path), WalMark(7))  # idempotent
    assert os.listdir(tmp_path) == ["00000000000000000009.flush"]


def test_read_manifest_takes_the_newest(tmp_path: Path) -> None:
    write_manifest(str(tmp_path), FlushManifest(WalMark(2), {"db": b"null\n"}))
    (tmp_path / "00000000000000000007.flush").write_bytes(encode_manifest(MANIFEST))
    assert read_manifest(str(tmp_path)) == ManifestRead(MANIFEST, ())
    assert read_manifest(str(tmp_path / "none")).manifest is None


@pytest.mark.parametrize("damage", ["corrupt", "wrong mark", "unreadable"])
def test_a_bad_manifest_is_set_aside_reported_and_the_whole_log_replayed(
        tmp_path: Path, damage: str) -> None:
    wal = tmp_path / WAL_DIR
    wal.mkdir()
    (tmp_path / "db").write_text('{\n  "a": "file"\n}\n')
    writer = WalWriter(str(wal))
    writer.append([encode_record(1, WriteOp(("b",), "log"))])
    writer.close()
    older = wal / "00000000000000000001.flush"
    older.write_bytes(encode_manifest(FlushManifest(WalMark(1), {"db": b'"older"\n'})))
    newest = wal / "00000000000000000002.flush"
    data = encode_manifest(FlushManifest(WalMark(2), {"db": b"null\n"}))
    if damage == "corrupt":
        newest.write_bytes(data[:-1])
    elif damage == "wrong mark":
        newest.write_bytes(encode_manifest(FlushManifest(WalMark(5), {"db": b"null\n"})))
    else:
        newest.mkdir()  # reading it fails (EISDIR)
    clock = lambda: datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)  # noqa: E731
    recovered = recover(str(tmp_path), clock=clock)
    assert recovered.tree.dump("/") == '{\n  "a": "file",\n  "b": "log"\n}\n'
    assert len(recovered.problems) == 1
    problem = recovered.problems[0]
    assert "00000000000000000002.flush" in problem and "whole log is replayed" in problem
    assert not newest.exists()
    assert not older.exists()  # never to be taken for the newest at the next start
    assert (wal / "00000000000000000001.flush.corrupt-20240506T070809Z").exists()
    assert recover(str(tmp_path)).problems == ()  # reported once


def test_the_writer_starts_above_every_manifest_mark(tmp_path: Path) -> None:
    write_manifest(str(tmp_path), FlushManifest(WalMark(41), {}))
    writer = WalWriter(str(tmp_path))
    assert writer.segment == 42
    writer.close()


def test_replay_after_a_mark_skips_what_the_files_hold(tmp_path: Path) -> None:
    writer = WalWriter(str(tmp_path))
    writer.append([encode_record(1, WriteOp(("a",), "1"))])
    mark = writer.rotate()
    writer.append([encode_record(2, WriteOp(("b",), "2"))])
    writer.close()
    result = replay(str(tmp_path), after=mark)
    assert [r.seq for r in result.records] == [2] and result.covered_seq == 1
    assert replay(str(tmp_path), after=WalMark(2)).last_seq == 2  # nothing left to replay
    assert replay(str(tmp_path), after=WalMark(2)).records == ()


def test_flush_files_leaves_no_manifest_and_only_the_current_segment(tmp_path: Path) -> None:
    writer = WalWriter(str(tmp_path / WAL_DIR))
    writer.append([encode_record(1, WriteOp(("vm", "u", "a"), "1"))])
    mark = writer.rotate()
    tree = DbTree()
    tree.write("/vm/u/a", "1")
    flush_files(str(tmp_path), tree.render_files(tree.file_keys()), mark,
                writer.truncate_through)
    writer.close()
    assert os.listdir(tmp_path / WAL_DIR) == ["00000000000000000002.wal"]
    assert (tmp_path / "vms" / "u.db").read_text() == '{\n  "a": "1"\n}\n'


# ------------------------------------------------------------------ the loader's overlay


def test_the_overlay_replaces_whatever_is_on_disk(tmp_path: Path) -> None:
    (tmp_path / "vms").mkdir()
    (tmp_path / "db").write_text('{\n  "old": "1"\n}\n')
    (tmp_path / "vms" / "a.db").write_text('{\n  "old": "a"\n}\n')
    (tmp_path / "vms" / "a.db.tmp").write_text('{\n  "to')  # torn: would be a problem
    (tmp_path / "vms" / "gone.db").write_text('"removed by the flush"\n')
    (tmp_path / "vms" / "kept.db").write_text('"not in the flush"\n')
    overlay = {"db": b'{\n  "new": "1"\n}\n', "vms/a.db": b'"new a"\n', "vms/gone.db": None,
               "vms/b.db": b'"new b"\n', "dom-store/d.db": b"null\n"}
    loaded = load_root(str(tmp_path), overlay=overlay)
    assert loaded.problems == ()
    assert loaded.tree.dump("/") == (
        '{\n  "new": "1",\n  "vm": {\n    "a": "new a",\n    "b": "new b",\n'
        '    "kept": "not in the flush"\n  },\n  "dom-store": {\n    "d": null\n  }\n}\n')
    # nothing on disk was touched: the next flush rewrites those files
    assert (tmp_path / "vms" / "a.db.tmp").exists() and (tmp_path / "vms" / "gone.db").exists()
    assert not (tmp_path / "dom-store").exists()
