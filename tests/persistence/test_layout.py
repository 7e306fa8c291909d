"""dbd files on disk: the original layout, corrupt files, leftover temporary files, flushing."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistence._jsonfmt import dumps_pretty
from persistence._layout import (
    DbFlushError,
    load_root,
    remove_file,
    write_file_atomic,
    write_files,
)
from persistence._tree import MAIN_FILE, PLACEMENTS, Binary, DbTree, Node

STAMP = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def clock() -> datetime:
    return STAMP


def load(root: Path) -> Any:
    return load_root(str(root), clock=clock)


# Files as the original wrote them (reference §3.4), made by hand.
ORIGINAL_DB = """\
{
  "db-version": "42",
  "xenmgr": {
    "autostart": "true",
    "iso-path": "\\/storage\\/isos"
  },
  "empty": { }
}
"""
ORIGINAL_VM = """\
{
  "uuid": "00000000-0000-0000-0000-000000000001",
  "name": "uivm",
  "config": {
    "memory": "256",
    "notify": [],
    "flags": { }
  }
}
"""
ORIGINAL_DOMSTORE = """\
{
  "key": "value"
}
"""


def make_original_tree(root: Path) -> None:
    (root / "vms" / "00000000-0000-0000-0000-000000000001").mkdir(parents=True)
    (root / "dom-store").mkdir()
    (root / "db").write_text(ORIGINAL_DB)
    (root / "vms" / "00000000-0000-0000-0000-000000000001.db").write_text(ORIGINAL_VM)
    (root / "vms" / "00000000-0000-0000-0000-000000000001" / "acpi.bin").write_bytes(b"\x01\x02")
    (root / "vms" / "cert.pem").write_bytes(b"PEM")
    (root / "dom-store" / "dddd.db").write_text(ORIGINAL_DOMSTORE)


def test_loads_an_original_format_tree(tmp_path: Path) -> None:
    make_original_tree(tmp_path)
    loaded = load(tmp_path)
    assert loaded.problems == ()
    tree = loaded.tree
    uuid = "00000000-0000-0000-0000-000000000001"
    assert tree.list("/") == ["db-version", "xenmgr", "empty", "vm", "dom-store"]
    assert tree.read("/xenmgr/iso-path") == "/storage/isos"
    assert tree.list("/vm") == [uuid, "cert.pem"]
    assert tree.read(f"/vm/{uuid}/config/memory") == "256"
    assert tree.list(f"/vm/{uuid}") == ["uuid", "name", "config", "acpi.bin"]
    bin_path = tmp_path / "vms" / uuid / "acpi.bin"
    assert tree.read(f"/vm/{uuid}/acpi.bin") == f"file:{bin_path}"
    assert tree.read_binary(f"/vm/{uuid}/acpi.bin") == b"\x01\x02"
    assert tree.read_binary("/vm/cert.pem") == b"PEM"
    assert tree.read("/dom-store/dddd/key") == "value"


def test_writes_the_original_format_back_byte_for_byte(tmp_path: Path) -> None:
    make_original_tree(tmp_path)
    tree = load(tmp_path).tree
    uuid = "00000000-0000-0000-0000-000000000001"
    files = tree.render_files(tree.file_keys())
    assert files["db"] == ORIGINAL_DB.encode()
    assert files["dom-store/dddd.db"] == ORIGINAL_DOMSTORE.encode()
    # the binary child is written as null (as the original) and comes back from its file
    assert files[f"vms/{uuid}.db"] == ORIGINAL_VM.replace(
        '    "flags": { }\n  }\n', '    "flags": { }\n  },\n  "acpi.bin": null\n'
    ).encode()
    write_files(str(tmp_path), files)
    again = load(tmp_path).tree
    assert again.dump("/") == tree.dump("/")
    assert isinstance(again.root, dict)
    assert again.root["vm"][uuid]["acpi.bin"] == Binary(str(tmp_path / "vms" / uuid / "acpi.bin"))


def test_missing_root_is_an_empty_database(tmp_path: Path) -> None:
    loaded = load(tmp_path / "nothing-here")
    assert loaded.problems == ()
    assert loaded.tree.dump("/") == "null\n"


def test_whitespace_only_db_is_an_empty_database(tmp_path: Path) -> None:
    (tmp_path / "db").write_text(" \n\t\n")
    loaded = load(tmp_path)
    assert loaded.problems == () and loaded.tree.root is None


# ---------------------------------------------------------------------------- corrupt files


def test_a_corrupt_vm_file_is_set_aside_and_the_rest_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_original_tree(tmp_path)
    bad = tmp_path / "vms" / "bad.db"
    bad.write_text('{\n  "a": "unterminated\n')
    with caplog.at_level(logging.ERROR):
        loaded = load(tmp_path)
    assert len(loaded.problems) == 1
    problem = loaded.problems[0]
    aside = tmp_path / "vms" / "bad.db.corrupt-20240102T030405Z"
    assert problem.path == str(bad)
    assert "not valid JSON" in problem.problem and "line 2" in problem.problem
    assert str(aside) in problem.action
    assert not bad.exists() and aside.read_text() == '{\n  "a": "unterminated\n'
    assert "bad" not in loaded.tree.list("/vm")
    assert loaded.tree.read("/xenmgr/autostart") == "true"
    assert any("bad.db" in record.getMessage() for record in caplog.records)
    # the set-aside file is neither reloaded nor exposed as a binary node
    again = load(tmp_path)
    assert again.problems == ()
    assert not any("corrupt" in name for name in again.tree.list("/vm"))


def test_a_corrupt_main_db_is_set_aside_and_the_vms_load(tmp_path: Path) -> None:
    make_original_tree(tmp_path)
    (tmp_path / "db").write_bytes(b'{"a": "\xff\xfe"}')
    loaded = load(tmp_path)
    assert [p.problem.split(":")[0] for p in loaded.problems] == ["not valid JSON"]
    assert (tmp_path / "db.corrupt-20240102T030405Z").exists()
    assert loaded.tree.list("/") == ["vm", "dom-store"]


def test_set_aside_names_do_not_collide(tmp_path: Path) -> None:
    (tmp_path / "db").write_text("{")
    (tmp_path / "db.corrupt-20240102T030405Z").write_text("older")
    load(tmp_path)
    assert (tmp_path / "db.corrupt-20240102T030405Z").read_text() == "older"
    assert (tmp_path / "db.corrupt-20240102T030405Z-1").read_text() == "{"


# ---------------------------------------------------------------------------- leftover temps


def vm_file(tmp_path: Path, name: str = "u") -> Path:
    (tmp_path / "vms").mkdir(exist_ok=True)
    return tmp_path / "vms" / f"{name}.db"


def test_only_a_complete_temp_is_recovered(tmp_path: Path) -> None:
    file = vm_file(tmp_path)
    temp = Path(str(file) + ".tmp")
    temp.write_text('{\n  "a": "new"\n}\n')
    loaded = load(tmp_path)
    assert loaded.problems == ()
    assert loaded.tree.read("/vm/u/a") == "new"
    assert file.read_text() == '{\n  "a": "new"\n}\n' and not temp.exists()


def test_a_complete_temp_is_newer_than_the_file(tmp_path: Path) -> None:
    file = vm_file(tmp_path)
    file.write_text('{\n  "a": "old"\n}\n')
    Path(str(file) + ".tmp").write_text('{\n  "a": "new"\n}\n')
    assert load(tmp_path).tree.read("/vm/u/a") == "new"
    assert file.read_text() == '{\n  "a": "new"\n}\n'


@pytest.mark.parametrize(
    "torn", ["", "{\n", '{\n  "a": "ne', '{\n  "a": "new"\n}', "\n\n"]
)
def test_an_incomplete_temp_is_dropped_when_the_file_is_sound(tmp_path: Path, torn: str) -> None:
    file = vm_file(tmp_path)
    file.write_text('{\n  "a": "old"\n}\n')
    temp = Path(str(file) + ".tmp")
    temp.write_text(torn)
    loaded = load(tmp_path)
    assert loaded.problems == ()
    assert loaded.tree.read("/vm/u/a") == "old"
    assert not temp.exists()


def test_an_incomplete_temp_alone_is_set_aside_and_reported(tmp_path: Path) -> None:
    file = vm_file(tmp_path)
    temp = Path(str(file) + ".tmp")
    temp.write_text('{\n  "a": ')
    loaded = load(tmp_path)
    assert [p.path for p in loaded.problems] == [str(temp)]
    assert Path(str(temp) + ".corrupt-20240102T030405Z").exists()
    assert loaded.tree.list("/vm") == []


def test_a_corrupt_file_with_a_complete_temp(tmp_path: Path) -> None:
    file = vm_file(tmp_path)
    file.write_text("garbage")
    Path(str(file) + ".tmp").write_text('{\n  "a": "new"\n}\n')
    loaded = load(tmp_path)
    assert [p.path for p in loaded.problems] == [str(file)]
    assert loaded.tree.read("/vm/u/a") == "new"
    assert Path(str(file) + ".corrupt-20240102T030405Z").read_text() == "garbage"


def test_the_originals_untruncated_temp_with_a_stale_tail(tmp_path: Path) -> None:
    # The original wrote <file>.tmp without O_TRUNC: new content + the tail of an older temp.
    file = vm_file(tmp_path)
    Path(str(file) + ".tmp").write_text('{\n  "a": "new"\n}\n"a-much-longer-old-value"\n}\n')
    loaded = load(tmp_path)
    assert loaded.problems == ()
    assert loaded.tree.read("/vm/u/a") == "new"


def test_main_db_temp_is_recovered(tmp_path: Path) -> None:
    (tmp_path / "db.tmp").write_text('{\n  "a": "1"\n}\n')
    assert load(tmp_path).tree.read("/a") == "1"
    assert (tmp_path / "db").exists() and not (tmp_path / "db.tmp").exists()


def test_non_db_tmp_files_are_binary_nodes(tmp_path: Path) -> None:
    (tmp_path / "vms").mkdir()
    (tmp_path / "vms" / "notes.tmp").write_bytes(b"x")
    tree = load(tmp_path).tree
    assert tree.read_binary("/vm/notes.tmp") == b"x"


# ---------------------------------------------------------------------------- writing


class CountingFsync:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        os.fsync(fd)


def test_atomic_write_leaves_no_temp_and_fsyncs_file_and_directory(tmp_path: Path) -> None:
    fsync = CountingFsync()
    target = tmp_path / "db"
    target.write_text("old, and longer than the new content")
    write_file_atomic(str(target), b"new\n", fsync=fsync)
    assert target.read_bytes() == b"new\n"
    assert not (tmp_path / "db.tmp").exists()
    assert fsync.calls == 2


def test_write_files_batches_directory_fsyncs(tmp_path: Path) -> None:
    fsync = CountingFsync()
    files: dict[str, bytes | None] = {f"vms/u{i}.db": b"{ }\n" for i in range(5)}
    files["db"] = b"{ }\n"
    write_files(str(tmp_path), files, fsync=fsync)
    assert fsync.calls == 1 + 6 + 2  # root for the new vms/, every file, vms/ and root once
    fsync.calls = 0
    write_files(str(tmp_path), files, fsync=fsync)
    assert fsync.calls == 6 + 2
    assert sorted(os.listdir(tmp_path / "vms")) == [f"u{i}.db" for i in range(5)]
    assert oct((tmp_path / "vms").stat().st_mode & 0o777) == oct(0o755 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_removal_deletes_the_file_and_its_leftover_temp(tmp_path: Path) -> None:
    file = vm_file(tmp_path)
    file.write_text("{ }\n")
    Path(str(file) + ".tmp").write_text('{\n  "a": "1"\n}\n')
    write_files(str(tmp_path), {"vms/u.db": None})
    assert os.listdir(tmp_path / "vms") == []
    remove_file(str(file))  # already gone: fine


def test_write_failures_are_collected_and_the_rest_is_written(tmp_path: Path) -> None:
    (tmp_path / "vms").write_text("a file where a directory should be")
    with pytest.raises(DbFlushError) as info:
        write_files(
            str(tmp_path),
            {"vms/u.db": b"{ }\n", "db": b"{ }\n", "elsewhere/x.db": b"1\n"},
        )
    assert set(info.value.failures) == {"vms/u.db", "elsewhere/x.db"}
    assert (tmp_path / "db").read_bytes() == b"{ }\n"


def test_removing_all_of_vm_removes_the_stale_files(tmp_path: Path) -> None:
    # The original left vms/*.db behind when /vm itself went away; they came back on restart.
    tree = DbTree()
    tree.write("/vm/u1/a", "1")
    tree.write("/vm/u2/a", "2")
    write_files(str(tmp_path), tree.render_files(tree.file_keys()))
    change = tree.rm("/vm")
    write_files(str(tmp_path), tree.render_files(change.files))
    assert load(tmp_path).tree.exists("/vm") is False


# ---------------------------------------------------------------------------- model test


def canonical(root: Node) -> str:
    """What a restart can preserve: /vm and /dom-store move to the end, children sorted."""
    if not isinstance(root, dict):
        return dumps_pretty(root)
    out: dict[str, Node] = {}
    moved: dict[str, Node] = {}
    for name, child in root.items():
        if name in PLACEMENTS and isinstance(child, dict) and child:
            moved[name] = dict(sorted(child.items()))
        else:
            out[name] = child
    for name in PLACEMENTS:
        if name in moved:
            out[name] = moved[name]
    return dumps_pretty(out)


SEGMENTS = st.sampled_from(["a", "b", "vm", "dom-store", "u1", "u2"])
PATHS = st.lists(SEGMENTS, max_size=3).map(lambda segs: "/" + "/".join(segs))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.just(0.25) | st.text("ab/\"é", max_size=3),
    lambda children: st.lists(children, max_size=2)
    | st.dictionaries(st.sampled_from(["a", "u1", "vm"]), children, max_size=3),
    max_leaves=6,
)
OPS = st.one_of(
    st.tuples(st.just("write"), PATHS, st.text("xy/", max_size=2)),
    st.tuples(st.just("inject"), PATHS, JSON_VALUES.map(json.dumps)),
    st.tuples(st.just("rm"), PATHS, st.none()),
    st.tuples(st.just("flush"), st.just(""), st.none()),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(OPS, max_size=30))
def test_incremental_flushes_reload_to_the_same_tree(ops: list[tuple[str, str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as root:
        tree = DbTree()
        dirty: set[str] = set()
        for kind, path, arg in ops:
            if kind == "write":
                dirty |= tree.write(path, arg).files
            elif kind == "inject":
                dirty |= tree.inject(path, arg).files
            elif kind == "rm":
                dirty |= tree.rm(path).files
            else:
                write_files(root, tree.render_files(dirty), fsync=lambda fd: None)
                dirty.clear()
        write_files(root, tree.render_files(dirty), fsync=lambda fd: None)
        loaded = load_root(root, fsync=lambda fd: None)
        assert loaded.problems == ()
        assert canonical(loaded.tree.root) == canonical(tree.root)


def test_a_remove_that_prunes_a_null_beside_its_path_rewrites_the_file_it_was_in() -> None:
    """``rm`` prunes null nodes on its way, also beside its path: a top-level null (stored in
    the main file) pruned by the removal of a path that does not exist marks the main file
    dirty, so what is on disk loses it too (it came back at the next load; found by the
    property test above)."""
    with tempfile.TemporaryDirectory() as root:
        tree = DbTree()
        tree.inject("/", '{"a": false, "vm": null}')
        write_files(root, tree.render_files({MAIN_FILE}), fsync=lambda fd: None)
        change = tree.rm("/dom-store")
        assert MAIN_FILE in change.files and tree.root == {"a": False}
        write_files(root, tree.render_files(change.files), fsync=lambda fd: None)
        assert load_root(root, fsync=lambda fd: None).tree.root == {"a": False}
