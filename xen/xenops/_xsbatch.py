"""A plan's xenstore transaction as one pipelined batch (I/O through the given operations).

`run_ops` runs the xenstore steps of a `Transaction` atomic on a transaction's operations:
every request is sent without waiting for the previous reply (`NodeOps.pipeline`: one
round trip per batch instead of one per request; one at a time on the xenbus device), in the
steps' order; xenstored applies them in that order. The outcome is the sequential one: the
first failure (a server error, in step order) is raised, and the caller's transaction is then
aborted, so nothing of it is applied; ``Rm`` of a missing node is fine, as in the sequential
path. A ``WriteIfEquals`` reads before it writes, so a batch holding one runs step by step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from xen.xenops._atomics import Mkdir, Rm, SetPerms, Write
from xen.xenstore import Mkdir as MkdirRequest
from xen.xenstore import NoSuchNode, Perm, Request, XenstoreError
from xen.xenstore import Rm as RmRequest
from xen.xenstore import SetPerms as SetPermsRequest
from xen.xenstore import Write as WriteRequest

if TYPE_CHECKING:
    from xen.xenstore import NodeOps

__all__ = ["run_ops"]


def _perms(strings: Sequence[str]) -> tuple[Perm, ...]:
    return tuple(Perm.parse(s) for s in strings)


def _requests(ops: Sequence[Any]) -> list[tuple[Request, bool]] | None:
    """(request, missing node is fine) for each step; None if a step needs a read first."""
    out: list[tuple[Request, bool]] = []
    for op in ops:
        if isinstance(op, Mkdir):
            out.append((MkdirRequest(op.path), False))
            if op.perms is not None:
                out.append((SetPermsRequest(op.path, _perms(op.perms.to_strings())), False))
        elif isinstance(op, Write):
            value = op.value.encode("utf-8", "surrogateescape")
            out.append((WriteRequest(op.path, value), False))
        elif isinstance(op, Rm):
            out.append((RmRequest(op.path), True))
        elif isinstance(op, SetPerms):
            out.append((SetPermsRequest(op.path, _perms(op.perms.to_strings())), False))
        else:
            return None
    return out


def run_ops(ops: NodeOps, steps: Sequence[Any], one: Callable[[NodeOps, Any], None]) -> None:
    """Run ``steps`` on ``ops`` pipelined (see the module docstring); ``one(ops, step)`` runs a
    step on its own when the batch cannot be pipelined."""
    batch = _requests(steps)
    if batch is None:
        for step in steps:
            one(ops, step)
        return
    replies = ops.pipeline([request for request, _ in batch])
    for (_, missing_ok), reply in zip(batch, replies, strict=True):
        if isinstance(reply, XenstoreError) and not (missing_ok and isinstance(reply,
                                                                              NoSuchNode)):
            raise reply
