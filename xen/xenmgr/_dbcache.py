"""Copies of VMs' database subtrees for property reads, dropped on dbd's change notifications.

The database stays the source of truth: a copy is used only while the database we read it
from has told us of every change since. dbd (``persistence``) broadcasts
``org.openxt.toolstack.DbChanges.changed(path, seq)`` after each change, before it answers
the writer; the bus delivers that signal to us before any message the writer sends us
afterwards, and our connection's reader thread handles it (:meth:`VmTreeCache.on_signal`)
before it routes the next call. So a reader that learnt of a write (from its answer, or from
anyone who saw it) and then asks xenmgr finds the copy already dropped.

Rules, each erring on the side of reading the database again:

* **Active only while trusted.** Copies are kept only after a change signal came from the
  current owner of ``com.citrix.xenclient.db`` (a database that sends none, like the
  original's, is always read). The owner changing (``NameOwnerChanged``: dbd restarted or
  replaced) drops everything and stops copying until its first signal.
* **A gap drops everything.** ``seq`` counts one connection's signals from 1; a signal that
  is not the next one (one was lost) drops every copy.
* **What a path drops.** ``/`` and ``/vm`` (or anything above them) drop every copy,
  ``/vm/<uuid>/...`` that VM's copy; other paths none.
* **No stale fill.** A reader takes a :meth:`token` before it dumps; :meth:`put` stores only
  if no drop happened in between (a dump that raced a change is used once, not kept).
* At most :data:`MAX_VMS` copies; beyond, the table is emptied.
* One copy of the whole ``/vm`` (:meth:`VmTreeCache.get_all`, for the ``dependencies``
  property, which reads every VM): any change under ``/vm`` drops it; same token rule.

Copies are shared between threads and never modified.
"""

from __future__ import annotations

import threading
from typing import Any

from jeepney.low_level import HeaderFields, Message

from xen.xenmgr._dbview import segments

__all__ = ["CHANGES_INTERFACE", "MAX_VMS", "VmTreeCache", "match_rules"]

DB_SERVICE = "com.citrix.xenclient.db"
CHANGES_INTERFACE = "org.openxt.toolstack.DbChanges"
MAX_VMS = 4096
_BUS = "org.freedesktop.DBus"


def match_rules() -> tuple[str, ...]:
    """The AddMatch rules the cache's connection needs."""
    return (f"type='signal',sender='{DB_SERVICE}',interface='{CHANGES_INTERFACE}',"
            f"member='changed'",
            f"type='signal',sender='{_BUS}',interface='{_BUS}',member='NameOwnerChanged',"
            f"arg0='{DB_SERVICE}'")


class VmTreeCache:
    """See the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trees: dict[str, dict[str, Any]] = {}
        self._all: dict[str, Any] | None = None  # every VM's subtree (``/vm``), if kept
        self._generation = 0
        self._source: str | None = None  # the unique name whose signals we follow
        self._seq = 0

    @property
    def active(self) -> bool:
        """Whether copies are kept (a change signal came from the current database)."""
        return self._source is not None

    def token(self) -> int:
        """Take before reading the database; give it to :meth:`put`."""
        return self._generation

    def get(self, uuid: str) -> dict[str, Any] | None:
        """The copy of ``/vm/<uuid>``, if one is kept."""
        return self._trees.get(uuid) if self._source is not None else None

    def put(self, uuid: str, tree: dict[str, Any], token: int) -> None:
        """Keep ``tree`` as ``/vm/<uuid>`` unless something was dropped since ``token``."""
        with self._lock:
            if token != self._generation or self._source is None:
                return
            if len(self._trees) >= MAX_VMS:
                self._trees.clear()
            self._trees[uuid] = tree

    def get_all(self) -> dict[str, Any] | None:
        """The copy of every VM's subtree (``/vm``), if one is kept (not to be changed)."""
        return self._all if self._source is not None else None

    def put_all(self, vms: dict[str, Any], token: int) -> None:
        """Keep ``vms`` as ``/vm`` unless something was dropped since ``token``."""
        with self._lock:
            if token == self._generation and self._source is not None:
                self._all = vms

    def clear(self) -> None:
        """Drop every copy."""
        with self._lock:
            self._generation += 1
            self._trees.clear()
            self._all = None

    def changed(self, path: str) -> None:
        """The database changed at or below ``path``."""
        parts = segments(path)
        with self._lock:
            if len(parts) >= 2 and parts[0] == "vm":
                self._generation += 1
                self._trees.pop(parts[1], None)
                self._all = None
            elif not parts or parts == ("vm",):
                self._generation += 1
                self._trees.clear()
                self._all = None

    def on_signal(self, msg: Message) -> None:
        """Handle a signal of the connection (its reader thread; others are ignored)."""
        fields = msg.header.fields
        iface, member = fields.get(HeaderFields.interface), fields.get(HeaderFields.member)
        body = tuple(msg.body)
        if iface == CHANGES_INTERFACE and member == "changed" and len(body) == 2:
            sender = fields.get(HeaderFields.sender)
            path, seq = body
            if not isinstance(path, str) or not isinstance(seq, int):
                self._forget_source()
                return
            if sender != self._source or seq != self._seq + 1:
                self.clear()
                with self._lock:
                    self._source = sender if isinstance(sender, str) else None
            self._seq = seq
            self.changed(path)
        elif iface == _BUS and member == "NameOwnerChanged" and body and body[0] == DB_SERVICE:
            self._forget_source()

    def _forget_source(self) -> None:
        with self._lock:
            self._source = None
            self._generation += 1
            self._trees.clear()
            self._all = None
