"""Building and reading DBus messages (pure: no I/O). Wraps jeepney's message model.

Names are not validated here beyond what the wire needs: property names with dashes travel as
string arguments, and member names are the IDL's (the bus checks the rest).
"""

from __future__ import annotations

from typing import Any

from jeepney.low_level import (
    Endianness,
    Header,
    HeaderFields,
    Message,
    MessageFlag,
    MessageType,
)

__all__ = [
    "Message",
    "MessageType",
    "body_signature",
    "error_reply",
    "field",
    "method_call",
    "method_return",
    "no_reply_expected",
    "signal",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


def _header(kind: MessageType, flags: int = 0) -> Header:
    return Header(Endianness.little, kind, flags, 1, -1, -1, {})


def field(msg: Message, name: HeaderFields) -> Any:
    """A header field of ``msg`` or None."""
    return msg.header.fields.get(name)


def body_signature(msg: Message) -> str:
    """The body signature (``""`` when the message has no body)."""
    return str(msg.header.fields.get(HeaderFields.signature, ""))


def no_reply_expected(msg: Message) -> bool:
    """Whether the caller set NO_REPLY_EXPECTED."""
    return bool(msg.header.flags & MessageFlag.no_reply_expected)


def method_call(destination: str | None, path: str, interface: str | None, member: str,
                signature: str = "", body: tuple[Any, ...] = ()) -> Message:
    """A method call message."""
    header = _header(MessageType.method_call)
    fields = header.fields
    fields[HeaderFields.path] = path
    if destination:
        fields[HeaderFields.destination] = destination
    if interface:
        fields[HeaderFields.interface] = interface
    fields[HeaderFields.member] = member
    if signature:
        fields[HeaderFields.signature] = signature
    return Message(header, body)


def method_return(call: Message, signature: str = "", body: tuple[Any, ...] = ()) -> Message:
    """The successful reply to ``call``."""
    header = _header(MessageType.method_return)
    header.fields[HeaderFields.reply_serial] = call.header.serial
    sender = call.header.fields.get(HeaderFields.sender)
    if sender is not None:
        header.fields[HeaderFields.destination] = sender
    if signature:
        header.fields[HeaderFields.signature] = signature
    return Message(header, body)


def error_reply(call: Message, name: str, text: str | None = None) -> Message:
    """An error reply to ``call`` carrying one string (none when ``text`` is None)."""
    header = _header(MessageType.error)
    header.fields[HeaderFields.reply_serial] = call.header.serial
    header.fields[HeaderFields.error_name] = name
    sender = call.header.fields.get(HeaderFields.sender)
    if sender is not None:
        header.fields[HeaderFields.destination] = sender
    if text is None:
        return Message(header, ())
    header.fields[HeaderFields.signature] = "s"
    return Message(header, (text,))


def signal(path: str, interface: str, member: str, signature: str = "",
           body: tuple[Any, ...] = (), destination: str | None = None) -> Message:
    """A signal (broadcast unless ``destination`` is given)."""
    header = _header(MessageType.signal)
    fields = header.fields
    fields[HeaderFields.path] = path
    fields[HeaderFields.interface] = interface
    fields[HeaderFields.member] = member
    if destination:
        fields[HeaderFields.destination] = destination
    if signature:
        fields[HeaderFields.signature] = signature
    return Message(header, body)
