"""Running xenops plans against a xenstore client, a hypervisor backend and the host.

:class:`PlanExecutor` takes a pure :class:`~xen.xenops._atomics.Plan` and performs its steps in
order, logging the plan at INFO and each step as one line at DEBUG (``<plan>: <step>``). Semantics:

* **Errors.** In a plan with ``best_effort=False`` the first failing step stops the plan with a
  :class:`PlanFailed` naming the plan, the step and the cause; a step marked ``ignore_errors``
  is logged and skipped instead. In a ``best_effort`` plan (teardown) every failure is logged and
  execution goes on; :attr:`PlanResult.failures` lists them. ``IfAllSucceed`` runs ``then`` only
  when no step of ``body`` failed.
* **Transactions** run their xenstore steps in one xenstore transaction, retried as a whole on
  EAGAIN by the client (bounded). Plan transactions of one process run one at a time (a
  process-wide lock, like the original's host-wide build lock): xenstored makes concurrent
  transactions that create siblings (``/local/domain/5`` and ``/local/domain/6``) conflict, and
  dozens of VMs starting at once would otherwise retry each other into the ground.
* **Waits** are bounded by their timeouts and re-read xenstore (events only mean "look again");
  a ``WaitFor`` whose error predicate holds first fails with the value found there (a device
  error). ``WaitDomain`` and ``WaitFreeMemory`` poll the hypervisor.
* **Cancellation.** A :class:`CancelToken` is checked before every step; a cancelled plan stops
  with :class:`PlanCancelled` (teardown plans are normally run without one).
* **Results.** ``domain_create`` returns the new domid in :attr:`PlanResult.domid`.

Hypervisor operations map onto the `xen.hypervisor.Hypervisor` interface; host actions onto a
:class:`HostActions` object (real sysfs / process actions on a dom0; a backend without a
member answers a clear ``Unsupported``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xen.hypervisor import DomainSpec as HvDomainSpec
from xen.hypervisor import HvmParam, HypervisorError, NoSuchDomain, ShutdownReason, Unsupported
from xen.xenops._atomics import (
    Appears,
    Becomes,
    Disappears,
    HostAction,
    HypervisorCall,
    IfAllSucceed,
    Introduce,
    Mkdir,
    Plan,
    Predicate,
    Rm,
    SetPerms,
    Transaction,
    WaitDomain,
    WaitFor,
    WaitFreeMemory,
    Write,
    WriteIfEquals,
)

if TYPE_CHECKING:
    from xen.hypervisor import Hypervisor
    from xen.xenops._atomics import Atomic
    from xen.xenstore import NodeOps, XenstoreClient

__all__ = [
    "CancelToken",
    "HostActions",
    "PlanCancelled",
    "PlanExecutor",
    "PlanFailed",
    "PlanResult",
    "describe",
]

logger = logging.getLogger("xenops")


class PlanFailed(RuntimeError):
    """A step of a plan failed; ``step`` and ``cause`` say which and why."""

    def __init__(self, plan: str, step: Atomic, cause: BaseException) -> None:
        super().__init__(f"{plan}: {describe(step)} failed: {cause}")
        self.plan = plan
        self.step = step
        self.cause = cause


class PlanCancelled(RuntimeError):
    """The plan's cancel token was set."""


class WaitTimeout(TimeoutError):
    """A wait step did not see its condition in time."""


class CancelToken:
    """Set once to stop a running plan before its next step (thread-safe)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the plan to stop before its next step."""
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._event.is_set()


@dataclass
class PlanResult:
    """What running a plan produced."""

    domid: int | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No step failed (ignored and best-effort failures count)."""
        return not self.failures


def describe(step: Atomic) -> str:
    """A one-line description of a step for the log."""
    if isinstance(step, Transaction):
        return f"transaction of {len(step.ops)} ops"
    if isinstance(step, Write):
        return f"write {step.path} = {step.value!r}"
    if isinstance(step, Mkdir):
        perms = f" perms {step.perms.to_strings()}" if step.perms is not None else ""
        return f"mkdir {step.path}{perms}"
    if isinstance(step, WaitFor):
        return f"wait {step.timeout:g}s for {step.what}"
    if isinstance(step, HypervisorCall):
        args = ", ".join(f"{k}={v}" for k, v in step.args)
        return f"{step.op}(domid={step.domid}{', ' + args if args else ''})"
    if isinstance(step, HostAction):
        return f"host {step.op}({', '.join(f'{k}={v}' for k, v in step.args)})"
    if isinstance(step, IfAllSucceed):
        return f"if all of {len(step.body)} steps succeed, {len(step.then)} more"
    return repr(step)


class _Pred:
    """A wait predicate as a condition for the xenstore client's ``wait_until``."""

    def __init__(self, predicate: Predicate) -> None:
        self.predicate = predicate

    def paths(self) -> tuple[str, ...]:
        return (self.predicate.path,)

    def holds(self, read: Callable[[str], str | None]) -> bool:
        value = read(self.predicate.path)
        pred = self.predicate
        if isinstance(pred, Appears):
            return value is not None
        if isinstance(pred, Disappears):
            return value is None
        if isinstance(pred, Becomes):
            return value == pred.value
        return value is None or value == ""  # Cleared


