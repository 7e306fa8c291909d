"""The actor runtime on pykka: ordered mailboxes, typed messages, stats, timers, snapshots.

Public API::

    Actor, ActorContext, handles          # base class, start context, handler decorator
    ask, tell, resolve, register_name     # name-based addressing, ask with a mandatory timeout
    AskTimeout, NoSuchActor, ActorDeadError
    ExitReason and its cases              # Normal, Shutdown, Crashed, StartFailed, Killed, ...
    ActorStats, MessageTrace, TraceEntry  # inspection
    encode, decode, wire_type, CodecError # versioned msgpack
    schedule, Timer                       # the shared timer service
"""

from __future__ import annotations

from actors._actor import Actor, actor_of, handles
from actors._codec import CODEC_VERSION, CodecError, decode, encode, registered_types, wire_type
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
from actors._stats import ActorStats
from actors._timers import Timer, pending_timers, schedule
from actors._trace import MessageTrace, TraceEntry

__all__ = [
    "CODEC_VERSION",
    "Actor",
    "ActorContext",
    "ActorDeadError",
    "ActorStats",
    "AskTimeout",
    "CodecError",
    "Crashed",
    "Escalated",
    "ExitReason",
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
    "Shutdown",
    "StartFailed",
    "Target",
    "ThreadDied",
    "Timer",
    "TraceEntry",
    "UnhandledMessage",
    "actor_of",
    "ask",
    "decode",
    "encode",
    "handles",
    "is_abnormal",
    "names",
    "pending_timers",
    "reason_from_exception",
    "reason_to_dict",
    "register_name",
    "registered_types",
    "resolve",
    "schedule",
    "tell",
    "unregister_name",
    "wire_type",
]
