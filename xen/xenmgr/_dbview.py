"""A read-only view of (part of) the config database, as dbd returns it, with dbd's semantics.

xenmgr reads the database in two shapes: single values (dbd ``read``) and whole subtrees
(dbd ``dump`` of ``/vm/<uuid>``: nested JSON objects whose leaves are strings). A
:class:`DbView` wraps such a tree, rooted at the database root or anywhere below it, and
answers the questions the pure code asks:

* :meth:`DbView.read` - the value of a node as dbd's ``read`` gives it, or ``None`` when the
  node does not exist (the original's "maybe read": exists, then read). A string leaf is its
  text; an integer, float or boolean leaf (possible after a JSON ``inject``) its JSON text
  (floats as ``%f``, as dbd); an interior or empty node, or a JSON array, reads ``""``.
* :meth:`DbView.exists`, :meth:`DbView.children` (child names in the database's order),
  :meth:`DbView.sub` (the view of a subtree).

Paths are ``/``-separated and relative to the view's root; empty segments are ignored
(``a//b/`` is ``a/b``), as dbd does. :meth:`DbView.from_values` builds a view from a mapping of
paths to values (each ``None`` skipped), for callers that read single nodes.

Failure behaviour: a tree that is not made of dicts, strings, numbers, booleans, ``None`` and
lists raises :class:`DbViewError` naming the path of the first bad node. Pure: no I/O; the
view keeps a reference to the tree it was given and never changes it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["DbView", "DbViewError", "segments"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_MISSING = object()


class DbViewError(ValueError):
    """The tree given to a view is not a database tree."""


def segments(path: str) -> tuple[str, ...]:
    """The non-empty segments of a database path."""
    return tuple(s for s in path.split("/") if s)


def _check(node: object, where: str) -> None:
    if isinstance(node, dict):
        for key, child in node.items():
            if not isinstance(key, str):
                raise DbViewError(f"database node {where or '/'} has a non-string key {key!r}")
            _check(child, f"{where}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            _check(child, f"{where}[{index}]")
    elif not (node is None or isinstance(node, str | int | float)):
        raise DbViewError(f"database node {where or '/'} holds a {type(node).__name__}")


def _leaf_text(node: object) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, int):
        return str(node)
    if isinstance(node, float):
        return f"{node:f}"
    return ""  # an interior node, an empty node or an array, as dbd's read


class DbView:
    """A read-only view of a database tree (see the module docstring)."""

    __slots__ = ("_tree",)

    def __init__(self, tree: object, *, checked: bool = False) -> None:
        if not checked:
            _check(tree, "")
        self._tree = tree

    @classmethod
    def from_values(cls, values: Mapping[str, str | None]) -> DbView:
        """A view holding ``values`` (path -> text) at their paths; ``None`` values are left out.

        A path below another path's value replaces that value by a node, as a dbd write does.
        """
        root: dict[str, Any] = {}
        for path, value in values.items():
            if value is None:
                continue
            parts = segments(path)
            if not parts:
                raise DbViewError("cannot hold a value at the database root")
            node = root
            for part in parts[:-1]:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
            if not isinstance(node.get(parts[-1]), dict):
                node[parts[-1]] = value
        return cls(root)

    @property
    def tree(self) -> object:
        """The tree this view reads (do not change it)."""
        return self._tree

    def _node(self, path: str) -> object:
        node = self._tree
        for part in segments(path):
            if not isinstance(node, dict) or part not in node:
                return _MISSING
            node = node[part]
        return node

    def exists(self, path: str) -> bool:
        """Whether every segment of ``path`` exists (the root always does)."""
        return self._node(path) is not _MISSING

    def read(self, path: str) -> str | None:
        """dbd's ``read`` of ``path``, or ``None`` if the node does not exist."""
        node = self._node(path)
        return None if node is _MISSING else _leaf_text(node)

    def children(self, path: str = "") -> list[str]:
        """Child names of an interior node in the database's order ([] for anything else)."""
        node = self._node(path)
        return list(node) if isinstance(node, dict) else []

    def is_node(self, path: str) -> bool:
        """Whether ``path`` is an interior node (a JSON object)."""
        return isinstance(self._node(path), dict)

    def sub(self, path: str) -> DbView:
        """The view of the subtree at ``path`` (an empty tree when it does not exist)."""
        node = self._node(path)
        return DbView({} if node is _MISSING else node, checked=True)

    def walk(self, path: str = "") -> Iterator[tuple[str, str]]:
        """Every leaf below ``path`` as (relative path, text), depth first in database order."""
        node = self._node(path)
        if node is _MISSING:
            return
        yield from _walk(node, "")

    def __repr__(self) -> str:
        return f"DbView({self._tree!r})"


def _walk(node: object, prefix: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _walk(child, f"{prefix}/{key}" if prefix else key)
    else:
        yield prefix, _leaf_text(node)
