"""Resume mode in one process: the restarted instance gets the last snapshot."""

from __future__ import annotations

from pathlib import Path

import actors
from actors import InjectCrash
from supervision import (
    EventLog,
    MemorySnapshotStore,
    RestartMode,
    SnapshotStore,
    StartChild,
    Strategy,
    Supervisor,
    SupFlags,
    TerminateChild,
)
from tests.supervision.workers import GetCount, Incr, sup, worker

T = 5.0


def crash_and_wait(events: EventLog, path: str) -> None:
    seq = events.last_seq
    actors.tell(path, InjectCrash())
    assert events.wait_for(lambda e: e.kind == "restarted" and e.path == path, T, since=seq)


def test_resume_child_gets_the_last_snapshot_fresh_child_does_not(tmp_path: Path) -> None:
    events = EventLog()
    ref = Supervisor.start_root(
        SupFlags(intensity=5),
        [worker("r", mode=RestartMode.RESUME), worker("f")],
        events=events, snapshot_dir=tmp_path)
    try:
        for _ in range(3):
            actors.ask("/r", Incr(), timeout=T)
            actors.ask("/f", Incr(), timeout=T)
        crash_and_wait(events, "/r")
        crash_and_wait(events, "/f")
        assert actors.ask("/r", GetCount(), timeout=T) == 3
        assert actors.ask("/f", GetCount(), timeout=T) == 0
        started = [e for e in events.tail(50) if e.kind == "started" and e.path == "/r"]
        assert [e.detail["resumed"] for e in started] == [False, True]
    finally:
        ref.stop(block=True, timeout=10)


def test_dynamic_resume_children_come_back_and_terminate_forgets(tmp_path: Path) -> None:
    flags = SupFlags(Strategy.SIMPLE_ONE_FOR_ONE, intensity=5)
    spec = [sup("vms", flags, [worker("vm", mode=RestartMode.RESUME)])]
    ref = Supervisor.start_root(SupFlags(), spec, snapshot_dir=tmp_path)
    try:
        for name in ("a", "b", "c"):
            actors.ask("/vms", StartChild(name), timeout=T)
            actors.ask(f"/vms/{name}", Incr(), timeout=T)
        actors.ask("/vms/b", Incr(), timeout=T)
        actors.ask("/vms", TerminateChild("c"), timeout=T)
    finally:
        ref.stop(block=True, timeout=10)
    # a new tree over the same directory: a and b resume, c was removed on purpose
    ref = Supervisor.start_root(SupFlags(), spec, snapshot_dir=tmp_path)
    try:
        assert actors.ask("/vms/a", GetCount(), timeout=T) == 1
        assert actors.ask("/vms/b", GetCount(), timeout=T) == 2
        try:
            actors.resolve("/vms/c")
            raise AssertionError("c should not come back")
        except actors.NoSuchActor:
            pass
    finally:
        ref.stop(block=True, timeout=10)


def test_corrupt_snapshot_is_set_aside(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.save("/x", {"count": 4})
    assert store.load("/x")["state"] == {"count": 4}
    for file in tmp_path.glob("*.snap[01]"):  # both slots
        file.write_bytes(b"\x92\x01garbage")
    assert store.load("/x") is None
    assert len(list(tmp_path.glob("*.snap[01].corrupt-*"))) == 2
    assert not list(tmp_path.glob("*.snap[01]"))


def test_unchanged_snapshot_is_not_rewritten(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    assert store.save("/x", {"a": 1}) is True
    assert store.save("/x", {"a": 1}) is False
    assert store.save("/x", {"a": 2}) is True
    mem = MemorySnapshotStore()
    assert mem.save("/v/1", {"a": 1}, ("arg",)) is True
    assert mem.save("/v/1", {"a": 1}) is False
    assert [r["args"] for r in mem.children_of("/v")] == [("arg",)]


def test_leftover_temporary_file_is_removed(tmp_path: Path) -> None:
    (tmp_path / "%2Fx.snap.tmp").write_bytes(b"partial")
    SnapshotStore(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))
