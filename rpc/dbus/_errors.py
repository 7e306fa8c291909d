"""DBus error names and the exception that carries one.

Handlers raise :class:`DBusError` to answer with a specific error name; any other exception
becomes ``org.freedesktop.DBus.Error.Failed`` with the exception's text as the one string
argument, as the original daemons answered. Clients get a :class:`DBusError` back for every
error reply, with the name and the first string argument.
"""

from __future__ import annotations

__all__ = [
    "ACCESS_DENIED",
    "FAILED",
    "INVALID_ARGS",
    "INVALID_SIGNATURE",
    "NAME_HAS_NO_OWNER",
    "NOT_SUPPORTED",
    "NO_REPLY",
    "PROPERTY_READ_ONLY",
    "SERVICE_UNKNOWN",
    "UNKNOWN_INTERFACE",
    "UNKNOWN_METHOD",
    "UNKNOWN_OBJECT",
    "UNKNOWN_PROPERTY",
    "CallTimeout",
    "ConnectionLost",
    "DBusError",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_P = "org.freedesktop.DBus.Error."
FAILED = _P + "Failed"
INVALID_ARGS = _P + "InvalidArgs"
INVALID_SIGNATURE = _P + "InvalidSignature"
UNKNOWN_METHOD = _P + "UnknownMethod"
UNKNOWN_OBJECT = _P + "UnknownObject"
UNKNOWN_INTERFACE = _P + "UnknownInterface"
UNKNOWN_PROPERTY = _P + "UnknownProperty"
PROPERTY_READ_ONLY = _P + "PropertyReadOnly"
NOT_SUPPORTED = _P + "NotSupported"
ACCESS_DENIED = _P + "AccessDenied"
SERVICE_UNKNOWN = _P + "ServiceUnknown"
NAME_HAS_NO_OWNER = _P + "NameHasNoOwner"
NO_REPLY = _P + "NoReply"


class DBusError(Exception):
    """An error reply: ``name`` is the DBus error name, ``message`` its text."""

    def __init__(self, name: str, message: str = "") -> None:
        super().__init__(f"{name}: {message}" if message else name)
        self.name = name
        self.message = message


class CallTimeout(DBusError):
    """No reply within the call's timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(NO_REPLY, message)


class ConnectionLost(DBusError):
    """The bus connection closed (the bus died, or we closed it) before a reply came."""

    def __init__(self, message: str = "connection to the bus lost") -> None:
        super().__init__("org.openxt.Error.Disconnected", message)
