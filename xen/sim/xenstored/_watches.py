"""Watch registrations and the matching of changes to watches (pure).

Rules (docs/misc/xenstore.txt, cxenstored 4.17):
- A watch on P fires for a change of P or of any descendant, with the changed path. When an RM
  removes a subtree that contains an existing watched node, that watch fires with its own path.
- A watch registered with a relative path reports event paths relative to the connection's
  ``/local/domain/<domid>`` (the root of that prefix itself shows as ``""``).
- Special names (``@introduceDomain``, ``@releaseDomain``) match only watches on exactly that
  name; a watch on ``/`` does not see them.
- Each matching watch yields one event per change (duplicate matches are merged), in the order
  the watches were registered. The permission filter (can the watcher read the node?) is the
  caller's: `match` returns the permission lists that would admit a watcher.

`WatchIndex` keeps every connection's watches by path, so that a change looks only at the
watches it can fire (those on its path and its ancestors, on the nodes an RM removed, or on the
special name) rather than at every watch of every connection: it gives the same events as
`match` tried on every watch, in the same order (connections in the order they were ranked,
each one's watches in registration order).

No I/O, no threads.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xen.sim.xenstored._tree import is_child

if TYPE_CHECKING:
    from xen.xenstore import Perm

__all__ = ["Change", "Registered", "Watch", "WatchEvent", "WatchIndex", "match"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """A watch firing to deliver to connection ``conn_id``."""

    conn_id: int
    path: str
    token: bytes


@dataclass(frozen=True, slots=True)
class Change:
    """One modification, as watches see it.

    ``readers``: permission lists of which any granting read admits an unprivileged watcher
    (the node's old and new permissions and its parent's). ``removed``: for an RM, every removed
    node with its permissions."""

    path: str
    readers: tuple[tuple[Perm, ...], ...]
    removed: tuple[tuple[str, tuple[Perm, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class Watch:
    path: str  # canonical (absolute, or a special name)
    token: bytes
    prefix: str | None  # "/local/domain/<n>" when registered relative

    def shown(self, path: str) -> str:
        """``path`` as this watch reports it."""
        if self.prefix is None or not is_child(path, self.prefix):
            return path
        return path[len(self.prefix) :].lstrip("/")


def match(
    watch: Watch, change: Change, special_perms: tuple[Perm, ...]
) -> tuple[str, tuple[tuple[Perm, ...], ...]] | None:
    """The event path (as shown) and admitting permissions if ``watch`` fires, else None."""
    if change.path.startswith("@"):
        if watch.path != change.path:
            return None
        return change.path, (special_perms,)
    if is_child(change.path, watch.path):
        return watch.shown(change.path), change.readers
    if change.removed and is_child(watch.path, change.path):
        for path, perms in change.removed:
            if path == watch.path:
                return watch.shown(path), (perms,)
    return None


Readers = tuple[tuple["Perm", ...], ...]


@dataclass(frozen=True, slots=True)
class Registered:
    """A watch of connection ``conn_id``; ``order`` (its connection's rank, then a registration
    number) is the order events are produced in."""

    order: tuple[int, int]
    conn_id: int
    watch: Watch


class WatchIndex:
    """Every connection's watches by canonical path (see the module docstring)."""

    def __init__(self) -> None:
        self._by_path: dict[str, list[Registered]] = {}
        self._numbers = itertools.count()

    def add(self, rank: int, conn_id: int, watch: Watch) -> None:
        """Index ``watch`` of connection ``conn_id`` (whose rank is ``rank``)."""
        entry = Registered((rank, next(self._numbers)), conn_id, watch)
        self._by_path.setdefault(watch.path, []).append(entry)

    def remove(self, conn_id: int, watches: list[Watch]) -> None:
        """Forget these watches of connection ``conn_id`` (unknown ones are ignored)."""
        for watch in watches:
            entries = self._by_path.get(watch.path)
            if entries is None:
                continue
            kept = [e for e in entries if not (e.conn_id == conn_id and e.watch == watch)]
            if kept:
                self._by_path[watch.path] = kept
            else:
                del self._by_path[watch.path]

    def fired(self, change: Change, special_perms: tuple[Perm, ...]
              ) -> list[tuple[Registered, str, Readers]]:
        """The watches ``change`` fires with the event path (as shown) and the admitting
        permissions, as `match` would give them, in event order."""
        by_path = self._by_path
        if change.path.startswith("@"):
            entries = sorted(by_path.get(change.path, ()), key=lambda e: e.order)
            return [(e, change.path, (special_perms,)) for e in entries]
        hits: dict[tuple[int, int], tuple[Registered, str, Readers]] = {}
        for ancestor in _ancestors(change.path):
            for e in by_path.get(ancestor, ()):
                hits[e.order] = (e, e.watch.shown(change.path), change.readers)
        for path, perms in change.removed:
            if not is_child(path, change.path):
                continue
            for e in by_path.get(path, ()):
                if e.order not in hits:
                    hits[e.order] = (e, e.watch.shown(path), (perms,))
        return [hits[order] for order in sorted(hits)]


def _ancestors(path: str) -> list[str]:
    """``path`` and every node above it (``/`` first); ``path`` is canonical and absolute."""
    out = ["/"]
    if path == "/":
        return out
    end = path.find("/", 1)
    while end != -1:
        out.append(path[:end])
        end = path.find("/", end + 1)
    out.append(path)
    return out
