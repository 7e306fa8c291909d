"""The xenstore node tree with generations, and transaction snapshots over it (pure).

Paths: absolute, valid characters ``[A-Za-z0-9-/_@]``, no ``//``, no trailing ``/`` (except the
root), at most 3072 bytes, and at most 2048 past a ``/local/domain/<n>/`` prefix (else the whole
path counts): `validate_path` raises EINVAL otherwise, as cxenstored's is_valid_nodename.

Every change of the live tree takes a new generation number; a node records the generation of
its last change (value, permissions or child list). While any transaction is open, the tree
keeps the versions it replaces (``(generation of the change, old version)`` per path) so that a
transaction reads the tree exactly as it was at its start generation (snapshot isolation), and
`Tree.changed_since` can tell whether a path was modified (created, changed or removed) after a
given generation. That history is pruned down to what the oldest open transaction needs, and
cleared when none is open; its size is bounded by the changes made while transactions are open.

A `View` runs reads and writes against the live tree (``tx is None``: writes apply at once) or
against a transaction (writes go to its overlay; every path it reads or writes is recorded as
touched). `Tree.commit` applies an overlay if no touched path changed since the transaction
started; otherwise it raises EAGAIN and changes nothing.

No I/O, no threads; one thread at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from xen.xenstore import ABS_PATH_MAX, REL_PATH_MAX, XenstoreError

if TYPE_CHECKING:
    from xen.xenstore import Perm

__all__ = [
    "Node",
    "Tree",
    "Tx",
    "View",
    "basename",
    "child_path",
    "is_child",
    "parent_path",
    "validate_path",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_VALID_CHARS = re.compile(r"[A-Za-z0-9\-/_@]*\Z")
_LOCAL_PREFIX = re.compile(r"/local/domain/\d{1,5}/")


def validate_path(path: str) -> None:
    """Raise EINVAL unless ``path`` is a valid absolute node path."""
    bad = (
        not path.startswith("/")
        or (path.endswith("/") and path != "/")
        or "//" in path
        or not _VALID_CHARS.match(path)
    )
    if bad:
        raise XenstoreError("EINVAL", f"invalid path {path[:80]!r}")
    m = _LOCAL_PREFIX.match(path)
    if len(path) > ABS_PATH_MAX or len(path) - (m.end() if m else 0) > REL_PATH_MAX:
        raise XenstoreError("EINVAL", f"path of {len(path)} bytes is too long")


def parent_path(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def basename(path: str) -> str:
    return path.rsplit("/", 1)[1]


def child_path(parent: str, name: str) -> str:
    return parent + name if parent == "/" else f"{parent}/{name}"


def is_child(path: str, ancestor: str) -> bool:
    """True if ``path`` is ``ancestor`` or below it (the protocol's "child" relation)."""
    if ancestor == "/":
        return path.startswith("/")
    return path == ancestor or path.startswith(ancestor + "/")


@dataclass(frozen=True, slots=True)
class Node:
    value: bytes
    perms: tuple[Perm, ...]  # first entry: owner and everyone else's access; then ACL entries
    children: tuple[str, ...]  # in creation order, as cxenstored lists them
    gen: int  # generation of the last modification (0 until stored)


@dataclass(slots=True)
class Tx:
    """An open transaction: its start generation, private writes and touched paths."""

    tx_id: int
    start: int
    overlay: dict[str, Node | None] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)
    changes: list[object] = field(default_factory=list)  # watch changes, fired at commit
    owned_delta: dict[int, int] = field(default_factory=dict)


class Tree:
    """Live nodes by path, generations, per-owner node counts and snapshot history."""

    def __init__(self) -> None:
        self.gen = 0
        self.nodes: dict[str, Node] = {}
        self.owned: dict[int, int] = {}  # owner domid -> number of nodes
        self._history: dict[str, list[tuple[int, Node | None]]] = {}
        self._open: dict[object, int] = {}  # transaction key -> start generation

    def put(self, path: str, node: Node | None) -> None:
        """Store (or remove, with None) a node at a new generation."""
        self.gen += 1
        old = self.nodes.get(path)
        if self._open:
            self._history.setdefault(path, []).append((self.gen, old))
        if old is not None:
            self.owned[old.perms[0].domid] -= 1
        if node is None:
            self.nodes.pop(path, None)
            return
        node = Node(node.value, node.perms, node.children, self.gen)
        self.nodes[path] = node
        owner = node.perms[0].domid
        self.owned[owner] = self.owned.get(owner, 0) + 1

    def at(self, path: str, start: int) -> Node | None:
        """The node as it was at generation ``start`` (a transaction open since then)."""
        for gen, old in self._history.get(path, ()):
            if gen > start:
                return old
        return self.nodes.get(path)

    def changed_since(self, path: str, start: int) -> bool:
        history = self._history.get(path)
        if not history:
            return False
        return history[-1][0] > start

    def open(self, key: object, tx_id: int) -> Tx:
        """Begin a transaction identified by ``key`` (unique among open ones)."""
        if key in self._open:
            raise ValueError(f"transaction {key!r} is already open")
        self._open[key] = self.gen
        return Tx(tx_id, self.gen)

    def close(self, key: object) -> None:
        """Forget an open transaction (commit or not) and prune the history."""
        self._open.pop(key, None)
        if not self._open:
            self._history.clear()
            return
        oldest = min(self._open.values())
        for path in list(self._history):
            kept = [entry for entry in self._history[path] if entry[0] > oldest]
            if kept:
                self._history[path] = kept
            else:
                del self._history[path]

    def commit(self, tx: Tx) -> None:
        """Apply ``tx``'s writes, or raise EAGAIN (changing nothing) on a conflict.

        The caller closes the transaction afterwards in either case."""
        conflicts = sorted(p for p in tx.touched if self.changed_since(p, tx.start))
        if conflicts:
            raise XenstoreError("EAGAIN", f"{conflicts[0]!r} changed since the transaction began")
        for path, node in tx.overlay.items():
            self.put(path, node)


class View:
    """Reads and writes against the live tree (``tx is None``) or a transaction."""

    def __init__(self, tree: Tree, tx: Tx | None) -> None:
        self.tree = tree
        self.tx = tx

    def peek(self, path: str) -> Node | None:
        """Read without recording the path as touched (for watch permission checks)."""
        tx = self.tx
        if tx is None:
            return self.tree.nodes.get(path)
        if path in tx.overlay:
            return tx.overlay[path]
        return self.tree.at(path, tx.start)

    def get(self, path: str) -> Node | None:
        if self.tx is not None:
            self.tx.touched.add(path)
        return self.peek(path)

    def put(self, path: str, node: Node | None) -> None:
        tx = self.tx
        if tx is None:
            self.tree.put(path, node)
            return
        old = self.peek(path)
        for n, delta in ((old, -1), (node, 1)):
            if n is not None:
                owner = n.perms[0].domid
                tx.owned_delta[owner] = tx.owned_delta.get(owner, 0) + delta
        tx.touched.add(path)
        tx.overlay[path] = node

    def owned(self, domid: int) -> int:
        """Nodes owned by ``domid`` as this view sees them."""
        extra = self.tx.owned_delta.get(domid, 0) if self.tx is not None else 0
        return self.tree.owned.get(domid, 0) + extra
