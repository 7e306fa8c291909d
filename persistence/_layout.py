"""The dbd files under a database root (``/config`` on a real dom0): load them, write them.

Layout (docs/dbd-format.md): ``<root>/db`` holds the tree without the children
of ``/vm`` and ``/dom-store``; ``<root>/vms/<name>.db`` holds child ``<name>`` of ``/vm`` and
``<root>/dom-store/<name>.db`` child ``<name>`` of ``/dom-store``. Any other regular file in
those two directories, and recursively in their subdirectories (which become nested nodes), is a
read-only binary node named by the file name.

Loading (:func:`load_root`) never fails as a whole and never drops anything silently:

* a file that cannot be read or parsed is moved aside to ``<file>.corrupt-<UTC
  YYYYmmddTHHMMSSZ>`` (``-1``, ``-2``... if taken), reported in :attr:`Loaded.problems` and with
  ``logging.error``; the rest loads (the original died);
* a missing ``db`` is an empty database (the original died; its initscript installed a
  default first);
* a leftover temporary file ``<file>.tmp`` (a crash during an atomic replace, ours or the
  original's) is recovered: a temporary file is always the newest write attempt, so when it is
  complete (a JSON value followed by the newline both writers end with) it replaces the file;
  when it is incomplete it is deleted if the file is sound, and moved aside and reported
  otherwise. The original's recovery was broken (it called link with swapped arguments);
* set-aside files (``*.corrupt-<timestamp>``) are skipped, not exposed as binary nodes;
* an ``overlay`` (the file contents of an unfinished flush's manifest, by file key) replaces
  what is on disk for its keys, whatever is there (old file, new file, leftover temporary,
  nothing); ``None`` means the file does not exist. Those files and their temporaries are
  neither read nor touched: the next flush rewrites or removes them. Loading the overlay is
  the same code as loading the files, so the tree is the one the files would give once that
  flush had finished.

Writing (:func:`write_files`) replaces each file atomically: write ``<file>.tmp`` (created or
truncated, mode 0644), fsync it, rename it over ``<file>``, fsync the directory (once per
directory per batch). Temporary names are ``<file>.tmp`` exactly as the original's, so the
original, started on our files after a crash, sees them as its own leftovers and not as binary
nodes. Child files are written before ``db`` and removals come last. A failure on one file
does not stop the others; :class:`DbFlushError` lists every failure at the end (the caller must
then keep its write-ahead log).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from persistence._jsonfmt import decode_utf8, parse_document
from persistence._limits import DEFAULT_LIMITS, DbError, Limits
from persistence._tree import (
    MAIN_FILE,
    PLACEMENTS,
    Binary,
    DbTree,
    InteriorWrite,
    Node,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "MAX_FILE_BYTES",
    "TMP_SUFFIX",
    "DbFlushError",
    "LoadProblem",
    "Loaded",
    "fsync_directory",
    "load_root",
    "remove_file",
    "write_file_atomic",
    "write_files",
]

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"
# A file larger than this is not a database file (the biggest real one is a few MiB).
MAX_FILE_BYTES = 256 << 20
_CORRUPT_NAME = re.compile(r"\.corrupt-\d{8}T\d{6}Z(?:-\d+)?$")
_WHITESPACE = b" \t\n\r\f\v"
_DIRECTORIES = frozenset(PLACEMENTS.values())
# Subdirectories of vms/ and dom-store/ become nested nodes; deeper than this is not a database.
_MAX_DIR_DEPTH = DEFAULT_LIMITS.max_depth


class DbFlushError(DbError):
    """Some files could not be written or removed; ``failures`` maps file key to the reason."""

    def __init__(self, failures: Mapping[str, str]) -> None:
        self.failures = dict(failures)
        shown = "; ".join(f"{key}: {why}" for key, why in sorted(self.failures.items()))
        super().__init__(f"{len(self.failures)} database file(s) not written: {shown}")


@dataclass(frozen=True, slots=True)
class LoadProblem:
    """Something wrong found while loading: the file, what was wrong, and what was done."""

    path: str
    problem: str
    action: str


@dataclass(frozen=True, slots=True)
class Loaded:
    """The result of :func:`load_root`."""

    tree: DbTree
    problems: tuple[LoadProblem, ...]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def fsync_directory(directory: str, fsync: Callable[[int], None] = os.fsync) -> None:
    """fsync a directory so renames and unlinks in it are durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True, slots=True)
class _Read:
    node: Node  # meaningful when ok
    ok: bool
    complete: bool  # the value is followed by a newline (what both writers end files with)
    reason: str  # why not ok


