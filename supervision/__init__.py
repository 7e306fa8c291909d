"""Supervision trees with Erlang/OTP semantics on the :mod:`actors` runtime.

Public API::

    Supervisor                              # the supervisor actor (start_root for a tree)
    ChildSpec, SupFlags, Backoff            # specs and flags, as data
    Restart, ChildKind, RestartMode, Strategy, BRUTAL_KILL, INFINITY
    start_actor, ActorStart                 # start functions as data
    check_childspecs, SpecError             # pure validation
    StartChild, AddChild, TerminateChild, RestartChild, DeleteChild,
    WhichChildren, CountChildren, ChildInfo # requests and the child view
    SupervisorError, SupervisorStartError
    EventLog, SupervisionEvent              # the event log
    SnapshotStore, MemorySnapshotStore      # resume-mode snapshot stores
    describe_tree, render_tree, walk_actors, find_actor
    add_restart, backoff_delay, should_restart, restart_plan  # the pure rules

Semantics and differences from OTP: docs/supervision.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from supervision._events import (
        EventLog,
        SupervisionEvent,
    )
    from supervision._intensity import (
        add_restart,
        backoff_delay,
        restarts_in_window,
    )
    from supervision._messages import (
        AddChild,
        ChildInfo,
        CountChildren,
        DeleteChild,
        RestartChild,
        StartChild,
        SupervisorError,
        SupervisorStartError,
        TerminateChild,
        WhichChildren,
    )
    from supervision._snapshots import (
        MemorySnapshotStore,
        SnapshotStore,
        atomic_write,
    )
    from supervision._spec import (
        BRUTAL_KILL,
        INFINITY,
        INFINITY_BOUND,
        ActorStart,
        Backoff,
        ChildKind,
        ChildSpec,
        Restart,
        RestartMode,
        SpecError,
        Strategy,
        SupFlags,
        check_childspecs,
        start_actor,
    )
    from supervision._strategy import (
        RestartPlan,
        restart_plan,
        should_restart,
    )
    from supervision._supervisor import (
        Supervisor,
    )
    from supervision._view import (
        describe_tree,
        find_actor,
        render_tree,
        walk_actors,
    )

__all__ = [
    "BRUTAL_KILL",
    "INFINITY",
    "INFINITY_BOUND",
    "ActorStart",
    "AddChild",
    "Backoff",
    "ChildInfo",
    "ChildKind",
    "ChildSpec",
    "CountChildren",
    "DeleteChild",
    "EventLog",
    "MemorySnapshotStore",
    "Restart",
    "RestartChild",
    "RestartMode",
    "RestartPlan",
    "SnapshotStore",
    "SpecError",
    "StartChild",
    "Strategy",
    "SupFlags",
    "SupervisionEvent",
    "Supervisor",
    "SupervisorError",
    "SupervisorStartError",
    "TerminateChild",
    "WhichChildren",
    "add_restart",
    "atomic_write",
    "backoff_delay",
    "check_childspecs",
    "describe_tree",
    "find_actor",
    "render_tree",
    "restart_plan",
    "restarts_in_window",
    "should_restart",
    "start_actor",
    "walk_actors",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "ActorStart": "supervision._spec",
    "AddChild": "supervision._messages",
    "BRUTAL_KILL": "supervision._spec",
    "Backoff": "supervision._spec",
    "ChildInfo": "supervision._messages",
    "ChildKind": "supervision._spec",
    "ChildSpec": "supervision._spec",
    "CountChildren": "supervision._messages",
    "DeleteChild": "supervision._messages",
    "EventLog": "supervision._events",
    "INFINITY": "supervision._spec",
    "INFINITY_BOUND": "supervision._spec",
    "MemorySnapshotStore": "supervision._snapshots",
    "Restart": "supervision._spec",
    "RestartChild": "supervision._messages",
    "RestartMode": "supervision._spec",
    "RestartPlan": "supervision._strategy",
    "SnapshotStore": "supervision._snapshots",
    "SpecError": "supervision._spec",
    "StartChild": "supervision._messages",
    "Strategy": "supervision._spec",
    "SupFlags": "supervision._spec",
    "SupervisionEvent": "supervision._events",
    "Supervisor": "supervision._supervisor",
    "SupervisorError": "supervision._messages",
    "SupervisorStartError": "supervision._messages",
    "TerminateChild": "supervision._messages",
    "WhichChildren": "supervision._messages",
    "add_restart": "supervision._intensity",
    "atomic_write": "supervision._snapshots",
    "backoff_delay": "supervision._intensity",
    "check_childspecs": "supervision._spec",
    "describe_tree": "supervision._view",
    "find_actor": "supervision._view",
    "render_tree": "supervision._view",
    "restart_plan": "supervision._strategy",
    "restarts_in_window": "supervision._intensity",
    "should_restart": "supervision._strategy",
    "start_actor": "supervision._spec",
    "walk_actors": "supervision._view",
})
