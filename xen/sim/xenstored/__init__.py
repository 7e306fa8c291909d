"""The simulated xenstored: a pure model of xenstored and the socket server built on it.

`Store` is a complete xenstored model driven by values (tree, permissions, quotas,
transactions, watches, domains); `XenstoredServer` serves it on a unix socket with the real
xenstore wire protocol (`xen.xenstore`'s codec), so Debian's ``xenstore-*`` tools and pyxs work
against it. Run it alone with ``python -m xen.sim.xenstored --socket PATH``.
See docs/xenstore.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from xen.sim.xenstored._nodeops import (
        Quotas,
    )
    from xen.sim.xenstored._server import (
        XenstoredServer,
    )
    from xen.sim.xenstored._store import (
        DOMID_FIRST_RESERVED,
        INTERNAL_CONN,
        SPECIAL_PATHS,
        Disconnect,
        Note,
        Output,
        Result,
        Send,
        Store,
    )
    from xen.sim.xenstored._tree import (
        Node,
        validate_path,
    )
    from xen.sim.xenstored._watches import (
        WatchEvent,
    )

__all__ = [
    "DOMID_FIRST_RESERVED",
    "INTERNAL_CONN",
    "SPECIAL_PATHS",
    "Disconnect",
    "Node",
    "Note",
    "Output",
    "Quotas",
    "Result",
    "Send",
    "Store",
    "WatchEvent",
    "XenstoredServer",
    "validate_path",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "DOMID_FIRST_RESERVED": "xen.sim.xenstored._store",
    "Disconnect": "xen.sim.xenstored._store",
    "INTERNAL_CONN": "xen.sim.xenstored._store",
    "Node": "xen.sim.xenstored._tree",
    "Note": "xen.sim.xenstored._store",
    "Output": "xen.sim.xenstored._store",
    "Quotas": "xen.sim.xenstored._nodeops",
    "Result": "xen.sim.xenstored._store",
    "SPECIAL_PATHS": "xen.sim.xenstored._store",
    "Send": "xen.sim.xenstored._store",
    "Store": "xen.sim.xenstored._store",
    "WatchEvent": "xen.sim.xenstored._watches",
    "XenstoredServer": "xen.sim.xenstored._server",
    "validate_path": "xen.sim.xenstored._tree",
})
