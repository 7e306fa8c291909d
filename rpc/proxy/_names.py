"""Name rewriting: ``-n NAME``, ``--translate-anonymous-dests``, ``--owner-name`` (pure).

The three rewrites of the original proxy (reference: openxt-manager.md §2.7), as functions and
small tables the proxy's actors drive:

* :func:`rewrite_request_name`: an incoming ``RequestName`` call to ``org.freedesktop.DBus``
  from a client whose VM uuid is known gets its first argument replaced by the ``-n`` template
  with every ``$UUID`` replaced by the uuid with ``-`` -> ``_``; the flags argument is kept and
  the body re-marshalled (in the message's own byte order; the original re-marshalled
  big-endian). Without a uuid, or for any other message (``Hello`` included), the message is
  returned unchanged. A template that does not yield a valid bus name raises ``ValueError``
  (check it at start-up with :func:`request_name_for`).
* :class:`AnonymousDestinations`: the process-wide table unique name -> well-known name (the
  actor fills it from ``ListNames`` + ``GetNameOwner``; newer entries override older).
  :meth:`~AnonymousDestinations.translate` rewrites the destination of a method call to a
  ``:x.y`` name it knows, before the firewall, so rules see the well-known name; for an
  unknown one it returns ``None`` (the caller refreshes the table, logs a warning and forwards
  the message unchanged, as the original).
* :class:`OwnerNames`: remembers the argument of each ``GetNameOwner`` call to the bus driver
  (keyed by the serial the call reached the bus with) and replaces the body of the matching
  method return with that argument, so a guest never sees ``:x.y`` names. An error reply
  just forgets the entry. Bounded: the oldest entry goes first past ``max_entries``.

Bodies that do not decode raise :class:`~rpc.proxy._limits.WireError` (``BAD_BODY``).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import TYPE_CHECKING

from rpc.proxy._message import MessageType, WireMessage, decode_body, rewrite, with_body

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["AnonymousDestinations", "OwnerNames", "request_name_for", "rewrite_request_name"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

BUS_NAME = "org.freedesktop.DBus"
_WELL_KNOWN = re.compile(r"[A-Za-z_-][A-Za-z0-9_-]*(?:\.[A-Za-z_-][A-Za-z0-9_-]*)+")


def request_name_for(template: str, uuid: str) -> str:
    """``template`` with every ``$UUID`` replaced by ``uuid`` (``-`` -> ``_``); ``ValueError``
    when the result is not a valid well-known bus name."""
    name = template.replace("$UUID", uuid.replace("-", "_"))
    if len(name) > 255 or _WELL_KNOWN.fullmatch(name) is None:
        raise ValueError(f"-n {template!r} with uuid {uuid!r} gives {name!r}, "
                         "not a valid bus name")
    return name


def _is_bus_call(msg: WireMessage, member: str) -> bool:
    return (msg.type == MessageType.METHOD_CALL and msg.destination == BUS_NAME
            and msg.member == member and msg.interface in (None, BUS_NAME))


def rewrite_request_name(msg: WireMessage, template: str | None, uuid: str | None
                         ) -> WireMessage:
    """``msg`` with its requested name rewritten (see the module docstring)."""
    if template is None or uuid is None or not _is_bus_call(msg, "RequestName"):
        return msg
    if msg.signature != "su":
        return msg  # the bus answers InvalidArgs; nothing to rewrite
    _name, flags = decode_body(msg)
    return with_body(msg, "su", [request_name_for(template, uuid), flags])


class AnonymousDestinations:
    """Unique name -> well-known name, for ``--translate-anonymous-dests``."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._names)

    def learn(self, unique: str, well_known: str) -> None:
        """Record that ``unique`` owns ``well_known`` (overriding an older entry)."""
        self._names[unique] = well_known

    def learn_all(self, owners: Mapping[str, str]) -> None:
        """Record many (unique -> well-known) at once (a refresh)."""
        self._names.update(owners)

    def forget(self, unique: str) -> None:
        """Drop ``unique`` (it left the bus)."""
        self._names.pop(unique, None)

    def lookup(self, unique: str) -> str | None:
        """The well-known name ``unique`` owns, if known."""
        return self._names.get(unique)

    def translate(self, msg: WireMessage) -> WireMessage | None:
        """``msg`` with a known ``:x.y`` destination replaced; ``msg`` itself when it is not a
        method call to a unique name; ``None`` when the unique name is unknown."""
        dest = msg.destination
        if msg.type != MessageType.METHOD_CALL or dest is None or not dest.startswith(":"):
            return msg
        name = self._names.get(dest)
        if name is None:
            return None
        return rewrite(msg, destination=name)


class OwnerNames:
    """``--owner-name``: GetNameOwner replies carry the name asked for (module docstring)."""

    def __init__(self, max_entries: int = 256) -> None:
        if max_entries <= 0:
            raise ValueError(f"max_entries must be > 0, got {max_entries!r}")
        self.max_entries = max_entries
        self._asked: OrderedDict[int, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._asked)

    def note_call(self, msg: WireMessage) -> None:
        """Remember ``msg`` if it is a GetNameOwner call (``msg`` as sent to the bus, i.e.
        with the proxy's serial)."""
        if not _is_bus_call(msg, "GetNameOwner") or msg.signature != "s":
            return
        (name,) = decode_body(msg)
        self._asked[msg.serial] = name
        while len(self._asked) > self.max_entries:
            self._asked.popitem(last=False)

    def spoof_reply(self, msg: WireMessage) -> WireMessage:
        """``msg`` (from the bus, before its reply serial is mapped back) with the asked name
        as its body if it answers a noted call; otherwise ``msg`` unchanged."""
        if msg.type not in (MessageType.METHOD_RETURN, MessageType.ERROR) \
                or msg.reply_serial is None:
            return msg
        name = self._asked.pop(msg.reply_serial, None)
        if name is None or msg.type == MessageType.ERROR:
            return msg
        return with_body(msg, "s", [name])

    def forget_all(self) -> None:
        """Drop every entry (the client went)."""
        self._asked.clear()