def _read(path: str) -> _Read | None:
    """Read and parse one file; ``None`` if it does not exist."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return _Read(None, False, False, f"cannot read: {exc.strerror}")
    return _parse(path, data)


def _parse(path: str, data: bytes) -> _Read:
    """Parse the content of one file (``path`` only names it in warnings)."""
    if len(data) > MAX_FILE_BYTES:
        return _Read(None, False, False, f"larger than {MAX_FILE_BYTES} bytes")
    if not data.strip(_WHITESPACE):
        return _Read(None, True, False, "")  # the original read an empty file as empty db
    try:
        text = decode_utf8(data)
        parsed = parse_document(text)
    except DbError as exc:
        return _Read(None, False, False, f"not valid JSON: {exc}")
    if parsed.trailing:
        log.warning("%s: ignoring text after the JSON value at offset %d", path, parsed.end)
    complete = text.startswith("\n", parsed.end)
    return _Read(cast("Node", parsed.value), True, complete, "")


class _Loader:
    def __init__(
        self,
        clock: Callable[[], datetime],
        fsync: Callable[[int], None],
        overlay: Mapping[str, bytes | None],
    ) -> None:
        self.clock = clock
        self.fsync = fsync
        self.overlay = overlay
        self.problems: list[LoadProblem] = []

    def report(self, path: str, problem: str, action: str) -> None:
        log.error("database file %s: %s; %s", path, problem, action)
        self.problems.append(LoadProblem(path, problem, action))

    def set_aside(self, path: str) -> str:
        stamp = self.clock().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = f"{path}.corrupt-{stamp}"
        n = 0
        while os.path.lexists(target):
            n += 1
            target = f"{path}.corrupt-{stamp}-{n}"
        try:
            os.rename(path, target)
            fsync_directory(os.path.dirname(path) or ".", self.fsync)
        except OSError as exc:
            return f"could not be moved aside ({exc.strerror}); left in place"
        return f"moved aside to {target}"

    def load_file(self, path: str, key: str | None) -> tuple[bool, Node]:
        """Recover ``path`` (file ``key``) and its temporary file; return (found, node)."""
        if key is not None and key in self.overlay:
            data = self.overlay[key]
            if data is None:
                return False, None
            parsed = _parse(path, data)
            if not parsed.ok:  # never written so: the manifest's CRC matched
                self.report(path, f"flush manifest content {parsed.reason}", "not loaded")
                return False, None
            return True, parsed.node
        temp = path + TMP_SUFFIX
        main = _read(path)
        leftover = _read(temp)
        if leftover is not None:
            if leftover.ok and leftover.complete:
                if main is not None and not main.ok:
                    action = self.set_aside(path)
                    self.report(path, main.reason, action + "; using the newer temporary file")
                try:
                    os.replace(temp, path)
                    fsync_directory(os.path.dirname(path) or ".", self.fsync)
                except OSError as exc:
                    log.error("cannot rename %s over %s: %s", temp, path, exc.strerror)
                log.warning("recovered %s from the leftover temporary file %s", path, temp)
                return True, leftover.node
            if main is not None and main.ok:
                log.warning("discarding incomplete temporary file %s (an interrupted write)", temp)
                try:
                    os.unlink(temp)
                except OSError as exc:
                    log.error("cannot remove %s: %s", temp, exc.strerror)
                return True, main.node
            why = leftover.reason or "incomplete (an interrupted write)"
            self.report(temp, why, self.set_aside(temp) + "; its node is not loaded")
        if main is None:
            return False, None
        if not main.ok:
            self.report(path, main.reason, self.set_aside(path) + "; its node is not loaded")
            return False, None
        return True, main.node

    def graft(self, tree: DbTree, segments: tuple[str, ...], node: Node, path: str) -> None:
        try:
            tree.graft(segments, node)
        except DbError as exc:
            self.report(path, str(exc), "not loaded")

    def load_dir(self, tree: DbTree, directory: str, segments: tuple[str, ...]) -> None:
        # File keys exist only directly under vms/ and dom-store/ (not in subdirectories).
        prefix = f"{PLACEMENTS[segments[0]]}/" if len(segments) == 1 else None
        stems: set[str] = set()
        if prefix is not None:
            for key in self.overlay:
                filename = key[len(prefix):] if key.startswith(prefix) else ""
                if filename.endswith(".db") and "/" not in filename and len(filename) > 3:
                    stems.add(filename[: -len(".db")])
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except FileNotFoundError:
            entries = []
        except OSError as exc:
            self.report(directory, f"cannot list: {exc.strerror}", "its nodes are not loaded")
            entries = []
        binaries: list[str] = []
        subdirs: list[str] = []
        for entry in entries:
            name = entry.name
            if _CORRUPT_NAME.search(name):
                continue
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError:
                continue
            if is_dir:
                subdirs.append(name)
            elif not is_file:
                continue
            elif name.endswith(".db"):
                stems.add(name[: -len(".db")])
            elif name.endswith(".db" + TMP_SUFFIX):
                stems.add(name[: -len(".db" + TMP_SUFFIX)])
            else:
                binaries.append(name)
        for stem in sorted(stems):
            path = os.path.join(directory, stem + ".db")
            found, node = self.load_file(path, None if prefix is None else f"{prefix}{stem}.db")
            if found:
                self.graft(tree, (*segments, stem), node, path)
        for name in binaries:
            path = os.path.abspath(os.path.join(directory, name))
            self.graft(tree, (*segments, name), Binary(path), path)
        for name in subdirs:
            path = os.path.join(directory, name)
            if len(segments) + 1 >= _MAX_DIR_DEPTH:
                self.report(path, "directory nested too deep", "not loaded")
                continue
            self.load_dir(tree, path, (*segments, name))


def load_root(
    root: str,
    *,
    limits: Limits = DEFAULT_LIMITS,
    interior_write: InteriorWrite = InteriorWrite.IGNORE,
    clock: Callable[[], datetime] = _utcnow,
    fsync: Callable[[int], None] = os.fsync,
    overlay: Mapping[str, bytes | None] | None = None,
) -> Loaded:
    """Load the database under ``root`` (see the module docstring for recovery rules);
    ``overlay`` maps file keys to contents that replace the disk's (``None``: no file)."""
    loader = _Loader(clock, fsync, overlay or {})
    main_path = os.path.join(root, MAIN_FILE)
    found, node = loader.load_file(main_path, MAIN_FILE)
    if not found and not loader.problems:
        log.info("no database file %s: starting with an empty database", main_path)
    tree = DbTree(node, limits=limits, interior_write=interior_write)
    for placement, directory in PLACEMENTS.items():
        loader.load_dir(tree, os.path.join(root, directory), (placement,))
    return Loaded(tree, tuple(loader.problems))


