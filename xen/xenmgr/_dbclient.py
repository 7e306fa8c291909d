"""xenmgr's client of the config database (dbd, ``com.citrix.xenclient.db``) over DBus.

The database is the source of truth for every VM's settings, as in the original: xenmgr reads
what it needs at each call (one ``dump`` of a VM's subtree answers every property of that VM).
Property reads (:meth:`DbClient.cached_vm_view`) may use a copy of the subtree from a
:class:`~xen.xenmgr._dbcache.VmTreeCache`, which keeps copies only while dbd's change
notifications say they are current (see there); everything else, setters included, reads the
database. Every call is bounded by the client's timeout.

Failure behaviour: whatever goes wrong between us and dbd (an error reply, a timeout, the
connection lost) is raised as :class:`DbUnavailable` (a plain ``XenmgrError`` whose text says
which request failed and why), so a DBus caller of xenmgr gets a clear ``Failed`` error and
never a hang. ``dump`` answers JSON; a missing node reads as an empty tree.
"""

from __future__ import annotations

import json
from typing import Any

from rpc.dbus import BusConnection, CallTimeout, ConnectionLost, DBusError, RemoteObject
from xen.xenmgr._dbcache import VmTreeCache
from xen.xenmgr._dbview import DbView, DbViewError
from xen.xenmgr._errors import XenmgrError

__all__ = ["DB_INTERFACE", "DB_SERVICE", "DbClient", "DbUnavailable"]

DB_SERVICE = "com.citrix.xenclient.db"
DB_INTERFACE = "com.citrix.xenclient.db"


class DbUnavailable(XenmgrError):
    """A request to the config database failed."""


class DbClient:
    """The database over one bus connection (thread-safe: the connection is)."""

    def __init__(self, conn: BusConnection, *, timeout: float = 10.0,
                 cache: VmTreeCache | None = None) -> None:
        self._db = RemoteObject(conn, DB_SERVICE, "/", timeout=timeout)
        self.cache = cache

    def _call(self, member: str, signature: str, *args: Any) -> tuple[Any, ...]:
        try:
            return self._db.call(DB_INTERFACE, member, signature, *args)
        except DBusError as exc:
            raise DbUnavailable(None, f"config database: {member} {args[0]!r}: "
                                      f"{exc.message or exc.name}") from None
        except (CallTimeout, ConnectionLost, OSError) as exc:
            raise DbUnavailable(None, f"config database: {member} {args[0]!r}: {exc}") from None

    def read(self, path: str) -> str:
        """The value at ``path`` ("" when missing, as dbd answers)."""
        return str(self._call("read", "s", path)[0])

    def exists(self, path: str) -> bool:
        return bool(self._call("exists", "s", path)[0])

    def list(self, path: str) -> list[str]:
        """The names of the children of ``path``, in the database's order."""
        return [str(name) for name in self._call("list", "s", path)[0]]

    def write(self, path: str, value: str) -> None:
        """Write (durable when this returns)."""
        self._call("write", "ss", path, value)

    def rm(self, path: str) -> None:
        self._call("rm", "s", path)

    def inject(self, path: str, tree: object) -> None:
        """Replace the subtree at ``path`` by ``tree`` in one durable step."""
        self._call("inject", "ss", path, json.dumps(tree, ensure_ascii=False))

    def tree(self, path: str) -> Any:
        """The subtree at ``path`` as JSON values (``{}`` when missing)."""
        text = str(self._call("dump", "s", path)[0])
        try:
            value = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise DbUnavailable(None, f"config database: dump {path!r}: not JSON: {exc}"
                                ) from None
        return {} if value is None else value

    def vm_tree(self, uuid: str) -> dict[str, Any]:
        """VM ``uuid``'s subtree (``{}`` when the VM does not exist)."""
        tree = self.tree(f"/vm/{uuid}")
        return tree if isinstance(tree, dict) else {}

    def vms(self) -> dict[str, Any]:
        """Every VM's subtree by uuid."""
        tree = self.tree("/vm")
        return {k: v for k, v in tree.items() if isinstance(v, dict)} if isinstance(
            tree, dict) else {}

    def cached_vms(self) -> dict[str, Any]:
        """:meth:`vms`, from the cache's copy of ``/vm`` when it keeps one (read only)."""
        cache = self.cache
        if cache is None or not cache.active:
            return self.vms()
        vms = cache.get_all()
        if vms is None:
            token = cache.token()
            vms = self.vms()
            cache.put_all(vms, token)
        return vms

    def cached_vm_tree(self, uuid: str) -> dict[str, Any]:
        """:meth:`vm_tree`, from the cache's copy when it keeps one (read only)."""
        cache = self.cache
        if cache is None or not cache.active:
            return self.vm_tree(uuid)
        return self._cached_tree(cache, uuid, strict=False)

    def _cached_tree(self, cache: VmTreeCache, uuid: str, *, strict: bool) -> dict[str, Any]:
        """The copy, else the database's tree, kept once checked (a malformed one raises
        ``DbViewError`` when ``strict``, as :meth:`vm_view` would; else it is not kept)."""
        tree = cache.get(uuid)
        if tree is None:
            token = cache.token()
            tree = self.vm_tree(uuid)
            try:
                DbView(tree)  # checked once, here
            except DbViewError:
                if strict:
                    raise
                return tree
            if tree:
                cache.put(uuid, tree, token)
        return tree

    def cached_vm_view(self, uuid: str, extra: dict[str, Any] | None = None) -> DbView:
        """:meth:`vm_view`, from the cache's copy of the subtree when it keeps one."""
        cache = self.cache
        if cache is None or not cache.active or not uuid:
            return self.vm_view(uuid, extra)
        root: dict[str, Any] = {"vm": {uuid: self._cached_tree(cache, uuid, strict=True)}}
        if extra:
            DbView(extra)
            root.update(extra)
        return DbView(root, checked=True)

    def vm_view(self, uuid: str, extra: dict[str, Any] | None = None) -> DbView:
        """A view rooted at ``/`` holding ``/vm/<uuid>`` (and the ``extra`` top-level nodes)."""
        root: dict[str, Any] = {"vm": {uuid: self.vm_tree(uuid)}} if uuid else {}
        if extra:
            root.update(extra)
        return DbView(root)
