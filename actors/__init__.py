"""The actor runtime on pykka: ordered mailboxes, typed messages, stats, timers, snapshots.

Public API::

    Actor, ActorContext, handles          # base class, start context, handler decorator
    ask, tell, resolve, register_name     # name-based addressing, ask with a mandatory timeout
    AskTimeout, NoSuchActor, ActorDeadError
    ExitReason and its cases              # Normal, Shutdown, Crashed, StartFailed, Killed, ...
    ActorStats, MessageTrace, TraceEntry  # inspection
    encode, decode, wire_type, CodecError # versioned msgpack
    schedule, Timer                       # the shared timer service
    uninterruptible, shielded             # a section (a method) an actor kill does not cut
    Undeliverable                         # a told message with its own reply, told if never handled
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors._lazy import lazy_exports

if TYPE_CHECKING:
    from actors._actor import (
        Actor,
        actor_of,
        handles,
    )
    from actors._codec import (
        CODEC_VERSION,
        CodecError,
        decode,
        encode,
        registered_types,
        wire_type,
    )
    from actors._context import (
        ActorContext,
        GetSnapshot,
        GetStats,
        InjectCrash,
        InjectedCrash,
        Monitor,
        Ping,
        UnhandledMessage,
    )
    from actors._exits import (
        Crashed,
        Escalated,
        ExitReason,
        Killed,
        Normal,
        Shutdown,
        StartFailed,
        ThreadDied,
        is_abnormal,
        reason_from_exception,
        reason_to_dict,
    )
    from actors._frames import (
        HEADER_SIZE,
        FrameReader,
        FrameTooLarge,
        FramingError,
        encode_frame,
    )
    from actors._mailbox import Undeliverable
    from actors._names import (
        ActorDeadError,
        AskTimeout,
        NoSuchActor,
        Target,
        ask,
        names,
        register_name,
        resolve,
        tell,
        unregister_name,
    )
    from actors._services import (
        ServiceUnavailable,
        service,
        stop,
    )
    from actors._shield import shielded, uninterruptible
    from actors._stats import (
        ActorStats,
    )
    from actors._timers import (
        Timer,
        pending_timers,
        schedule,
    )
    from actors._trace import (
        MessageTrace,
        TraceEntry,
    )

__all__ = [
    "CODEC_VERSION",
    "HEADER_SIZE",
    "Actor",
    "ActorContext",
    "ActorDeadError",
    "ActorStats",
    "AskTimeout",
    "CodecError",
    "Crashed",
    "Escalated",
    "ExitReason",
    "FrameReader",
    "FrameTooLarge",
    "FramingError",
    "GetSnapshot",
    "GetStats",
    "InjectCrash",
    "InjectedCrash",
    "Killed",
    "MessageTrace",
    "Monitor",
    "NoSuchActor",
    "Normal",
    "Ping",
    "ServiceUnavailable",
    "Shutdown",
    "StartFailed",
    "Target",
    "ThreadDied",
    "Timer",
    "TraceEntry",
    "Undeliverable",
    "UnhandledMessage",
    "actor_of",
    "ask",
    "decode",
    "encode",
    "encode_frame",
    "handles",
    "is_abnormal",
    "lazy_exports",
    "names",
    "pending_timers",
    "reason_from_exception",
    "reason_to_dict",
    "register_name",
    "registered_types",
    "resolve",
    "schedule",
    "service",
    "shielded",
    "stop",
    "tell",
    "uninterruptible",
    "unregister_name",
    "wire_type",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "Undeliverable": "actors._mailbox",
    "uninterruptible": "actors._shield",
    "shielded": "actors._shield",
    "stop": "actors._services",
    "service": "actors._services",
    "ServiceUnavailable": "actors._services",
    "encode_frame": "actors._frames",
    "FramingError": "actors._frames",
    "FrameTooLarge": "actors._frames",
    "FrameReader": "actors._frames",
    "HEADER_SIZE": "actors._frames",
    "Actor": "actors._actor",
    "ActorContext": "actors._context",
    "ActorDeadError": "actors._names",
    "ActorStats": "actors._stats",
    "AskTimeout": "actors._names",
    "CODEC_VERSION": "actors._codec",
    "CodecError": "actors._codec",
    "Crashed": "actors._exits",
    "Escalated": "actors._exits",
    "ExitReason": "actors._exits",
    "GetSnapshot": "actors._context",
    "GetStats": "actors._context",
    "InjectCrash": "actors._context",
    "InjectedCrash": "actors._context",
    "Killed": "actors._exits",
    "MessageTrace": "actors._trace",
    "Monitor": "actors._context",
    "NoSuchActor": "actors._names",
    "Normal": "actors._exits",
    "Ping": "actors._context",
    "Shutdown": "actors._exits",
    "StartFailed": "actors._exits",
    "Target": "actors._names",
    "ThreadDied": "actors._exits",
    "Timer": "actors._timers",
    "TraceEntry": "actors._trace",
    "UnhandledMessage": "actors._context",
    "actor_of": "actors._actor",
    "ask": "actors._names",
    "decode": "actors._codec",
    "encode": "actors._codec",
    "handles": "actors._actor",
    "is_abnormal": "actors._exits",
    "names": "actors._names",
    "pending_timers": "actors._timers",
    "reason_from_exception": "actors._exits",
    "reason_to_dict": "actors._exits",
    "register_name": "actors._names",
    "registered_types": "actors._codec",
    "resolve": "actors._names",
    "schedule": "actors._timers",
    "tell": "actors._names",
    "unregister_name": "actors._names",
    "wire_type": "actors._codec",
})
