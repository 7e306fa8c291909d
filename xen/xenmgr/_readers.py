"""Reading every property of one interface in one pass over one database view (pure).

``GetAll`` of a VM answers about 145 properties. Reading each through ``read_property``
splits its key, walks the view from the root and builds the codec's tables each time. A
:class:`Reader` is made once per interface from its bindings: each plain stored property
(a key under the VM, no ``native-experience`` override, no fallback key, not a joined list)
becomes a step ``(binding, key segments, key, decoder, default)`` evaluated against the VM's
subtree; every other property (derived, computed, fixed, disk and nic scopes, the special
stored rules) goes through ``read_property`` as before.

:meth:`Reader.read` answers, for each binding in order, its value or the exception reading it
raised (``NeedsService`` for a computed property, ``SchemaError`` for a stored text that does
not fit...): the caller decides, as ``GetAll`` does, to compute, or to log and answer the
default. The values are exactly ``read_property``'s (a test compares them on generated
trees). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from xen.xenmgr._binding import Binding, Codec, Computed, Fixed, Scope, Stored, Value
from xen.xenmgr._codecs import FALSE_TEXTS, TRUE_TEXTS
from xen.xenmgr._dbview import DbView, segments
from xen.xenmgr._properties import NeedsService, Target, read_property

__all__ = ["MAX_MEMO", "Reader"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_MISSING = object()
#: Answers remembered per reader (one per object: VM, disk, nic); emptied when full.
MAX_MEMO = 4096
_BOOLS = {**dict.fromkeys(TRUE_TEXTS, True), **dict.fromkeys(FALSE_TEXTS, False)}
Decode = Callable[[str, str], Value]
_Step = tuple[Binding, tuple[str, ...], str, Decode, Value, bool | None]


class _Const(NamedTuple):
    """A property read without the view."""

    binding: Binding
    value: Any


def _decoder(codec: Codec) -> Decode:
    """A decoder equal to ``codec.decode`` with the common cases inline."""
    if codec.kind == "string" and not codec.aliases and codec.pattern is None:
        return lambda _key, text: text
    if codec.kind == "bool":
        slow = codec.decode

        def boolean(key: str, text: str) -> Value:
            value = _BOOLS.get(text)
            return slow(key, text) if value is None else value
        return boolean
    return codec.decode


def _plain(b: Binding) -> Stored | None:
    """The stored source of ``b`` if the fast path reads it exactly as ``read_property``."""
    s = b.source
    if (b.scope is Scope.VM and isinstance(s, Stored) and s.fallback is None
            and s.codec.kind != "joined" and not s.key.startswith("/") and segments(s.key)):
        return s
    return None


def _constant(b: Binding) -> Any:
    """What ``read_property`` answers for ``b`` without looking at the view, or ``_MISSING``:
    a fixed value, or (a computed property) its ``NeedsService``, made once."""
    s = b.source
    if isinstance(s, Fixed):
        return s.value
    if isinstance(s, Computed):
        return NeedsService(b, s.needs)
    return _MISSING


def _leaf(node: object) -> str:
    if isinstance(node, str):
        return node
    return DbView(node, checked=True).read("") or ""


class Reader:
    """The compiled reader of a sequence of bindings (see the module docstring)."""

    __slots__ = ("_memo", "_steps", "bindings")

    def __init__(self, bindings: Sequence[Binding]) -> None:
        self.bindings = tuple(bindings)
        steps: list[_Step | _Const | Binding] = []
        for b in self.bindings:
            s = _plain(b)
            constant = _constant(b)
            if s is not None:
                steps.append((b, segments(s.key), s.key, _decoder(s.codec), s.default,
                              s.native))
            elif constant is not _MISSING:
                steps.append(_Const(b, constant))
            else:
                steps.append(b)
        self._steps = tuple(steps)
        self._memo: dict[Target, tuple[object, dict[str, Any], tuple[tuple[Binding, Any], ...]]]
        self._memo = {}

    def read(self, view: DbView, target: Target) -> list[tuple[Binding, Any]]:
        """Each binding with its value, or the exception reading it raised.

        The answer is a function of the VM's subtree, the view's other top-level nodes and
        ``target``; database trees are never modified once read, so the answer for the very
        same subtree object (the cache hands out one object until the database changes) with
        equal other nodes is remembered, per VM (at most :data:`MAX_MEMO`).
        """
        uuid = target.uuid
        vm: object = _MISSING
        root = view.tree
        if uuid and "/" not in uuid:
            vms = root.get("vm") if isinstance(root, dict) else None
            vm = vms.get(uuid, _MISSING) if isinstance(vms, dict) else _MISSING
        if not isinstance(vm, dict) or not isinstance(root, dict):
            return self._read(view, target, vm)
        others = {k: v for k, v in root.items() if k != "vm"}
        memo = self._memo.get(target)
        if memo is not None and memo[0] is vm and memo[1] == others:
            return list(memo[2])
        out = self._read(view, target, vm)
        if len(self._memo) >= MAX_MEMO:
            self._memo.clear()
        self._memo[target] = (vm, others, tuple(out))
        return out

    def _read(self, view: DbView, target: Target, vm: object) -> list[tuple[Binding, Any]]:
        uuid = target.uuid
        out: list[tuple[Binding, Any]] = []
        append = out.append
        native_text = _MISSING
        if isinstance(vm, dict):
            native_node = vm.get("native-experience", _MISSING)
            if native_node is not _MISSING:
                native_text = _BOOLS.get(native_node if type(native_node) is str
                                         else _leaf(native_node), _MISSING)
        for step in self._steps:
            if isinstance(step, _Const):
                append((step.binding, step.value))
                continue
            if type(step) is tuple and isinstance(vm, dict):
                b, segs, key, decode, default, native = step
                if native is not None:
                    if native_text is True:
                        append((b, native))
                        continue
                    if native_text is _MISSING and "native-experience" in vm:
                        step = b  # a native-experience that does not decode: the slow way
                if type(step) is tuple:
                    node: Any = vm
                    for seg in segs:
                        node = node.get(seg, _MISSING) if isinstance(node, dict) else _MISSING
                        if node is _MISSING:
                            break
                    if node is _MISSING:
                        append((b, default))
                        continue
                    text = node if type(node) is str else _leaf(node)
                    try:
                        append((b, decode(f"/vm/{uuid}/{key}", text)))
                    except Exception as exc:  # the caller logs it and answers the default
                        append((b, exc))
                    continue
            assert not isinstance(step, _Const)
            b = step if isinstance(step, Binding) else step[0]
            try:
                append((b, read_property(b, view, target)))
            except Exception as exc:  # NeedsService, SchemaError, XenmgrError...
                append((b, exc))
        return out
