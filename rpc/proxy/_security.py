"""What the proxy never forwards from a client, whatever the rules say (pure: no I/O).

:func:`always_denied` is checked on every client-to-bus message before the rules (the rules
cannot allow these, and domid 0 clients are not exempt: a proxy client is never a monitor).
It returns the reason for a denial, or ``None``. Denied:

* ``AddMatch`` on the bus driver whose rule mentions ``eavesdrop`` at all (any case, any
  value, anywhere in the string: a parser-differential bypass of an ``eavesdrop=true`` check
  is what CVE-2026-34080 was in xdg-dbus-proxy), and an ``AddMatch`` whose body is not one
  string (it cannot be checked, so it is not forwarded);
* ``BecomeMonitor`` and everything on ``org.freedesktop.DBus.Monitoring`` (a monitor sees all
  traffic on the bus);
* ``UpdateActivationEnvironment`` (changes the environment of services the bus starts);
* ``ReloadConfig`` (makes the bus re-read its policy: a guest may not time that), and the
  ``org.freedesktop.DBus.Debug.Stats`` (other connections' statistics),
  ``org.freedesktop.DBus.Verbose`` and ``org.freedesktop.DBus.Containers1`` (new listening
  servers) interfaces of the bus driver;
* a method call or signal that carries a reply serial (only returns and errors answer calls;
  xdg-dbus-proxy rejects these since CVE-2026-94422), and any message carrying file
  descriptors.

For the bus driver, a member is matched whatever the interface (the driver dispatches a call
without an interface by member name alone).
"""

from __future__ import annotations

from rpc.proxy._limits import WireError
from rpc.proxy._message import MessageType, WireMessage, decode_body

__all__ = ["BUS_NAME", "always_denied"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

BUS_NAME = "org.freedesktop.DBus"
_DENIED_MEMBERS = {
    "BecomeMonitor": "BecomeMonitor would see all traffic on the bus",
    "UpdateActivationEnvironment": "UpdateActivationEnvironment changes activated services",
    "ReloadConfig": "ReloadConfig makes the bus re-read its policy",
}
_DENIED_INTERFACES = {
    "org.freedesktop.DBus.Monitoring": "the Monitoring interface sees all traffic",
    "org.freedesktop.DBus.Debug.Stats": "Debug.Stats shows other connections' statistics",
    "org.freedesktop.DBus.Verbose": "the Verbose interface changes the bus's logging",
    "org.freedesktop.DBus.Containers1": "Containers1 opens new servers on the bus",
}


def always_denied(msg: WireMessage) -> str | None:
    """Why ``msg`` (from a client) must not reach the bus, or ``None`` (module docstring)."""
    mtype = msg.type
    if msg.reply_serial is not None and mtype in (MessageType.METHOD_CALL, MessageType.SIGNAL):
        return f"a {mtype.name} may not carry a reply serial"
    if msg.unix_fds:
        return "file descriptors are not passed through the proxy"
    if mtype != MessageType.METHOD_CALL or msg.destination != BUS_NAME:
        return None
    interface = msg.interface
    if interface is not None and interface in _DENIED_INTERFACES:
        return _DENIED_INTERFACES[interface]
    member = msg.member or ""
    if member in _DENIED_MEMBERS:
        return _DENIED_MEMBERS[member]
    if member == "AddMatch" and interface in (None, BUS_NAME):
        return _check_match_rule(msg)
    return None


def _check_match_rule(msg: WireMessage) -> str | None:
    if msg.signature != "s":
        return f"AddMatch with signature {msg.signature!r}, not 's'"
    try:
        (rule,) = decode_body(msg)
    except WireError as exc:
        return f"AddMatch with a malformed body ({exc.detail})"
    if "eavesdrop" in rule.lower():
        return "AddMatch with eavesdrop"
    return None
