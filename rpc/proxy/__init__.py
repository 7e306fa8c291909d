"""rpc-proxy: the firewalling DBus proxy between other domains (and a browser) and dom0's bus.

Being built (see docs/rpc-proxy.md as it grows). The pure cores (rules, wire checks, name
rewriting, JSON) come first; the actors that run listeners and client connections on them next.

The wire and security core (docs/rpc-proxy-wire.md), all pure:

* framing: :class:`MessageSplitter` (``feed(bytes) -> list[WireMessage]``), bounded by
  :class:`WireLimits` (:data:`CLIENT_LIMITS`, :data:`BUS_LIMITS`), failing with
  :class:`WireError` (a :class:`WireReason`); :func:`parse_message`, :func:`message_size`;
* messages: :class:`WireMessage` (bytes + header facts), :class:`MessageType`,
  :func:`rewrite` (serial, reply serial, sender, destination), :func:`decode_body`,
  :func:`first_string_arg`, :func:`properties_interface` (the Properties calls' interface
  argument), :func:`with_body`, :func:`build_message`, :func:`error_reply`, :func:`encode_values`,
  :class:`HeaderCache` (per-connection memo of parsed header fields);
* auth: :class:`ServerAuth` (client-facing SASL, ``auto`` for ``--auto-auth``),
  :class:`BusAuth` and :func:`bus_auth_line` (bus-facing), :class:`AuthError`;
* calls: :class:`CallTable` (serial remapping, pending calls, reply routing) with
  :class:`CallLimits` and the decisions :class:`Forward`, :class:`Refuse`, :class:`OwnReply`;
* names: :func:`rewrite_request_name`, :func:`request_name_for`,
  :class:`AnonymousDestinations`, :class:`OwnerNames`;
* security: :func:`always_denied`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from rpc.proxy._auth import (
        AuthError,
        AuthResult,
        AuthState,
        BusAuth,
        IllegalTransition,
        ServerAuth,
        bus_auth_line,
    )
    from rpc.proxy._calls import CallLimits, CallTable, Forward, OwnReply, Refuse
    from rpc.proxy._frames import MessageSplitter
    from rpc.proxy._header import HeaderCache
    from rpc.proxy._limits import (
        BUS_LIMITS,
        CLIENT_LIMITS,
        ProxyProtocolError,
        WireError,
        WireLimits,
        WireReason,
    )
    from rpc.proxy._message import (
        MessageType,
        WireMessage,
        build_message,
        decode_body,
        error_reply,
        first_string_arg,
        message_size,
        parse_message,
        properties_interface,
        rewrite,
        with_body,
    )
    from rpc.proxy._names import (
        AnonymousDestinations,
        OwnerNames,
        request_name_for,
        rewrite_request_name,
    )
    from rpc.proxy._security import always_denied
    from rpc.proxy._signature import encode_values

__all__ = [
    "BUS_LIMITS", "CLIENT_LIMITS", "AnonymousDestinations", "AuthError", "AuthResult",
    "AuthState", "BusAuth", "CallLimits", "CallTable", "Forward", "HeaderCache",
    "IllegalTransition", "MessageSplitter", "MessageType", "OwnReply", "OwnerNames",
    "ProxyProtocolError", "Refuse", "ServerAuth", "WireError", "WireLimits", "WireMessage",
    "WireReason", "always_denied", "build_message", "bus_auth_line", "decode_body",
    "encode_values", "error_reply", "first_string_arg", "message_size", "parse_message",
    "properties_interface", "request_name_for", "rewrite", "rewrite_request_name", "with_body",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(("AuthError", "AuthResult", "AuthState", "BusAuth", "IllegalTransition",
                     "ServerAuth", "bus_auth_line"), "rpc.proxy._auth"),
    **dict.fromkeys(("CallLimits", "CallTable", "Forward", "OwnReply", "Refuse"),
                    "rpc.proxy._calls"),
    "MessageSplitter": "rpc.proxy._frames",
    "HeaderCache": "rpc.proxy._header",
    **dict.fromkeys(("BUS_LIMITS", "CLIENT_LIMITS", "ProxyProtocolError", "WireError",
                     "WireLimits", "WireReason"), "rpc.proxy._limits"),
    **dict.fromkeys(("MessageType", "WireMessage", "build_message", "decode_body",
                     "error_reply", "first_string_arg", "message_size", "parse_message",
                     "properties_interface", "rewrite", "with_body"),
                    "rpc.proxy._message"),
    **dict.fromkeys(("AnonymousDestinations", "OwnerNames", "request_name_for",
                     "rewrite_request_name"), "rpc.proxy._names"),
    "always_denied": "rpc.proxy._security",
    "encode_values": "rpc.proxy._signature",
})
