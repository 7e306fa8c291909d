"""The xenstore client's parts that need no xenstored: error mapping, retry policy, state
table, conditions, node operations over a recording `_call`, transaction retries, and watch
dispatch (coalescing for callbacks and for actor mailboxes)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import FrozenInstanceError

import pytest

import actors
from actors import Actor, handles
from tests.helpers import wait_until
from xen.xenstore._clientcore import (
    TRANSITIONS,
    Busy,
    ClientState,
    Close,
    Connected,
    ConnectionLost,
    GaveUp,
    IllegalTransition,
    InvalidRequest,
    LimitExceeded,
    Lost,
    NoSuchNode,
    PermissionDenied,
    QuotaExceeded,
    RetryPolicy,
    TransactionConflict,
    error_from_reply,
    next_state,
)
from xen.xenstore._conditions import (
    all_of,
    any_of,
    key_to_disappear,
    next_wait,
    value_to_appear,
    value_to_become,
)
from xen.xenstore._dispatch import WatchDispatcher, WatchFired, WatchTarget
from xen.xenstore._ops import NodeOps, Transaction, run_transaction
from xen.xenstore._requests import (
    Directory,
    DirectoryPart,
    Read,
    Request,
    Rm,
    TransactionEnd,
    TransactionStart,
    Write,
    encode_reply,
)
from xen.xenstore._wire import Op, Perm, XenstoreError

# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "cls"), [
    ("ENOENT", NoSuchNode), ("EACCES", PermissionDenied), ("EPERM", PermissionDenied),
    ("EAGAIN", TransactionConflict), ("EINVAL", InvalidRequest), ("ENOSPC", QuotaExceeded),
    ("EQUOTA", QuotaExceeded), ("E2BIG", LimitExceeded), ("EBUSY", Busy),
])
def test_error_names_map_to_named_exceptions(name: str, cls: type[XenstoreError]) -> None:
    err = error_from_reply(name, "READ /x")
    assert type(err) is cls and isinstance(err, XenstoreError)
    assert err.name == name and "READ /x" in str(err)


def test_unknown_error_name_becomes_einval_and_keeps_the_name() -> None:
    err = error_from_reply("EWHATEVER", "READ /x")
    assert isinstance(err, InvalidRequest) and err.name == "EINVAL" and "EWHATEVER" in str(err)
    assert type(error_from_reply("EISDIR")) is XenstoreError


# --- retry policy ---------------------------------------------------------------------------


def test_retry_policy_backs_off_exponentially_up_to_the_maximum() -> None:
    policy = RetryPolicy(attempts=10, max_time=100, initial=0.1, maximum=0.5, factor=2)
    assert [policy.delay(n) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_retry_policy_stops_at_the_count_and_at_the_time() -> None:
    policy = RetryPolicy(attempts=3, max_time=1.0, initial=0.3, maximum=0.3)
    assert policy.next_delay(1, 0.0, rand=0.5) == 0.3
    assert policy.next_delay(3, 0.0, rand=0.5) is None  # third attempt was the last
    assert policy.next_delay(1, 0.8, rand=0.5) is None  # would wait past max_time


def test_retry_policy_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(initial=1.0, maximum=1.0, jitter=0.25)
    assert policy.delay(1, rand=0.0) == 0.75 and policy.delay(1, rand=0.999999) < 1.25


@pytest.mark.parametrize("kwargs", [
    {"attempts": 0}, {"initial": -1}, {"initial": 2, "maximum": 1}, {"factor": 0.5},
    {"jitter": 1.0}, {"max_time": -1},
])
def test_retry_policy_refuses_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# --- state table ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(ClientState))
@pytest.mark.parametrize("event", [Connected(), Lost(), GaveUp(), Close()])
def test_every_state_event_pair_is_in_the_table_or_raises(state: ClientState, event: object
                                                          ) -> None:
    expected = TRANSITIONS[state].get(type(event))  # type: ignore[arg-type]
    if expected is None:
        with pytest.raises(IllegalTransition, match=state.value):
            next_state(state, event)  # type: ignore[arg-type]
    else:
        assert next_state(state, event) is expected  # type: ignore[arg-type]


def test_state_table_main_paths() -> None:
    s = ClientState
    assert next_state(s.IDLE, Connected()) is s.CONNECTED
    assert next_state(s.CONNECTED, Lost()) is s.RECONNECTING
    assert next_state(s.RECONNECTING, Connected()) is s.CONNECTED
    assert next_state(s.RECONNECTING, GaveUp()) is s.FAILED
    assert all(next_state(st, Close()) is s.CLOSED for st in s)


# --- conditions -----------------------------------------------------------------------------


def test_conditions_evaluate_against_reads() -> None:
    tree = {"/a": "1", "/b": ""}
    read = tree.get
    assert value_to_appear("/b").holds(read) and not value_to_appear("/c").holds(read)
    assert key_to_disappear("/c").holds(read) and not key_to_disappear("/a").holds(read)
    assert value_to_become("/a", "1").holds(read) and not value_to_become("/b", "1").holds(read)
    both = all_of(value_to_appear("/a"), value_to_become("/b", "x"))
    either = any_of(value_to_appear("/a"), value_to_become("/b", "x"))
    assert not both.holds(read) and either.holds(read)
    assert both.paths() == ("/a", "/b")
    assert all_of().holds(read) and not any_of().holds(read)
    assert all_of(value_to_appear("/a"), key_to_disappear("/a")).paths() == ("/a",)


def test_conditions_are_frozen_values() -> None:
    cond = value_to_become("/a", "1")
    with pytest.raises(FrozenInstanceError):
        cond.path = "/b"  # type: ignore[misc]
    assert cond == value_to_become("/a", "1")


def test_next_wait_is_bounded_by_poll_and_deadline() -> None:
    assert next_wait(0.0, 10.0, 5.0) == 5.0
    assert next_wait(8.0, 10.0, 5.0) == 2.0
    assert next_wait(11.0, 10.0, 5.0) == 0.0


# --- node operations over a fake connection ----------------------------------------------------


class FakeOps(NodeOps):
    """Answers from a script: ``replies[op]`` is a list of payloads or exceptions."""

    def __init__(self, replies: dict[Op, list[bytes | Exception]]) -> None:
        self.replies = replies
        self.sent: list[Request] = []

    def _call(self, request: Request) -> bytes:
        self.sent.append(request)
        reply = self.replies[request.OP].pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def test_write_of_an_empty_value_sends_path_and_nul_only() -> None:
    ops = FakeOps({Op.WRITE: [b"OK\0", b"OK\0"]})
    ops.write("/vm/x", "")
    ops.write("/vm/y", b"\xff\0bin")
    assert ops.sent == [Write("/vm/x", b""), Write("/vm/y", b"\xff\0bin")]
    assert ops.sent[0].encode(1, 0).payload == b"/vm/x\0"


def test_read_decodes_text_and_keeps_undecodable_bytes() -> None:
    ops = FakeOps({Op.READ: [b"caf\xc3\xa9", b"\xff", NoSuchNode("ENOENT")]})
    assert ops.read("/a") == "café"
    raw = ops.read("/b")
    assert raw.encode("utf-8", "surrogateescape") == b"\xff"
    assert ops.try_read("/c") is None


@pytest.mark.parametrize("path", ["", "/a/", "a//b", "/a b", "/é", "/a.b"])
def test_bad_paths_are_refused_before_sending(path: str) -> None:
    ops = FakeOps({})
    with pytest.raises(InvalidRequest, match="invalid xenstore path"):
        ops.read(path)
    assert ops.sent == []


_PATHS = ["", "/", "/a", "/a/", "a", "a/b", "a//b", "//", "/a b", "/a.b", "/a\n", "/a\0",
          "/a\0\0", "/local/domain/7/device/vbd/51712", "@introduceDomain", "@releaseDomain",
          "@introduceDomain\0", "@other", "@", "/@x", "/a-b_c@d", "/" + "x" * 3071,
          "/" + "x" * 3072, "x" * 3072, "/a/b/", "/%"]


@pytest.mark.parametrize("watch", [False, True])
def test_path_rules_are_exactly_pyxs_ones(watch: bool) -> None:
    # Our check runs pyxs's expressions without its per-call abspath; it must agree with pyxs.
    import pyxs.exceptions
    import pyxs.helpers

    from xen.xenstore._ops import pyxs_accepts

    for path in _PATHS:
        raw = path.encode()
        try:
            (pyxs.helpers.check_watch_path if watch else pyxs.helpers.check_path)(raw)
            theirs = True
        except pyxs.exceptions.InvalidPath:
            theirs = False
        assert pyxs_accepts(raw, watch) is theirs, (path, watch)


def test_rm_of_a_missing_node_is_not_an_error() -> None:
    ops = FakeOps({Op.RM: [NoSuchNode("ENOENT")]})
    ops.rm("/gone")
    assert ops.sent == [Rm("/gone")]


def test_directory_falls_back_to_chunks_on_e2big_and_restarts_when_the_node_changes() -> None:
    def part(gen: int, names: list[str], complete: bool) -> bytes:
        return encode_reply(Op.DIRECTORY_PART, (gen, names, complete))

    ops = FakeOps({
        Op.DIRECTORY: [LimitExceeded("E2BIG")],
        Op.DIRECTORY_PART: [
            part(7, ["a", "bb"], False),
            part(8, ["ccc"], True),  # generation changed: start over
            part(8, ["a", "bb"], False),
            part(8, ["ccc"], True),
        ],
    })
    assert ops.directory("/big") == ["a", "bb", "ccc"]
    offsets = [r.offset for r in ops.sent if isinstance(r, DirectoryPart)]
    assert offsets == [0, 5, 0, 5]
    assert isinstance(ops.sent[0], Directory)


def test_set_perms_accepts_strings_and_perm_values() -> None:
    ops = FakeOps({Op.SET_PERMS: [b"OK\0"], Op.GET_PERMS: [b"n0\0r5\0"]})
    ops.set_perms("/a", ["n0", Perm.parse("r5")])
    assert ops.get_perms("/a") == (Perm.parse("n0"), Perm.parse("r5"))
    with pytest.raises(InvalidRequest):
        ops.set_perms("/a", [])


# --- transactions -----------------------------------------------------------------------------


class FakeServer:
    """TRANSACTION_START gives increasing ids; the first ``conflicts`` commits answer EAGAIN."""

    def __init__(self, conflicts: int) -> None:
        self.conflicts = conflicts
        self.next_tx = 1
        self.ends: list[tuple[int, bool]] = []

    def call(self, request: Request, tx_id: int) -> bytes:
        if isinstance(request, TransactionStart):
            self.next_tx += 1
            return encode_reply(Op.TRANSACTION_START, self.next_tx - 1)
        if isinstance(request, TransactionEnd):
            self.ends.append((tx_id, request.commit))
            if request.commit and self.conflicts:
                self.conflicts -= 1
                raise TransactionConflict("EAGAIN", "commit")
            return b"OK\0"
        assert isinstance(request, Read)
        return b"v"

    def start(self) -> Transaction:
        return Transaction.start(self.call)


FAST = RetryPolicy(attempts=5, max_time=5.0, initial=0.0, maximum=0.0)


def test_run_transaction_reruns_the_whole_body_on_eagain() -> None:
    server = FakeServer(conflicts=2)
    runs: list[int] = []

    def body(t: Transaction) -> str:
        runs.append(t.tx_id)
        return t.read("/a")

    assert run_transaction(server.start, body, FAST, lambda _s: False) == "v"
    assert runs == [1, 2, 3]
    assert server.ends == [(1, True), (2, True), (3, True)]


def test_run_transaction_gives_up_at_the_bound_with_a_clear_error() -> None:
    server = FakeServer(conflicts=99)
    with pytest.raises(TransactionConflict, match="after 5 attempts"):
        run_transaction(server.start, lambda t: None, FAST, lambda _s: False)
    assert len(server.ends) == 5


def test_run_transaction_reruns_when_the_connection_drops_inside_the_body() -> None:
    server = FakeServer(conflicts=0)
    runs: list[int] = []

    def body(t: Transaction) -> None:
        runs.append(t.tx_id)
        if len(runs) == 1:
            raise ConnectionLost("dropped")

    run_transaction(server.start, body, FAST, lambda _s: False)
    assert runs == [1, 2] and server.ends == [(1, False), (2, True)]


def test_run_transaction_does_not_rerun_when_the_commit_is_ambiguous() -> None:
    server = FakeServer(conflicts=0)

    def call(request: Request, tx_id: int) -> bytes:
        if isinstance(request, TransactionEnd):
            raise ConnectionLost("dropped during commit")
        return server.call(request, tx_id)

    runs: list[int] = []
    with pytest.raises(ConnectionLost, match="during commit"):
        run_transaction(lambda: Transaction.start(call), lambda t: runs.append(1), FAST,
                        lambda _s: False)
    assert runs == [1]


def test_run_transaction_aborts_on_a_body_exception_and_does_not_retry() -> None:
    server = FakeServer(conflicts=0)

    def body(t: Transaction) -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        run_transaction(server.start, body, FAST, lambda _s: False)
    assert server.ends == [(1, False)]


def test_transaction_context_manager_commits_or_aborts_once() -> None:
    server = FakeServer(conflicts=1)
    with pytest.raises(TransactionConflict), server.start() as t:
        t.read("/a")
    with pytest.raises(RuntimeError, match="ended"):
        t.read("/a")
    with pytest.raises(ValueError), server.start():
        raise ValueError
    assert server.ends == [(1, True), (2, False)]


# --- watch dispatch ---------------------------------------------------------------------------


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def make_dispatcher(targets: dict[str, WatchTarget]) -> WatchDispatcher:
    def routes(path: str | None, token: str) -> list[tuple[WatchFired, WatchTarget]]:
        return [(WatchFired(path or "/watched", token), targets[token])]

    return WatchDispatcher(routes, max_pending=3).start()


def test_callback_events_coalesce_while_queued(gate: threading.Event) -> None:
    seen: list[WatchFired] = []
    entered = threading.Event()

    def slow(event: WatchFired) -> None:
        entered.set()
        gate.wait(5)
        seen.append(event)

    disp = make_dispatcher({"t": slow})
    try:
        disp.post("/a", "t")
        assert entered.wait(5)  # the first is taken; the dispatcher is busy with it
        for _ in range(10):
            disp.post("/a/x", "t")
        disp.post("/a/y", "t")
        gate.set()
        wait_until(lambda: len(seen) == 3)
        assert seen == [WatchFired("/a", "t"), WatchFired("/a/x", "t"), WatchFired("/a/y", "t")]
        assert disp.coalesced == 9
    finally:
        disp.stop()


def test_overflow_collapses_to_one_event_per_token(gate: threading.Event) -> None:
    seen: list[WatchFired] = []
    entered = threading.Event()

    def slow(event: WatchFired) -> None:
        entered.set()
        gate.wait(5)
        seen.append(event)

    disp = make_dispatcher({"t": slow})
    try:
        disp.post("/first", "t")
        assert entered.wait(5)
        for i in range(20):
            disp.post(f"/n{i}", "t")
        gate.set()
        wait_until(lambda: len(seen) == 5)
        # three distinct paths fit, then one collapsed event on the watch's own path
        assert [e.path for e in seen] == ["/first", "/n0", "/n1", "/n2", "/watched"]
    finally:
        disp.stop()


def test_a_failing_callback_does_not_stop_delivery() -> None:
    seen: list[str] = []

    def bad(event: WatchFired) -> None:
        seen.append(event.path)
        raise RuntimeError("callback bug")

    disp = make_dispatcher({"t": bad})
    try:
        disp.post("/a", "t")
        disp.post("/b", "t")
        wait_until(lambda: seen == ["/a", "/b"])
    finally:
        disp.stop()


class Slow(Actor):
    def __init__(self, gate: threading.Event, entered: threading.Event) -> None:
        super().__init__()
        self.gate, self.entered = gate, entered
        self.events: list[WatchFired] = []

    @handles(WatchFired)
    def _event(self, event: WatchFired) -> None:
        self.entered.set()
        self.gate.wait(5)
        self.events.append(event)

    @handles(str)
    def _get(self, _msg: str) -> list[WatchFired]:
        return list(self.events)


def test_actor_events_coalesce_while_still_in_the_mailbox(gate: threading.Event) -> None:
    entered = threading.Event()
    ref = Slow.start(gate, entered)
    actors.register_name("/test/slow", ref)
    disp = make_dispatcher({"t": "/test/slow"})
    try:
        disp.post("/a", "t")
        assert entered.wait(5)  # taken: being handled
        for path in ["/a", "/b", "/a", "/b", "/a"]:
            disp.post(path, "t")
        # each repeat is absorbed in the dispatcher's queue or found in the mailbox
        wait_until(lambda: disp.delivered + disp.coalesced == 6)
        gate.set()

        def events() -> list[WatchFired]:
            result: list[WatchFired] = actors.ask(ref, "get", timeout=2)
            return result

        wait_until(lambda: len(events()) == 3)
        assert [e.path for e in events()] == ["/a", "/a", "/b"]
        assert disp.coalesced == 3
    finally:
        disp.stop()
        actors.unregister_name("/test/slow")
        ref.stop()


def test_unknown_actor_name_drops_the_event() -> None:
    disp = make_dispatcher({"t": "/test/nobody"})
    try:
        disp.post("/a", "t")
        disp.post("/b", "t")
        wait_until(lambda: not disp._pending)
        assert disp.delivered == 0
    finally:
        disp.stop()
