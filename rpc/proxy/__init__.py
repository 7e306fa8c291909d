"""rpc-proxy: the firewalling DBus proxy between other domains (and a browser) and dom0's bus.

Being built (see docs/rpc-proxy.md as it grows). The pure cores (rules, wire checks, name
rewriting, JSON) come first; the actors that run listeners and client connections on them next.

The JSON path (docs/rpc-proxy-json.md), all pure:

- `parse_json_message` checks one JSON text into a `JsonMessage`; its ``introspection_target``
  says which (destination, path) to introspect; `parse_introspection` turns that XML into the
  mapping `to_dbus_message` types arguments with; `json_to_dbus` does both steps without
  introspection. `dbus_to_json` / `encode_json` write a DBus message as JSON.
- `json_to_dbus_value`, `dbus_to_json_value` and `guess_signature` convert single values.
- `NulSplitter` and `nul_frame`: NUL framing of JSON texts on a stream.
- `WebSocketServer`: the server side of a WebSocket (wsproto), with `origin_allowed`, and its
  events `WebSocketOpened`, `WebSocketRefused`, `WebSocketMessage`, `WebSocketClosed`.

Errors: `JsonMessageError` (bad input, ``field`` names where) and `JsonOutputError` (no JSON form),
both `JsonError`; `IntrospectionError`; `JsonFrameTooLarge` (a `JsonStreamError`);
`WebSocketError`. All are `ValueError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from rpc.proxy._json import (
        MAX_JSON_BYTES,
        Introspected,
        IntrospectionError,
        JsonMessage,
        dbus_to_json,
        encode_json,
        json_to_dbus,
        parse_introspection,
        parse_json_message,
        to_dbus_message,
    )
    from rpc.proxy._jsonstream import JsonFrameTooLarge, JsonStreamError, NulSplitter, nul_frame
    from rpc.proxy._jsonvalues import (
        MAX_JSON_DEPTH,
        Json,
        JsonError,
        JsonMessageError,
        JsonOutputError,
        dbus_to_json_value,
        guess_signature,
        json_to_dbus_value,
    )
    from rpc.proxy._websocket import (
        MAX_WEBSOCKET_MESSAGE,
        WebSocketClosed,
        WebSocketError,
        WebSocketEvent,
        WebSocketMessage,
        WebSocketOpened,
        WebSocketRefused,
        WebSocketServer,
        origin_allowed,
    )

_JSON = "rpc.proxy._json"
_VALUES = "rpc.proxy._jsonvalues"
_STREAM = "rpc.proxy._jsonstream"
_WS = "rpc.proxy._websocket"

_SOURCES: dict[str, str] = {
    "MAX_JSON_BYTES": _JSON,
    "Introspected": _JSON,
    "IntrospectionError": _JSON,
    "JsonMessage": _JSON,
    "dbus_to_json": _JSON,
    "encode_json": _JSON,
    "json_to_dbus": _JSON,
    "parse_introspection": _JSON,
    "parse_json_message": _JSON,
    "to_dbus_message": _JSON,
    "MAX_JSON_DEPTH": _VALUES,
    "Json": _VALUES,
    "JsonError": _VALUES,
    "JsonMessageError": _VALUES,
    "JsonOutputError": _VALUES,
    "dbus_to_json_value": _VALUES,
    "guess_signature": _VALUES,
    "json_to_dbus_value": _VALUES,
    "JsonFrameTooLarge": _STREAM,
    "JsonStreamError": _STREAM,
    "NulSplitter": _STREAM,
    "nul_frame": _STREAM,
    "MAX_WEBSOCKET_MESSAGE": _WS,
    "WebSocketClosed": _WS,
    "WebSocketError": _WS,
    "WebSocketEvent": _WS,
    "WebSocketMessage": _WS,
    "WebSocketOpened": _WS,
    "WebSocketRefused": _WS,
    "WebSocketServer": _WS,
    "origin_allowed": _WS,
}

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_WEBSOCKET_MESSAGE",
    "Introspected",
    "IntrospectionError",
    "Json",
    "JsonError",
    "JsonFrameTooLarge",
    "JsonMessage",
    "JsonMessageError",
    "JsonOutputError",
    "JsonStreamError",
    "NulSplitter",
    "WebSocketClosed",
    "WebSocketError",
    "WebSocketEvent",
    "WebSocketMessage",
    "WebSocketOpened",
    "WebSocketRefused",
    "WebSocketServer",
    "dbus_to_json",
    "dbus_to_json_value",
    "encode_json",
    "guess_signature",
    "json_to_dbus",
    "json_to_dbus_value",
    "nul_frame",
    "origin_allowed",
    "parse_introspection",
    "parse_json_message",
    "to_dbus_message",
]

__getattr__, __dir__ = lazy_exports(__name__, _SOURCES)
