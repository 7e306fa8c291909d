"""rpc-proxy: the firewalling DBus proxy between other domains (and a browser) and dom0's bus.

Being built (see docs/rpc-proxy.md as it grows). The pure cores (rules, wire checks, name
rewriting, JSON) come first; the actors that run listeners and client connections on them next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
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

__all__ = [
    "DEFAULT_INCOMING",
    "DEFAULT_OUTGOING",
    "DEFAULT_RULES",
    "USAGE",
    "Channel",
    "OptionsError",
    "ProxyOptions",
    "parse_channel",
    "parse_options",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "DEFAULT_INCOMING": "rpc.proxy._options",
    "DEFAULT_OUTGOING": "rpc.proxy._options",
    "DEFAULT_RULES": "rpc.proxy._options",
    "USAGE": "rpc.proxy._options",
    "Channel": "rpc.proxy._options",
    "OptionsError": "rpc.proxy._options",
    "ProxyOptions": "rpc.proxy._options",
    "parse_channel": "rpc.proxy._options",
    "parse_options": "rpc.proxy._options",
})
