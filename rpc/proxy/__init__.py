"""rpc-proxy: the firewalling DBus proxy between other domains (and a browser) and dom0's bus.

Being built (see docs/rpc-proxy.md as it grows). The pure cores (rules, wire checks, name
rewriting, JSON) come first; the actors that run listeners and client connections on them next.

Public API::

    # the rules engine (pure; docs/rpc-proxy.md "## Rules")
    Rule, Action, Subject, Direction, MessageKind, NamePattern, PropertyTest   # the rules
    MessageFacts, properties_target, PROPERTIES_INTERFACE, PROPERTIES_MEMBERS  # a message
    DomainFacts, no_properties                                                 # its source
    Verdict, VerdictReason                                                     # the answer
    parse_rules, parse_rule, vm_rules_from_db                                  # text/db -> rules
    RulesError, RulesSyntaxError, RulesDbError                                 # what they raise
    format_rule, format_rules, check_rules_text                                # rules -> text
    RuleSet, compile_rules, evaluate, deny_log_line                            # checking

    # running it (docs/rpc-proxy.md "## Running")
    ProxyOptions, Channel, parse_options, parse_channel, OptionsError, USAGE   # command line
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
    from rpc.proxy._rules_eval import RuleSet, compile_rules, deny_log_line, evaluate
    from rpc.proxy._rules_format import check_rules_text, format_rule, format_rules
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

__all__ = [
    "ARGO_DEVICE",
    "ARGO_HEADER_SIZE",
    "ARGO_MAX_LINE",
    # running it
    "DEFAULT_INCOMING",
    "DEFAULT_OUTGOING",
    "DEFAULT_RULES",
    # the rules engine
    "PROPERTIES_INTERFACE",
    "PROPERTIES_MEMBERS",
    "USAGE",
    "Accepted",
    "Action",
    "ArgoPeer",
    "ArgoSimError",
    "Channel",
    "Direction",
    "DomainDirectory",
    "DomainFacts",
    "Listener",
    "MessageFacts",
    "MessageKind",
    "NamePattern",
    "OptionsError",
    "PropertyTest",
    "ProxyOptions",
    "Rule",
    "RuleSet",
    "RulesDbError",
    "RulesError",
    "RulesSyntaxError",
    "Subject",
    "TransportError",
    "Verdict",
    "VerdictReason",
    "argo_connect",
    "argo_connect_line",
    "argo_listen_path",
    "argo_standin_path",
    "check_rules_text",
    "compile_rules",
    "connect_outgoing",
    "decode_argo_header",
    "deny_log_line",
    "encode_argo_header",
    "evaluate",
    "format_rule",
    "format_rules",
    "no_properties",
    "open_listener",
    "parse_argo_answer",
    "parse_channel",
    "parse_connect_line",
    "parse_options",
    "parse_rule",
    "parse_rules",
    "properties_target",
    "vm_rules_from_db",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "ARGO_DEVICE": "rpc.proxy._transports",
    "Accepted": "rpc.proxy._transports",
    "DomainDirectory": "rpc.proxy._transports",
    "Listener": "rpc.proxy._transports",
    "TransportError": "rpc.proxy._transports",
    "argo_connect": "rpc.proxy._transports",
    "connect_outgoing": "rpc.proxy._transports",
    "open_listener": "rpc.proxy._transports",
    "ARGO_HEADER_SIZE": "rpc.proxy._argo_sim",
    "ARGO_MAX_LINE": "rpc.proxy._argo_sim",
    "ArgoPeer": "rpc.proxy._argo_sim",
    "ArgoSimError": "rpc.proxy._argo_sim",
    "argo_connect_line": "rpc.proxy._argo_sim",
    "argo_listen_path": "rpc.proxy._argo_sim",
    "argo_standin_path": "rpc.proxy._argo_sim",
    "decode_argo_header": "rpc.proxy._argo_sim",
    "encode_argo_header": "rpc.proxy._argo_sim",
    "parse_argo_answer": "rpc.proxy._argo_sim",
    "parse_connect_line": "rpc.proxy._argo_sim",
    # running it
    "DEFAULT_INCOMING": "rpc.proxy._options",
    "DEFAULT_OUTGOING": "rpc.proxy._options",
    "DEFAULT_RULES": "rpc.proxy._options",
    "USAGE": "rpc.proxy._options",
    "Channel": "rpc.proxy._options",
    "OptionsError": "rpc.proxy._options",
    "ProxyOptions": "rpc.proxy._options",
    "parse_channel": "rpc.proxy._options",
    "parse_options": "rpc.proxy._options",
    # the rules engine
    "PROPERTIES_INTERFACE": "rpc.proxy._rules_model",
    "PROPERTIES_MEMBERS": "rpc.proxy._rules_model",
    "Action": "rpc.proxy._rules_model",
    "Direction": "rpc.proxy._rules_model",
    "DomainFacts": "rpc.proxy._rules_model",
    "MessageFacts": "rpc.proxy._rules_model",
    "MessageKind": "rpc.proxy._rules_model",
    "NamePattern": "rpc.proxy._rules_model",
    "PropertyTest": "rpc.proxy._rules_model",
    "Rule": "rpc.proxy._rules_model",
    "RuleSet": "rpc.proxy._rules_eval",
    "RulesDbError": "rpc.proxy._rules_parse",
    "RulesError": "rpc.proxy._rules_parse",
    "RulesSyntaxError": "rpc.proxy._rules_parse",
    "Subject": "rpc.proxy._rules_model",
    "Verdict": "rpc.proxy._rules_model",
    "VerdictReason": "rpc.proxy._rules_model",
    "check_rules_text": "rpc.proxy._rules_format",
    "compile_rules": "rpc.proxy._rules_eval",
    "deny_log_line": "rpc.proxy._rules_eval",
    "evaluate": "rpc.proxy._rules_eval",
    "format_rule": "rpc.proxy._rules_format",
    "format_rules": "rpc.proxy._rules_format",
    "no_properties": "rpc.proxy._rules_model",
    "parse_rule": "rpc.proxy._rules_parse",
    "parse_rules": "rpc.proxy._rules_parse",
    "properties_target": "rpc.proxy._rules_model",
    "vm_rules_from_db": "rpc.proxy._rules_parse",
})
