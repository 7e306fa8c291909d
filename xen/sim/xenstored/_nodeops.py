"""Node operations and the permission rule of xenstored (pure).

Each operation acts for a requester (`Who`: a domid and an optional SET_TARGET target) on a
`View` (live tree or transaction), checks before it writes, and returns the `Change` values that
watches will see. Refusals raise `XenstoreError` and leave the view unchanged.

Permission rule (cxenstored's perm_for_conn): domain 0 is privileged and may do anything. For
others the first entry of a node's list names the owner, who has full access, and gives the
access of every domain not listed; later entries are per-domain ACL entries, the first match
wins; a domain with a target also gets the target's rights. Reading needs r, writing w, and
SET_PERMS ownership (w + owner). For a missing node the nearest existing ancestor decides
between ENOENT and EACCES (cxenstored's errno_from_parents), so existence does not leak.

- WRITE/MKDIR create missing parents with empty values; new nodes inherit the nearest existing
  ancestor's permissions, with the owner replaced by an unprivileged creator. MKDIR of an
  existing node changes nothing. Creation needs w on that ancestor.
- RM removes a subtree (w on its top node). A missing node is fine when its parent exists,
  ENOENT otherwise; the root cannot be removed (EINVAL).
- SET_PERMS: an unprivileged owner may not give the node away (EPERM).
- Quotas (`Quotas`, cxenstored's defaults) bind unprivileged domains only: value size and
  nodes owned per domain (ENOSPC), permission entries per node (ENOSPC).
"""

from __future__ import annotations

from dataclasses import dataclass

from xen.sim.xenstored._tree import Node, View, basename, child_path, parent_path
from xen.sim.xenstored._watches import Change
from xen.xenstore import PAYLOAD_MAX, Access, Perm, XenstoreError

