"""The atomic steps of xenops plans, and the Plan value that orders them.

A plan is data: a tuple of frozen atomics that an executor runs in order against a xenstore
client, a hypervisor backend and the host, logging each as one line. Nothing here does I/O.

Xenstore steps: Mkdir (then set perms when given), Write, Rm (a missing node is not an error,
as in xenstored's client), SetPerms, WriteIfEquals (compare-and-write; meant for use inside a
Transaction so the read and the write are atomic). Transaction groups xenstore steps that the
original ran in one xenstore transaction; the executor retries the whole group on EAGAIN.

Waits: WaitFor(predicate) on xenstore with a timeout; if its `error` predicate holds first the
wait fails with the value found there (a device error). WaitDomain waits for a domain to die
or to be gone; WaitFreeMemory for host memory.

Calls: one frozen dataclass per hypervisor call (the HypervisorCall union: CreateDomain,
ShutdownDomain, SetHvmParam, ...) and per host action (the HostAction union: KillProcess,
LoopDetach, ...), defined in _calls with typed, checked fields. Introduce tells xenstored about
a new domain.

Error policy: in a plan with best_effort=False the first failing step aborts the plan, except
steps marked ignore_errors (logged and skipped). In a best_effort plan every failure is logged
and execution continues. IfAllSucceed runs `body` (best effort) and runs `then` only when no
step of `body` failed. Every wait has a finite timeout > 0.

Failure: constructing an atomic with a malformed path, a bad argument or a bad timeout raises
PlanError (a ValueError) naming what was wrong (see _checks).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from xen.xenops._calls import HostAction, HypervisorCall
from xen.xenops._checks import PlanError, check_path, check_timeout
from xen.xenops._layout import Perms

__all__ = [
    "Appears",
    "Atomic",
    "Becomes",
    "Cleared",
    "Disappears",
    "IfAllSucceed",
    "Introduce",
    "Mkdir",
    "Plan",
    "Predicate",
    "Rm",
    "SetPerms",
    "Transaction",
    "WaitDomain",
    "WaitFor",
    "WaitFreeMemory",
    "Write",
    "WriteIfEquals",
    "XsOp",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

# --------------------------------------------------------------------- predicates


@dataclass(frozen=True, slots=True)
class Appears:
    """The node exists (any value, the empty string included)."""

    path: str

    def __post_init__(self) -> None:
        check_path(self.path)


@dataclass(frozen=True, slots=True)
class Disappears:
    """The node does not exist."""

    path: str

    def __post_init__(self) -> None:
        check_path(self.path)


@dataclass(frozen=True, slots=True)
class Becomes:
    """The node exists with exactly this value."""

    path: str
    value: str

    def __post_init__(self) -> None:
        check_path(self.path)


@dataclass(frozen=True, slots=True)
class Cleared:
    """The node is missing or empty (a PV guest's shutdown acknowledgement)."""

    path: str

    def __post_init__(self) -> None:
        check_path(self.path)


Predicate = Appears | Disappears | Becomes | Cleared

# ------------------------------------------------------------------ xenstore steps


@dataclass(frozen=True, slots=True)
class Mkdir:
    path: str
    perms: Perms | None = None

    def __post_init__(self) -> None:
        check_path(self.path)


@dataclass(frozen=True, slots=True)
class Write:
    path: str
    value: str

    def __post_init__(self) -> None:
        check_path(self.path)
        if not isinstance(self.value, str):
            raise PlanError(f"xenstore value for {self.path} must be a str, got {self.value!r}")


@dataclass(frozen=True, slots=True)
class Rm:
    path: str

    def __post_init__(self) -> None:
        check_path(self.path)


@dataclass(frozen=True, slots=True)
class SetPerms:
    path: str
    perms: Perms

    def __post_init__(self) -> None:
        check_path(self.path)


@dataclass(frozen=True, slots=True)
class WriteIfEquals:
    """Write `value` only if the node currently holds `expected` (missing != expected)."""

    path: str
    expected: str
    value: str

    def __post_init__(self) -> None:
        check_path(self.path)


XsOp = Mkdir | Write | Rm | SetPerms | WriteIfEquals


@dataclass(frozen=True, slots=True)
class Transaction:
    ops: tuple[XsOp, ...]

    def __post_init__(self) -> None:
        if not self.ops:
            raise PlanError("empty transaction")


# ------------------------------------------------------------------ waits


@dataclass(frozen=True, slots=True)
class WaitFor:
    """Wait until `predicate` holds; fail if `error` holds first or the timeout passes."""

    predicate: Predicate
    timeout: float
    what: str
    error: Predicate | None = None
    remove_error_node: bool = False
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_timeout(self.timeout)


@dataclass(frozen=True, slots=True)
class WaitDomain:
    """Wait for a domain to be dead (shut down, dying or gone) or gone from the hypervisor.

    On timeout with `stuck_handle` set, the executor renames the domain's handle to it before
    failing (the original's deadbeef UUID for domains stuck dying).
    """

    domid: int
    until: Literal["dead", "gone"]
    timeout: float
    poll: float = 0.5
    stuck_handle: str | None = None
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        check_timeout(self.timeout)
        check_timeout(self.poll)
        if self.until not in ("dead", "gone"):
            raise PlanError(f"WaitDomain.until must be dead or gone, got {self.until!r}")


@dataclass(frozen=True, slots=True)
class WaitFreeMemory:
    """Wait until the host has `kib` free (gives up early when nothing is being scrubbed)."""

    kib: int
    timeout: float

    def __post_init__(self) -> None:
        check_timeout(self.timeout)


@dataclass(frozen=True, slots=True)
class Introduce:
    """xenstore INTRODUCE: the domain's store ring is at `mfn`, bound to event channel `port`."""

    domid: int
    mfn: int
    port: int


@dataclass(frozen=True, slots=True)
class IfAllSucceed:
    """Run `body` best-effort; run `then` only if no step of `body` failed."""

    body: tuple[Atomic, ...]
    then: tuple[Atomic, ...]


Atomic = (
    Mkdir | Write | Rm | SetPerms | WriteIfEquals | Transaction | WaitFor | WaitDomain
    | WaitFreeMemory | Introduce | HypervisorCall | HostAction | IfAllSucceed
)


@dataclass(frozen=True, slots=True)
class Plan:
    """A named, ordered tuple of atomics and the error policy to run them with."""

    name: str
    steps: tuple[Atomic, ...]
    best_effort: bool = False

    def __iter__(self) -> Iterator[Atomic]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def walk(self) -> Iterator[Atomic]:
        """Every atomic in execution order, descending into Transaction and IfAllSucceed."""
        yield from _walk(self.steps)

    def __add__(self, other: Plan) -> Plan:
        if self.best_effort != other.best_effort:
            raise PlanError("cannot join plans with different error policies")
        return Plan(self.name, self.steps + other.steps, self.best_effort)


def _walk(steps: tuple[Atomic, ...]) -> Iterator[Atomic]:
    for step in steps:
        if isinstance(step, Transaction):
            yield step
            yield from step.ops
        elif isinstance(step, IfAllSucceed):
            yield step
            yield from _walk(step.body)
            yield from _walk(step.then)
        else:
            yield step
