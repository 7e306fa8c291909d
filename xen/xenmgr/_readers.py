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
from typing import Any

from xen.xenmgr._binding import Binding, Codec, Scope, Stored, Value
from xen.xenmgr._codecs import FALSE_TEXTS, TRUE_TEXTS
from xen.xenmgr._dbview import DbView, segments
from xen.xenmgr._properties import Target, read_property

__all__ = ["Reader"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_MISSING = object()
_BOOLS = {**dict.fromkeys(TRUE_TEXTS, True), **dict.fromkeys(FALSE_TEXTS, False)}
Decode = Callable[[str, str], Value]


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
    if (b.scope is Scope.VM and isinstance(s, Stored) and s.native is None
            and s.fallback is None and s.codec.kind != "joined" and not s.key.startswith("/")
            and segments(s.key)):
        return s
    return None


def _leaf(node: object) -> str:
    if isinstance(node, str):
        return node
    return DbView(node, checked=True).read("") or ""


class Reader:
    """The compiled reader of a sequence of bindings (see the module docstring)."""

    __slots__ = ("_steps", "bindings")

    def __init__(self, bindings: Sequence[Binding]) -> None:
        self.bindings = tuple(bindings)
        steps: list[tuple[Binding, tuple[str, ...], str, Decode, Value] | Binding] = []
        for b in self.bindings:
            s = _plain(b)
            if s is None:
                steps.append(b)
            else:
                steps.append((b, segments(s.key), s.key, _decoder(s.codec), s.default))
        self._steps = tuple(steps)

    def read(self, view: DbView, target: Target) -> list[tuple[Binding, Any]]:
        """Each binding with its value, or the exception reading it raised."""
        uuid = target.uuid
        vm: object = _MISSING
        if uuid and "/" not in uuid:
            root = view.tree
            vms = root.get("vm") if isinstance(root, dict) else None
            vm = vms.get(uuid, _MISSING) if isinstance(vms, dict) else _MISSING
        out: list[tuple[Binding, Any]] = []
        append = out.append
        for step in self._steps:
            if type(step) is tuple and isinstance(vm, dict):
                b, segs, key, decode, default = step
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
            b = step if isinstance(step, Binding) else step[0]
            try:
                append((b, read_property(b, view, target)))
            except Exception as exc:  # NeedsService, SchemaError, XenmgrError...
                append((b, exc))
        return out
