"""The configuration database (the original's dbd): the tree, its files, its log, its actors.

Public API::

    DbTree, Change, InteriorWrite, WriteOp, InjectOp, RmOp     # the tree and its operations
    Caller, confine_path, Limits, DEFAULT_LIMITS                # domstore and request limits
    DbError and its subclasses, JsonFormatError                 # what refusals raise
    load_root, Loaded, LoadProblem, write_files, DbFlushError   # the files under a root
    WalWriter, WalMark, GroupCommitter, encode_record, replay,
    apply_replay, recover, WalError, WAL_DIR                    # the write-ahead log
    DbStore, DbFlusher, DbService                               # the actors
    DbRead, DbWrite, ... , FlushNow, Reload, commit             # their messages
    db_specs, db_supervisor_spec, PERSISTENCE_FLAGS             # the subtree as child specs

Docs: docs/dbd-format.md (the pure layer), docs/dbd.md (the actors, the daemon, db-cmd).
Names are imported lazily from the private modules on first use: ``db-cmd`` lives in this
package and must start without importing the actor runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from persistence._flusher import (
        DEFAULT_FLUSH_INTERVAL,
        DbFlusher,
    )
    from persistence._groupcommit import (
        GroupCommitter,
    )
    from persistence._jsonfmt import (
        JsonFormatError,
    )
    from persistence._layout import (
        DbFlushError,
        Loaded,
        LoadProblem,
        load_root,
        write_files,
    )
    from persistence._limits import (
        DEFAULT_LIMITS,
        Caller,
        DbError,
        DbLimitError,
        DbNameError,
        Limits,
        confine_path,
    )
    from persistence._messages import (
        DbDump,
        DbExists,
        DbInject,
        DbList,
        DbRead,
        DbReadBinary,
        DbRm,
        DbStatus,
        DbWrite,
        FlushDone,
        FlushNow,
        FlushResult,
        FlushSnapshot,
        GetDbStatus,
        Reload,
        ReloadFromDisk,
        TakeSnapshot,
        WatchChanges,
    )
    from persistence._service import (
        DB_INTERFACE,
        DB_PATH,
        DB_SERVICE,
        CallerCache,
        DbObject,
        DbService,
    )
    from persistence._specs import (
        PERSISTENCE_FLAGS,
        db_specs,
        db_supervisor_spec,
    )
    from persistence._store import (
        DbStore,
        commit,
        current_store,
    )
    from persistence._tree import (
        Change,
        DbBinaryNodeError,
        DbInteriorWriteError,
        DbNotBinaryError,
        DbTree,
        InjectOp,
        InteriorWrite,
        RmOp,
        WriteOp,
    )
    from persistence._wal import WAL_DIR, WalWriter, recover, replay
    from persistence._walcodec import WalError, WalMark, apply_replay, encode_record

__all__ = [
    "DB_INTERFACE",
    "DB_PATH",
    "DB_SERVICE",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_LIMITS",
    "PERSISTENCE_FLAGS",
    "WAL_DIR",
    "Caller",
    "CallerCache",
    "Change",
    "DbBinaryNodeError",
    "DbDump",
    "DbError",
    "DbExists",
    "DbFlushError",
    "DbFlusher",
    "DbInject",
    "DbInteriorWriteError",
    "DbLimitError",
    "DbList",
    "DbNameError",
    "DbNotBinaryError",
    "DbObject",
    "DbRead",
    "DbReadBinary",
    "DbRm",
    "DbService",
    "DbStatus",
    "DbStore",
    "DbTree",
    "DbWrite",
    "FlushDone",
    "FlushNow",
    "FlushResult",
    "FlushSnapshot",
    "GetDbStatus",
    "GroupCommitter",
    "InjectOp",
    "InteriorWrite",
    "JsonFormatError",
    "Limits",
    "LoadProblem",
    "Loaded",
    "Reload",
    "ReloadFromDisk",
    "RmOp",
    "TakeSnapshot",
    "WalError",
    "WalMark",
    "WalWriter",
    "WatchChanges",
    "WriteOp",
    "apply_replay",
    "commit",
    "confine_path",
    "current_store",
    "db_specs",
    "db_supervisor_spec",
    "encode_record",
    "load_root",
    "recover",
    "replay",
    "write_files",
]

# name -> defining module, imported on first use.
_SOURCES: dict[str, str] = {
    "Caller": "persistence._limits",
    "DEFAULT_LIMITS": "persistence._limits",
    "DbError": "persistence._limits",
    "DbLimitError": "persistence._limits",
    "DbNameError": "persistence._limits",
    "Limits": "persistence._limits",
    "confine_path": "persistence._limits",
    "JsonFormatError": "persistence._jsonfmt",
    "Change": "persistence._tree",
    "DbBinaryNodeError": "persistence._tree",
    "DbInteriorWriteError": "persistence._tree",
    "DbNotBinaryError": "persistence._tree",
    "DbTree": "persistence._tree",
    "InjectOp": "persistence._tree",
    "InteriorWrite": "persistence._tree",
    "RmOp": "persistence._tree",
    "WriteOp": "persistence._tree",
    "DbFlushError": "persistence._layout",
    "LoadProblem": "persistence._layout",
    "Loaded": "persistence._layout",
    "load_root": "persistence._layout",
    "write_files": "persistence._layout",
    "WAL_DIR": "persistence._wal",
    "WalError": "persistence._walcodec",
    "WalMark": "persistence._walcodec",
    "WalWriter": "persistence._wal",
    "apply_replay": "persistence._walcodec",
    "encode_record": "persistence._walcodec",
    "recover": "persistence._wal",
    "replay": "persistence._wal",
    "GroupCommitter": "persistence._groupcommit",
    "DbDump": "persistence._messages",
    "DbExists": "persistence._messages",
    "DbInject": "persistence._messages",
    "DbList": "persistence._messages",
    "DbRead": "persistence._messages",
    "DbReadBinary": "persistence._messages",
    "DbRm": "persistence._messages",
    "DbStatus": "persistence._messages",
    "DbWrite": "persistence._messages",
    "FlushDone": "persistence._messages",
    "FlushNow": "persistence._messages",
    "FlushResult": "persistence._messages",
    "FlushSnapshot": "persistence._messages",
    "GetDbStatus": "persistence._messages",
    "Reload": "persistence._messages",
    "ReloadFromDisk": "persistence._messages",
    "TakeSnapshot": "persistence._messages",
    "WatchChanges": "persistence._messages",
    "DbStore": "persistence._store",
    "commit": "persistence._store",
    "current_store": "persistence._store",
    "DEFAULT_FLUSH_INTERVAL": "persistence._flusher",
    "DbFlusher": "persistence._flusher",
    "CallerCache": "persistence._service",
    "DB_INTERFACE": "persistence._service",
    "DB_PATH": "persistence._service",
    "DB_SERVICE": "persistence._service",
    "DbObject": "persistence._service",
    "DbService": "persistence._service",
    "PERSISTENCE_FLAGS": "persistence._specs",
    "db_specs": "persistence._specs",
    "db_supervisor_spec": "persistence._specs",
}


__getattr__, __dir__ = lazy_exports(__name__, _SOURCES)
