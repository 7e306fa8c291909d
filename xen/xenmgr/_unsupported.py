"""Members xenmgr deliberately does not support here, and why.

:func:`not_supported` makes the handler of such a member: it answers
``org.freedesktop.DBus.Error.NotSupported`` with ``<member>: <reason>`` (the reason names the
daemon, tool or hardware this host lacks), and carries the reason for the generated coverage
page (``xen.xenmgr.coverage``), which lists the member as "not supported" rather than "not
implemented". Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from rpc.dbus import NOT_SUPPORTED, DBusError, dbus_method

__all__ = ["NOT_SUPPORTED", "not_supported", "unsupported_error"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


def unsupported_error(member: str, reason: str) -> DBusError:
    """The ``NotSupported`` error of ``member`` (module docstring)."""
    return DBusError(NOT_SUPPORTED, f"{member}: {reason}")


def not_supported(interface: str, member: str, reason: str) -> Callable[..., NoReturn]:
    """The handler of a deliberately unsupported ``interface.member`` (module docstring)."""

    def handler(self: object, call: Any, *args: Any) -> NoReturn:
        raise unsupported_error(member, reason)

    handler.__name__ = f"unsupported_{member}"
    handler.__doc__ = f"{interface}.{member}: not supported ({reason})."
    marked = dbus_method(interface, member)(handler)
    marked._unsupported = reason  # type: ignore[attr-defined]
    return marked
