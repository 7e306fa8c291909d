"""The atomic steps of xenops plans, and the Plan value that orders them.

A plan is data: a tuple of frozen atomics that an executor runs in order against a xenstore
client and a hypervisor backend, logging each as one line. Nothing here does I/O.

Xenstore steps: Mkdir (then set perms when given), Write, Rm (a missing node is not an error,
as in xenstored's client), SetPerms, WriteIfEquals (compare-and-write; meant for use inside a
Transaction so the read and the write are atomic). Transaction groups xenstore steps that the
original ran in one xenstore transaction; the executor retries the whole group on EAGAIN.

Waits: WaitFor(predicate) on xenstore with a timeout; if its `error` predicate holds first the
wait fails with the value found there (a device error). WaitDomain waits for a domain to die
or to be gone; WaitFreeMemory for host memory.

Calls: HypervisorCall and HostAction name an operation from a fixed table (HYPERVISOR_OPS,
HOST_ACTIONS), so a typo fails when the plan is built, not when it runs. Introduce tells
xenstored about a new domain.

Error policy: in a plan with best_effort=False the first failing step aborts the plan, except
steps marked ignore_errors (logged and skipped). In a best_effort plan every failure is logged
and execution continues. IfAllSucceed runs `body` (best effort) and runs `then` only when no
step of `body` failed. Every wait has a finite timeout > 0.

Failure: constructing an atomic with a malformed path, an unknown op or a bad timeout raises
PlanError (a ValueError).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from xen.xenops._layout import Perms

__all__ = [
    "HOST_ACTIONS",
    "HYPERVISOR_OPS",
    "Appears",
    "Atomic",
    "Becomes",
    "Cleared",
    "Disappears",
    "HostAction",
    "HypervisorCall",
    "IfAllSucceed",
    "Introduce",
    "Mkdir",
    "Plan",
    "PlanError",
    "Predicate",
    "Rm",
    "Scalar",
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

Scalar = int | float | str | bool

#: Operations a HypervisorCall may name (the executor maps each to a backend method).
HYPERVISOR_OPS = frozenset({
    "domain_create",      # args: ssidref, flags ("hvm,hap"), handle (uuid); result: domid
    "domain_destroy",
    "domain_shutdown",    # args: reason (0 poweroff, 1 reboot, 2 suspend, 3 crash, 4 halt)
    "domain_pause",
    "domain_unpause",
    "domain_sethandle",   # args: handle
    "max_vcpus",          # args: vcpus
    "setmaxmem",          # args: kib
    "shadow_allocation",  # args: mib
    "set_timer_mode",     # args: value
    "set_hpet",           # args: value
    "set_vpt_align",      # args: value
    "pci_add",            # args: bdf, assign, permissive, flr, hvm, pvpci (sysfs + hypercalls)
    "pci_release",        # args: bdf, hvm (deassign, unmap pirq, revoke BAR/irq grants)
    "ioport_permission",  # args: first, count, allow
    "iomem_permission",   # args: first_pfn, count, allow
})

#: Host-side actions a HostAction may name (sysfs, processes, dbus peers).
HOST_ACTIONS = frozenset({
    "pci_bind",                # args: bdf (unbind the current driver, bind to pciback)
    "pci_flr",                 # args: bdf (pciback reset_device)
    "loop_detach",             # args: device (losetup -d)
    "kill_process",            # args: pid, timeout (SIGTERM, wait for /proc/<pid> to go)
    "surfman_set_pv_display",  # args: domid
    "input_attach_vkbd",       # args: domid
    "input_detach_vkbd",       # args: domid
})

_MAX_PATH = 3072  # xenstore's absolute path limit (XENSTORE_ABS_PATH_MAX)


class PlanError(ValueError):
    """An atomic or plan that is malformed (bad path, unknown op, bad timeout)."""


def _check_path(path: str) -> None:
    if not isinstance(path, str) or not path or len(path) > _MAX_PATH:
        raise PlanError(f"bad xenstore path {path!r}")
    if path.startswith("@"):
        return
    if not path.startswith("/") or "//" in path or (path != "/" and path.endswith("/")):
        raise PlanError(f"bad xenstore path {path!r}")
    if "\0" in path:
        raise PlanError(f"xenstore path contains NUL: {path!r}")


def _check_timeout(timeout: float) -> None:
    if not isinstance(timeout, int | float) or not timeout > 0 or math.isinf(timeout):
        raise PlanError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")


# --------------------------------------------------------------------- predicates


@dataclass(frozen=True, slots=True)
class Appears:
    """The node exists (any value, the empty string included)."""

    path: str

    def __post_init__(self) -> None:
        _check_path(self.path)


@dataclass(frozen=True, slots=True)
class Disappears:
    """The node does not exist."""

    path: str

    def __post_init__(self) -> None:
        _check_path(self.path)


@dataclass(frozen=True, slots=True)
class Becomes:
    """The node exists with exactly this value."""

    path: str
    value: str

    def __post_init__(self) -> None:
        _check_path(self.path)


@dataclass(frozen=True, slots=True)
class Cleared:
    """The node is missing or empty (a PV guest's shutdown acknowledgement)."""

    path: str

    def __post_init__(self) -> None:
        _check_path(self.path)


Predicate = Appears | Disappears | Becomes | Cleared

# ------------------------------------------------------------------ xenstore steps


@dataclass(frozen=True, slots=True)
class Mkdir:
    path: str
    perms: Perms | None = None

    def __post_init__(self) -> None:
        _check_path(self.path)


@dataclass(frozen=True, slots=True)
class Write:
    path: str
    value: str

    def __post_init__(self) -> None:
        _check_path(self.path)
        if not isinstance(self.value, str):
            raise PlanError(f"xenstore value for {self.path} must be a str, got {self.value!r}")


@dataclass(frozen=True, slots=True)
class Rm:
    path: str

    def __post_init__(self) -> None:
        _check_path(self.path)


@dataclass(frozen=True, slots=True)
class SetPerms:
    path: str
    perms: Perms

    def __post_init__(self) -> None:
        _check_path(self.path)


@dataclass(frozen=True, slots=True)
class WriteIfEquals:
    """Write `value` only if the node currently holds `expected` (missing != expected)."""

    path: str
    expected: str
    value: str

    def __post_init__(self) -> None:
        _check_path(self.path)


XsOp = Mkdir | Write | Rm | SetPerms | WriteIfEquals


@dataclass(frozen=True, slots=True)
class Transaction:
    ops: tuple[XsOp, ...]

    def __post_init__(self) -> None:
        if not self.ops:
            raise PlanError("empty transaction")


# ------------------------------------------------------------------ waits and calls


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
        _check_timeout(self.timeout)


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
        _check_timeout(self.timeout)
        _check_timeout(self.poll)
        if self.until not in ("dead", "gone"):
            raise PlanError(f"WaitDomain.until must be dead or gone, got {self.until!r}")


@dataclass(frozen=True, slots=True)
class WaitFreeMemory:
    """Wait until the host has `kib` free (gives up early when nothing is being scrubbed)."""

    kib: int
    timeout: float

    def __post_init__(self) -> None:
        _check_timeout(self.timeout)


@dataclass(frozen=True, slots=True)
class Introduce:
    """xenstore INTRODUCE: the domain's store ring is at `mfn`, bound to event channel `port`."""

    domid: int
    mfn: int
    port: int


@dataclass(frozen=True, slots=True)
class HypervisorCall:
    op: str
    domid: int | None = None
    args: tuple[tuple[str, Scalar], ...] = ()
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        if self.op not in HYPERVISOR_OPS:
            raise PlanError(f"unknown hypervisor op {self.op!r}")

    def arg(self, name: str) -> Scalar:
        for key, value in self.args:
            if key == name:
                return value
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class HostAction:
    op: str
    args: tuple[tuple[str, Scalar], ...] = ()
    ignore_errors: bool = False

    def __post_init__(self) -> None:
        if self.op not in HOST_ACTIONS:
            raise PlanError(f"unknown host action {self.op!r}")

    def arg(self, name: str) -> Scalar:
        for key, value in self.args:
            if key == name:
                return value
        raise KeyError(name)


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
