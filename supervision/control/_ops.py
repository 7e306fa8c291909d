"""What the control socket's operations do (docs/control.md lists them with their arguments).

Every operation reads the tree without waiting on any mailbox (``tree``, ``actors``,
``stats``, ``log.*``), or waits on exactly one actor with a bounded timeout (``state``,
``ask``, child operations on a supervisor), so a stuck actor makes one request fail with a
``timeout`` error and never hangs the socket. Failures raise :class:`OpError` with a kind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from actors import Actor, AskTimeout, GetSnapshot, GetStats, InjectCrash, NoSuchActor, Ping, ask
from supervision._events import EventLog
from supervision._messages import RestartChild, SupervisorError, TerminateChild
from supervision._supervisor import Supervisor
from supervision._view import describe_tree, find_actor, walk_actors

__all__ = ["BUILTIN_MESSAGES", "IMMEDIATE", "OpContext", "OpError", "Operation",
           "base_operations"]

Emit = Callable[[Any], None]
BUILTIN_MESSAGES: dict[str, Callable[[], Any]] = {
    "ping": Ping, "get-stats": GetStats, "get-snapshot": GetSnapshot, "crash": InjectCrash,
}
IMMEDIATE = frozenset({"tree", "actors", "stats", "log.tail", "send", "crash"})
"""Operations that never wait (they read published state or ``tell``): the server runs them
on the connection's own thread, with no thread of their own."""
DEFAULT_TIMEOUT = 2.0
MAX_TIMEOUT = 60.0


class OpError(Exception):
    """An operation failed; ``kind`` is one of the protocol's error kinds."""

    def __init__(self, message: str, kind: str = "failed") -> None:
        super().__init__(message)
        self.kind = kind


class OpContext:
    """What operations work on: the tree's root, its event log, the cancel flag."""

    def __init__(self, root: Supervisor, events: EventLog, emit: Emit,
                 cancelled: threading.Event) -> None:
        self.root = root
        self.events = events
        self.emit = emit
        self.cancelled = cancelled


Operation = Callable[[OpContext, dict[str, Any]], Any]


def _timeout(args: dict[str, Any]) -> float:
    value = args.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value:
        raise OpError(f"bad timeout {value!r}", "bad-request")
    return float(min(value, MAX_TIMEOUT))


def _actor(ctx: OpContext, path: Any) -> Actor:
    if not isinstance(path, str) or not path.startswith("/"):
        raise OpError(f"bad actor path {path!r}", "bad-request")
    actor = find_actor(ctx.root, path)
    if actor is None:
        raise OpError(f"no running actor at {path}", "not-found")
    return actor


def _ask(actor: Actor, message: Any, timeout: float, what: str) -> Any:
    try:
        return ask(actor.actor_ref, message, timeout=timeout)
    except AskTimeout:
        stats = actor.stats()
        busy = (f"; busy for {stats.busy_for:.1f} s in {stats.current_message}"
                if stats.current_message else "")
        raise OpError(f"{what}: no answer within {timeout:g} s{busy}", "timeout") from None
    except NoSuchActor as exc:
        raise OpError(str(exc), "not-found") from None


def op_tree(ctx: OpContext, _args: dict[str, Any]) -> Any:
    return describe_tree(ctx.root)


def op_actors(ctx: OpContext, _args: dict[str, Any]) -> Any:
    return [{"path": path, **actor.stats_dict()} for path, actor in walk_actors(ctx.root)]


def op_stats(ctx: OpContext, args: dict[str, Any]) -> Any:
    return _actor(ctx, args["path"]).stats_dict()


def op_state(ctx: OpContext, args: dict[str, Any]) -> Any:
    actor = _actor(ctx, args["path"])
    return _ask(actor, GetSnapshot(), _timeout(args), f"state of {args['path']}")


def op_log_tail(ctx: OpContext, args: dict[str, Any]) -> Any:
    n = args.get("n", 50)
    prefix = args.get("prefix", "")
    if not isinstance(n, int) or not isinstance(prefix, str):
        raise OpError("log.tail takes n (int) and prefix (str)", "bad-request")
    return [e.to_dict() for e in ctx.events.tail(n, path_prefix=prefix)]


def op_log_follow(ctx: OpContext, args: dict[str, Any]) -> Any:
    seen = args.get("since", ctx.events.last_seq)
    prefix = args.get("prefix", "")
    if not isinstance(seen, int):
        raise OpError("log.follow takes since (int)", "bad-request")
    while not ctx.cancelled.is_set():
        for ev in ctx.events.wait_since(seen, 0.2):
            seen = ev.seq
            if ev.path.startswith(prefix):
                ctx.emit(ev.to_dict())
    return {"last": seen}


