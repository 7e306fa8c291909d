"""The control socket: a generic inspection service for a running supervision tree.

`ControlActor` (a child of the tree) serves the protocol of `_proto` on a unix socket
(mode 0600): the tree, actors, stats, state, the event log (tail and follow), traces, sending
and asking messages, injected crashes, child restart/stop/start, plus operations the
application adds (`Operation`, `OpContext`, `OpError`). `ControlClient` is the blocking client
`oxt-shell` uses. The protocol core is pure; nothing here knows Xen, the bus or the database.
See docs/control.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from supervision.control._client import (
        ControlClient,
        ControlError,
    )
    from supervision.control._ops import (
        BUILTIN_MESSAGES,
        OpContext,
        Operation,
        OpError,
        base_operations,
    )
    from supervision.control._proto import (
        MAX_FRAME,
        OPS,
        PROTOCOL_VERSION,
        BadRequest,
        FrameParser,
        FrameTooLarge,
        ProtocolError,
        Request,
        answer,
        check_request,
        error,
        event,
        frame,
    )
    from supervision.control._server import (
        ControlActor,
        ControlServer,
    )

__all__ = [
    "BUILTIN_MESSAGES",
    "MAX_FRAME",
    "OPS",
    "PROTOCOL_VERSION",
    "BadRequest",
    "ControlActor",
    "ControlClient",
    "ControlError",
    "ControlServer",
    "FrameParser",
    "FrameTooLarge",
    "OpContext",
    "OpError",
    "Operation",
    "ProtocolError",
    "Request",
    "answer",
    "base_operations",
    "check_request",
    "error",
    "event",
    "frame",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "BUILTIN_MESSAGES": "supervision.control._ops",
    "BadRequest": "supervision.control._proto",
    "ControlActor": "supervision.control._server",
    "ControlClient": "supervision.control._client",
    "ControlError": "supervision.control._client",
    "ControlServer": "supervision.control._server",
    "FrameParser": "supervision.control._proto",
    "FrameTooLarge": "supervision.control._proto",
    "MAX_FRAME": "supervision.control._proto",
    "OPS": "supervision.control._proto",
    "OpContext": "supervision.control._ops",
    "OpError": "supervision.control._ops",
    "Operation": "supervision.control._ops",
    "PROTOCOL_VERSION": "supervision.control._proto",
    "ProtocolError": "supervision.control._proto",
    "Request": "supervision.control._proto",
    "answer": "supervision.control._proto",
    "base_operations": "supervision.control._ops",
    "check_request": "supervision.control._proto",
    "error": "supervision.control._proto",
    "event": "supervision.control._proto",
    "frame": "supervision.control._proto",
})
