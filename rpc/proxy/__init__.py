"""rpc-proxy: the firewalling DBus proxy between other domains (and a browser) and dom0's bus.

Being built (see docs/rpc-proxy.md as it grows). The pure cores (rules, wire checks, name
rewriting, JSON) come first; the actors that run listeners and client connections on them next.
"""

from __future__ import annotations

from actors import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
})
