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

from typing import TypeVar

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
    if not isinstance(handle, kind):
        raise ServiceUnavailable(f"{target} publishes a {type(handle).__name__}, "
                                 f"not a {kind.__name__}")
    return handle


def stop(target: Target, timeout: float) -> bool:
    """Ask the actor to stop after the messages already queued; wait up to ``timeout`` s.
    True once it has stopped (also when it was already stopped)."""
    actor = actor_of(resolve(target))
    actor.request_stop()
    return actor.wait_dead(timeout)