__all__ = [
    "DEFAULT_PERMS",
    "OWNER",
    "READ",
    "WRITE",
    "Quotas",
    "Who",
    "access",
    "directory_part",
    "readable",
    "rm",
    "set_perms",
    "write",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

READ, WRITE, OWNER = 1, 2, 4
_ALL = READ | WRITE | OWNER
_BITS = {Access.NONE: 0, Access.READ: READ, Access.WRITE: WRITE, Access.BOTH: READ | WRITE}
DEFAULT_PERMS = (Perm(0, Access.NONE),)


@dataclass(frozen=True, slots=True)
class Quotas:
    """Limits applied to unprivileged domains (cxenstored's defaults)."""

    entries_per_domain: int = 1000
    value_size: int = 2048
    watches_per_connection: int = 128
    transactions_per_connection: int = 10
    perms_per_node: int = 5


@dataclass(frozen=True, slots=True)
class Who:
    """The requester: its domain and the SET_TARGET target of that domain, if any."""

    domid: int
    target: int | None = None

    @property
    def privileged(self) -> bool:
        return self.domid == 0


def access(who: Who, perms: tuple[Perm, ...]) -> int:
    """The READ/WRITE/OWNER bits ``who`` has on a node with ``perms``."""
    if who.privileged:
        return _ALL
    ids = (who.domid,) if who.target is None else (who.domid, who.target)
    if perms[0].domid in ids:
        return _ALL
    for perm in perms[1:]:
        if perm.domid in ids:
            return _BITS[perm.access]
    return _BITS[perms[0].access]


def _missing(who: Who, view: View, path: str, need: int) -> XenstoreError:
    if not who.privileged:
        ancestor = parent_path(path)
        while (node := view.peek(ancestor)) is None:
            ancestor = parent_path(ancestor)
        if access(who, node.perms) & need != need:
            return XenstoreError("EACCES", f"no access to {path[:80]!r}")
    return XenstoreError("ENOENT", f"no node {path[:80]!r}")


def readable(who: Who, view: View, path: str) -> Node:
    """The node at ``path`` if ``who`` may read it; ENOENT / EACCES otherwise."""
    node = view.get(path)
    if node is None:
        raise _missing(who, view, path, READ)
    if not access(who, node.perms) & READ:
        raise XenstoreError("EACCES", f"{path[:80]!r} is not readable by domain {who.domid}")
    return node


def _parent_perms(view: View, path: str) -> tuple[Perm, ...]:
    parent = view.peek(parent_path(path))
    return parent.perms if parent is not None else DEFAULT_PERMS


def write(
    who: Who, view: View, quotas: Quotas, path: str, value: bytes, always: bool
) -> list[Change]:
    """WRITE (``always``) or MKDIR (``always=False``) of a canonical path."""
    if not who.privileged and len(value) > quotas.value_size:
        raise XenstoreError("ENOSPC", f"value of {len(value)} bytes exceeds the node quota")
    node = view.get(path)
    if node is not None:
        if not access(who, node.perms) & WRITE:
            raise XenstoreError("EACCES", f"{path[:80]!r} is not writable")
        if not always:
            return []
        view.put(path, Node(value, node.perms, node.children, node.gen))
        return [Change(path, (node.perms, _parent_perms(view, path)))]
    missing = [path]
    while (ancestor := view.get(parent_path(missing[-1]))) is None:
        missing.append(parent_path(missing[-1]))
    if not access(who, ancestor.perms) & WRITE:
        raise XenstoreError("EACCES", f"cannot create {path[:80]!r}: parent not writable")
    perms = ancestor.perms
    if not who.privileged:
        perms = (Perm(who.domid, perms[0].access), *perms[1:])
        if view.owned(who.domid) + len(missing) > quotas.entries_per_domain:
            raise XenstoreError("ENOSPC", f"domain {who.domid} owns too many nodes")
    top = parent_path(missing[-1])
    view.put(top, Node(ancestor.value, ancestor.perms,
                         (*ancestor.children, basename(missing[-1])), ancestor.gen))
    for i, p in enumerate(missing):
        kids = (basename(missing[i - 1]),) if i else ()
        view.put(p, Node(value if i == 0 else b"", perms, kids, 0))
    return [Change(path, (perms, ancestor.perms))]


def rm(who: Who, view: View, path: str) -> list[Change]:
    """RM of a canonical path and everything below it."""
    node = view.get(path)
    if node is None:
        if view.get(parent_path(path)) is None:
            raise _missing(who, view, path, WRITE)
        return []
    if not access(who, node.perms) & WRITE:
        raise XenstoreError("EACCES", f"{path[:80]!r} is not writable")
    if path == "/":
        raise XenstoreError("EINVAL", "cannot remove the root")
    removed: list[tuple[str, tuple[Perm, ...]]] = []
    stack = [(path, node)]
    while stack:
        p, n = stack.pop()
        removed.append((p, n.perms))
        for name in n.children:
            child = view.get(child_path(p, name))
            if child is not None:
                stack.append((child_path(p, name), child))
    for p, _ in reversed(removed):
        view.put(p, None)
    parent = view.get(parent_path(path))
    assert parent is not None, "an existing node has a parent"
    name = basename(path)
    kids = tuple(c for c in parent.children if c != name)
    view.put(parent_path(path), Node(parent.value, parent.perms, kids, parent.gen))
    return [Change(path, (node.perms, parent.perms), tuple(removed))]


def set_perms(
    who: Who, view: View, quotas: Quotas, path: str, perms: tuple[Perm, ...]
) -> list[Change]:
    """SET_PERMS of a canonical path."""
    if not who.privileged and len(perms) > quotas.perms_per_node:
        raise XenstoreError("ENOSPC", f"{len(perms)} permission entries exceed the quota")
    node = view.get(path)
    if node is None:
        raise _missing(who, view, path, WRITE)
    if access(who, node.perms) & (WRITE | OWNER) != WRITE | OWNER:
        raise XenstoreError("EACCES", f"domain {who.domid} does not own {path[:80]!r}")
    if not who.privileged and perms[0].domid != node.perms[0].domid:
        raise XenstoreError("EPERM", "an unprivileged domain may not change a node's owner")
    view.put(path, Node(node.value, perms, node.children, node.gen))
    return [Change(path, (perms, node.perms, _parent_perms(view, path)))]


def directory_part(node: Node, offset: int) -> tuple[int, list[str], bool]:
    """cxenstored's DIRECTORY_PART chunking: names from byte ``offset`` of the NUL-separated
    child list, as many as fit in one payload beside the generation count; complete when the
    list ends. An offset inside a name is EINVAL."""
    starts, pos = {}, 0
    for i, name in enumerate(node.children):
        starts[pos] = i
        pos += len(name) + 1
    if offset >= pos:
        return (node.gen, [], True)
    if offset not in starts:
        raise XenstoreError("EINVAL", f"offset {offset} is not at a child name")
    room = PAYLOAD_MAX - len(str(node.gen)) - 2
    names: list[str] = []
    for name in node.children[starts[offset] :]:
        if len(name) + 1 > room:
            break
        names.append(name)
        room -= len(name) + 1
    return (node.gen, names, starts[offset] + len(names) == len(node.children))
