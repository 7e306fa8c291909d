"""The base actor: ordering, typed dispatch, every way to die, stats, timers, traces."""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

import actors
from actors import (
    Actor,
    ActorContext,
    Crashed,
    ExitReason,
    InjectCrash,
    Killed,
    Normal,
    StartFailed,
    handles,
)
from tests.helpers import wait_until


@dataclass(frozen=True, slots=True)
class Record:
    sender: int
    seq: int


@dataclass(frozen=True, slots=True)
class Boom:
    kind: str = "value"


@dataclass(frozen=True, slots=True)
class Block:
    release: threading.Event


@dataclass(frozen=True, slots=True)
class Get:
    pass


class Recorder(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int]] = []

    @handles(Record)
    def _record(self, msg: Record) -> None:
        self.seen.append((msg.sender, msg.seq))

    @handles(Get)
    def _get(self, _msg: Get) -> list[tuple[int, int]]:
        return list(self.seen)

    @handles(Boom)
    def _boom(self, msg: Boom) -> None:
        if msg.kind == "value":
            raise ValueError("bad value")
        if msg.kind == "base":
            raise SystemExit("exit from a handler")
        raise KeyError(msg.kind)

    @handles(Block)
    def _block(self, msg: Block) -> None:
        msg.release.wait(10)


class Exits:
    """A monitor that records exit reasons."""

    def __init__(self) -> None:
        self.reasons: list[ExitReason] = []
        self.event = threading.Event()

    def __call__(self, _ref: pykka.ActorRef[Any], reason: ExitReason) -> None:
        self.reasons.append(reason)
        self.event.set()


def start_monitored(cls: type[Actor], **ctx: Any) -> tuple[Any, Exits]:
    exits = Exits()
    ref = cls.start_with(ActorContext(monitors=(exits,), **ctx))
    return ref, exits


def test_fifo_per_sender_under_concurrent_senders() -> None:
    ref = Recorder.start()
    senders, per_sender = 8, 500
    go = threading.Barrier(senders)

    def send(sender: int) -> None:
        go.wait(5)
        for seq in range(per_sender):
            ref.tell(Record(sender, seq))
            if seq % 25 == 0:
                time.sleep(0)  # let the other senders in: the test is about interleaving

    threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        seen = actors.ask(ref, Get(), timeout=5)
    finally:
        sys.setswitchinterval(old_interval)
        ref.stop()
    assert len(seen) == senders * per_sender
    for sender in range(senders):
        assert [seq for s, seq in seen if s == sender] == list(range(per_sender))
    # the senders really interleaved (otherwise the test proves nothing about concurrency)
    switches = sum(1 for a, b in itertools.pairwise(seen) if a[0] != b[0])
    assert switches > senders


def test_typed_dispatch_and_unhandled_message() -> None:
    ref = Recorder.start()
    ref.tell(Record(1, 1))
    assert actors.ask(ref, Get(), timeout=2) == [(1, 1)]
    with pytest.raises(actors.UnhandledMessage):
        actors.ask(ref, "not a message", timeout=2)
    ref.tell(object())  # dropped under tell, no crash
    assert actors.ask(ref, actors.Ping(), timeout=2) == "pong"
    ref.stop()


def test_exception_under_ask_is_the_callers_error() -> None:
    ref, exits = start_monitored(Recorder)
    with pytest.raises(ValueError, match="bad value"):
        actors.ask(ref, Boom(), timeout=2)
    assert ref.is_alive()
    actor = actors.actor_of(ref)
    assert actor.stats().ask_errors == 1
    ref.stop(block=True, timeout=2)
    assert exits.event.wait(2) and exits.reasons == [Normal()]


def test_exception_under_ask_crashes_when_the_spec_says_so() -> None:
    ref, exits = start_monitored(Recorder, ask_errors_crash=True)
    with pytest.raises(ValueError):
        actors.ask(ref, Boom(), timeout=2)
    assert exits.event.wait(2)
    assert isinstance(exits.reasons[0], Crashed)


def test_exception_under_tell_crashes_calls_on_failure_and_reports_once() -> None:
    failures: list[str] = []

    class Failing(Recorder):
        def on_failure(self, exc_type: Any, exc: Any, tb: Any) -> None:
            failures.append(type(exc).__name__)

    ref, exits = start_monitored(Failing)
    ref.tell(Boom("key"))
    assert exits.event.wait(2)
    (reason,) = exits.reasons
    assert isinstance(reason, Crashed) and reason.error == "KeyError: 'key'"
    assert "Traceback" in reason.traceback
    assert failures == ["KeyError"]
    assert not ref.is_alive()
    with pytest.raises(actors.ActorDeadError):
        ref.tell(Record(0, 0))


