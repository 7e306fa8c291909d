"""Pure tests of the xenstored model: nodes, permissions, quotas, transactions, watches, domains.

The hypothesis state machine at the end runs random operation sequences, with transactions on
two connections, against a plain-dict model of the documented semantics.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from xen.sim.xenstored import Disconnect, Note, Quotas, Send, Store, WatchEvent, validate_path
from xen.xenstore import (
    Access,
    Control,
    Directory,
    DirectoryPart,
    GetDomainPath,
    GetPerms,
    Introduce,
    IsDomainIntroduced,
    Mkdir,
    Op,
    Packet,
    Perm,
    Read,
    Release,
    Request,
    ResetWatches,
    Resume,
    Rm,
    SetPerms,
    SetTarget,
    TransactionEnd,
    TransactionStart,
    Unwatch,
    Watch,
    Write,
    XenstoreError,
    decode_reply,
)

DOM0 = 1  # a privileged connection (dom0 socket)


def err(store: Store, conn: int, request: Request, tx: int = 0) -> str:
    with pytest.raises(XenstoreError) as info:
        store.execute(conn, request, tx)
    return info.value.name


def value(store: Store, conn: int, request: Request, tx: int = 0) -> object:
    return store.execute(conn, request, tx).value


def begin(store: Store, conn: int) -> int:
    tx = store.execute(conn, TransactionStart()).value
    assert isinstance(tx, int)
    return tx


def events(store: Store, conn: int, request: Request, tx: int = 0) -> list[tuple[int, str]]:
    return [(e.conn_id, e.path) for e in store.execute(conn, request, tx).events]


@pytest.fixture
def store() -> Store:
    s = Store()
    s.connect(DOM0)
    return s


def guest(store: Store, domid: int, conn: int) -> int:
    """Introduce ``domid`` with a home it owns (as a toolstack would) and connect as it."""
    store.introduce_domain(domid)
    home = f"/local/domain/{domid}"
    store.execute(DOM0, Mkdir(home))
    store.execute(DOM0, SetPerms(home, (Perm(domid, Access.NONE),)))
    store.connect(conn, domid)
    return conn


# --- nodes -------------------------------------------------------------------------------------


def test_initial_tree_is_cxenstoreds(store: Store) -> None:
    assert store.dump() == {"/": b"", "/tool": b"", "/tool/xenstored": b""}
    assert value(store, DOM0, GetPerms("/")) == (Perm(0, Access.NONE),)


def test_write_creates_parents_and_reads_back(store: Store) -> None:
    store.execute(DOM0, Write("/a/b/c", b"v\0x"))
    assert value(store, DOM0, Read("/a/b/c")) == b"v\0x"
    assert value(store, DOM0, Read("/a/b")) == b""
    assert value(store, DOM0, Directory("/a")) == ["b"]
    assert value(store, DOM0, Directory("/")) == ["tool", "a"]


def test_relative_paths_resolve_under_the_domain_home(store: Store) -> None:
    store.execute(DOM0, Write("x", b"1"))
    assert store.dump()["/local/domain/0/x"] == b"1"
    assert value(store, DOM0, GetDomainPath(7)) == "/local/domain/7"


def test_mkdir_keeps_values_and_rm_semantics(store: Store) -> None:
    store.execute(DOM0, Write("/a/b", b"1"))
    store.execute(DOM0, Mkdir("/a/b"))
    assert value(store, DOM0, Read("/a/b")) == b"1"
    store.execute(DOM0, Rm("/a/zz"))  # missing, parent exists: fine
    assert err(store, DOM0, Rm("/q/zz")) == "ENOENT"
    assert err(store, DOM0, Rm("/")) == "EINVAL"
    store.execute(DOM0, Rm("/a"))
    assert "/a" not in store.dump() and "/a/b" not in store.dump()
    assert value(store, DOM0, Directory("/")) == ["tool"]


@pytest.mark.parametrize(
    "path",
    ["", "/a/", "//a", "/a//b", "/a b", "/ä", "/a/" + "x" * 2048, "@releaseDomain"],
)
def test_invalid_paths_are_einval(store: Store, path: str) -> None:
    assert err(store, DOM0, Read(path)) == "EINVAL"
    assert err(store, DOM0, Write(path, b"")) == "EINVAL"


def test_path_limits() -> None:
    validate_path("/" + "a" * 2047)
    with pytest.raises(XenstoreError):
        validate_path("/" + "a" * 2048)
    local = "/local/domain/12/"
    validate_path(local + "a" * 2048)
    with pytest.raises(XenstoreError):
        validate_path(local + "a" * 2049)
    with pytest.raises(XenstoreError):
        validate_path("/local/domain/1/" + "/".join(["a" * 100] * 40))


def test_missing_nodes(store: Store) -> None:
    assert err(store, DOM0, Read("/nope")) == "ENOENT"
    assert err(store, DOM0, Directory("/nope")) == "ENOENT"
    assert err(store, DOM0, GetPerms("/nope")) == "ENOENT"
    assert err(store, DOM0, SetPerms("/nope", (Perm(0, Access.NONE),))) == "ENOENT"


def test_process_echoes_ids_and_reports_errors(store: Store) -> None:
    out = store.process(DOM0, Write("/k", b"v").encode(req_id=77))
    assert out == [Send(DOM0, Packet(Op.WRITE, 77, 0, b"OK\0"))]
    out = store.process(DOM0, Read("/nope").encode(req_id=5, tx_id=0))
    assert out == [Send(DOM0, Packet(Op.ERROR, 5, 0, b"ENOENT\0")),
                   Note("debug", "conn 1 op 2: ENOENT: no node '/nope'")]
    out = store.process(DOM0, Packet(Op.READ, 6, 0, b"/k"))  # missing NUL
    assert out[0].packet.payload == b"EINVAL\0"  # type: ignore[union-attr]
    out = store.process(DOM0, Packet(42, 8, 0, b""))
    assert out[0].packet.payload == b"ENOSYS\0"  # type: ignore[union-attr]


def test_large_directory_is_e2big_then_directory_part(store: Store) -> None:
    names = [f"entry-number-{i:04d}" for i in range(300)]
    for name in names:
        store.execute(DOM0, Mkdir(f"/big/{name}"))
    out, _note = store.process(DOM0, Directory("/big").encode(1))
    assert out.packet.payload == b"E2BIG\0"  # type: ignore[union-attr]
    got: list[str] = []
    offset, gen = 0, None
    while True:
        (out,) = store.process(DOM0, DirectoryPart("/big", offset).encode(2))
        payload = out.packet.payload  # type: ignore[union-attr]
        assert len(payload) <= 4096
        part = decode_reply(Op.DIRECTORY_PART, payload)
        assert isinstance(part, tuple)
        g, chunk, complete = part
        assert gen in (None, g)
        gen = g
        got += chunk
        offset += sum(len(n) + 1 for n in chunk)
        if complete:
            break
    assert got == names
    assert err(store, DOM0, DirectoryPart("/big", 3)) == "EINVAL"


def test_control(store: Store) -> None:
    assert value(store, DOM0, Control((b"print", b"hi"))) == "OK"
    assert b"print" in value(store, DOM0, Control((b"help",)))  # type: ignore[operator]
    assert err(store, DOM0, Control((b"bogus",))) == "EINVAL"


# --- permissions and quotas ---------------------------------------------------------------------


def test_unprivileged_access_follows_owner_default_and_acl(store: Store) -> None:
    g = guest(store, 3, conn=2)
    store.execute(DOM0, Write("/pub", b"p"))
    assert err(store, g, Read("/pub")) == "EACCES"  # default n0
    store.execute(DOM0, SetPerms("/pub", (Perm(0, Access.READ),)))
    assert value(store, g, Read("/pub")) == b"p"
    assert err(store, g, Write("/pub", b"x")) == "EACCES"
    store.execute(DOM0, SetPerms("/pub", (Perm(0, Access.NONE), Perm(3, Access.BOTH))))
    store.execute(g, Write("/pub", b"x"))
    store.execute(DOM0, SetPerms("/pub", (Perm(0, Access.BOTH), Perm(3, Access.NONE))))
    assert err(store, g, Read("/pub")) == "EACCES"  # the ACL entry wins over the default
    assert err(store, g, Read("/nothere")) == "EACCES"  # "/" is n0: existence does not leak
    assert err(store, g, Read("nothere")) == "ENOENT"  # its own home is readable


def test_nodes_created_by_a_domain_are_owned_by_it(store: Store) -> None:
    g = guest(store, 3, conn=2)
    store.execute(g, Write("device/vif/0/state", b"1"))
    assert value(store, DOM0, GetPerms("/local/domain/3/device/vif/0")) == (Perm(3, Access.NONE),)
    store.execute(DOM0, Write("/local/domain/3/by-dom0", b""))
    assert value(store, DOM0, GetPerms("/local/domain/3/by-dom0")) == (Perm(3, Access.NONE),)


def test_set_perms_needs_ownership_and_owner_cannot_give_away(store: Store) -> None:
    g = guest(store, 3, conn=2)
    store.execute(g, Write("mine", b""))
    store.execute(g, SetPerms("mine", (Perm(3, Access.READ), Perm(0, Access.BOTH))))
    assert err(store, g, SetPerms("mine", (Perm(4, Access.READ),))) == "EPERM"
    store.execute(DOM0, SetPerms("/local/domain/3/mine", (Perm(0, Access.BOTH),)))
    assert err(store, g, SetPerms("mine", (Perm(3, Access.READ),))) == "EACCES"


def test_privileged_ops_are_refused_to_domains(store: Store) -> None:
    g = guest(store, 3, conn=2)
    for request in (
        Introduce(4, 1, 1),
        Release(3),
        IsDomainIntroduced(3),
        Resume(3),
        SetTarget(3, 0),
        Control((b"help",)),
    ):
        assert err(store, g, request) == "EACCES"
    assert value(store, g, GetDomainPath(3)) == "/local/domain/3"


def test_set_target_gives_the_targets_rights(store: Store) -> None:
    g = guest(store, 3, conn=2)
    guest(store, 4, conn=3)
    store.execute(3, Write("secret", b"s"))
    assert err(store, g, Read("/local/domain/4/secret")) == "EACCES"
    store.execute(DOM0, SetTarget(3, 4))
    assert value(store, g, Read("/local/domain/4/secret")) == b"s"


def test_quotas_bind_domains_only() -> None:
    quotas = Quotas(
        entries_per_domain=4,
        value_size=4,
        watches_per_connection=1,
        transactions_per_connection=1,
        perms_per_node=2,
    )
    store = Store(quotas)
    store.connect(DOM0)
    g = guest(store, 3, conn=2)
    assert err(store, g, Write("v", b"12345")) == "ENOSPC"
    store.execute(g, Write("a/b", b""))  # two nodes, three with its home
    assert err(store, g, Write("c/d", b"")) == "ENOSPC"  # would make five
    store.execute(g, Write("c", b""))
    store.execute(g, Watch("a", b"t"))
    assert err(store, g, Watch("c", b"t")) == "E2BIG"
    store.execute(g, TransactionStart())
    assert err(store, g, TransactionStart()) == "ENOSPC"
    perms = (Perm(3, Access.NONE), Perm(0, Access.READ), Perm(5, Access.READ))
    assert err(store, g, SetPerms("a", perms)) == "ENOSPC"
    store.execute(DOM0, Write("/big", b"x" * 100))  # dom0 is not bound
    for _ in range(3):
        store.execute(DOM0, TransactionStart())


# --- transactions -------------------------------------------------------------------------------


def test_transaction_reads_its_snapshot_and_commits(store: Store) -> None:
    store.connect(2)
    store.execute(DOM0, Write("/k", b"old"))
    tx = begin(store, DOM0)
    assert tx == 1
    store.execute(DOM0, Write("/k/mine", b"m"), tx)
    assert value(store, DOM0, Read("/k/mine"), tx) == b"m"
    assert err(store, 2, Read("/k/mine")) == "ENOENT"  # invisible until commit
    store.execute(2, Write("/other", b"o"))  # changes "/", which the transaction never touched
    store.execute(DOM0, TransactionEnd(True), tx)
    assert store.dump()["/k/mine"] == b"m"
    assert err(store, DOM0, Read("/k"), tx) == "ENOENT"  # tx is gone


def test_transaction_does_not_see_later_changes(store: Store) -> None:
    store.connect(2)
    store.execute(DOM0, Write("/k", b"old"))
    tx = begin(store, DOM0)
    store.execute(2, Write("/k", b"new"))
    store.execute(2, Write("/other", b"o"))
    assert value(store, DOM0, Read("/k"), tx) == b"old"
    assert err(store, DOM0, Read("/other"), tx) == "ENOENT"
    assert err(store, DOM0, TransactionEnd(True), tx) == "EAGAIN"


def test_any_intervening_write_to_a_touched_path_is_eagain(store: Store) -> None:
    store.connect(2)
    store.execute(DOM0, Write("/k", b"1"))
    for touch in (Read("/k"), Write("/k", b"2"), Directory("/k"), GetPerms("/k")):
        tx = begin(store, DOM0)
        store.execute(2, Write("/k", b"x"))  # before the transaction looks at /k
        store.execute(DOM0, touch, tx)
        assert err(store, DOM0, TransactionEnd(True), tx) == "EAGAIN"
    assert store.dump()["/k"] == b"x"


def test_untouched_changes_do_not_conflict_and_abort_discards(store: Store) -> None:
    store.connect(2)
    store.execute(DOM0, Write("/a/k", b"1"))
    tx = begin(store, DOM0)
    store.execute(DOM0, Write("/a/k", b"2"), tx)
    store.execute(2, Write("/b", b"x"))
    store.execute(DOM0, TransactionEnd(True), tx)
    assert store.dump()["/a/k"] == b"2"
    tx = begin(store, DOM0)
    store.execute(DOM0, Rm("/a"), tx)
    store.execute(DOM0, TransactionEnd(False), tx)
    assert store.dump()["/a/k"] == b"2"


def test_creating_a_sibling_conflicts_with_a_child_creation(store: Store) -> None:
    store.connect(2)
    store.execute(DOM0, Mkdir("/dir"))
    tx = begin(store, DOM0)
    store.execute(DOM0, Write("/dir/a", b""), tx)  # touches /dir
    store.execute(2, Write("/dir/b", b""))  # changes /dir's child list
    assert err(store, DOM0, TransactionEnd(True), tx) == "EAGAIN"
    assert value(store, DOM0, Directory("/dir")) == ["b"]


def test_transaction_ids_and_errors(store: Store) -> None:
    store.connect(2)
    t1 = begin(store, DOM0)
    t2 = begin(store, DOM0)
    assert (t1, t2) == (1, 2)
    assert begin(store, 2) == 1  # ids are per connection
    assert err(store, DOM0, TransactionStart(), t1) == "EBUSY"
    assert err(store, DOM0, Read("/"), 99) == "ENOENT"
    assert err(store, DOM0, TransactionEnd(True)) == "ENOENT"
    store.execute(DOM0, Watch("/", b"t"), 99)  # WATCH ignores tx_id
    store.execute(DOM0, ResetWatches())
    assert err(store, DOM0, Read("/"), t1) == "ENOENT"


def test_history_is_dropped_when_no_transaction_is_open(store: Store) -> None:
    tx = begin(store, DOM0)
    for i in range(20):
        store.execute(DOM0, Write(f"/n{i}", b""))
    assert store._tree._history  # kept for the open transaction
    store.execute(DOM0, TransactionEnd(False), tx)
    assert not store._tree._history


# --- watches ------------------------------------------------------------------------------------


def test_watch_fires_at_once_and_for_descendants(store: Store) -> None:
    store.connect(2)
    assert events(store, DOM0, Watch("/a", b"t")) == [(DOM0, "/a")]
    assert events(store, 2, Write("/a/b/c", b"")) == [(DOM0, "/a/b/c")]
    assert events(store, 2, Write("/ab", b"")) == []  # not a child of /a
    assert events(store, 2, Mkdir("/a/b/c")) == []  # nothing changed
    assert events(store, 2, SetPerms("/a/b", (Perm(0, Access.READ),))) == [(DOM0, "/a/b")]
    assert events(store, 2, Rm("/a/nothing")) == []
    assert err(store, DOM0, Watch("/a", b"t")) == "EEXIST"
    store.execute(DOM0, Watch("/a", b"u"))  # another token is another watch
    store.execute(DOM0, Unwatch("/a", b"t"))
    assert err(store, DOM0, Unwatch("/a", b"t")) == "ENOENT"
    assert [e.token for e in store.execute(2, Write("/a", b"")).events] == [b"u"]


def test_rm_of_an_ancestor_fires_watches_below_with_their_own_path(store: Store) -> None:
    store.execute(DOM0, Write("/a/b/c", b""))
    store.execute(DOM0, Watch("/a/b/c", b"deep"))
    store.execute(DOM0, Watch("/a/zz", b"missing"))
    store.execute(DOM0, Watch("/", b"root"))
    got = store.execute(DOM0, Rm("/a")).events
    assert [(e.token, e.path) for e in got] == [(b"deep", "/a/b/c"), (b"root", "/a")]


def test_relative_watch_reports_relative_paths(store: Store) -> None:
    g = guest(store, 3, conn=2)
    assert [e.path for e in store.execute(g, Watch("device", b"t")).events] == ["device"]
    assert events(store, g, Write("device/vbd", b"")) == [(g, "device/vbd")]


def test_transaction_events_fire_on_commit_only(store: Store) -> None:
    store.connect(2)
    store.execute(2, Watch("/a", b"t"))
    tx = begin(store, DOM0)
    assert events(store, DOM0, Write("/a/x", b""), tx) == []
    assert events(store, DOM0, TransactionEnd(True), tx) == [(2, "/a/x")]
    tx = begin(store, DOM0)
    store.execute(DOM0, Write("/a/y", b""), tx)
    assert events(store, DOM0, TransactionEnd(False), tx) == []


def test_watch_events_respect_read_permission(store: Store) -> None:
    g = guest(store, 3, conn=2)
    store.execute(g, Watch("/secret", b"t"))
    store.execute(DOM0, Write("/pub", b""))
    store.execute(DOM0, SetPerms("/pub", (Perm(0, Access.READ),)))
    store.execute(g, Watch("/pub", b"p"))
    assert events(store, DOM0, Write("/secret/x", b"")) == []
    assert events(store, DOM0, Write("/pub/x", b"")) == [(g, "/pub/x")]  # parent is readable


def test_special_watches_and_domains(store: Store) -> None:
    g = guest(store, 3, conn=2)
    store.execute(DOM0, Watch("@introduceDomain", b"i"))
    store.execute(DOM0, Watch("@releaseDomain", b"r"))
    store.execute(DOM0, Watch("/", b"all"))
    store.execute(g, Watch("@releaseDomain", b"g"))
    got = store.execute(DOM0, Introduce(4, 99, 5)).events
    assert [(e.path, e.token) for e in got] == [("@introduceDomain", b"i")]
    assert store.execute(DOM0, Introduce(4, 99, 6)).events == ()  # already known: no event
    assert value(store, DOM0, IsDomainIntroduced(4)) is True
    assert value(store, DOM0, IsDomainIntroduced(0)) is True
    assert store.domains() == [3, 4]
    # an unprivileged watcher needs read on the special name
    assert [e.conn_id for e in store.fire_special("@releaseDomain").events] == [DOM0]
    store.execute(DOM0, SetPerms("@releaseDomain", (Perm(0, Access.READ),)))
    assert value(store, DOM0, GetPerms("@releaseDomain")) == (Perm(0, Access.READ),)
    assert sorted(e.conn_id for e in store.fire_special("@releaseDomain").events) == [DOM0, g]
    result = store.execute(DOM0, Release(3))
    assert result.disconnect == (g,)
    assert [e.conn_id for e in result.events] == [DOM0]  # the released one is gone first
    assert not store.is_introduced(3)
    assert err(store, DOM0, Release(3)) == "ENOENT"
    assert err(store, DOM0, Release(0)) == "EINVAL"
    assert err(store, DOM0, Introduce(0, 1, 1)) == "EINVAL"
    assert err(store, DOM0, Introduce(0x7FF0, 1, 1)) == "EINVAL"
    assert err(store, DOM0, Introduce(5, 1, 0)) == "EINVAL"
    assert err(store, DOM0, Resume(9)) == "ENOENT"
    store.execute(DOM0, Resume(4))
    with pytest.raises(ValueError):
        store.execute(g, Read("/"))  # its connection was dropped
    with pytest.raises(XenstoreError, match="ENOENT"):
        store.connect(9, domid=3)


def test_process_orders_reply_events_then_disconnects(store: Store) -> None:
    guest(store, 3, conn=2)
    store.execute(DOM0, Watch("@releaseDomain", b"r"))
    out = store.process(DOM0, Release(3).encode(req_id=4))
    assert out == [
        Send(DOM0, Packet(Op.RELEASE, 4, 0, b"OK\0")),
        Send(DOM0, Packet(Op.WATCH_EVENT, 0, 0, b"@releaseDomain\0r\0")),
        Disconnect(2, "its domain was released"),
    ]
    out = store.process(DOM0, Watch("/w", b"t").encode(req_id=5))
    assert [o.packet.op for o in out] == [Op.WATCH, Op.WATCH_EVENT]  # type: ignore[union-attr]


def test_disconnect_drops_watches_and_transactions(store: Store) -> None:
    store.connect(2)
    store.execute(2, Watch("/", b"t"))
    tx = begin(store, 2)
    store.execute(2, Write("/x", b""), tx)
    store.disconnect(2)
    assert store.execute(DOM0, Write("/y", b"")).events == ()
    assert "/x" not in store.dump()
    assert not store._tree._history
    assert WatchEvent(1, "/", b"") != WatchEvent(2, "/", b"")


# --- model-based test ---------------------------------------------------------------------------

PATHS = ["/a", "/a/b", "/a/b/c", "/a/d", "/e", "/e/f"]
VALUES = [b"", b"x", b"yy"]
CONNS = [1, 2]


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _model_op(
    view: dict[str, bytes], kind: str, path: str, val: bytes
) -> tuple[object, set[str], set[str]]:
    """(result or error name, touched paths, modified paths), per the documented rules."""
    touched: set[str] = {path}
    modified: set[str] = set()
    if kind in ("read", "dir"):
        if path not in view:
            return "ENOENT", touched, modified
        if kind == "read":
            return view[path], touched, modified
        prefix = path.rstrip("/") + "/"
        kids = {p[len(prefix) :] for p in view if p.startswith(prefix)}
        return sorted(k for k in kids if "/" not in k), touched, modified
    if kind in ("write", "mkdir"):
        if path in view:
            if kind == "write":
                view[path] = val
                modified.add(path)
            return "OK", touched, modified
        chain = [path]
        while _parent(chain[-1]) not in view:
            chain.append(_parent(chain[-1]))
        touched |= set(chain) | {_parent(chain[-1])}
        modified |= set(chain) | {_parent(chain[-1])}
        for p in chain:
            view[p] = b""
        view[path] = val if kind == "write" else b""
        return "OK", touched, modified
    assert kind == "rm"
    touched.add(_parent(path))
    if path not in view:
        return ("OK" if _parent(path) in view else "ENOENT"), touched, modified
    sub = {p for p in view if p == path or p.startswith(path + "/")}
    touched |= sub
    modified |= sub | {_parent(path)}
    for p in sub:
        del view[p]
    return "OK", touched, modified


class _ModelTx:
    def __init__(self, live: dict[str, bytes], start: int) -> None:
        self.view = dict(live)
        self.start = start
        self.touched: set[str] = set()
        self.modified: set[str] = set()


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = Store()
        for conn in CONNS:
            self.store.connect(conn)
        self.live = self.store.dump()
        self.mtime: dict[str, int] = {}
        self.clock = 0
        self.txs: dict[tuple[int, int], _ModelTx] = {}

    def _touch_live(self, modified: set[str]) -> None:
        for p in sorted(modified):
            self.clock += 1
            self.mtime[p] = self.clock

    def _request(self, kind: str, path: str, val: bytes) -> Request:
        return {
            "read": Read(path),
            "dir": Directory(path),
            "write": Write(path, val),
            "mkdir": Mkdir(path),
            "rm": Rm(path),
        }[kind]

    def _run(self, conn: int, tx: int, kind: str, path: str, val: bytes) -> object:
        try:
            got = self.store.execute(conn, self._request(kind, path, val), tx).value
        except XenstoreError as exc:
            return exc.name
        return sorted(got) if kind == "dir" else got  # type: ignore[call-overload]

    @rule(conn=st.sampled_from(CONNS))
    def start(self, conn: int) -> None:
        tx = self.store.execute(conn, TransactionStart()).value
        assert isinstance(tx, int) and (conn, tx) not in self.txs
        self.txs[(conn, tx)] = _ModelTx(self.live, self.clock)

    @rule(
        conn=st.sampled_from(CONNS),
        kind=st.sampled_from(["read", "dir", "write", "mkdir", "rm"]),
        path=st.sampled_from(PATHS),
        val=st.sampled_from(VALUES),
    )
    def live_op(self, conn: int, kind: str, path: str, val: bytes) -> None:
        expected, _, modified = _model_op(self.live, kind, path, val)
        self._touch_live(modified)
        assert self._run(conn, 0, kind, path, val) == expected

    @precondition(lambda self: self.txs)
    @rule(
        data=st.data(),
        kind=st.sampled_from(["read", "dir", "write", "mkdir", "rm"]),
        path=st.sampled_from(PATHS),
        val=st.sampled_from(VALUES),
    )
    def tx_op(self, data: st.DataObject, kind: str, path: str, val: bytes) -> None:
        conn, tx = data.draw(st.sampled_from(sorted(self.txs)))
        mtx = self.txs[(conn, tx)]
        expected, touched, modified = _model_op(mtx.view, kind, path, val)
        mtx.touched |= touched
        mtx.modified |= modified
        assert self._run(conn, tx, kind, path, val) == expected

    @precondition(lambda self: self.txs)
    @rule(data=st.data(), commit=st.booleans())
    def end(self, data: st.DataObject, commit: bool) -> None:
        conn, tx = data.draw(st.sampled_from(sorted(self.txs)))
        mtx = self.txs.pop((conn, tx))
        conflict = any(self.mtime.get(p, 0) > mtx.start for p in mtx.touched)
        expected = "EAGAIN" if commit and conflict else "OK"
        try:
            got = self.store.execute(conn, TransactionEnd(commit), tx).value
        except XenstoreError as exc:
            got = exc.name
        assert got == expected
        if commit and not conflict:
            for p in sorted(mtx.modified):
                if p in mtx.view:
                    self.live[p] = mtx.view[p]
                else:
                    self.live.pop(p, None)
            self._touch_live(mtx.modified)

    @invariant()
    def same_tree(self) -> None:
        assert self.store.dump() == self.live
        for path in self.live:
            node = self.store.node(path)
            assert node is not None
            prefix = path.rstrip("/") + "/"
            kids = {p[len(prefix) :] for p in self.live if p.startswith(prefix) and p != path}
            assert set(node.children) == {k for k in kids if "/" not in k}


StoreModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestStoreModel = StoreModel.TestCase
