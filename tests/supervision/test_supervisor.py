"""The supervisor with real actors: strategies, restart types, escalation, shutdown, dynamic."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

import actors
from actors import Crashed, Escalated, InjectCrash, Killed, StartFailed
from supervision import (
    AddChild,
    Backoff,
    ChildSpec,
    CountChildren,
    DeleteChild,
    EventLog,
    Restart,
    RestartChild,
    StartChild,
    Strategy,
    Supervisor,
    SupervisorError,
    SupervisorStartError,
    SupFlags,
    TerminateChild,
    WhichChildren,
    describe_tree,
    render_tree,
    start_actor,
)
from tests.helpers import wait_until
from tests.supervision.workers import GetCount, Incr, Journal, Stop, Worker, sup, worker

T = 5.0


class Tree:
    """A running root supervisor with helpers; stopped by the fixture."""

    def __init__(self) -> None:
        self.ref: pykka.ActorRef[Supervisor] | None = None
        self.escalations: list[Any] = []

    def start(self, flags: SupFlags, specs: list[ChildSpec], **kw: Any) -> Supervisor:
        self.events = EventLog()
        self.ref = Supervisor.start_root(flags, specs, events=self.events,
                                         on_escalate=self.escalations.append, **kw)
        actor = actors.actor_of(self.ref)
        assert actor is not None
        self.sup = actor
        return actor

    def urn(self, path: str) -> str:
        return actors.resolve(path).actor_urn

    def crash(self, path: str) -> int:
        """Crash the actor at ``path``; returns the event-log position before the crash."""
        seq = self.events.last_seq
        actors.tell(path, InjectCrash())
        return seq

    def wait_restarted(self, path: str, since: int) -> None:
        """Wait for the supervisor to report ``path`` restarted after event ``since``."""
        event = self.events.wait_for(lambda e: e.kind == "restarted" and e.path == path, T,
                                     since=since)
        assert event is not None, f"{path} was not restarted"

    def stop(self) -> None:
        if self.ref is not None and self.ref.is_alive():
            self.ref.stop(block=True, timeout=10)


@pytest.fixture
def tree() -> Iterator[Tree]:
    t = Tree()
    yield t
    t.stop()


def test_ordered_start_and_reverse_stop(tree: Tree) -> None:
    j = Journal()
    tree.start(SupFlags(), [worker("a", j), sup("s", SupFlags(), [worker("b", j), worker("c", j)]),
                            worker("d", j)])
    assert j.of("start") == ["/a", "/s/b", "/s/c", "/d"]
    tree.stop()
    assert j.of("stop") == ["/d", "/s/c", "/s/b", "/a"]


def test_one_for_one_restarts_only_the_failed_child(tree: Tree) -> None:
    tree.start(SupFlags(intensity=5), [worker("a"), worker("b"), worker("c")])
    b_urn, c_urn = tree.urn("/b"), tree.urn("/c")
    old = tree.crash("/a")
    tree.wait_restarted("/a", old)
    assert (tree.urn("/b"), tree.urn("/c")) == (b_urn, c_urn)


def test_one_for_all_restarts_everyone_in_order(tree: Tree) -> None:
    j = Journal()
    tree.start(SupFlags(Strategy.ONE_FOR_ALL, intensity=5),
               [worker("a", j), worker("b", j), worker("c", j)])
    j.clear()
    old = tree.crash("/b")
    tree.wait_restarted("/c", old)
    wait_until(lambda: len(j.of("start")) == 3)
    assert j.of("stop") == ["/c", "/a"]  # siblings stopped in reverse order
    assert j.of("start") == ["/a", "/b", "/c"]


def test_rest_for_one_restarts_the_failed_and_later_children(tree: Tree) -> None:
    j = Journal()
    tree.start(SupFlags(Strategy.REST_FOR_ONE, intensity=5),
               [worker("a", j), worker("b", j), worker("c", j), worker("d", j)])
    a_urn = tree.urn("/a")
    j.clear()
    old = tree.crash("/b")
    tree.wait_restarted("/d", old)
    wait_until(lambda: len(j.of("start")) == 3)
    assert tree.urn("/a") == a_urn
    assert j.of("stop") == ["/d", "/c"]
    assert j.of("start") == ["/b", "/c", "/d"]


def test_temporary_sibling_is_not_restarted_under_one_for_all(tree: Tree) -> None:
    tree.start(SupFlags(Strategy.ONE_FOR_ALL, intensity=5),
               [worker("a"), worker("t", restart=Restart.TEMPORARY)])
    old = tree.crash("/a")
    tree.wait_restarted("/a", old)
    ids = [c.id for c in tree.sup.children()]
    assert ids == ["a"]


@pytest.mark.parametrize(
    ("restart", "how", "restarted"),
    [
        (Restart.PERMANENT, "normal", True),
        (Restart.PERMANENT, "crash", True),
        (Restart.TRANSIENT, "normal", False),
        (Restart.TRANSIENT, "crash", True),
        (Restart.TEMPORARY, "normal", False),
        (Restart.TEMPORARY, "crash", False),
    ],
)
def test_restart_type_matrix(tree: Tree, restart: Restart, how: str, restarted: bool) -> None:
    tree.start(SupFlags(intensity=5), [worker("w", restart=restart)])
    seq = tree.events.last_seq
    actors.tell("/w", Stop() if how == "normal" else InjectCrash())
    kind = "exited" if how == "normal" else "crashed"
    assert tree.events.wait_for(lambda e: e.kind == kind, T, since=seq)
    if restarted:
        tree.wait_restarted("/w", seq)
    else:
        assert tree.events.wait_for(lambda e: e.kind == "started", 0.2, since=seq) is None
        with pytest.raises(actors.NoSuchActor):
            actors.resolve("/w")
        present = [c.id for c in tree.sup.children()]
        assert present == ([] if restart is Restart.TEMPORARY else ["w"])


def test_escalation_when_intensity_is_exceeded(tree: Tree) -> None:
    j = Journal()
    tree.start(SupFlags(intensity=2, period=10), [worker("a", j), worker("b", j)])
    for _ in range(2):
        tree.wait_restarted("/a", tree.crash("/a"))
    tree.crash("/a")
    wait_until(lambda: tree.escalations, timeout=T)
    assert isinstance(tree.escalations[0], Escalated)
    assert not tree.ref.is_alive()
    assert "/b" in j.of("stop")
    kinds = [e.kind for e in tree.events.tail(100)]
    assert "escalated" in kinds


def test_escalation_up_three_levels(tree: Tree) -> None:
    """A storm at the bottom escalates through two intermediate supervisors to the root."""
    bottom = sup("l3", SupFlags(intensity=0), [worker("w")])
    middle = sup("l2", SupFlags(intensity=0), [bottom])
    top = sup("l1", SupFlags(intensity=0), [middle])
    tree.start(SupFlags(intensity=0), [top, worker("bystander")])
    tree.crash("/l1/l2/l3/w")
    wait_until(lambda: tree.escalations, timeout=T)
    escalated = [e.path for e in tree.events.tail(200) if e.kind == "escalated"]
    assert escalated == ["/l1/l2/l3", "/l1/l2", "/l1", "/"]


def test_escalation_is_contained_by_a_tolerant_parent(tree: Tree) -> None:
    inner = sup("inner", SupFlags(intensity=0), [worker("w")])
    tree.start(SupFlags(intensity=5), [inner, worker("other")])
    other = tree.urn("/other")
    tree.wait_restarted("/inner", tree.crash("/inner/w"))
    actors.resolve("/inner/w")
    assert tree.urn("/other") == other
    assert not tree.escalations
    crashed = [e for e in tree.events.tail(100) if e.kind == "crashed" and e.path == "/inner"]
    assert crashed and crashed[0].detail["reason"] == "escalated"


def test_shutdown_timeout_kills_a_child_that_ignores_stop(tree: Tree) -> None:
    release = threading.Event()
    j = Journal()
    tree.start(SupFlags(), [worker("ok", j), worker("stubborn", j, shutdown=0.2,
                                                      ignore_stop=release)])
    stubborn = actors.actor_of(actors.resolve("/stubborn"))
    tree.stop()
    assert j.of("stop") == ["/stubborn", "/ok"]  # reverse order, and it went on after the kill
    assert isinstance(stubborn.exit_reason, Killed)
    assert any(e.kind == "killed" and e.path == "/stubborn" for e in tree.events.tail(50))
    release.set()
    wait_until(lambda: not stubborn.thread_alive)


@dataclass(frozen=True, slots=True)
class Hold:
    release: threading.Event


class Holder(actors.Actor):
    """Holds a resource its replacement needs; blocks in a C-level wait on ``Hold``."""

    order: list[str] = []

    def on_start(self) -> None:
        Holder.order.append("start")

    @actors.handles(Hold)
    def _hold(self, msg: Hold) -> None:
        msg.release.wait(30)

    def on_killed(self) -> None:
        Holder.order.append("released")


def test_a_killed_childs_replacement_waits_for_it_to_be_let_go(tree: Tree) -> None:
    Holder.order = []
    tree.start(SupFlags(intensity=5), [ChildSpec("h", start_actor(Holder))])
    _kill_holding(tree, stuck=False)  # let go: it releases, then the replacement starts
    _kill_holding(tree, stuck=True)  # stuck for good: the replacement starts after 2 s anyway
    assert Holder.order == ["start", "released", "start", "start", "released"]


def test_a_manual_restart_of_a_killed_child_starts_it_once_let_go(tree: Tree) -> None:
    Holder.order = []
    tree.start(SupFlags(), [ChildSpec("h", start_actor(Holder), shutdown=0.2)])
    release = threading.Event()
    old = actors.actor_of(actors.resolve("/h"))
    old.actor_ref.tell(Hold(release))  # ignores its stop: killed after 0.2 s
    wait_until(lambda: old.stats().current_message == "Hold", timeout=T)
    timer = threading.Timer(0.6, release.set)
    timer.start()
    try:
        actors.ask("/", RestartChild("h"), timeout=T)
    finally:
        timer.cancel()
        release.set()
    assert Holder.order == ["start", "released", "start"]  # not started before it let go
    assert isinstance(old.exit_reason, Killed)


def _kill_holding(tree: Tree, *, stuck: bool) -> None:
    release = threading.Event()
    old = actors.actor_of(actors.resolve("/h"))
    old.actor_ref.tell(Hold(release))
    wait_until(lambda: old.stats().current_message == "Hold", timeout=T)
    seq = tree.events.last_seq
    old.kill()  # its thread is in a C-level wait: not interrupted
    assert tree.events.wait_for(lambda e: e.kind == "restarted" and e.path == "/h", 0.3,
                                since=seq) is None  # no replacement while it holds on
    if not stuck:
        release.set()
    tree.wait_restarted("/h", seq)
    release.set()
    wait_until(lambda: not old.thread_alive, timeout=T)


def test_brutal_kill(tree: Tree) -> None:
    tree.start(SupFlags(), [worker("w", shutdown=0.0)])
    w = actors.actor_of(actors.resolve("/w"))
    actors.ask("/", TerminateChild("w"), timeout=T)
    assert isinstance(w.exit_reason, Killed)


def test_child_failing_to_start_fails_the_supervisor_start() -> None:
    j = Journal()
    with pytest.raises(SupervisorStartError, match="'b' failed to start: RuntimeError"):
        Supervisor.start_root(SupFlags(), [worker("a", j), worker("b", j, fail_start=True),
                                           worker("c", j)])
    assert j.of("start") == ["/a"]
    assert j.of("stop") == ["/a"]


def test_invalid_specs_fail_the_start() -> None:
    with pytest.raises(SupervisorStartError, match="duplicate_id"):
        Supervisor.start_root(SupFlags(), [worker("a"), worker("a")])


def test_failed_restart_is_retried_and_counted(tree: Tree) -> None:
    """A child whose restart fails is retried through a self-message until intensity."""
    fail = {"on": False}

    class Flaky(Worker):
        def on_start(self) -> None:
            if fail["on"]:
                raise RuntimeError("still broken")
            super().on_start()

    tree.start(SupFlags(intensity=3, period=10),
               [ChildSpec("f", start_actor(Flaky)), worker("other")])
    fail["on"] = True
    tree.crash("/f")
    wait_until(lambda: tree.escalations, timeout=T)
    failed = [e for e in tree.events.tail(100) if e.kind == "start_failed"]
    assert len(failed) >= 2


def test_backoff_delays_restarts_without_blocking_requests(tree: Tree) -> None:
    tree.start(SupFlags(intensity=10, period=10, backoff=Backoff(0.05, 1.0, 2.0)),
               [worker("a")])
    for _ in range(3):
        tree.wait_restarted("/a", tree.crash("/a"))
    delays = [e.detail["delay"] for e in tree.events.tail(100) if e.kind == "restarting"]
    assert delays == [0.05, 0.1, 0.2]
    # while a restart is pending, the supervisor still answers
    tree.crash("/a")
    wait_until(lambda: tree.sup.children()[0].status == "restarting")
    counts = actors.ask("/", CountChildren(), timeout=T)
    assert counts["active"] == 0 and counts["specs"] == 1


def test_simple_one_for_one_dynamic_children(tree: Tree) -> None:
    template = worker("vm", restart=Restart.TRANSIENT)
    tree.start(SupFlags(), [sup("vms", SupFlags(Strategy.SIMPLE_ONE_FOR_ONE, intensity=5),
                                [template])])
    for n in range(5):
        info = actors.ask("/vms", StartChild(f"vm{n}"), timeout=T)
        assert info.path == f"/vms/vm{n}" and info.status == "running"
    with pytest.raises(SupervisorError, match="already exists"):
        actors.ask("/vms", StartChild("vm0"), timeout=T)
    old = tree.crash("/vms/vm3")
    tree.wait_restarted("/vms/vm3", old)
    actors.ask("/vms", TerminateChild("vm1"), timeout=T)
    actors.tell("/vms/vm2", Stop())  # transient + normal exit: removed
    wait_until(lambda: len(actors.ask("/vms", WhichChildren(), timeout=T)) == 3)
    ids = [c.id for c in actors.ask("/vms", WhichChildren(), timeout=T)]
    assert ids == ["vm0", "vm3", "vm4"]
    with pytest.raises(SupervisorError, match="use StartChild"):
        actors.ask("/vms", AddChild(worker("x")), timeout=T)


def test_static_child_requests(tree: Tree) -> None:
    tree.start(SupFlags(), [worker("a")])
    actors.ask("/", AddChild(worker("b")), timeout=T)
    assert actors.ask("/b", GetCount(), timeout=T) == 0
    actors.ask("/", TerminateChild("b"), timeout=T)
    with pytest.raises(actors.NoSuchActor):
        actors.resolve("/b")
    with pytest.raises(SupervisorError, match="is running"):
        actors.ask("/", DeleteChild("a"), timeout=T)
    info = actors.ask("/", RestartChild("b"), timeout=T)
    assert info.status == "running"
    old = tree.urn("/a")
    actors.ask("/", RestartChild("a"), timeout=T)  # a running child: stop and start
    assert tree.urn("/a") != old
    actors.ask("/", TerminateChild("b"), timeout=T)
    actors.ask("/", DeleteChild("b"), timeout=T)
    assert [c.id for c in tree.sup.children()] == ["a"]
    with pytest.raises(SupervisorError, match="no child 'zz'"):
        actors.ask("/", TerminateChild("zz"), timeout=T)


def test_health_check_detects_a_thread_that_died_silently(tree: Tree) -> None:
    class Silent(Worker):
        """Simulates a thread that ends without reporting (no monitor call)."""

        def _finish(self) -> None:
            if getattr(self, "silent", False):
                return
            super()._finish()

    tree.start(SupFlags(intensity=5, health_interval=0.02), [ChildSpec("s", start_actor(Silent))])
    victim = actors.actor_of(actors.resolve("/s"))
    victim.silent = True
    old = tree.events.last_seq
    victim.actor_stopped.set()
    victim.actor_inbox.put(pykka._envelope.Envelope(actors.Ping()))
    wait_until(lambda: not victim.thread_alive)
    tree.wait_restarted("/s", old)
    crashed = [e for e in tree.events.tail(50) if e.kind == "crashed"]
    assert crashed[0].detail["reason"] == "threaddied"


def test_tree_view_and_rendering(tree: Tree) -> None:
    tree.start(SupFlags(intensity=3), [worker("a"), sup("s", SupFlags(Strategy.REST_FOR_ONE),
                                                        [worker("b")])])
    tree.wait_restarted("/s/b", tree.crash("/s/b"))
    view = describe_tree(tree.sup)
    assert [c["id"] for c in view["children"]] == ["a", "s"]
    sub = view["children"][1]["tree"]
    assert sub["strategy"] == "rest_for_one" and sub["restarts_in_window"] == 1
    assert sub["children"][0]["restarts"] == 1
    assert sub["children"][0]["last_exit"]["reason"] == "crashed"
    text = render_tree(view)
    assert "└── s  running" in text and "b  running" in text and "restarts=1" in text
    actors.encode(view)  # msgpack-able as the control socket needs


def test_start_failure_reason_reaches_the_event_log(tree: Tree) -> None:
    tree.start(SupFlags(Strategy.SIMPLE_ONE_FOR_ONE),
               [ChildSpec("vm", start_actor(Worker, None, fail_start=True))])
    with pytest.raises(SupervisorError, match="refusing to start"):
        actors.ask("/", StartChild("x"), timeout=T)
    failed = [e for e in tree.events.tail(10) if e.kind == "start_failed"]
    assert failed and "refusing to start" in failed[0].detail["error"]
    assert isinstance(StartFailed("x"), StartFailed) and isinstance(Crashed("x"), Crashed)


def test_incr_through_names_after_restart(tree: Tree) -> None:
    tree.start(SupFlags(intensity=5), [worker("c")])
    assert actors.ask("/c", Incr(), timeout=T) == 1
    tree.wait_restarted("/c", tree.crash("/c"))
    assert actors.ask("/c", GetCount(), timeout=T) == 0  # fresh mode forgets