def test_a_crash_is_logged_with_the_traceback_of_its_exit_reason(
        caplog: pytest.LogCaptureFixture) -> None:
    """The traceback is formatted once, for the exit reason, and the log shows that text as
    ``exc_info`` would have (the message, a newline, the traceback)."""
    ref, exits = start_monitored(Recorder)
    with caplog.at_level(logging.ERROR, logger="actors._actor"):
        ref.tell(Boom("key"))
        assert exits.event.wait(2)
    (reason,) = exits.reasons
    (record,) = [r for r in caplog.records if "crashed" in r.getMessage()]
    name, _, text = record.getMessage().partition(" crashed\n")
    assert name.startswith("Recorder") and text == reason.traceback.rstrip("\n")
    assert text.startswith("Traceback") and text.endswith("KeyError: 'key'")


def test_failure_in_on_start_is_reported() -> None:
    class BadStart(Actor):
        def on_start(self) -> None:
            raise RuntimeError("no config")

    ref, exits = start_monitored(BadStart)
    actor = actors.actor_of(ref)
    assert actor.wait_started(2) is False
    assert exits.event.wait(2)
    (reason,) = exits.reasons
    assert isinstance(reason, StartFailed) and "no config" in reason.error


def test_base_exception_is_contained_to_one_actor() -> None:
    bystander = Recorder.start()
    ref, exits = start_monitored(Recorder)
    ref.tell(Boom("base"))
    assert exits.event.wait(2)
    assert isinstance(exits.reasons[0], Crashed)
    assert "SystemExit" in exits.reasons[0].error
    # pykka would have stopped every actor; ours keeps running
    assert actors.ask(bystander, actors.Ping(), timeout=2) == "pong"
    bystander.stop()


def test_failing_on_stop_is_a_crash() -> None:
    class BadStop(Actor):
        def on_stop(self) -> None:
            raise OSError("disk gone")

    ref, exits = start_monitored(BadStop)
    ref.stop()
    assert exits.event.wait(2)
    assert isinstance(exits.reasons[0], Crashed) and exits.reasons[0].where == "on_stop"


def test_kill_interrupts_a_python_loop_and_reports_killed() -> None:
    started = threading.Event()

    @dataclass(frozen=True)
    class Spin:
        pass

    class Spinner(Actor):
        @handles(Spin)
        def _spin(self, _msg: Spin) -> None:
            started.set()
            while True:  # ignores everything
                pass

    ref, exits = start_monitored(Spinner)
    ref.tell(Spin())
    assert started.wait(2)
    actor = actors.actor_of(ref)
    actor.kill(after=0.5)
    assert exits.reasons == [Killed(0.5)]
    wait_until(lambda: not actor.thread_alive, timeout=5)
    assert exits.reasons == [Killed(0.5)]  # still exactly once


@dataclass(frozen=True, slots=True)
class Owed:
    """A told message with its own reply (actors.Undeliverable)."""

    reply: list[str]

    def undelivered(self, reason: str) -> None:
        self.reply.append(reason)


@pytest.mark.parametrize("end", ["kill", "crash"])
def test_messages_left_in_the_mailbox_are_answered_when_the_actor_ends(end: str) -> None:
    ref, exits = start_monitored(Recorder)
    release = threading.Event()
    ref.tell(Block(release))
    owed: list[list[str]] = [[], []]
    ref.tell(Boom("base") if end == "crash" else Record(0, 0))
    ref.tell(Owed(owed[0]))
    asked = ref.ask(Get(), block=False)
    ref.tell(Owed(owed[1]))
    actor = actors.actor_of(ref)
    wait_until(lambda: actor.stats().mailbox_depth == 4, timeout=5)
    if end == "kill":
        actor.kill()
    else:
        release.set()  # Boom("base") crashes it with the rest still queued
    assert exits.event.wait(5)
    release.set()
    assert isinstance(owed[0], list) and len(owed[0]) == 1 and owed[1] == owed[0], owed
    assert f"ended ({type(exits.reasons[0]).__name__})" in owed[0][0], owed
    with pytest.raises(pykka.ActorDeadError):
        asked.get(timeout=1)
    assert isinstance(Owed([]), actors.Undeliverable)


def test_a_killed_actor_runs_on_killed_in_its_own_thread_once_let_go() -> None:
    release, seen = threading.Event(), []

    class Holder(Recorder):
        def on_killed(self) -> None:
            seen.append((threading.current_thread().name, release.is_set()))

        def on_failure(self, *_exc: Any) -> None:
            seen.append(("on_failure", False))

    ref, exits = start_monitored(Holder)
    actor = actors.actor_of(ref)
    ref.tell(Block(release))
    wait_until(lambda: actor.stats().current_message == "Block", timeout=5)
    thread = actor._thread
    actor.kill()
    assert exits.reasons == [Killed(0.0)] and seen == []  # blocked in a C wait: not yet
    release.set()
    wait_until(lambda: not actor.thread_alive, timeout=5)
    assert thread is not None and seen == [(thread.name, True)]  # once, in the actor's thread


@dataclass(frozen=True, slots=True)
class BlockShielded:
    release: threading.Event


