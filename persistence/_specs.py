"""The persistence subtree as data: child specs for the db store, flusher and service.

:func:`db_supervisor_spec` is the child the dom0 supervisor plugs in::

    persistence (rest_for_one)
    ├── store     DbStore: the tree, the write-ahead log     (start up to 120 s, stop up to 60 s)
    ├── flusher   DbFlusher: dirty files every 3 s           (stop up to 60 s: final flush)
    └── service   DbService: com.citrix.xenclient.db on the bus

Order matters and is why the strategy is ``rest_for_one``: the flusher and the service find
the store by name (their sibling ``store``) and hold things only valid for one store instance
(a log mark, the store's mailbox), so a store restart restarts them too; a flusher restart
restarts the service; a service restart (the bus went away) touches nothing else.

Intensity: 5 restarts in 10 s, with exponential backoff from 50 ms to 2 s, so a bus that is
down for a few seconds (or a bus name still held by a dying predecessor) is waited for; past
that the subtree escalates to its parent (the standalone ``dbd`` then exits with status 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from persistence._flusher import DEFAULT_FLUSH_INTERVAL, DbFlusher
from persistence._limits import DEFAULT_LIMITS, Limits
from persistence._service import DbService
from persistence._store import DbStore
from persistence._tree import InteriorWrite
from supervision import (
    Backoff,
    ChildKind,
    ChildSpec,
    Strategy,
    Supervisor,
    SupFlags,
    start_actor,
)

if TYPE_CHECKING:
    from rpc.dbus import CallerIdentity

__all__ = ["PERSISTENCE_FLAGS", "db_specs", "db_supervisor_spec"]

PERSISTENCE_FLAGS = SupFlags(Strategy.REST_FOR_ONE, intensity=5, period=10.0,
                             backoff=Backoff(0.05, 2.0, 2.0))


def db_specs(
    root: str,
    address: str,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    *,
    registry: CallerIdentity | None = None,
    identity_service: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    interior_write: InteriorWrite = InteriorWrite.IGNORE,
) -> list[ChildSpec]:
    """The three children, in start order (see the module docstring).

    ``root`` is the database directory (``/config`` on a real dom0), ``address`` the bus,
    ``registry`` the caller-identity registry (default: the process-wide one),
    ``identity_service`` whether to also ask the bus's identity service (standalone dbd).
    """
    if flush_interval < 0:
        raise ValueError(f"flush interval must be >= 0 seconds, got {flush_interval}")
    return [
        ChildSpec("store", start_actor(DbStore, root, limits=limits,
                                       interior_write=interior_write),
                  shutdown=60.0, start_timeout=120.0),
        ChildSpec("flusher", start_actor(DbFlusher, interval=flush_interval), shutdown=60.0),
        ChildSpec("service", start_actor(DbService, address, registry=registry,
                                         identity_service=identity_service)),
    ]


def db_supervisor_spec(
    root: str,
    address: str,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    *,
    child_id: str = "persistence",
    flags: SupFlags = PERSISTENCE_FLAGS,
    registry: CallerIdentity | None = None,
    identity_service: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    interior_write: InteriorWrite = InteriorWrite.IGNORE,
) -> ChildSpec:
    """The ``rest_for_one`` supervisor ``persistence`` over :func:`db_specs`."""
    specs = db_specs(root, address, flush_interval, registry=registry,
                     identity_service=identity_service, limits=limits,
                     interior_write=interior_write)
    return ChildSpec(child_id, start_actor(Supervisor, flags, specs), kind=ChildKind.SUPERVISOR,
                     start_timeout=180.0)