# --------------------------------------------------------------------------- writing


def _write_temp(path: str, data: bytes, fsync: Callable[[int], None]) -> str:
    temp = path + TMP_SUFFIX
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    os.close(fd)
    return temp


def write_file_atomic(path: str, data: bytes, *, fsync: Callable[[int], None] = os.fsync) -> None:
    """Replace ``path`` by ``data`` atomically and durably (temp, fsync, rename, fsync dir)."""
    temp = _write_temp(path, data, fsync)
    os.replace(temp, path)
    fsync_directory(os.path.dirname(path) or ".", fsync)


def remove_file(path: str, *, fsync: Callable[[int], None] | None = os.fsync) -> None:
    """Delete ``path`` and its leftover temporary file, if any (then fsync the directory)."""
    for victim in (path, path + TMP_SUFFIX):
        try:
            os.unlink(victim)
        except FileNotFoundError:
            pass
    if fsync is not None:
        fsync_directory(os.path.dirname(path) or ".", fsync)


def _file_path(root: str, key: str) -> str:
    if key == MAIN_FILE:
        return os.path.join(root, MAIN_FILE)
    directory, _, filename = key.partition("/")
    name = filename[: -len(".db")]
    if (
        directory not in _DIRECTORIES
        or not filename.endswith(".db")
        or not name
        or "/" in filename
        or "\0" in filename
        or len(os.fsencode(filename + TMP_SUFFIX)) > 255 - len(".corrupt-YYYYmmddTHHMMSSZ")
    ):
        raise ValueError(f"{key!r} cannot be a database file name")
    return os.path.join(root, directory, filename)


def write_files(
    root: str, files: Mapping[str, bytes | None], *, fsync: Callable[[int], None] = os.fsync
) -> None:
    """Write (bytes) or remove (``None``) each file key under ``root``, atomically and durably.

    Child files first, then ``db``, removals last; each directory is fsynced once after its
    renames. Raises :class:`DbFlushError` naming every file that failed (the others are done).
    """
    failures: dict[str, str] = {}
    writes: dict[str, list[tuple[str, str, bytes]]] = {}
    removals: dict[str, list[tuple[str, str]]] = {}
    for key, data in files.items():
        try:
            path = _file_path(root, key)
        except ValueError as exc:
            failures[key] = str(exc)
            continue
        directory = os.path.dirname(path)
        if data is None:
            removals.setdefault(directory, []).append((key, path))
        else:
            writes.setdefault(directory, []).append((key, path, data))
    for directory in sorted(writes, key=lambda name: name == root):  # children before `db`
        batch = writes[directory]
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, mode=0o755, exist_ok=True)
                fsync_directory(os.path.dirname(directory) or ".", fsync)  # its name must last
        except OSError as exc:
            why = f"cannot create {directory}: {exc.strerror}"
            failures.update((key, why) for key, _path, _data in batch)
            continue
        renamed: list[str] = []
        for key, path, data in batch:
            try:
                temp = _write_temp(path, data, fsync)
                os.replace(temp, path)
                renamed.append(key)
            except OSError as exc:
                failures[key] = f"cannot write {path}: {exc.strerror}"
        if renamed:
            try:
                fsync_directory(directory, fsync)
            except OSError as exc:
                why = f"cannot fsync {directory}: {exc.strerror}"
                failures.update((key, why) for key in renamed)
    for directory, victims in removals.items():
        removed: list[str] = []
        for key, path in victims:
            try:
                remove_file(path, fsync=None)
                removed.append(key)
            except OSError as exc:
                failures[key] = f"cannot remove {path}: {exc.strerror}"
        if removed and os.path.isdir(directory):
            try:
                fsync_directory(directory, fsync)
            except OSError as exc:
                why = f"cannot fsync {directory}: {exc.strerror}"
                failures.update((key, why) for key in removed)
    if failures:
        raise DbFlushError(failures)