def test_on_killed_can_make_shielded_calls_after_a_kill_cut_a_section() -> None:
    """A kill that found the thread in an uninterruptible section is raised at its end; the
    cleanup after it (a client's request, e.g. a watcher's unwatch) still runs its sections."""
    release, seen = threading.Event(), []

    @actors.shielded
    def request(what: str) -> str:
        return what

    class Holder(Recorder):
        @handles(BlockShielded)
        def _block_shielded(self, msg: BlockShielded) -> None:
            with actors.uninterruptible():
                msg.release.wait(10)
            seen.append("after the section")  # never: the kill is raised at its end

        def on_killed(self) -> None:
            seen.append(request("unwatched"))

    ref, exits = start_monitored(Holder)
    actor = actors.actor_of(ref)
    ref.tell(BlockShielded(release))
    wait_until(lambda: actor.stats().current_message == "BlockShielded", timeout=5)
    actor.kill()
    assert exits.reasons == [Killed(0.0)]
    release.set()
    wait_until(lambda: not actor.thread_alive, timeout=5)
    assert seen == ["unwatched"]


def test_a_tell_that_raced_a_kill_is_answered_when_the_thread_is_let_go() -> None:
    from pykka._envelope import Envelope
    ref, _exits = start_monitored(Recorder)
    actor = actors.actor_of(ref)
    release, owed = threading.Event(), Owed([])
    ref.tell(Block(release))
    wait_until(lambda: actor.stats().current_message == "Block", timeout=5)
    actor.kill()  # drains the mailbox now; the thread is still blocked
    actor.actor_inbox.put(Envelope(owed))  # as a tell that passed the alive check before it
    assert owed.reply == []
    release.set()
    wait_until(lambda: not actor.thread_alive, timeout=5)
    assert len(owed.reply) == 1 and "ended (Killed)" in owed.reply[0], owed.reply


def test_stats_show_a_stuck_actor() -> None:
    ref = Recorder.start()
    actor = actors.actor_of(ref)
    release = threading.Event()
    ref.tell(Block(release))
    for n in range(5):
        ref.tell(Record(0, n))
    stats = wait_until(lambda: (s := actor.stats()).busy_for > 0.05 and s)
    assert stats.current_message == "Block"
    assert stats.mailbox_depth == 5
    assert stats.idle_for == 0.0
    release.set()
    wait_until(lambda: actor.stats().processed == 6)
    idle = actor.stats()
    assert idle.current_message is None and idle.busy_for == 0.0 and idle.mailbox_depth == 0
    as_dict = actor.stats_dict()  # what the control socket answers, built without the dataclass
    assert list(as_dict) == list(idle.to_dict())
    assert {k: v for k, v in as_dict.items() if k not in TIMES} == {
        k: v for k, v in idle.to_dict().items() if k not in TIMES}
    ref.stop()


TIMES = ("idle_for", "uptime", "last_activity", "busy_for")


def test_timers_deliver_in_order_and_are_cancelled_on_stop() -> None:
    @dataclass(frozen=True)
    class Tick:
        n: int

    class Ticker(Actor):
        def __init__(self) -> None:
            super().__init__()
            self.ticks: list[int] = []

        def on_start(self) -> None:
            self.send_after(0.3, Tick(2))  # far enough apart to keep its order under load
            self.send_after(0.0, Tick(1))
            self.send_every(0.01, Tick(0))

        @handles(Tick)
        def _tick(self, msg: Tick) -> None:
            self.ticks.append(msg.n)

    ref = Ticker.start()
    actor = actors.actor_of(ref)
    wait_until(lambda: actor.ticks.count(0) >= 3 and 2 in actor.ticks)
    assert actor.ticks.index(1) < actor.ticks.index(2)
    assert actors.pending_timers() >= 1
    ref.stop(block=True, timeout=2)
    wait_until(lambda: actors.pending_timers() == 0)


def test_trace_is_bounded_by_count() -> None:
    ref = Recorder.start()
    actor = actors.actor_of(ref)
    trace = actor.start_trace(max_messages=3, max_seconds=10)
    for n in range(10):
        ref.tell(Record(0, n))
    actors.ask(ref, Get(), timeout=2)
    assert trace.finished.is_set()
    entries = trace.entries()
    assert [e.message_type for e in entries] == ["Record"] * 3
    assert "seq=0" in entries[0].message
    ref.stop()


def test_names_resolve_to_the_current_instance() -> None:
    ref = Recorder.start_with(ActorContext(name="/test/rec"))
    assert actors.resolve("/test/rec") is ref
    ref.stop(block=True, timeout=2)
    with pytest.raises(actors.NoSuchActor):
        actors.resolve("/test/rec")


def test_ask_needs_a_timeout_and_reports_timeouts() -> None:
    ref = Recorder.start()
    release = threading.Event()
    ref.tell(Block(release))
    with pytest.raises(ValueError):
        actors.ask(ref, Get(), timeout=0)
    with pytest.raises(actors.AskTimeout, match="Get"):
        actors.ask(ref, Get(), timeout=0.05)
    release.set()
    ref.stop()


def test_injected_crash() -> None:
    ref, exits = start_monitored(Recorder)
    ref.tell(InjectCrash("from the shell"))
    assert exits.event.wait(2)
    assert exits.reasons[0].error == "InjectedCrash: from the shell"
