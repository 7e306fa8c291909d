"""The dbd database tree with the original's semantics, and where it lives on disk.

The tree is a JSON-like value: a ``dict`` is an interior node (children in insertion order),
``None`` is an empty node (JSON ``null``), :class:`Binary` is a read-only node backed by a file,
and any other value (``str``, ``int``, ``float``, ``bool`` or a ``list``) is a leaf. Paths are
``/``-separated; empty segments are ignored (``a//b/`` is ``a/b``) and nothing else is
normalised (``..`` is an ordinary name).

Semantics, as the original (each case is a test in ``tests/persistence/test_tree.py``):

* ``read``: a string leaf gives its text; an int, float or bool leaf its JSON text (``5``,
  ``true``, floats as ``%f``); a binary node ``file:<absolute path>``; anything else (missing,
  interior, empty, array) ``""``.
* ``read_binary``: the bytes of a binary node's file; otherwise ``DbNotBinaryError``
  ("not a binary node").
* ``write``: stores a string leaf, creating missing nodes (appended after existing siblings);
  writing below a leaf or empty node replaces it by a node (keeping its place); writing to an
  interior node, even ``{}``, is silently ignored (:attr:`InteriorWrite.IGNORE`, the default,
  because clients may rely on it; :attr:`InteriorWrite.REJECT` raises
  :class:`DbInteriorWriteError` instead); a binary node on the path or as target raises
  :class:`DbBinaryNodeError` and changes nothing.
* ``inject``: parses JSON (objects become nodes keeping key order, ``null`` an empty node,
  scalars and arrays leaves) and replaces the whole subtree at the path (``/`` replaces the
  database).
* ``dump``: the pretty JSON of the subtree (missing gives ``null``, binary nodes ``null``).
* ``list``: child names in insertion order; leaf or missing gives ``[]``.
* ``exists``: true if every segment exists (an empty node exists); ``/`` is always true.
* ``rm``: removes the subtree; at every level on the way, children that are empty nodes are
  pruned, while a node left with no children stays as ``{}``; ``rm /`` leaves an empty
  database; a binary node raises.

Mutations check first and act second: an operation that raises has changed nothing. Each
returns a :class:`Change` naming the operation to log (``None`` when nothing changed) and the
on-disk files it touched: ``db`` (everything except the children of ``/vm`` and
``/dom-store``), ``vms/<name>.db`` (one per child of ``/vm``) and ``dom-store/<name>.db``
(likewise). ``dirty`` files must be rewritten, ``removed`` files deleted (a VM went away). The
flusher renders files with :meth:`DbTree.render_files` at flush time. ``/vm`` and
``/dom-store`` are kept in ``db`` when they are not a node with children (an empty ``{}``, a
leaf), so they survive a restart; the original dropped them.

Client requests are checked against :class:`~persistence._limits.Limits`; :meth:`DbTree.apply`
(the write-ahead log replay) and :meth:`DbTree.graft` (loading files) are not, so nothing
already stored can be refused. Pure apart from :meth:`DbTree.read_binary`, which reads the
binary node's file.
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from persistence._jsonfmt import JsonValue, dumps_compact, dumps_pretty, loads
from persistence._limits import (
    DEFAULT_LIMITS,
    DbError,
    DbLimitError,
    Limits,
    check_path,
    check_subtree,
    check_value,
    utf8_len,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "MAIN_FILE",
    "PLACEMENTS",
    "Binary",
    "Change",
    "DbBinaryNodeError",
    "DbInteriorWriteError",
    "DbNotBinaryError",
    "DbTree",
    "InjectOp",
    "InteriorWrite",
    "Node",
    "Op",
    "RmOp",
    "WriteOp",
    "file_key",
    "join_path",
    "split_path",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

MAIN_FILE = "db"
# Children of these top-level nodes live in one file each, in the named directory.
PLACEMENTS: dict[str, str] = {"vm": "vms", "dom-store": "dom-store"}
_DIR_TO_PLACEMENT = {directory: name for name, directory in PLACEMENTS.items()}


@dataclass(frozen=True, slots=True)
class Binary:
    """A read-only node whose content is the file at ``file`` (an absolute path)."""

    file: str


Node: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, Node] | Binary | None"


class InteriorWrite(enum.Enum):
    """What ``write`` does when the target is an interior node (a node with children or ``{}``)."""

    IGNORE = "ignore"  # the original: do nothing, report success
    REJECT = "reject"  # raise DbInteriorWriteError


class DbBinaryNodeError(DbError):
    """A mutation would overwrite or remove a binary (file-backed) node."""


class DbNotBinaryError(DbError):
    """``read_binary`` on a node that is not a binary node."""


class DbInteriorWriteError(DbError):
    """``write`` to an interior node with :attr:`InteriorWrite.REJECT`."""


@dataclass(frozen=True, slots=True)
class WriteOp:
    """Store the string ``value`` at ``path``."""

    path: tuple[str, ...]
    value: str


@dataclass(frozen=True, slots=True)
class InjectOp:
    """Replace the subtree at ``path`` by the parsed JSON ``value``."""

    path: tuple[str, ...]
    value: JsonValue


@dataclass(frozen=True, slots=True)
class RmOp:
    """Remove the subtree at ``path``."""

    path: tuple[str, ...]


Op: TypeAlias = WriteOp | InjectOp | RmOp


@dataclass(frozen=True, slots=True)
class Change:
    """What a mutation did: the op to log (``None`` if nothing changed) and the files touched."""

    op: Op | None
    dirty: frozenset[str]
    removed: frozenset[str]

    @property
    def files(self) -> frozenset[str]:
        """Every file key touched (to be re-rendered at the next flush)."""
        return self.dirty | self.removed


_NO_CHANGE = Change(None, frozenset(), frozenset())


class _Missing:
    pass


_MISSING = _Missing()


def split_path(path: str) -> tuple[str, ...]:
    """``"a//b/"`` -> ``("a", "b")``: split on ``/`` and drop empty segments."""
    return tuple(segment for segment in path.split("/") if segment)


def join_path(segments: Sequence[str]) -> str:
    """``("a", "b")`` -> ``"/a/b"``; ``()`` -> ``"/"``."""
    return "/" + "/".join(segments)


def file_key(placement: str, name: str) -> str:
    """The file key (path relative to the db root) of child ``name`` of ``/<placement>``."""
    return f"{PLACEMENTS[placement]}/{name}.db"


def _parse_key(key: str) -> tuple[str, str] | None:
    directory, _, filename = key.partition("/")
    placement = _DIR_TO_PLACEMENT.get(directory)
    if placement is None or not filename.endswith(".db"):
        return None
    return placement, filename[:-3]


def _clone(value: JsonValue) -> Node:
    """A copy of an injected value as tree nodes (the logged op keeps the original)."""
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    return copy.deepcopy(value) if isinstance(value, list) else value


def _binary_as_null(value: object) -> JsonValue:
    if isinstance(value, Binary):
        return None
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _render_read(node: Node | _Missing) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, Binary):
        return "file:" + node.file
    if isinstance(node, bool | int | float):
        return dumps_compact(node)
    return ""  # missing, empty, interior node, array


class DbTree:
    """The database tree; every method is synchronous and not thread-safe (one owner)."""

    def __init__(
        self,
        root: Node = None,
        *,
        limits: Limits = DEFAULT_LIMITS,
        interior_write: InteriorWrite = InteriorWrite.IGNORE,
    ) -> None:
        self._root: Node = root
        self._limits = limits
        self._interior_write = interior_write

    @property
    def root(self) -> Node:
        """The root node (shared, not copied: do not modify it)."""
        return self._root

    @property
    def limits(self) -> Limits:
        return self._limits

    # ------------------------------------------------------------------ queries

    def _path(self, path: str) -> tuple[str, ...]:
        segments = split_path(path)
        check_path(path, segments, self._limits)
        return segments

    def _get(self, segments: Sequence[str]) -> Node | _Missing:
        node: Node | _Missing = self._root
        for name in segments:
            if not isinstance(node, dict) or name not in node:
                return _MISSING
            node = node[name]
        return node

    def read(self, path: str) -> str:
        """The rendered value at ``path`` (``""`` when there is no readable value)."""
        return _render_read(self._get(self._path(path)))

    def binary_file(self, path: str) -> str:
        """The file behind the binary node at ``path``; :class:`DbNotBinaryError` otherwise."""
        node = self._get(self._path(path))
        if not isinstance(node, Binary):
            raise DbNotBinaryError("not a binary node")
        return node.file

    def read_binary(self, path: str) -> bytes:
        """The bytes of the binary node's file (reads the file; :class:`DbError` on I/O error)."""
        file = self.binary_file(path)
        try:
            with open(file, "rb") as stream:
                return stream.read()
        except OSError as exc:
            raise DbError(f"input error occured reading {file}: {exc.strerror}") from None

    def dump(self, path: str) -> str:
        """The pretty JSON of the subtree at ``path`` (``null`` if missing), newline-terminated."""
        node = self._get(self._path(path))
        return dumps_pretty(None if node is _MISSING else node, convert=_binary_as_null)

    def list(self, path: str) -> list[str]:
        """Child names of the node at ``path`` in insertion order (``[]`` for anything else)."""
        node = self._get(self._path(path))
        return list(node) if isinstance(node, dict) else []

    def exists(self, path: str) -> bool:
        """Whether every segment of ``path`` exists (``/`` always does)."""
        return self._get(self._path(path)) is not _MISSING

    # ------------------------------------------------------------------ mutations (checked)

    def write(self, path: str, value: str) -> Change:
        """Store ``value`` as a string leaf at ``path`` (see the module docstring for cases)."""
        segments = self._path(path)
        check_value(value, self._limits, segments)
        return self._write(
            segments, value, reject_interior=self._interior_write is InteriorWrite.REJECT
        )

    def inject(self, path: str, text: str) -> Change:
        """Replace the subtree at ``path`` by the JSON ``text``.

        Raises :class:`~persistence._jsonfmt.JsonFormatError` on malformed JSON, and
        :class:`DbLimitError` / :class:`~persistence._limits.DbNameError` for a text, value,
        key or depth over the limits.
        """
        segments = self._path(path)
        size = utf8_len(text, "inject text")
        if size > self._limits.max_inject_bytes:
            raise DbLimitError(
                f"inject text of {size} bytes exceeds the limit of "
                f"{self._limits.max_inject_bytes} bytes"
            )
        value = loads(text)
        check_subtree(value, segments, self._limits)
        return self._inject(segments, value)

    def rm(self, path: str) -> Change:
        """Remove the subtree at ``path`` (pruning empty nodes on the way)."""
        return self._rm(self._path(path))

    # ------------------------------------------------------------------ mutations (unchecked)

    def apply(self, op: Op) -> Change:
        """Re-apply a logged operation (no limits; interior writes are ignored as logged)."""
        if isinstance(op, WriteOp):
            return self._write(op.path, op.value, reject_interior=False)
        if isinstance(op, InjectOp):
            return self._inject(op.path, op.value)
        return self._rm(op.path)

    def graft(self, segments: Sequence[str], node: Node) -> None:
        """Place ``node`` at ``segments`` as ``inject`` would, without copy or limits (loading)."""
        self._check_no_binary(segments, "cannot overwrite binary file nodes")
        self._put(tuple(segments), node)

    def _check_no_binary(self, segments: Sequence[str], message: str) -> Node | _Missing:
        """Raise if a binary node is on ``segments`` or is its target; return the target."""
        node: Node | _Missing = self._root
        for name in segments:
            if isinstance(node, Binary):
                raise DbBinaryNodeError(message)
            if not isinstance(node, dict) or name not in node:
                return _MISSING
            node = node[name]
        if isinstance(node, Binary):
            raise DbBinaryNodeError(message)
        return node

    def _put(self, segments: tuple[str, ...], value: Node) -> None:
        if not segments:
            self._root = value
            return
        if not isinstance(self._root, dict):
            self._root = {}
        parent: dict[str, Node] = self._root
        for name in segments[:-1]:
            child = parent.get(name)
            if not isinstance(child, dict):
                child = {}
                parent[name] = child  # replaces a leaf in place, or appends
            parent = child
        parent[segments[-1]] = value

    def _write(self, segments: tuple[str, ...], value: str, *, reject_interior: bool) -> Change:
        target = self._check_no_binary(segments, "cannot overwrite binary file nodes")
        if isinstance(target, dict):
            if reject_interior:
                raise DbInteriorWriteError(
                    f"cannot write a value to {join_path(segments)}: it is an interior node"
                )
            return _NO_CHANGE
        if type(target) is str and target == value:
            return _NO_CHANGE  # same string already there: nothing to change or log
        before = self._scope(segments)
        self._put(segments, value)
        return self._change(WriteOp(segments, value), before, [segments])

    def _inject(self, segments: tuple[str, ...], value: JsonValue) -> Change:
        self._check_no_binary(segments, "cannot overwrite binary file nodes")
        before = self._scope(segments)
        self._put(segments, _clone(value))
        return self._change(InjectOp(segments, value), before, [segments])

    def _rm(self, segments: tuple[str, ...]) -> Change:
        self._check_no_binary(segments, "cannot remove binary file nodes")
        before = self._scope(segments)
        if not segments:
            if self._root is None:
                return _NO_CHANGE
            self._root = None
            return self._change(RmOp(segments), before, [segments])
        pruned: list[tuple[str, ...]] = []
        node: Node | _Missing = self._root
        for depth, name in enumerate(segments):
            if not isinstance(node, dict):
                break
            last = depth == len(segments) - 1
            if last and name in node:
                node[name] = None  # the target becomes empty and is pruned just below
            below = node.get(name, _MISSING)
            empties = [key for key, child in node.items() if child is None]
            for key in empties:
                before |= self._scope((*segments[:depth], key))  # its files, before the prune
                del node[key]
                pruned.append((*segments[:depth], key))
            if last:
                break
            node = below
        if not pruned:
            return _NO_CHANGE
        return self._change(RmOp(segments), before, pruned)

    # ------------------------------------------------------------------ files

    def _container(self, placement: str) -> Node | _Missing:
        root = self._root
        if not isinstance(root, dict):
            return _MISSING
        return root.get(placement, _MISSING)

    def _scope(self, segments: Sequence[str]) -> set[str]:
        """File keys whose content depends on the subtree at ``segments`` (current state)."""
        if not segments:
            keys = {MAIN_FILE}
            for placement in PLACEMENTS:
                keys |= self._child_keys(placement)
            return keys
        head = segments[0]
        if head not in PLACEMENTS:
            return {MAIN_FILE}
        keys = set()
        container = self._container(head)
        if not isinstance(self._root, dict) or (
            container is not _MISSING and not (isinstance(container, dict) and container)
        ):
            keys.add(MAIN_FILE)  # the container is (or will replace something) in `db`
        if len(segments) == 1:
            keys |= self._child_keys(head)
        else:
            keys.add(file_key(head, segments[1]))
        return keys

    def _child_keys(self, placement: str) -> set[str]:
        container = self._container(placement)
        if not isinstance(container, dict):
            return set()
        return {file_key(placement, name) for name in container}

    def _change(
        self, op: Op, before: set[str], touched: Iterable[tuple[str, ...]]
    ) -> Change:
        keys = set(before)
        for segments in touched:
            keys |= self._scope(segments)
        dirty = frozenset(key for key in keys if self._has_file(key))
        return Change(op, dirty, frozenset(keys) - dirty)

    def _has_file(self, key: str) -> bool:
        return key == MAIN_FILE or self._document(key) is not _MISSING

    def file_keys(self) -> set[str]:
        """Every file the current tree needs on disk (for a full write)."""
        keys = {MAIN_FILE}
        for placement in PLACEMENTS:
            keys |= {key for key in self._child_keys(placement) if self._has_file(key)}
        return keys

    def _document(self, key: str) -> Node | _Missing:
        """The content of file ``key`` (``_MISSING``: the file must not exist)."""
        root = self._root
        if key == MAIN_FILE:
            if not isinstance(root, dict):
                return root
            return {
                name: child
                for name, child in root.items()
                if not (name in PLACEMENTS and isinstance(child, dict) and child)
            }
        parsed = _parse_key(key)
        container = self._container(parsed[0]) if parsed else _MISSING
        if parsed is None or not isinstance(container, dict):
            return _MISSING
        child = container.get(parsed[1], _MISSING)
        return _MISSING if isinstance(child, Binary) else child

    def render_file(self, key: str) -> bytes | None:
        """The bytes of file ``key`` in the original's pretty style; ``None``: must not exist."""
        document = self._document(key)
        if document is _MISSING:
            return None
        return dumps_pretty(document, convert=_binary_as_null).encode("utf-8")

    def render_files(self, keys: Iterable[str]) -> dict[str, bytes | None]:
        """:meth:`render_file` for each key: the snapshot a flusher writes."""
        return {key: self.render_file(key) for key in keys}
