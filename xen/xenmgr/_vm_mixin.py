"""What a mixin of the VM object (``_vm_argo``, ``_vm_product``...) may use of it, and the one
way they read and rewrite a db list or map of the VM.

:func:`db_map` reads a map of the VM's subtree (``config/pci``, ``firewall-rule``,
``productproperty``): entry key -> its string leaves, numeric keys first in number order, then
the others in text order; entries that are not maps are skipped. :func:`db_list` reads a db
list (children ``0``, ``1``...; ``argo-firewall-rules``) in index order. The mixin's
:meth:`VmMixin.put_entry`, :meth:`~VmMixin.drop_entry` and :meth:`~VmMixin.put_list` write
one entry in one durable step, remove one, and replace a whole list in one step (an empty
list removes it). Callers hold the VM's lock (``ctx.vm_lock``) around a read and its rewrite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["VmMixin", "db_list", "db_map"]


def _node(tree: dict[str, Any], path: str) -> dict[str, Any]:
    node: Any = tree
    for part in path.split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _order(key: str) -> tuple[bool, int, str]:
    return (not key.isdigit(), int(key) if key.isdigit() else 0, key)


def db_map(tree: dict[str, Any], path: str) -> dict[str, dict[str, str]]:
    """The map at ``path`` of a VM's subtree (module docstring)."""
    return {k: {n: v for n, v in entry.items() if isinstance(v, str)}
            for k, entry in sorted(_node(tree, path).items(), key=lambda kv: _order(kv[0]))
            if isinstance(entry, dict)}


def db_list(tree: dict[str, Any], path: str) -> list[str]:
    """The db list at ``path`` of a VM's subtree, in index order (module docstring)."""
    items = _node(tree, path)
    return [items[k] for k in sorted((k for k in items if k.isdigit()), key=int)
            if isinstance(items[k], str)]


class VmMixin:
    """Declares, for type checkers, the VM object's members its mixins call; writes their
    lists and maps (module docstring)."""

    ctx: ServiceContext

    if TYPE_CHECKING:
        @property
        def uuid(self) -> str:
            """The VM's uuid."""
            ...

        def tree(self) -> dict[str, Any]:
            """The VM's db subtree (an error when the VM is gone)."""
            ...

        def changed(self) -> None:
            """Queue ``vm_config_changed`` for the VM."""
            ...

    def put_entry(self, path: str, key: str, fields: dict[str, str]) -> None:
        """Write entry ``key`` of the VM's map ``path`` (replacing it) in one step."""
        self.ctx.db.inject(f"/vm/{self.uuid}/{path}/{key}", fields)

    def drop_entry(self, path: str, key: str) -> None:
        """Remove entry ``key`` of the VM's map ``path``."""
        self.ctx.db.rm(f"/vm/{self.uuid}/{path}/{key}")

    def put_list(self, path: str, items: list[str]) -> None:
        """Replace the VM's db list ``path`` by ``items`` in one step (empty: removed)."""
        base = f"/vm/{self.uuid}/{path}"
        if items:
            self.ctx.db.inject(base, {str(i): v for i, v in enumerate(items)})
        else:
            self.ctx.db.rm(base)
