"""xec's bus client: one blocking connection, no threads, calls with timeouts, error replies
kept whole.

xec makes a handful of calls and exits, so it uses jeepney's blocking connection directly
rather than `rpc.dbus.BusConnection` (whose reader thread and futures a one-shot client does
not need) and imports jeepney only when it connects. The bus address comes from
`rpc.dbus._address.resolve_address` (explicit > ``DBUS_SYSTEM_BUS_ADDRESS`` > the embedded
default's address file > the system bus; ``--session``: ``DBUS_SESSION_BUS_ADDRESS``).

Outcomes: a method return gives a `Reply`; an error reply raises `ReplyError` carrying the
error name and its whole body with signature, so xec prints every body value as the original
did. Anything that is not the remote's answer (no bus, authentication refused, connection
lost, no reply within the timeout, a value that cannot be sent) raises `BusFailure`, whose
message is meant for stderr.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:

    from jeepney.io.blocking import DBusConnection
    from jeepney.low_level import Message

__all__ = [
    "CALL_TIMEOUT",
    "CONNECT_TIMEOUT",
    "Bus",
    "BusFailure",
    "Reply",
    "ReplyError",
    "resolve_bus_address",
]

# The original waited for ever; calls such as create_vhd or a VM start can take minutes, so
# the bound is generous.
CALL_TIMEOUT = 300.0
CONNECT_TIMEOUT = 5.0  # connect, authenticate and Hello


class BusFailure(Exception):
    """A local failure talking to the bus (its message is for stderr)."""


class Reply(NamedTuple):
    """A method return: the body values and their signature."""

    body: tuple[Any, ...]
    signature: str


class ReplyError(Exception):
    """An error reply: its name, body values and body signature."""

    def __init__(self, name: str, body: tuple[Any, ...], signature: str) -> None:
        super().__init__(name)
        self.name = name
        self.body = body
        self.signature = signature


def resolve_bus_address(session: bool = False) -> str:
    """The address xec connects to (order in the module docstring); `BusFailure` if none."""
    try:
        from rpc.dbus import resolve_address  # the package __init__ is lazy

        address: str = resolve_address(session=session)
    except ValueError as exc:
        raise BusFailure(str(exc)) from None
    return address


class Bus:
    """A blocking connection to one bus (use `Bus.connect`)."""

    def __init__(self, conn: DBusConnection, address: str) -> None:
        self._conn = conn
        self.address = address

    @classmethod
    def connect(cls, address: str, timeout: float = CONNECT_TIMEOUT) -> Bus:
        """Connect, authenticate (EXTERNAL, our uid) and say Hello; `BusFailure` if not."""
        from jeepney.io.blocking import open_dbus_connection

        try:
            conn = open_dbus_connection(address, auth_timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise BusFailure(f"cannot connect to the bus at {address}: {exc}") from None
        except Exception as exc:  # jeepney: bad address, authentication refused
            raise BusFailure(f"cannot connect to the bus at {address}: {exc}") from None
        return cls(conn, address)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        try:
            self._conn.close()
        except OSError:
            pass

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @staticmethod
    def message(service: str, path: str, interface: str | None, member: str,
                signature: str = "", body: Sequence[Any] = ()) -> Message:
        """A method call message; `BusFailure` if a name is not valid on the bus."""
        from jeepney import DBusAddress, new_method_call

        try:
            return new_method_call(DBusAddress(path, service, interface), member,
                                   signature or None, tuple(body))
        except ValueError as exc:
            raise BusFailure(f"cannot call {member}: {exc}") from None

    def call(self, service: str, path: str, interface: str | None, member: str,
             signature: str = "", body: Sequence[Any] = (),
             timeout: float = CALL_TIMEOUT) -> Reply:
        """Call a method and wait for its reply; `ReplyError` or `BusFailure` otherwise."""
        msg = self.message(service, path, interface, member, signature, body)
        result = self.call_many([msg], timeout)[0]
        if isinstance(result, ReplyError):
            raise result
        return result

    def call_many(self, messages: Sequence[Message],
                  timeout: float = CALL_TIMEOUT) -> list[Reply | ReplyError]:
        """Send every call, then collect their replies (in the order of ``messages``).

        Error replies are returned, not raised, so that the caller decides which one counts.
        `BusFailure` if the connection fails or the replies do not all come within
        ``timeout`` seconds.
        """
        from jeepney.low_level import HeaderFields, MessageType

        conn = self._conn
        pending: dict[int, int] = {}
        results: list[Reply | ReplyError | None] = [None] * len(messages)
        deadline = time.monotonic() + timeout
        try:
            for index, msg in enumerate(messages):
                serial = next(conn.outgoing_serial)
                conn.send(msg, serial=serial)
                pending[serial] = index
            while pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                reply = conn.receive(timeout=remaining)
                fields = reply.header.fields
                index_or_none = pending.pop(fields.get(HeaderFields.reply_serial, -1), None)
                if index_or_none is None:
                    continue  # a signal or a stray message: not ours
                signature = str(fields.get(HeaderFields.signature, ""))
                body = tuple(reply.body)
                if reply.header.message_type is MessageType.error:
                    name = str(fields.get(HeaderFields.error_name, ""))
                    results[index_or_none] = ReplyError(name, body, signature)
                else:
                    results[index_or_none] = Reply(body, signature)
        except TimeoutError:
            member = _member(messages[min(pending.values())]) if pending else "?"
            raise BusFailure(f"no reply to {member} within {timeout:g} s") from None
        except (OSError, ValueError, TypeError) as exc:  # EOF, bad value for a signature
            raise BusFailure(f"call failed on the bus at {self.address}: "
                             f"{exc or type(exc).__name__}") from None
        return [r for r in results if r is not None]


def _member(msg: Message) -> str:
    from jeepney.low_level import HeaderFields

    return str(msg.header.fields.get(HeaderFields.member, "?"))
