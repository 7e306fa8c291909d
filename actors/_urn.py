"""Actor URNs: unique ``urn:uuid:`` names, made without a system call per actor.

pykka names every actor with ``uuid.uuid4().urn``: 16 bytes from ``os.urandom`` each time, a
system call that also hands the interpreter lock to other threads in the middle of a restart.
Ours are well-formed version-4 UUIDs too: 62 random bits drawn once per process (again in a
forked child) and a 60-bit counter, so two actors of one process never share a URN, and two
processes can only if their 62 random bits collide. The counter's low digits end the URN, so
the short names built from a URN's last 8 characters differ for every actor.
"""

from __future__ import annotations

import itertools
import os
import threading
from typing import Any

import pykka

__all__ = ["init_pykka_fields", "new_urn"]

_COUNTER_MASK = (1 << 60) - 1


def _draw_prefix() -> str:
    """The per-process part: 12 + 3 random hex digits around the version digit ``4``, then
    the variant digit (``8``-``b``, 2 more random bits)."""
    bits = int.from_bytes(os.urandom(8), "big")
    text = f"{bits:016x}"
    digits = f"{text[:12]}4{text[12:15]}{'89ab'[bits & 3]}"
    return f"urn:uuid:{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16]}"


_prefix = _draw_prefix()
_counter = itertools.count()


def _after_fork() -> None:
    global _prefix, _counter
    _prefix = _draw_prefix()
    _counter = itertools.count()


os.register_at_fork(after_in_child=_after_fork)


def new_urn() -> str:
    """A new unique ``urn:uuid:...`` (version 4, RFC 4122 variant)."""
    count = f"{next(_counter) & _COUNTER_MASK:015x}"
    return f"{_prefix}{count[:3]}-{count[3:]}"


def init_pykka_fields(actor: Any) -> None:
    """What ``pykka.Actor.__init__`` sets (URN, inbox, stop flag, ref), with :func:`new_urn`."""
    actor.actor_urn = new_urn()
    actor.actor_inbox = actor._create_actor_inbox()
    actor.actor_stopped = threading.Event()
    actor._actor_ref = pykka.ActorRef(actor)
