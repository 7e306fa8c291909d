"""The simulated xenstored's watch index gives exactly what `match` tried on every watch gives.

`WatchIndex.fired` looks only at the watches a change can fire (its path's ancestors, the
removed nodes, the special name); this checks it against the plain rule (`match` on every
registered watch, in registration order) on random watches and changes, including removals and
unregistrations.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xen.sim.xenstored._watches import Change, Watch, WatchIndex, match
from xen.xenstore import Access, Perm

_NAMES = ("a", "b", "ab")
_PATHS = st.lists(st.sampled_from(_NAMES), max_size=4).map(lambda parts: "/" + "/".join(parts))
_SPECIAL = st.sampled_from(("@introduceDomain", "@releaseDomain"))
_PERMS = (Perm(0, Access.NONE),)
_SPECIAL_PERMS = (Perm(0, Access.READ),)


@st.composite
def _change(draw: st.DrawFn) -> Change:
    if draw(st.booleans()) and draw(st.booleans()):
        return Change(draw(_SPECIAL), ())
    path = draw(_PATHS)
    removed: tuple[tuple[str, tuple[Perm, ...]], ...] = ()
    if draw(st.booleans()):  # an RM: the node and some below it (and a stray one)
        below = draw(st.lists(_PATHS, max_size=4))
        removed = tuple((p, (Perm(len(p), Access.READ),)) for p in [path, *below]
                        if p == path or p.startswith(path.rstrip("/") + "/") or p == "/b")
    return Change(path, (_PERMS,), removed)


@settings(max_examples=300, deadline=None)
@given(
    watches=st.lists(st.tuples(st.integers(0, 3), st.one_of(_PATHS, _SPECIAL),
                               st.sampled_from((b"t1", b"t2")),
                               st.sampled_from((None, "/a"))), max_size=12),
    dropped=st.lists(st.integers(0, 11), max_size=4),
    changes=st.lists(_change(), min_size=1, max_size=5),
)
def test_index_fires_what_match_fires_in_order(
        watches: list[tuple[int, str, bytes, str | None]], dropped: list[int],
        changes: list[Change]) -> None:
    index = WatchIndex()
    registered: list[tuple[int, Watch]] = []  # (conn, watch) in registration order
    for conn, path, token, prefix in watches:
        watch = Watch(path, token, None if path.startswith("@") else prefix)
        if (conn, watch) in registered:
            continue
        registered.append((conn, watch))
        index.add(conn, conn, watch)  # rank = conn id: connections in id order
    for i in sorted(set(dropped), reverse=True):
        if i < len(registered):
            conn, watch = registered.pop(i)
            index.remove(conn, [watch])
    order = sorted(range(len(registered)), key=lambda i: (registered[i][0], i))
    for change in changes:
        want = []
        for i in order:
            conn, watch = registered[i]
            hit = match(watch, change, _SPECIAL_PERMS)
            if hit is not None:
                want.append((conn, watch, *hit))
        got = [(e.conn_id, e.watch, shown, readers)
               for e, shown, readers in index.fired(change, _SPECIAL_PERMS)]
        assert got == want