def op_trace(ctx: OpContext, args: dict[str, Any]) -> Any:
    actor = _actor(ctx, args["path"])
    n = args.get("max_messages", 20)
    secs = args.get("max_seconds", 10.0)
    if not isinstance(n, int) or not isinstance(secs, int | float) or n <= 0 or secs <= 0:
        raise OpError("trace takes max_messages > 0 and max_seconds > 0", "bad-request")
    trace = actor.start_trace(min(n, 10_000), min(float(secs), 3600.0))
    sent = 0
    while not ctx.cancelled.is_set():
        entries = trace.entries()
        for entry in entries[sent:]:
            ctx.emit(entry.to_dict())
        sent = len(entries)
        if not trace.active:
            break
        trace.finished.wait(0.05)
    for entry in trace.entries()[sent:]:
        ctx.emit(entry.to_dict())
    if ctx.cancelled.is_set():
        actor.stop_trace()
    return {"messages": len(trace.entries())}


def _message(value: Any) -> Any:
    if isinstance(value, str):
        make = BUILTIN_MESSAGES.get(value)
        if make is None:
            raise OpError(f"unknown message {value!r} (known: {', '.join(BUILTIN_MESSAGES)})",
                          "bad-request")
        return make()
    return value  # a registered wire type, already decoded by the codec


def op_send(ctx: OpContext, args: dict[str, Any]) -> Any:
    _actor(ctx, args["path"]).actor_ref.tell(_message(args["message"]))
    return None


def op_ask(ctx: OpContext, args: dict[str, Any]) -> Any:
    actor = _actor(ctx, args["path"])
    result = _ask(actor, _message(args["message"]), _timeout(args), f"ask {args['path']}")
    return result.to_dict() if hasattr(result, "to_dict") else result


def op_crash(ctx: OpContext, args: dict[str, Any]) -> Any:
    reason = args.get("reason", "injected from the control socket")
    _actor(ctx, args["path"]).actor_ref.tell(InjectCrash(str(reason)))
    return None


def _parent(ctx: OpContext, path: Any) -> tuple[Supervisor, str]:
    if not isinstance(path, str) or not path.startswith("/") or path == "/":
        raise OpError(f"bad child path {path!r}", "bad-request")
    parent_path, child_id = path.rsplit("/", 1)
    parent = find_actor(ctx.root, parent_path or "/")
    if not isinstance(parent, Supervisor):
        raise OpError(f"{parent_path or '/'} is not a running supervisor", "not-found")
    return parent, child_id


def _child_op(ctx: OpContext, args: dict[str, Any], message: Any) -> Any:
    parent, _ = _parent(ctx, args["path"])
    timeout = _timeout({"timeout": args.get("timeout", 30.0)})
    try:
        result = _ask(parent, message, timeout, f"{type(message).__name__} {args['path']}")
    except OpError:
        raise
    except SupervisorError as exc:
        raise OpError(str(exc), "refused") from None
    return result.to_dict() if hasattr(result, "to_dict") else result


def op_child_restart(ctx: OpContext, args: dict[str, Any]) -> Any:
    _, child = _parent(ctx, args["path"])
    return _child_op(ctx, args, RestartChild(child))


def op_child_stop(ctx: OpContext, args: dict[str, Any]) -> Any:
    _, child = _parent(ctx, args["path"])
    return _child_op(ctx, args, TerminateChild(child))


def op_child_start(ctx: OpContext, args: dict[str, Any]) -> Any:
    _, child = _parent(ctx, args["path"])
    parent, _ = _parent(ctx, args["path"])
    info = next((c for c in parent.children() if c.id == child), None)
    if info is not None and info.status == "running":
        raise OpError(f"{args['path']} is already running", "refused")
    return _child_op(ctx, args, RestartChild(child))


def base_operations() -> dict[str, Operation]:
    """The generic operations (the dom0 supervisor adds ``vm.*``)."""
    return {
        "tree": op_tree, "actors": op_actors, "stats": op_stats, "state": op_state,
        "log.tail": op_log_tail, "log.follow": op_log_follow, "trace": op_trace,
        "send": op_send, "ask": op_ask, "crash": op_crash,
        "child.restart": op_child_restart, "child.stop": op_child_stop,
        "child.start": op_child_start,
    }