class _Either:
    def __init__(self, *conditions: _Pred) -> None:
        self.conditions = conditions

    def paths(self) -> tuple[str, ...]:
        return tuple(p for c in self.conditions for p in c.paths())

    def holds(self, read: Callable[[str], str | None]) -> bool:
        return any(c.holds(read) for c in self.conditions)


class HostActions:
    """Host-side actions of the plans. The base class refuses each one clearly; a real dom0
    subclass implements sysfs and process actions, the sim host needs none of them."""

    def run(self, op: str, args: dict[str, Any]) -> None:
        """Perform ``op`` or raise ``Unsupported`` naming it."""
        method = getattr(self, op, None)
        if method is None:
            raise Unsupported(f"not implemented: host action {op}")
        method(**args)

    def attach_file(self, path: str) -> tuple[str, int, int]:
        """Attach a disk image to a loop device: (device, major, minor)."""
        raise Unsupported(f"not implemented: attaching {path} to a loop device")


class PlanExecutor:
    """Runs plans (see the module docstring)."""

    def __init__(self, hypervisor: Hypervisor, xenstore: XenstoreClient,
                 host: HostActions | None = None, *, poll: float = 0.05) -> None:
        self.hv = hypervisor
        self.xs = xenstore
        self.host = host or HostActions()
        self.poll = poll

    def run(self, plan: Plan, cancel: CancelToken | None = None) -> PlanResult:
        """Run ``plan``; raises :class:`PlanFailed` / :class:`PlanCancelled` (not best effort)."""
        logger.info("%s (%d steps)", plan.name, len(plan.steps))
        result = PlanResult()
        self._steps(plan.name, plan.steps, plan.best_effort, result, cancel)
        return result

    def _steps(self, name: str, steps: Iterable[Atomic], best_effort: bool,
               result: PlanResult, cancel: CancelToken | None) -> bool:
        clean = True
        for step in steps:
            if cancel is not None and cancel.cancelled:
                raise PlanCancelled(f"{name}: cancelled ({cancel.reason})")
            if isinstance(step, IfAllSucceed):
                logger.debug("%s: %s", name, describe(step))
                body_ok = self._steps(name, step.body, True, result, cancel)
                if body_ok:
                    clean &= self._steps(name, step.then, best_effort, result, cancel)
                else:
                    clean = False
                continue
            logger.debug("%s: %s", name, describe(step))
            try:
                self._one(step, result)
            except Exception as exc:
                ignore = getattr(step, "ignore_errors", False)
                if not (best_effort or ignore):
                    raise PlanFailed(name, step, exc) from exc
                logger.warning("%s: %s failed (%s), going on", name, describe(step), exc)
                result.failures.append((describe(step), str(exc)))
                clean = False
        return clean

    # ------------------------------------------------------------------ one step

    def _one(self, step: Atomic, result: PlanResult) -> None:
        if isinstance(step, Transaction):
            ops = step.ops
            with _TRANSACTIONS:
                self.xs.transaction(lambda t: [self._xs(t, op) for op in ops])
        elif isinstance(step, Mkdir | Write | Rm | SetPerms | WriteIfEquals):
            self._xs(self.xs, step)
        elif isinstance(step, WaitFor):
            self._wait_for(step)
        elif isinstance(step, WaitDomain):
            self._wait_domain(step)
        elif isinstance(step, WaitFreeMemory):
            self._wait_memory(step)
        elif isinstance(step, Introduce):
            self.xs.introduce(step.domid, step.mfn, step.port)
        elif isinstance(step, HypervisorCall):
            domid = self._hypercall(step)
            if domid is not None:
                result.domid = domid
        elif isinstance(step, HostAction):
            self.host.run(step.op, dict(step.args))
        else:  # pragma: no cover - the Atomic union is closed
            raise TypeError(f"unknown step {step!r}")

    @staticmethod
    def _xs(ops: NodeOps, step: Any) -> None:
        if isinstance(step, Mkdir):
            ops.mkdir(step.path)
            if step.perms is not None:
                ops.set_perms(step.path, step.perms.to_strings())
        elif isinstance(step, Write):
            ops.write(step.path, step.value)
        elif isinstance(step, Rm):
            ops.rm(step.path)
        elif isinstance(step, SetPerms):
            ops.set_perms(step.path, step.perms.to_strings())
        elif isinstance(step, WriteIfEquals):
            if ops.try_read(step.path) == step.expected:
                ops.write(step.path, step.value)
        else:
            raise TypeError(f"not a xenstore step: {step!r}")

    def _wait_for(self, step: WaitFor) -> None:
        want = _Pred(step.predicate)
        error = _Pred(step.error) if step.error is not None else None
        cond = _Either(want, error) if error is not None else want
        if not self.xs.wait_until(cond, step.timeout, poll=min(1.0, step.timeout)):
            raise WaitTimeout(f"timed out after {step.timeout:g} s waiting for {step.what}")
        if error is not None and not want.holds(self.xs.try_read):
            assert step.error is not None
            detail = self.xs.try_read(step.error.path) or ""
            if step.remove_error_node:
                self.xs.rm(step.error.path)
            raise RuntimeError(f"{step.what}: device error: {detail}")

    def _wait_domain(self, step: WaitDomain) -> None:
        deadline = time.monotonic() + step.timeout
        while True:
            try:
                info = self.hv.getinfo(step.domid)
            except NoSuchDomain:
                return
            if step.until == "dead" and (info.shutdown or info.dying):
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(min(step.poll, max(0.0, deadline - time.monotonic())))
        if step.stuck_handle is not None:
            self.hv.set_handle(step.domid, uuid.UUID(step.stuck_handle))
        raise WaitTimeout(f"domain {step.domid} not {step.until} after {step.timeout:g} s")

    def _wait_memory(self, step: WaitFreeMemory) -> None:
        deadline = time.monotonic() + step.timeout
        while True:
            info = self.hv.physinfo()
            if info.free_kib >= step.kib:
                return
            if info.scrub_kib == 0 or time.monotonic() >= deadline:
                raise HypervisorError(f"not enough memory: {step.kib} KiB needed, "
                                      f"{info.free_kib} KiB free")
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def _hypercall(self, step: HypervisorCall) -> int | None:
        hv, op, domid = self.hv, step.op, step.domid
        args = dict(step.args)
        if op == "domain_create":
            flags = str(args.get("flags", "")).split(",")
            spec = HvDomainSpec(
                handle=uuid.UUID(str(args["handle"])), hvm="hvm" in flags, hap="hap" in flags,
                ssidref=int(args.get("ssidref", 0)), max_vcpus=int(args.get("vcpus", 1)),
                memory_kib=int(args.get("memory_kib", 0)),
                max_memory_kib=int(args.get("max_memory_kib", args.get("memory_kib", 0))))
            return hv.create(spec)
        if domid is None:
            raise ValueError(f"{op} needs a domid")
        if op == "domain_destroy":
            hv.destroy(domid)
        elif op == "domain_shutdown":
            hv.shutdown(domid, ShutdownReason(int(args["reason"])))
        elif op == "domain_pause":
            hv.pause(domid)
        elif op == "domain_unpause":
            hv.unpause(domid)
        elif op == "domain_sethandle":
            hv.set_handle(domid, uuid.UUID(str(args["handle"])))
        elif op == "setmaxmem":
            hv.setmaxmem(domid, int(args["kib"]))
        elif op == "max_vcpus":
            hv.max_vcpus(domid, int(args["vcpus"]))
        elif op == "shadow_allocation":
            hv.shadow_allocation(domid, int(args["mib"]))
        elif op in _HVM_PARAMS:
            hv.set_hvm_param(domid, _HVM_PARAMS[op], int(args["value"]))
        else:
            raise Unsupported(f"not implemented: hypervisor op {op}")
        return None


_TRANSACTIONS = threading.Lock()

_HVM_PARAMS = {
    "set_timer_mode": HvmParam.TIMER_MODE,
    "set_hpet": HvmParam.HPET_ENABLED,
    "set_vpt_align": HvmParam.VPT_ALIGN,
}

