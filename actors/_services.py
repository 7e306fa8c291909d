"""Typed services: a resource an actor owns, published as a typed handle resolved by name.

An actor that owns a resource (a hypervisor backend, a xenstore client, the published view of
a VM monitor) overrides :meth:`Actor.published <actors.Actor.published>` to return the handle
it hands out: a thread-safe object that callers use from their own threads, so a blocking
request never queues behind the owner's mailbox. Callers resolve it at each use, by the owner's
stable name, never keeping it across a failure (after a restart the owner publishes a new
handle and the old one is closed)::

    hv = service("/xen/hypervisor", Hypervisor)
    hv.getinfo(domid)

:func:`service` raises :class:`actors.NoSuchActor` when no actor holds the name (never started,
or restarting) and :class:`ServiceUnavailable` when the actor publishes nothing right now or a
handle of another type than asked for. Both are the caller's to handle ("not now"), never a
reason to reach into the owner's attributes.

:func:`stop` is the owner's side of a lifecycle: ask an actor to stop and wait, bounded.
"""

from __future__ import annotations

import typing
from typing import Any, TypeGuard, TypeVar

from actors._actor import actor_of
from actors._names import Target, resolve

__all__ = ["ServiceUnavailable", "service", "stop"]

T = TypeVar("T")


class ServiceUnavailable(LookupError):
    """The named actor publishes no handle of the asked type right now."""


def service(target: Target, kind: type[T]) -> T:
    """The handle of type ``kind`` that the actor named ``target`` publishes (see above)."""
    ref = resolve(target)
    handle = actor_of(ref).published()
    if handle is None:
        raise ServiceUnavailable(f"{target} publishes no {kind.__name__} right now")
    if not _is_a(handle, kind):
        raise ServiceUnavailable(f"{target} publishes a {type(handle).__name__}, "
                                 f"not a {kind.__name__}")
    return handle


_conforming: set[tuple[type, Any]] = set()


def _is_a(handle: object, kind: type[T]) -> TypeGuard[T]:
    """``isinstance(handle, kind)``, remembered per handle type when ``kind`` is a runtime
    protocol whose every member the type itself defines (checking a protocol looks each
    member up again, and services are resolved at every use). What is remembered cannot
    change: the check would find the same members on any instance of that type."""
    key = (type(handle), kind)
    if key in _conforming:
        return True
    if not isinstance(handle, kind):
        return False
    members = _protocol_members(kind)
    if members is not None and all(hasattr(key[0], name) for name in members):
        _conforming.add(key)
    return True


def _protocol_members(kind: type) -> frozenset[str] | None:
    """The members a runtime protocol checks (None: not a protocol, or unknown)."""
    if not getattr(kind, "_is_protocol", False):
        return None
    members: Any = getattr(kind, "__protocol_attrs__", None)  # Python 3.12+
    if members is None:
        getter = getattr(typing, "_get_protocol_attrs", None)  # Python 3.11
        members = getter(kind) if getter is not None else None
    return frozenset(members) if members is not None else None


def stop(target: Target, timeout: float) -> bool:
    """Ask the actor to stop after the messages already queued; wait up to ``timeout`` s.
    True once it has stopped (also when it was already stopped)."""
    actor = actor_of(resolve(target))
    actor.request_stop()
    return actor.wait_dead(timeout)
