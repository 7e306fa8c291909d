"""Stable names for actors: a restarted actor is a new pykka actor with a new ref.

Supervisors register every child under its path (``/persistence/db-store``) and re-point the
name at each restart, so callers resolve the name at each call instead of keeping a stale
``ActorRef``. :func:`tell` and :func:`ask` accept either a name or a ref; :func:`ask` always
takes a timeout, because pykka's ``ask`` without one can wait forever.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka

__all__ = [
    "ActorDeadError",
    "AskTimeout",
    "NoSuchActor",
    "Target",
    "ask",
    "names",
    "register_name",
    "resolve",
    "tell",
    "unregister_name",
]

Target = str | pykka.ActorRef[Any]

ActorDeadError = pykka.ActorDeadError

_lock = threading.Lock()
_names: dict[str, pykka.ActorRef[Any]] = {}


class NoSuchActor(LookupError):
    """No actor is registered under that name right now (never started, or restarting)."""


class AskTimeout(TimeoutError):
    """An ``ask`` got no answer within its timeout."""


def register_name(name: str, ref: pykka.ActorRef[Any]) -> None:
    """Point ``name`` at ``ref`` (replacing what it pointed at)."""
    with _lock:
        _names[name] = ref


def unregister_name(name: str, ref: pykka.ActorRef[Any] | None = None) -> None:
    """Forget ``name``; with ``ref`` given, only if it still points at that ref."""
    with _lock:
        current = _names.get(name)
        if current is not None and (ref is None or current.actor_urn == ref.actor_urn):
            del _names[name]


def resolve(target: Target) -> pykka.ActorRef[Any]:
    """The current ref for a name (or the ref itself). Raises :class:`NoSuchActor`."""
    if not isinstance(target, str):
        return target
    ref = _names.get(target)
    if ref is None:
        raise NoSuchActor(f"no actor named {target!r}")
    return ref


def names() -> dict[str, pykka.ActorRef[Any]]:
    """A copy of the name table."""
    with _lock:
        return dict(_names)


def tell(target: Target, message: Any) -> None:
    """Send ``message`` without waiting. Raises :class:`NoSuchActor` / ``ActorDeadError``."""
    resolve(target).tell(message)


def ask(target: Target, message: Any, *, timeout: float) -> Any:
    """Send ``message`` and wait at most ``timeout`` seconds for the answer.

    Returns the handler's result; re-raises the handler's exception (the caller's error, not a
    crash of the actor); raises :class:`AskTimeout`, :class:`NoSuchActor` or
    ``ActorDeadError`` (the actor stopped before answering).
    """
    if timeout is None or timeout <= 0:
        raise ValueError("ask needs a positive timeout")
    ref = resolve(target)
    future = ref.ask(message, block=False)
    try:
        return future.get(timeout=timeout)
    except pykka.Timeout:
        kind = type(message).__name__
        raise AskTimeout(f"{ref} did not answer {kind} within {timeout:g} s") from None
