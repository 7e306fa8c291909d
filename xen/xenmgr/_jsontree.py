"""JSON trees of strings, the shape of a VM's db subtree and of a template.

A tree is a JSON object whose values are strings or trees, nothing else. :data:`TreeView` is
the read-only form every function here accepts and returns (nested ``MappingProxyType``, so a
template or a plan cannot be changed behind its owner's back); :data:`Tree` is the plain
mutable ``dict`` form, from :func:`thaw`, for code that must build or serialise one.

Parsing (:func:`parse_tree`) is bounded and strict: at most ``max_bytes`` of UTF-8, at most
:data:`MAX_DEPTH` levels, keys non-empty, at most :data:`MAX_KEY_BYTES`, free of ``/`` (a key
with ``/`` could never be addressed by a db path) and of control characters; values free of
NUL; keys and values valid Unicode (no lone surrogates); no duplicate keys; no ``NaN`` or
``Infinity``. With ``coerce_scalars`` an integer leaf becomes its decimal text and a boolean
``true``/``false`` (what the db would read back had it stored the JSON scalar); other values
(floats, ``null``, arrays) are always refused.

The deep merge (:func:`deep_merge`) is the original's: objects merge key by key (the base's
keys keep their order, new keys follow in the overlay's order), any other pair of values is
replaced by the overlay's, including an object replacing a string and a string replacing an
object. Identities: ``merge(t, {}) == t``, ``merge({}, t) == t``, ``merge(t, t) == t``.

Failure: :class:`TreeError` (a ValueError) naming the source, the key path (``config/memory``)
and what was wrong; nothing is returned half-built.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import TypeAlias

__all__ = [
    "EMPTY_TREE",
    "MAX_DEPTH",
    "MAX_KEY_BYTES",
    "MAX_TREE_BYTES",
    "Tree",
    "TreeError",
    "TreeView",
    "check_tree",
    "deep_merge",
    "freeze",
    "get_leaf",
    "get_node",
    "leaves",
    "map_strings",
    "parse_db_bool",
    "parse_tree",
    "thaw",
    "tree_to_json",
    "with_leaf",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

Tree: TypeAlias = dict[str, "str | Tree"]
TreeView: TypeAlias = Mapping[str, "str | TreeView"]

#: A VM subtree or a template is a few KiB; 256 KiB leaves room and bounds memory per request.
MAX_TREE_BYTES = 256 * 1024
#: The deepest key xenmgr uses is under 10 levels below ``/vm/<uuid>``.
MAX_DEPTH = 16
#: The db's own bound on a path segment (a VM's name becomes a file name there).
MAX_KEY_BYTES = 200

#: The empty tree (a blank template).
EMPTY_TREE: TreeView = MappingProxyType({})


class TreeError(ValueError):
    """A tree (a template, a client's JSON) is not what it must be.

    ``source`` names where it came from (a file, ``json``), ``key`` the slash-separated path of
    the offending key (empty for the whole document), ``reason`` what was wrong.
    """

    def __init__(self, source: str, key: str, reason: str) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        where = f"{source}: key {key!r}" if key else source
        super().__init__(f"{where}: {reason}")


class _Pairs(list[tuple[str, object]]):
    """An object's key/value pairs as the decoder saw them (so duplicates can be reported)."""


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def parse_tree(text: str | bytes, *, source: str, coerce_scalars: bool = False,
               max_bytes: int = MAX_TREE_BYTES) -> TreeView:
    """Parse JSON text into a read-only tree; :class:`TreeError` naming what was wrong."""
    if isinstance(text, bytes):
        if len(text) > max_bytes:
            raise TreeError(source, "", f"is more than the {max_bytes} bytes allowed")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TreeError(source, "", f"is not UTF-8 text ({e.reason} at byte "
                                        f"{e.start})") from None
    elif len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise TreeError(source, "", f"is more than the {max_bytes} bytes allowed")
    try:
        raw = json.loads(text, object_pairs_hook=_Pairs, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise TreeError(source, "", f"is not valid JSON: {e.msg} at line {e.lineno} "
                                    f"column {e.colno}") from None
    except ValueError as e:  # NaN, Infinity
        raise TreeError(source, "", f"is not valid JSON: {e}") from None
    except RecursionError:
        raise TreeError(source, "", f"is nested more than {MAX_DEPTH} levels deep") from None
    if not isinstance(raw, _Pairs):
        raise TreeError(source, "", f"must be a JSON object at the top level, not "
                                    f"{_kind(raw)}")
    return _build(raw, source, (), coerce_scalars)


def check_tree(value: object, *, source: str, coerce_scalars: bool = False) -> TreeView:
    """Validate an in-memory value (nested mappings of strings) as :func:`parse_tree` would a
    document, and return it frozen."""
    if not isinstance(value, Mapping):
        raise TreeError(source, "", f"must be an object at the top level, not {_kind(value)}")
    return _build(_Pairs(value.items()), source, (), coerce_scalars)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a fractional number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (_Pairs, Mapping)):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _is_unicode(text: str) -> bool:
    """False for text with lone surrogates (which JSON escapes can produce and UTF-8 cannot
    carry to the db or the bus)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_key(key: object, source: str, path: tuple[str, ...]) -> str:
    where = "/".join(path)
    if not isinstance(key, str):
        raise TreeError(source, where, f"has a key that is not a string ({key!r})")
    here = "/".join((*path, key))
    if not key:
        raise TreeError(source, here or "/", "an empty key cannot be a db path segment")
    if "/" in key:
        raise TreeError(source, here, "a key cannot contain '/' (it could never be addressed "
                                      "by a db path)")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise TreeError(source, here, "a key cannot contain control characters")
    if not _is_unicode(key):
        raise TreeError(source, here, "a key must be valid Unicode (it has a lone surrogate)")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise TreeError(source, here, f"a key is at most {MAX_KEY_BYTES} bytes")
    return key


def _build(pairs: _Pairs, source: str, path: tuple[str, ...], coerce: bool) -> TreeView:
    if len(path) >= MAX_DEPTH:
        raise TreeError(source, "/".join(path), f"is nested more than {MAX_DEPTH} levels deep")
    out: dict[str, str | TreeView] = {}
    for key, value in pairs:
        key = _check_key(key, source, path)
        here = (*path, key)
        if key in out:
            raise TreeError(source, "/".join(here), "appears twice in the same object")
        if isinstance(value, (_Pairs, Mapping)):
            items = value if isinstance(value, _Pairs) else _Pairs(value.items())
            out[key] = _build(items, source, here, coerce)
        elif isinstance(value, str):
            if "\0" in value:
                raise TreeError(source, "/".join(here), "a value cannot contain NUL")
            if not _is_unicode(value):
                raise TreeError(source, "/".join(here), "a value must be valid Unicode (it "
                                                        "has a lone surrogate)")
            out[key] = value
        elif coerce and isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif coerce and isinstance(value, int):
            out[key] = str(value)
        else:
            allowed = "a string, an integer, a boolean or an object" if coerce \
                else "a string or an object"
            raise TreeError(source, "/".join(here), f"must be {allowed}, not {_kind(value)}")
    return MappingProxyType(out)


def freeze(tree: TreeView) -> TreeView:
    """A read-only deep copy of ``tree`` (already-validated input; no checks)."""
    return MappingProxyType({k: v if isinstance(v, str) else freeze(v)
                             for k, v in tree.items()})


def thaw(tree: TreeView) -> Tree:
    """A plain mutable deep copy of ``tree``."""
    return {k: v if isinstance(v, str) else thaw(v) for k, v in tree.items()}


def tree_to_json(tree: TreeView, *, indent: int | None = None) -> str:
    """The JSON text of ``tree`` (for a db inject or a template file)."""
    return json.dumps(thaw(tree), indent=indent, ensure_ascii=False)


def deep_merge(base: TreeView, over: TreeView) -> TreeView:
    """``over`` merged into ``base``: objects key-wise, everything else replaced."""
    out: dict[str, str | TreeView] = {}
    for key, mine in base.items():
        if key not in over:
            out[key] = mine if isinstance(mine, str) else freeze(mine)
            continue
        theirs = over[key]
        if isinstance(theirs, str) or isinstance(mine, str):
            out[key] = theirs if isinstance(theirs, str) else freeze(theirs)
        else:
            out[key] = deep_merge(mine, theirs)
    for key, theirs in over.items():
        if key not in base:
            out[key] = theirs if isinstance(theirs, str) else freeze(theirs)
    return MappingProxyType(out)


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def get_node(tree: TreeView, path: str) -> TreeView | None:
    """The subtree at the slash-separated ``path`` (``""`` is ``tree``), or None if there is
    no object there."""
    node: str | TreeView = tree
    for segment in _segments(path):
        if isinstance(node, str) or segment not in node:
            return None
        node = node[segment]
    return None if isinstance(node, str) else node


def get_leaf(tree: TreeView, path: str) -> str | None:
    """The string at ``path``, or None if missing or an object."""
    segments = _segments(path)
    if not segments:
        return None
    parent = get_node(tree, "/".join(segments[:-1]))
    value = None if parent is None else parent.get(segments[-1])
    return value if isinstance(value, str) else None


def with_leaf(tree: TreeView, path: str, value: str) -> TreeView:
    """A copy of ``tree`` with the string ``value`` at ``path`` (missing objects created, a
    string in the way replaced by an object, as a db write would)."""
    segments = _segments(path)
    if not segments:
        raise ValueError("with_leaf needs a non-empty path")
    update: Tree = {segments[-1]: value}
    for segment in reversed(segments[:-1]):
        update = {segment: update}
    return deep_merge(tree, update)


def leaves(tree: TreeView, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every (path, string) of ``tree``, depth first in key order."""
    for key, value in tree.items():
        here = f"{prefix}/{key}" if prefix else key
        if isinstance(value, str):
            yield here, value
        else:
            yield from leaves(value, here)


def map_strings(tree: TreeView, func: Callable[[str], str]) -> TreeView:
    """``tree`` with ``func`` applied to every string value (keys unchanged)."""
    return MappingProxyType({k: func(v) if isinstance(v, str) else map_strings(v, func)
                             for k, v in tree.items()})


_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


def parse_db_bool(text: str, *, what: str) -> bool:
    """A db boolean (``true yes 1`` / ``false no 0``); ValueError naming ``what`` otherwise."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{what} is {text!r}, not a boolean (true, yes, 1, false, no or 0)")

