"""What becomes of the messages left in a mailbox when its actor ends (crash, kill or stop).

* An ``ask`` gets ``ActorDeadError`` (pykka's rule), a ``stop`` request its answer.
* A told message that carries its own reply (a future the sender waits on) is told why it will
  never be handled: it has an ``undelivered(reason)`` method (:class:`Undeliverable`), called
  once here. Without this its sender would wait for its whole timeout.
* Any other told message is dropped (their count logged at debug level).
"""

from __future__ import annotations

import logging
import queue
from typing import Any, Protocol, runtime_checkable

import pykka
from pykka import messages as pykka_messages

__all__ = ["Undeliverable", "drain"]

logger = logging.getLogger("actors")


@runtime_checkable
class Undeliverable(Protocol):
    """A told message with a reply of its own: told when its actor ends before handling it."""

    def undelivered(self, reason: str) -> None:
        """Answer the sender (fail its future with ``reason``); must not raise, nor block."""


def drain(inbox: queue.SimpleQueue[Any], name: str, exit_reason: object) -> None:
    """Empty the mailbox ``inbox`` of actor ``name``, which ended with ``exit_reason``, as the
    module docstring says."""
    reason = f"{name} ended ({type(exit_reason).__name__})"
    dropped = 0
    while True:
        try:
            envelope = inbox.get_nowait()
        except queue.Empty:
            if dropped:
                logger.debug("%s: %d told message(s) dropped", reason, dropped)
            return
        message, reply_to = envelope.message, envelope.reply_to
        if reply_to is not None:
            if isinstance(message, pykka_messages._ActorStop):
                reply_to.set(None)
            else:
                reply_to.set_exception(
                    exc_info=(pykka.ActorDeadError, pykka.ActorDeadError(reason), None))
        elif isinstance(message, Undeliverable):
            try:
                message.undelivered(reason)
            except Exception:
                logger.exception("%s: telling an undelivered message's sender failed", reason)
        else:
            dropped += 1
