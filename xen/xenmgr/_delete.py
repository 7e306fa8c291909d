"""The delete plan: whether a VM may be deleted, and which of its files go with it.

:func:`plan_delete` decides from the db subtrees of all VMs, the VM's running state and the
policy flag, before anything is removed. Refusals, in order: ``delete_disallowed`` (db
``/vm-delete-disallowed``; false for ``unrestricted_delete_vm``) -> 220; a running VM -> 204;
an unknown uuid -> ``no vm with uuid X``.

A disk's file is deleted only if every one of these holds (otherwise the plan lists it in
``kept`` with the reason):

* the VM is not *managed* (it has no ``backend`` node: its disks belong to someone else);
* the disk is a VHD (``config/disk/<n>/type`` is ``vhd``; other types, such as ISOs, are never
  deleted, and neither is a disk without a type);
* it is not ``shared`` (a shared flag that is not a db boolean counts as shared);
* no other VM has a disk with that path (paths compared after normalisation);
* *here* it is *owned*: an absolute path inside one of ``disk_dirs`` (default
  ``/storage/disks``, where new VHDs are created) after normalisation, so a stored path such
  as ``/storage/disks/../../etc/x.vhd`` or a VHD an administrator placed elsewhere is never
  deleted (the original deleted wherever the path pointed).

With each deleted VHD ``X.vhd`` go its siblings ``X.vhd.hib`` (a hibernated VM's temporary
snapshot), ``X.snap.tmp.vhd`` (the temporary snapshot) and ``X.snap``, unless another VM uses
one of them as its disk. The caller removes those that exist, the VHDs' disk keys, the
directory :attr:`DeletePlan.ovf_dir`, the db paths :attr:`DeletePlan.db_paths` and xenstore's
``/state/<uuid>``, and runs the pre-delete hooks before all that.

A VHD chain (another VM's disk whose parent is this VM's VHD) is not visible in the db; the
caller's storage layer must check it if chains are used.

Failure: :class:`DeleteError` with code 204 or 220, or a plain message; nothing is decided
half-way.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xen.xenmgr._jsontree import TreeView, get_leaf, get_node, parse_db_bool
from xen.xenmgr._planerror import CANNOT_REMOVE_RUNNING, POLICY_SUPPRESSED, DeleteError
from xen.xenmgr._uuids import canonical_uuid

__all__ = [
    "DEFAULT_DISK_DIRS",
    "DeletePlan",
    "KeptFile",
    "disk_paths",
    "plan_delete",
    "vhd_siblings",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

DEFAULT_DISK_DIRS = ("/storage/disks",)
OVF_ROOT = "/storage/ovffiles"


@dataclass(frozen=True, slots=True)
class KeptFile:
    """A disk file the deletion leaves in place, and why."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class DeletePlan:
    """What deleting VM ``uuid`` removes."""

    uuid: str
    managed: bool
    vhds: tuple[str, ...]          # the VHDs deleted (their disk keys go too)
    files: tuple[str, ...]         # every file to delete: each VHD, then its siblings
    kept: tuple[KeptFile, ...]

    @property
    def db_paths(self) -> tuple[str, ...]:
        return (f"/vm/{self.uuid}", f"/dom-store/{self.uuid}")

    @property
    def ovf_dir(self) -> str:
        return f"{OVF_ROOT}/{self.uuid}"

    @property
    def xenstore_paths(self) -> tuple[str, ...]:
        return (f"/state/{self.uuid}",)


def vhd_siblings(path: str) -> tuple[str, ...]:
    """The files that belong to VHD ``path`` (``X.vhd``): ``X.vhd.hib``, ``X.snap.tmp.vhd``,
    ``X.snap``. A VHD not named ``*.vhd`` uses its whole name as ``X``."""
    base = path[:-len(".vhd")] if path.endswith(".vhd") else path
    return (f"{path}.hib", f"{base}.snap.tmp.vhd", f"{base}.snap")


def disk_paths(tree: TreeView) -> list[tuple[str, TreeView]]:
    """Each disk of a VM subtree that has a path: (normalised path, its subtree)."""
    disks = get_node(tree, "config/disk") or {}
    out = []
    for disk_id in disks:
        disk = get_node(disks, disk_id)
        path = None if disk is None else get_leaf(disk, "path")
        if disk is not None and path:
            out.append((_normal(path), disk))
    return out


def _normal(path: str) -> str:
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/") if normal.startswith("/") else normal


def _inside(path: str, dirs: Sequence[str]) -> bool:
    return path.startswith("/") and any(
        path.startswith(_normal(d).rstrip("/") + "/") for d in dirs)


def _why_kept(path: str, disk: TreeView, managed: bool, others: Mapping[str, str],
              dirs: Sequence[str]) -> str | None:
    if managed:
        return "the VM is managed (it has a backend node)"
    kind = get_leaf(disk, "type")
    if kind != "vhd":
        return f"not a VHD (type {kind!r})" if kind else "not a VHD (no type)"
    shared = get_leaf(disk, "shared")
    if shared is not None:
        try:
            if parse_db_bool(shared, what="shared"):
                return "shared"
        except ValueError:
            return f"its shared flag {shared!r} is not a boolean (taken as shared)"
    if path in others:
        return f"also used by VM {others[path]}"
    if not _inside(path, dirs):
        return f"outside the disk directories ({', '.join(dirs)})"
    return None


def plan_delete(uuid: str, vms: Mapping[str, TreeView], *, running: bool,
                delete_disallowed: bool = False,
                disk_dirs: Sequence[str] = DEFAULT_DISK_DIRS) -> DeletePlan:
    """Plan deleting VM ``uuid``; ``vms`` maps every VM's uuid to its db subtree."""
    if delete_disallowed:
        raise DeleteError(POLICY_SUPPRESSED)
    try:
        uuid = canonical_uuid(uuid)
    except ValueError as e:
        raise DeleteError(None, str(e)) from None
    by_uuid = {u.lower(): t for u, t in vms.items()}
    tree = by_uuid.get(uuid)
    if tree is None:
        raise DeleteError(None, f"no vm with uuid {uuid}")
    if running:
        raise DeleteError(CANNOT_REMOVE_RUNNING)
    others: dict[str, str] = {}
    for other, other_tree in sorted(by_uuid.items()):
        if other != uuid:
            for path, _disk in disk_paths(other_tree):
                others.setdefault(path, other)
    managed = "backend" in tree
    decided: dict[str, str | None] = {}  # each own disk path -> why it is kept, or None
    for path, disk in disk_paths(tree):
        reason = _why_kept(path, disk, managed, others, disk_dirs)
        if decided.get(path) is None:  # a path listed twice is kept if either entry says so
            decided[path] = reason
    vhds = [path for path, reason in decided.items() if reason is None]
    kept = [KeptFile(path, reason) for path, reason in decided.items() if reason is not None]
    files: list[str] = []
    for path in vhds:
        if path not in files:
            files.append(path)
        for sibling in vhd_siblings(path):
            if sibling in decided or sibling in files:
                continue  # one of this VM's own disks: its own rule decides
            if sibling in others:
                kept.append(KeptFile(sibling, f"also used by VM {others[sibling]}"))
            else:
                files.append(sibling)
    return DeletePlan(uuid, managed, tuple(vhds), tuple(files), tuple(kept))
