"""The supervision library: Erlang/OTP supervision trees on the :mod:`actors` runtime, and
what runs and inspects them.

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
    run_daemon, DaemonConfig, Started, sd_notify             # the one daemon runner
    ProcessLedger, ProcessRecord, die_with_parent, stop_process  # processes a daemon starts
    bound_inode, remove_if_bound            # a server's socket path, removed only while ours
    claim_socket_path                       # free a path for bind (stale socket removed)

Subpackages: `supervision.control` (the control socket, a generic inspection service),
`supervision.shell` (``oxt-shell``), and `supervision.dom0`, the dom0 application: the
composition root of the whole toolstack (the only part of this package that knows the others).

Semantics and differences from OTP: docs/supervision.md; the runner: docs/supervisor.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from supervision._daemon import (
        DaemonConfig,
        Started,
        run_daemon,
        sd_notify,
        setup_logging,
        write_atomically,
    )
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
    from supervision._processes import (
        ProcessLedger,
        ProcessRecord,
        die_with_parent,
        process_alive,
        process_start_time,
        stop_process,
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
    from supervision._unixpath import bound_inode, claim_socket_path, remove_if_bound
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
    "DaemonConfig",
    "DeleteChild",
    "EventLog",
    "MemorySnapshotStore",
    "ProcessLedger",
    "ProcessRecord",
    "Restart",
    "RestartChild",
    "RestartMode",
    "RestartPlan",
    "SnapshotStore",
    "SpecError",
    "StartChild",
    "Started",
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
    "bound_inode",
    "check_childspecs",
    "claim_socket_path",
    "describe_tree",
    "die_with_parent",
    "find_actor",
    "process_alive",
    "process_start_time",
    "remove_if_bound",
    "render_tree",
    "restart_plan",
    "restarts_in_window",
    "run_daemon",
    "sd_notify",
    "setup_logging",
    "should_restart",
    "start_actor",
    "stop_process",
    "walk_actors",
    "write_atomically",
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
    "DaemonConfig": "supervision._daemon",
    "DeleteChild": "supervision._messages",
    "EventLog": "supervision._events",
    "INFINITY": "supervision._spec",
    "INFINITY_BOUND": "supervision._spec",
    "MemorySnapshotStore": "supervision._snapshots",
    "ProcessLedger": "supervision._processes",
    "ProcessRecord": "supervision._processes",
    "Restart": "supervision._spec",
    "RestartChild": "supervision._messages",
    "RestartMode": "supervision._spec",
    "RestartPlan": "supervision._strategy",
    "SnapshotStore": "supervision._snapshots",
    "SpecError": "supervision._spec",
    "StartChild": "supervision._messages",
    "Started": "supervision._daemon",
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
    "die_with_parent": "supervision._processes",
    "bound_inode": "supervision._unixpath",
    "claim_socket_path": "supervision._unixpath",
    "remove_if_bound": "supervision._unixpath",
    "find_actor": "supervision._view",
    "process_alive": "supervision._processes",
    "process_start_time": "supervision._processes",
    "render_tree": "supervision._view",
    "restart_plan": "supervision._strategy",
    "restarts_in_window": "supervision._intensity",
    "run_daemon": "supervision._daemon",
    "sd_notify": "supervision._daemon",
    "setup_logging": "supervision._daemon",
    "should_restart": "supervision._strategy",
    "start_actor": "supervision._spec",
    "stop_process": "supervision._processes",
    "walk_actors": "supervision._view",
    "write_atomically": "supervision._daemon",
})
