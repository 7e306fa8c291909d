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

No I/O, no threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from xen.sim.xenstored._tree import is_child

if TYPE_CHECKING:
    from xen.xenstore import Perm

__all__ = ["Change", "Watch", "WatchEvent", "match"]

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
