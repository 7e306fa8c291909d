"""The db store and flusher actors (no bus): semantics through messages, durability before the
acknowledgement, write-behind of dirty files only, recovery at start, reload, log failure, and
a restart from disk compared with a model."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pykka
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actors
from persistence import (
    WAL_DIR,
    Caller,
    DbBinaryNodeError,
    DbDump,
    DbError,
    DbExists,
    DbFlusher,
    DbFlushError,
    DbInject,
    DbList,
    DbRead,
    DbReadBinary,
    DbRm,
    DbStatus,
    DbStore,
    DbTree,
    DbWrite,
    FlushNow,
    FlushResult,
    GetDbStatus,
    JsonFormatError,
    Reload,
    WalError,
    WalWriter,
    WatchChanges,
    WriteOp,
    commit,
    current_store,
    encode_record,
    replay,
)
from persistence._flusher import sibling
from persistence._jsonfmt import dumps_pretty, loads
from persistence._tree import PLACEMENTS, Node
from supervision import (
    ChildKind,
    ChildSpec,
    EventLog,
    Strategy,
    Supervisor,
    SupFlags,
    start_actor,
)
from tests.helpers import wait_until

STORE = "/persistence/store"
FLUSHER = "/persistence/flusher"
T = 5.0


class Fsync:
    """os.fsync that fails while ``failures`` > 0 (counting down), after ``skip`` more calls."""

    def __init__(self) -> None:
        self.failures = 0
        self.skip = 0

    def __call__(self, fd: int) -> None:
        if self.failures > 0 and self.skip > 0:
            self.skip -= 1
        elif self.failures > 0:
            self.failures -= 1
            raise OSError(5, "Input/output error")
        os.fsync(fd)


class Db:
    """A persistence subtree (store and flusher) under a root supervisor."""

    def __init__(self, root: Path, interval: float = 0.0, fsync: Fsync | None = None,
                 flusher_fsync: Fsync | None = None) -> None:
        self.root = root
        self.events = EventLog()
        store_kw: dict[str, Any] = {"fsync": fsync} if fsync else {}
        flusher_kw: dict[str, Any] = {"fsync": flusher_fsync} if flusher_fsync else {}
        specs = [
            ChildSpec("store", start_actor(DbStore, str(root), **store_kw), shutdown=30.0),
            ChildSpec("flusher", start_actor(DbFlusher, interval=interval, **flusher_kw),
                      shutdown=30.0),
        ]
        persistence = ChildSpec(
            "persistence",
            start_actor(Supervisor, SupFlags(Strategy.REST_FOR_ONE, intensity=5, period=10),
                        specs), kind=ChildKind.SUPERVISOR)
        self.ref: pykka.ActorRef[Any] = Supervisor.start_root(
            SupFlags(Strategy.ONE_FOR_ONE, intensity=0), [persistence], events=self.events)

    def ask(self, msg: Any) -> Any:
        return actors.ask(STORE, msg, timeout=T)

    def commit(self, msg: DbWrite | DbInject | DbRm) -> None:
        commit(STORE, msg, timeout=T)

    def flush(self) -> FlushResult:
        result: FlushResult = actors.ask(FLUSHER, FlushNow(), timeout=T)
        return result

    def status(self) -> DbStatus:
        status: DbStatus = self.ask(GetDbStatus())
        return status

    def stop(self) -> None:
        sup = actors.actor_of(self.ref)
        sup.request_stop()
        assert sup.wait_dead(30)


@pytest.fixture
def db_factory(tmp_path: Path) -> Iterator[Callable[..., Db]]:
    started: list[Db] = []

    def make(**kwargs: Any) -> Db:
        db = Db(tmp_path / "db", **kwargs)
        started.append(db)
        return db

    yield make
    for db in started:
        if actors.actor_of(db.ref).thread_alive:
            db.stop()


def segments(root: Path) -> list[str]:
    return sorted(p.name for p in (root / WAL_DIR).iterdir() if p.name.endswith(".wal"))


def manifests(root: Path) -> list[str]:
    return sorted(p.name for p in (root / WAL_DIR).iterdir() if ".flush" in p.name)


# ------------------------------------------------------------------ semantics through messages


def test_reads_and_writes_through_the_mailbox(db_factory: Callable[..., Db]) -> None:
    db = db_factory()
    db.commit(DbWrite("/a/b", "x"))
    db.commit(DbInject("/vm/u1", '{"name": "n", "n": 5, "f": 1.5, "t": true, "l": [1]}'))
    assert db.ask(DbRead("a//b/")) == "x"
    assert [db.ask(DbRead(f"/vm/u1/{k}")) for k in ("n", "f", "t", "l", "zz")] == \
        ["5", "1.500000", "true", "", ""]
    assert db.ask(DbList("/")) == ["a", "vm"]
    assert db.ask(DbExists("/vm/u1")) is True
    assert db.ask(DbDump("/a")) == '{\n  "b": "x"\n}\n'
    db.commit(DbWrite("/a", "ignored"))  # interior node: silently ignored
    assert db.ask(DbRead("/a")) == ""
    db.commit(DbRm("/a/b"))
    assert db.ask(DbDump("/a")) == "{ }\n"


def test_refusals_raise_to_the_asker_and_change_nothing(db_factory: Callable[..., Db]) -> None:
    db = db_factory()
    with pytest.raises(JsonFormatError, match="line 1"):
        db.ask(DbInject("/a", "{nope"))
    with pytest.raises(DbError, match="exceeds the limit"):
        db.ask(DbWrite("/a", "x" * (1 << 20 + 1)))
    with pytest.raises(DbError, match="not a binary node"):
        db.ask(DbReadBinary("/a"))
    assert db.ask(DbDump("/")) == "null\n"
    assert db.status().last_seq == 0


def test_a_caller_is_confined_to_its_domstore(db_factory: Callable[..., Db]) -> None:
    db = db_factory()
    guest = Caller(3, "u3")
    db.commit(DbWrite("/../x", "1", caller=guest))
    assert db.ask(DbList("/dom-store/u3")) == [".."]
    assert db.ask(DbRead("/../x", caller=guest)) == "1"
    with pytest.raises(DbError, match="failed to resolve domid 4 to uuid"):
        db.ask(DbRead("/x", caller=Caller(4)))


def test_current_store_outside_a_store_thread() -> None:
    with pytest.raises(RuntimeError, match="not running in a db store's thread"):
        current_store()


def test_sibling_names() -> None:
    assert sibling("/persistence/flusher", "store") == "/persistence/store"
    assert sibling("/flusher", "store") == "/store"
    with pytest.raises(ValueError, match="pass the store's name"):
        sibling("DbFlusher-1234", "store")


# ------------------------------------------------------------------ durability and write-behind


def test_a_write_is_in_the_log_when_acknowledged(db_factory: Callable[..., Db]) -> None:
    db = db_factory()
    db.flush()  # after the flusher's start-up flush (its mailbox keeps order): none runs later
    future: Future[object] = db.ask(DbWrite("/k", "v"))
    future.result(T)
    records = replay(str(db.root / WAL_DIR)).records
    assert [(r.op.path, getattr(r.op, "value", None)) for r in records] == [(("k",), "v")]
    assert not (db.root / "db").exists() or "k" not in (db.root / "db").read_text()


def test_a_change_that_changes_nothing_is_not_logged(db_factory: Callable[..., Db]) -> None:
    db = db_factory()
    db.commit(DbWrite("/k", "v"))
    db.commit(DbWrite("/k", "v"))
    db.commit(DbRm("/missing"))
    assert db.status().last_seq == 1


def test_flush_writes_only_dirty_files_and_truncates_the_log(
        db_factory: Callable[..., Db]) -> None:
    db = db_factory()
    db.flush()  # after the start-up flush: the writes below are all the next flush's
    db.commit(DbWrite("/vm/a/name", "A"))
    db.commit(DbWrite("/vm/b/name", "B"))
    db.commit(DbWrite("/top", "t"))
    first = db.flush()
    assert (first.written, first.removed) == (3, 0)
    assert segments(db.root) == segments(db.root)[-1:]  # only the current segment is left
    inode_b = (db.root / "vms" / "b.db").stat().st_ino
    inode_db = (db.root / "db").stat().st_ino
    db.commit(DbWrite("/vm/a/name", "A2"))
    assert (db.flush().written, db.flush().written) == (1, 0)
    assert (db.root / "vms" / "b.db").stat().st_ino == inode_b
    assert (db.root / "db").stat().st_ino == inode_db
    assert (db.root / "vms" / "a.db").read_text() == '{\n  "name": "A2"\n}\n'


def test_the_file_of_a_removed_vm_is_deleted(db_factory: Callable[..., Db]) -> None:
    db = db_factory()
    db.commit(DbWrite("/vm/a/name", "A"))
    db.commit(DbWrite("/vm/b/name", "B"))
    db.flush()
    db.commit(DbRm("/vm/a"))
    assert db.flush().removed == 1
    assert sorted(os.listdir(db.root / "vms")) == ["b.db"]
    db.commit(DbRm("/vm"))
    db.flush()
    assert os.listdir(db.root / "vms") == []


def test_the_flusher_runs_on_its_timer(db_factory: Callable[..., Db]) -> None:
    db = db_factory(interval=0.05)
    db.commit(DbWrite("/vm/a/name", "A"))
    wait_until(lambda: (db.root / "vms" / "a.db").exists() and db.status().dirty_files == 0)


def test_orderly_stop_flushes(db_factory: Callable[..., Db]) -> None:
    db = db_factory()
    db.commit(DbWrite("/vm/a/name", "A"))
    db.stop()
    assert json.loads((db.root / "vms" / "a.db").read_text()) == {"name": "A"}
    assert replay(str(db.root / WAL_DIR)).records == ()


def test_a_failed_flush_keeps_the_log_and_retries_the_files(
        db_factory: Callable[..., Db]) -> None:
    fsync = Fsync()
    db = db_factory(flusher_fsync=fsync)
    db.flush()
    db.commit(DbWrite("/vm/a/name", "A"))
    fsync.skip, fsync.failures = 2, 1  # the manifest and its directory pass, vms/a.db fails
    with pytest.raises(DbFlushError, match=r"vms/a\.db"):
        db.flush()
    assert len(replay(str(db.root / WAL_DIR)).records) == 1
    assert manifests(db.root) == ["00000000000000000002.flush"]  # kept: the flush is unfinished
    assert db.status().unconfirmed_files == 2  # vms/a.db, and db (/vm is new)
    db.commit(DbWrite("/top", "t"))
    result = db.flush()
    assert result.written == 2  # the failed files again (db holds /top too)
    assert json.loads((db.root / "vms" / "a.db").read_text()) == {"name": "A"}
    assert replay(str(db.root / WAL_DIR)).records == ()
    assert manifests(db.root) == []  # the new flush's replaced it, then was removed


def test_a_failed_manifest_writes_no_file_and_keeps_the_log(
        db_factory: Callable[..., Db]) -> None:
    fsync = Fsync()
    db = db_factory(flusher_fsync=fsync)
    db.flush()
    db.commit(DbWrite("/vm/a/name", "A"))
    fsync.failures = 1  # the manifest's own fsync
    with pytest.raises(WalError, match=r"cannot write the flush manifest.*Input/output error"):
        db.flush()
    assert not (db.root / "vms").exists()
    assert len(replay(str(db.root / WAL_DIR)).records) == 1
    assert db.flush().written == 2
    assert manifests(db.root) == [] and replay(str(db.root / WAL_DIR)).records == ()


def test_a_crash_after_a_partly_written_flush_keeps_the_key_order(
        db_factory: Callable[..., Db]) -> None:
    """db is written, vms/u1.db fails, the store dies: the files hold part of the log. The
    manifest's contents stand in for the files and only later records are replayed (replaying
    all of them moved b after a)."""
    fsync = Fsync()
    db = db_factory(flusher_fsync=fsync)
    db.flush()
    for msg in (DbWrite("/b", ""), DbRm("/b"), DbWrite("/b", ""), DbWrite("/a", ""),
                DbWrite("/vm/u1/k", "v")):
        db.commit(msg)
    fsync.skip, fsync.failures = 2, 1  # the manifest passes, vms/u1.db fails, db is written
    with pytest.raises(DbFlushError, match=r"vms/u1\.db"):
        db.flush()
    assert json.loads((db.root / "db").read_text()) == {"b": "", "a": ""}
    assert len(replay(str(db.root / WAL_DIR)).records) == 5
    old = actors.resolve(STORE)
    actors.tell(STORE, actors.InjectCrash())
    wait_until(lambda: _try(lambda: actors.resolve(STORE) != old and db.ask(GetDbStatus())))
    assert db.ask(DbList("/")) == ["b", "a", "vm"]
    assert db.ask(DbRead("/vm/u1/k")) == "v"
    assert db.status().problems == ()
    wait_until(lambda: manifests(db.root) == [] and (db.root / "vms" / "u1.db").exists())


def test_a_corrupt_manifest_is_reported_at_start_and_the_log_replayed(
        tmp_path: Path, db_factory: Callable[..., Db]) -> None:
    wal = tmp_path / "db" / WAL_DIR
    writer = WalWriter(str(wal))
    writer.append([encode_record(1, WriteOp(("k",), "v"))])
    writer.close()
    (wal / "00000000000000000003.flush").write_bytes(b"garbage")
    db = db_factory()
    assert db.ask(DbRead("/k")) == "v"
    problems = db.status().problems
    assert len(problems) == 1 and "00000000000000000003.flush" in problems[0]
    assert "moved aside" in problems[0] and "whole log is replayed" in problems[0]
    reported = [e for e in db.events.tail(100) if e.kind == "db_problem"]
    assert len(reported) == 1 and "flush manifest" in reported[0].detail["problem"]
    set_aside = [p for p in os.listdir(wal) if ".corrupt-" in p]
    assert len(set_aside) == 1 and set_aside[0].startswith("00000000000000000003.flush.corrupt-")


def test_a_log_failure_fails_the_writer_and_restarts_the_store_from_disk(
        db_factory: Callable[..., Db]) -> None:
    fsync = Fsync()
    db = db_factory(fsync=fsync)
    db.commit(DbWrite("/kept", "1"))
    db.flush()  # the flusher's start-up flush is done: the next fsync is the log append's
    old = actors.resolve(STORE)
    fsync.failures = 1
    with pytest.raises(WalError, match="Input/output error"):
        db.commit(DbWrite("/lost", "2"))
    wait_until(lambda: STORE in actors.names() and actors.resolve(STORE) != old)
    assert wait_until(lambda: _try(lambda: db.ask(DbRead("/kept")))) == "1"
    assert db.ask(DbRead("/lost")) in ("", "2")  # never acknowledged: either is allowed
    assert any(e.kind == "crashed" and e.path == STORE for e in db.events.tail(100))


def _try(func: Callable[[], Any]) -> Any:
    try:
        return func()
    except (actors.NoSuchActor, pykka.ActorDeadError):
        return None


# ------------------------------------------------------------------ start and reload


ORIGINAL_DB = """\
{
  "db-version": "42",
  "xenmgr": {
    "iso-path": "\\/storage\\/isos",
    "empty": { },
    "list": []
  }
}
"""
ORIGINAL_VM = """\
{
  "uuid": "00000000-0000-0000-0000-000000000001",
  "name": "uivm",
  "config": {
    "memory": "256",
    "flags": { }
  }
}
"""


def test_an_original_format_tree_loads_and_untouched_files_stay_byte_identical(
        tmp_path: Path, db_factory: Callable[..., Db]) -> None:
    root = tmp_path / "db"
    (root / "vms").mkdir(parents=True)
    (root / "db").write_text(ORIGINAL_DB)
    vm = root / "vms" / "00000000-0000-0000-0000-000000000001.db"
    vm.write_text(ORIGINAL_VM)
    (root / "vms" / "cert.pem").write_bytes(b"\x00binary")
    db = db_factory()
    assert db.ask(DbRead("/xenmgr/iso-path")) == "/storage/isos"
    assert db.ask(DbRead("/vm/00000000-0000-0000-0000-000000000001/config/memory")) == "256"
    assert db.ask(DbRead("/vm/cert.pem")) == f"file:{root / 'vms' / 'cert.pem'}"
    assert db.ask(DbReadBinary("/vm/cert.pem")) == b"\x00binary"
    with pytest.raises(DbBinaryNodeError):
        db.ask(DbWrite("/vm/cert.pem", "x"))
    db.commit(DbWrite("/xenmgr/new", "a/b"))
    db.flush()
    assert vm.read_text() == ORIGINAL_VM
    assert (root / "db").read_text() == ORIGINAL_DB.replace(
        '    "list": []\n', '    "list": [],\n    "new": "a\\/b"\n')
    assert db.status().problems == ()


def test_a_corrupt_file_is_set_aside_and_reported_and_the_rest_loads(
        tmp_path: Path, db_factory: Callable[..., Db]) -> None:
    root = tmp_path / "db"
    (root / "vms").mkdir(parents=True)
    (root / "db").write_text('{\n  "a": "1"\n}\n')
    (root / "vms" / "good.db").write_text('{\n  "name": "g"\n}\n')
    (root / "vms" / "bad.db").write_text('{\n  "name": ')
    db = db_factory()
    assert db.ask(DbList("/vm")) == ["good"]
    assert db.ask(DbRead("/a")) == "1"
    problems = db.status().problems
    assert len(problems) == 1 and "bad.db" in problems[0] and "moved aside" in problems[0]
    assert any(n.startswith("bad.db.corrupt-") for n in os.listdir(root / "vms"))
    reported = [e for e in db.events.tail(100) if e.kind == "db_problem"]
    assert len(reported) == 1 and reported[0].path == STORE
    assert "bad.db" in reported[0].detail["problem"]


def test_a_leftover_temporary_file_is_recovered(
        tmp_path: Path, db_factory: Callable[..., Db]) -> None:
    root = tmp_path / "db"
    (root / "vms").mkdir(parents=True)
    (root / "db").write_text('{\n  "v": "old"\n}\n')
    (root / "db.tmp").write_text('{\n  "v": "new"\n}\n')  # complete: the newest write
    (root / "vms" / "a.db").write_text('{\n  "v": "a"\n}\n')
    (root / "vms" / "a.db.tmp").write_text('{\n  "v": "tor')  # torn: dropped
    (root / "vms" / "b.db.tmp").write_text('{\n  "v": "b"\n}\n')  # only the temporary
    db = db_factory()
    assert [db.ask(DbRead(p)) for p in ("/v", "/vm/a/v", "/vm/b/v")] == ["new", "a", "b"]
    assert sorted(os.listdir(root / "vms")) == ["a.db", "b.db"]
    assert not (root / "db.tmp").exists()
    assert db.status().problems == ()


def test_reload_flushes_then_rereads_and_keeps_acknowledged_writes(
        db_factory: Callable[..., Db]) -> None:
    db = db_factory()
    db.commit(DbWrite("/vm/a/name", "A"))
    db.flush()
    (db.root / "vms" / "a.db").write_text('{\n  "name": "edited by hand"\n}\n')
    db.commit(DbWrite("/later", "kept"))
    problems = actors.ask(FLUSHER, Reload(), timeout=T)
    assert problems == ()
    assert db.ask(DbRead("/vm/a/name")) == "edited by hand"
    assert db.ask(DbRead("/later")) == "kept"
    assert db.status().reloads == 1


# ------------------------------------------------------------------ restart from disk vs a model


def canonical(root: Node) -> str:
    """What survives a restart: /vm and /dom-store move to the end, their children sorted."""
    if not isinstance(root, dict):
        return dumps_pretty(root)
    out = {name: child for name, child in root.items() if name not in PLACEMENTS}
    for name in PLACEMENTS:
        if name in root:
            child = root[name]
            out[name] = dict(sorted(child.items())) if isinstance(child, dict) else child
    return dumps_pretty(out)


PATHS = st.lists(st.sampled_from(["a", "b", "vm", "dom-store", "u1", "u2"]), max_size=3).map(
    lambda segs: "/" + "/".join(segs))
VALUES = st.recursive(st.none() | st.text("xyz", max_size=2) | st.integers(0, 9),
                      lambda kids: st.dictionaries(st.sampled_from(["a", "u1", "vm"]), kids,
                                                   max_size=3), max_leaves=5)
OPS = st.lists(st.one_of(
    st.tuples(st.just("write"), PATHS, st.text("xy", max_size=2)),
    st.tuples(st.just("inject"), PATHS, VALUES.map(json.dumps)),
    st.tuples(st.just("rm"), PATHS, st.none()),
    st.tuples(st.just("flush"), st.just("/"), st.none()),
), max_size=12)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, ending=st.sampled_from(["stop", "crash"]))
def test_restart_from_disk_matches_a_model(tmp_path: Path, ops: list[tuple[str, str, Any]],
                                           ending: str) -> None:
    root = tmp_path / f"model-{os.urandom(4).hex()}"
    db = Db(root)
    model = DbTree()
    try:
        for kind, path, arg in ops:
            if kind == "flush":
                db.flush()
            elif kind == "write":
                model.write(path, arg)
                db.commit(DbWrite(path, arg))
            elif kind == "inject":
                model.inject(path, arg)
                db.commit(DbInject(path, arg))
            else:
                model.rm(path)
                db.commit(DbRm(path))
        if ending == "crash":  # the store dies without flushing; its restart replays the log
            old = actors.resolve(STORE)
            actors.tell(STORE, actors.InjectCrash())
            wait_until(lambda: _try(lambda: actors.resolve(STORE) != old
                                    and db.ask(GetDbStatus())))
            dumped = db.ask(DbDump("/"))
            assert canonical(loads(dumped)) == canonical(model.root)
    finally:
        db.stop()
    again = Db(root)
    try:
        assert canonical(loads(again.ask(DbDump("/")))) == canonical(model.root)
        assert again.status().problems == ()
    finally:
        again.stop()


def test_watchers_hear_every_change_before_it_is_acknowledged(
        db_factory: Callable[..., Db]) -> None:
    db = db_factory()
    heard: list[str] = []
    actors.tell(STORE, WatchChanges("me", heard.append))
    db.commit(DbWrite("/vm/u1/name", "n"))
    assert heard == ["/vm/u1/name"]  # already there when the write is acknowledged
    db.commit(DbWrite("/vm/u1/name", "n"))  # changes nothing: not heard
    db.commit(DbRm("/missing"))
    db.commit(DbInject("/vm/u2", '{"a": "b"}'))
    db.commit(DbRm("/vm/u1"))
    assert heard == ["/vm/u1/name", "/vm/u2", "/vm/u1"]
    actors.ask(FLUSHER, Reload(), timeout=T)
    assert heard[-1] == "/"
    actors.tell(STORE, WatchChanges("me", None))
    db.commit(DbWrite("/k", "v"))
    assert heard[-1] == "/"
