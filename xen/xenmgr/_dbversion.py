"""The database's format version (``/db-version``): what xenmgr does with it at start.

The original's ``upgrade-db`` ran before dbd started and migrated a database written by an
older OpenXT, step by step, to version :data:`DB_VERSION` (42, the format this package reads
and writes). This project ships no ``upgrade-db``, and the contents of the original's
migrations are not known to it, so xenmgr migrates nothing; it decides at start, before it
writes anything (:func:`plan_db_version`):

* no ``/db-version``: a database this xenmgr starts afresh: it writes ``42``;
* ``42``: nothing to do;
* any other version (older: written by an older OpenXT and never upgraded; newer: by a newer
  toolstack), or text that is not a version: refused with :class:`DbVersionError` naming
  the version and what to do. xenmgr does not start on such a database, rather than read a
  layout it does not know (the creation actor fails at start; the standalone ``xenmgr``
  exits 1 with the reason).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["DB_VERSION", "DB_VERSION_PATH", "DbVersionError", "ensure_db_version",
           "plan_db_version"]

DB_VERSION = 42
DB_VERSION_PATH = "/db-version"


class DbVersionError(RuntimeError):
    """The database's version is not one this xenmgr reads (the message says which)."""


class _Db(Protocol):
    def read(self, path: str) -> str | None: ...

    def write(self, path: str, value: str) -> None: ...


def plan_db_version(stored: str | None) -> str | None:
    """What to write at ``/db-version`` (None: nothing), or :class:`DbVersionError` (pure)."""
    if stored is None or stored.strip() == "":
        return str(DB_VERSION)
    text = stored.strip()
    if not text.isdigit():
        raise DbVersionError(f"database version {stored!r} (at {DB_VERSION_PATH}) is not a "
                             f"version number; xenmgr reads version {DB_VERSION} only")
    version = int(text)
    if version < DB_VERSION:
        raise DbVersionError(
            f"database version {version} is older than {DB_VERSION}, the only one this "
            "xenmgr reads: it was written by an older OpenXT; migrate it with that "
            "release's upgrade-db first (this xenmgr migrates nothing)")
    if version > DB_VERSION:
        raise DbVersionError(
            f"database version {version} is newer than {DB_VERSION}, the only one this "
            "xenmgr reads: it was written by a newer toolstack")
    return None


def ensure_db_version(db: _Db) -> None:
    """Check ``/db-version`` and write it on a fresh database (module docstring)."""
    write = plan_db_version(db.read(DB_VERSION_PATH))
    if write is not None:
        db.write(DB_VERSION_PATH, write)
