"""rpc-proxy: the firewalling DBus proxy between other domains (and a browser) and dom0's bus.

Every message a client sends is checked (wire bounds, always-denied calls, the rules; default
deny) before it reaches the bus; replies go back only to the client that waits for them. See
docs/rpc-proxy.md. The pure cores:

* rules (``_rules_*``): :func:`parse_rules`, :func:`format_rules`, :func:`check_rules_text`,
  :func:`compile_rules`, :func:`evaluate`, :func:`deny_log_line`, :func:`vm_rules_from_db` and the
  model (:class:`Rule`, :class:`MessageFacts`, :class:`DomainFacts`, :class:`Verdict`);
* wire (``_header``, ``_message``, ``_frames``, ``_limits``): :class:`MessageSplitter`,
  :class:`WireMessage`, :func:`parse_message`, :func:`rewrite`, :class:`WireLimits`,
  :class:`WireError`;
* auth (``_auth``): :class:`ServerAuth` (client-facing SASL), :class:`BusAuth`;
* calls (``_calls``): :class:`CallTable` (serial remapping, reply routing);
* names (``_names``): :func:`rewrite_request_name`, :class:`AnonymousDestinations`,
  :class:`OwnerNames`; security (``_security``): :func:`always_denied`;
* JSON (``_json``, ``_jsonvalues``, ``_jsonstream``) and WebSocket (``_websocket``, on wsproto);
* options (``_options``): :func:`parse_options`.

The actors and I/O: transports (``_transports``, :func:`open_listener`,
:func:`connect_outgoing`), the instance subtree (:func:`proxy_instance_spec`), the client
connection actor (:class:`ProxyClient`), the policy actor and the ``-s`` service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from rpc.proxy._argo_sim import (
        ARGO_HEADER_SIZE,
        ARGO_MAX_LINE,
        ArgoPeer,
        ArgoSimError,
        argo_connect_line,
        argo_listen_path,
        argo_standin_path,
        decode_argo_header,
        encode_argo_header,
        parse_argo_answer,
        parse_connect_line,
    )
    from rpc.proxy._auth import (
        AuthError,
        AuthResult,
        AuthState,
        BusAuth,
        IllegalTransition,
        ServerAuth,
        bus_auth_line,
    )
    from rpc.proxy._calls import (
        CallLimits,
        CallTable,
        Forward,
        OwnReply,
        Refuse,
    )
    from rpc.proxy._client import (
        ProxyClient,
        ProxyContext,
    )
    from rpc.proxy._frames import (
        MessageSplitter,
    )
    from rpc.proxy._header import (
        HeaderCache,
    )
    from rpc.proxy._instance import (
        ListenerActor,
        PolicyActor,
        Reload,
        policy_of,
        proxy_instance_spec,
    )
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
    from rpc.proxy._jsonclient import (
        INTROSPECT_TIMEOUT,
        JsonProxyClient,
    )
    from rpc.proxy._jsonout import (
        JsonInOutProxyClient,
        JsonOutProxyClient,
    )
    from rpc.proxy._jsonstream import (
        JsonFrameTooLarge,
        JsonStreamError,
        NulSplitter,
        nul_frame,
    )
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
    from rpc.proxy._options import (
        DEFAULT_INCOMING,
        DEFAULT_OUTGOING,
        DEFAULT_RULES,
        USAGE,
        Channel,
        OptionsError,
        ProxyOptions,
        parse_channel,
        parse_options,
    )
    from rpc.proxy._policy import (
        DB_SERVICE,
        XENMGR_SERVICE,
        XENMGR_VM_UNRESTRICTED,
        PolicyError,
        ProxyPolicy,
        SourceDomain,
        message_facts,
    )
    from rpc.proxy._registrar import (
        BusRegistrar,
        IdentityRegistrar,
        LocalRegistrar,
    )
    from rpc.proxy._rules_eval import (
        RuleSet,
        compile_rules,
        deny_log_line,
        evaluate,
    )
    from rpc.proxy._rules_format import (
        check_rules_text,
        format_rule,
        format_rules,
    )
    from rpc.proxy._rules_model import (
        PROPERTIES_INTERFACE,
        PROPERTIES_MEMBERS,
        Action,
        Direction,
        DomainFacts,
        MessageFacts,
        MessageKind,
        NamePattern,
        PropertyTest,
        Rule,
        Subject,
        Verdict,
        VerdictReason,
        no_properties,
        properties_target,
    )
    from rpc.proxy._rules_parse import (
        RulesDbError,
        RulesError,
        RulesSyntaxError,
        parse_rule,
        parse_rules,
        vm_rules_from_db,
    )
    from rpc.proxy._security import (
        always_denied,
    )
    from rpc.proxy._service import (
        RPC_PROXY_INTERFACE,
        RPC_PROXY_SERVICE,
        RpcProxyService,
    )
    from rpc.proxy._signature import (
        encode_values,
    )
    from rpc.proxy._transports import (
        ARGO_DEVICE,
        Accepted,
        DomainDirectory,
        Listener,
        TransportError,
        argo_connect,
        connect_outgoing,
        open_listener,
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

__all__ = [
    "ARGO_DEVICE",
    "ARGO_HEADER_SIZE",
    "ARGO_MAX_LINE",
    "BUS_LIMITS",
    "CLIENT_LIMITS",
    "DB_SERVICE",
    "DEFAULT_INCOMING",
    "DEFAULT_OUTGOING",
    "DEFAULT_RULES",
    "INTROSPECT_TIMEOUT",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_WEBSOCKET_MESSAGE",
    "PROPERTIES_INTERFACE",
    "PROPERTIES_MEMBERS",
    "RPC_PROXY_INTERFACE",
    "RPC_PROXY_SERVICE",
    "USAGE",
    "XENMGR_SERVICE",
    "XENMGR_VM_UNRESTRICTED",
    "Accepted",
    "Action",
    "AnonymousDestinations",
    "ArgoPeer",
    "ArgoSimError",
    "AuthError",
    "AuthResult",
    "AuthState",
    "BusAuth",
    "BusRegistrar",
    "CallLimits",
    "CallTable",
    "Channel",
    "Direction",
    "DomainDirectory",
    "DomainFacts",
    "Forward",
    "HeaderCache",
    "IdentityRegistrar",
    "IllegalTransition",
    "Introspected",
    "IntrospectionError",
    "Json",
    "JsonError",
    "JsonFrameTooLarge",
    "JsonInOutProxyClient",
    "JsonMessage",
    "JsonMessageError",
    "JsonOutProxyClient",
    "JsonOutputError",
    "JsonProxyClient",
    "JsonStreamError",
    "Listener",
    "ListenerActor",
    "LocalRegistrar",
    "MessageFacts",
    "MessageKind",
    "MessageSplitter",
    "MessageType",
    "NamePattern",
    "NulSplitter",
    "OptionsError",
    "OwnReply",
    "OwnerNames",
    "PolicyActor",
    "PolicyError",
    "PropertyTest",
    "ProxyClient",
    "ProxyContext",
    "ProxyOptions",
    "ProxyPolicy",
    "ProxyProtocolError",
    "Refuse",
    "Reload",
    "RpcProxyService",
    "Rule",
    "RuleSet",
    "RulesDbError",
    "RulesError",
    "RulesSyntaxError",
    "ServerAuth",
    "SourceDomain",
    "Subject",
    "TransportError",
    "Verdict",
    "VerdictReason",
    "WebSocketClosed",
    "WebSocketError",
    "WebSocketEvent",
    "WebSocketMessage",
    "WebSocketOpened",
    "WebSocketRefused",
    "WebSocketServer",
    "WireError",
    "WireLimits",
    "WireMessage",
    "WireReason",
    "always_denied",
    "argo_connect",
    "argo_connect_line",
    "argo_listen_path",
    "argo_standin_path",
    "build_message",
    "bus_auth_line",
    "check_rules_text",
    "compile_rules",
    "connect_outgoing",
    "dbus_to_json",
    "dbus_to_json_value",
    "decode_argo_header",
    "decode_body",
    "deny_log_line",
    "encode_argo_header",
    "encode_json",
    "encode_values",
    "error_reply",
    "evaluate",
    "first_string_arg",
    "format_rule",
    "format_rules",
    "guess_signature",
    "json_to_dbus",
    "json_to_dbus_value",
    "message_facts",
    "message_size",
    "no_properties",
    "nul_frame",
    "open_listener",
    "origin_allowed",
    "parse_argo_answer",
    "parse_channel",
    "parse_connect_line",
    "parse_introspection",
    "parse_json_message",
    "parse_message",
    "parse_options",
    "parse_rule",
    "parse_rules",
    "policy_of",
    "properties_interface",
    "properties_target",
    "proxy_instance_spec",
    "request_name_for",
    "rewrite",
    "rewrite_request_name",
    "to_dbus_message",
    "vm_rules_from_db",
    "with_body",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys((
        "ARGO_HEADER_SIZE", "ARGO_MAX_LINE", "ArgoPeer", "ArgoSimError", "argo_connect_line",
        "argo_listen_path", "argo_standin_path", "decode_argo_header", "encode_argo_header",
        "parse_argo_answer", "parse_connect_line",
    ), "rpc.proxy._argo_sim"),
    **dict.fromkeys((
        "AuthError", "AuthResult", "AuthState", "BusAuth", "IllegalTransition", "ServerAuth",
        "bus_auth_line",
    ), "rpc.proxy._auth"),
    **dict.fromkeys((
        "CallLimits", "CallTable", "Forward", "OwnReply", "Refuse",
    ), "rpc.proxy._calls"),
    **dict.fromkeys((
        "ProxyClient", "ProxyContext",
    ), "rpc.proxy._client"),
    **dict.fromkeys((
        "MessageSplitter",
    ), "rpc.proxy._frames"),
    **dict.fromkeys((
        "HeaderCache",
    ), "rpc.proxy._header"),
    **dict.fromkeys((
        "ListenerActor", "PolicyActor", "Reload", "policy_of", "proxy_instance_spec",
    ), "rpc.proxy._instance"),
    **dict.fromkeys((
        "Introspected", "IntrospectionError", "JsonMessage", "MAX_JSON_BYTES", "dbus_to_json",
        "encode_json", "json_to_dbus", "parse_introspection", "parse_json_message",
        "to_dbus_message",
    ), "rpc.proxy._json"),
    **dict.fromkeys((
        "INTROSPECT_TIMEOUT", "JsonProxyClient",
    ), "rpc.proxy._jsonclient"),
    **dict.fromkeys((
        "JsonInOutProxyClient", "JsonOutProxyClient",
    ), "rpc.proxy._jsonout"),
    **dict.fromkeys((
        "JsonFrameTooLarge", "JsonStreamError", "NulSplitter", "nul_frame",
    ), "rpc.proxy._jsonstream"),
    **dict.fromkeys((
        "Json", "JsonError", "JsonMessageError", "JsonOutputError", "MAX_JSON_DEPTH",
        "dbus_to_json_value", "guess_signature", "json_to_dbus_value",
    ), "rpc.proxy._jsonvalues"),
    **dict.fromkeys((
        "BUS_LIMITS", "CLIENT_LIMITS", "ProxyProtocolError", "WireError", "WireLimits",
        "WireReason",
    ), "rpc.proxy._limits"),
    **dict.fromkeys((
        "MessageType", "WireMessage", "build_message", "decode_body", "error_reply",
        "first_string_arg", "message_size", "parse_message", "properties_interface", "rewrite",
        "with_body",
    ), "rpc.proxy._message"),
    **dict.fromkeys((
        "AnonymousDestinations", "OwnerNames", "request_name_for", "rewrite_request_name",
    ), "rpc.proxy._names"),
    **dict.fromkeys((
        "Channel", "DEFAULT_INCOMING", "DEFAULT_OUTGOING", "DEFAULT_RULES", "OptionsError",
        "ProxyOptions", "USAGE", "parse_channel", "parse_options",
    ), "rpc.proxy._options"),
    **dict.fromkeys((
        "DB_SERVICE", "PolicyError", "ProxyPolicy", "SourceDomain", "XENMGR_SERVICE",
        "XENMGR_VM_UNRESTRICTED", "message_facts",
    ), "rpc.proxy._policy"),
    **dict.fromkeys((
        "BusRegistrar", "IdentityRegistrar", "LocalRegistrar",
    ), "rpc.proxy._registrar"),
    **dict.fromkeys((
        "RuleSet", "compile_rules", "deny_log_line", "evaluate",
    ), "rpc.proxy._rules_eval"),
    **dict.fromkeys((
        "check_rules_text", "format_rule", "format_rules",
    ), "rpc.proxy._rules_format"),
    **dict.fromkeys((
        "Action", "Direction", "DomainFacts", "MessageFacts", "MessageKind", "NamePattern",
        "PROPERTIES_INTERFACE", "PROPERTIES_MEMBERS", "PropertyTest", "Rule", "Subject", "Verdict",
        "VerdictReason", "no_properties", "properties_target",
    ), "rpc.proxy._rules_model"),
    **dict.fromkeys((
        "RulesDbError", "RulesError", "RulesSyntaxError", "parse_rule", "parse_rules",
        "vm_rules_from_db",
    ), "rpc.proxy._rules_parse"),
    **dict.fromkeys((
        "always_denied",
    ), "rpc.proxy._security"),
    **dict.fromkeys((
        "RPC_PROXY_INTERFACE", "RPC_PROXY_SERVICE", "RpcProxyService",
    ), "rpc.proxy._service"),
    **dict.fromkeys((
        "encode_values",
    ), "rpc.proxy._signature"),
    **dict.fromkeys((
        "ARGO_DEVICE", "Accepted", "DomainDirectory", "Listener", "TransportError", "argo_connect",
        "connect_outgoing", "open_listener",
    ), "rpc.proxy._transports"),
    **dict.fromkeys((
        "MAX_WEBSOCKET_MESSAGE", "WebSocketClosed", "WebSocketError", "WebSocketEvent",
        "WebSocketMessage", "WebSocketOpened", "WebSocketRefused", "WebSocketServer",
        "origin_allowed",
    ), "rpc.proxy._websocket"),
})
