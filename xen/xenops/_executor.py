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
* **Results.** ``CreateDomain`` returns the new domid in :attr:`PlanResult.domid`.
* **Dispatch.** Each step type has one method, found by one lookup in a table; a value that
  is not a plan step raises ``TypeError`` at once (a programming error, never logged and
  skipped, even in a best-effort plan).

Hypervisor calls map onto the `xen.hypervisor.Hypervisor` interface, one member each. The
composite ``PciAdd`` and ``PciRelease`` read the device from the host (``pci_device``) and run
the steps ``xen.xenops._pci`` expands them into, each logged; a ``PciAdd`` that fails half-way
releases what it asked for (best effort) before it fails, and a ``PciRelease`` runs best
effort and fails at the end if any step did. Host actions map onto the typed methods of a
:class:`HostActions` object (real sysfs / process actions on a dom0); the base class refuses
each with a clear ``Unsupported``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from xen.hypervisor import HypervisorError, NoSuchDomain, Unsupported
from xen.xenops._atomics import (
    Appears,
    Becomes,
    Disappears,
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
from xen.xenops._calls import (
    CreateDomain,
    DestroyDomain,
    HostAction,
    HypervisorCall,
    InputAttachVkbd,
    InputDetachVkbd,
    KillProcess,
    LoopDetach,
    PauseDomain,
    PciBind,
    PciFlr,
    SetDomainHandle,
    SetHvmParam,
    SetMaxMem,
    SetMaxVcpus,
    SetTarget,
    ShadowAllocation,
    ShutdownDomain,
    SurfmanSetPvDisplay,
    UnpauseDomain,
)
from xen.xenops._pci import PciHostDevice
from xen.xenops._pciexec import pci_methods
from xen.xenops._xsbatch import run_ops

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
    if isinstance(step, HypervisorCall | HostAction):
        ignored = " (errors ignored)" if step.ignore_errors else ""
        return f"{type(step).__name__}({', '.join(_arguments(step))}){ignored}"
    if isinstance(step, IfAllSucceed):
        return f"if all of {len(step.body)} steps succeed, {len(step.then)} more"
    return repr(step)


def _arguments(value: Any) -> Iterator[str]:
    """``name=value`` for each field of a call, a nested spec's fields inline, enums by name."""
    for item in fields(value):
        if item.name == "ignore_errors":
            continue
        arg = getattr(value, item.name)
        if is_dataclass(arg) and not isinstance(arg, type):
            yield from _arguments(arg)
        elif isinstance(arg, Enum):
            yield f"{item.name}={arg.name}"
        elif isinstance(arg, float):
            yield f"{item.name}={arg:g}"
        else:
            yield f"{item.name}={arg}"


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
    """Host-side actions of the plans: one typed method per host action, and ``attach_file``
    for a PV file disk. This base refuses each with ``Unsupported`` naming it; a real dom0
    subclass implements sysfs and process actions, the sim host what it needs."""

    def _refuse(self, action: str) -> Unsupported:
        return Unsupported(f"not implemented: host action {action} on {type(self).__name__}")

    def pci_bind(self, bdf: str) -> None:
        """Unbind the PCI function from its driver and bind it to pciback."""
        raise self._refuse("pci_bind")

    def pci_flr(self, bdf: str) -> None:
        """Reset the PCI function (pciback ``reset_device``)."""
        raise self._refuse("pci_flr")

    def pci_permissive(self, bdf: str) -> None:
        """Let the guest write the function's config space (pciback ``permissive``)."""
        raise self._refuse("pci_permissive")

    def pci_restrictive(self, bdf: str) -> None:
        """Stop passing the guest's config-space writes through (pciback ``restrictive``)."""
        raise self._refuse("pci_restrictive")

    def pci_device(self, bdf: str) -> PciHostDevice:
        """The PCI function as dom0 sees it (ids, IRQ, BARs, driver); an OSError naming a
        BDF the host does not have."""
        raise self._refuse("pci_device")

    def loop_detach(self, device: str) -> None:
        """Free a loop device."""
        raise self._refuse("loop_detach")

    def kill_process(self, pid: int, timeout: float = 5.0) -> None:
        """SIGTERM ``pid``, wait up to ``timeout`` s for it to go, then SIGKILL."""
        raise self._refuse("kill_process")

    def surfman_set_pv_display(self, domid: int) -> None:
        """Tell surfman the domain's PV framebuffer is its display."""
        raise self._refuse("surfman_set_pv_display")

    def input_attach_vkbd(self, domid: int) -> None:
        """Tell the input daemon to feed the domain's virtual keyboard."""
        raise self._refuse("input_attach_vkbd")

    def input_detach_vkbd(self, domid: int) -> None:
        """Tell the input daemon the domain's virtual keyboard is gone."""
        raise self._refuse("input_detach_vkbd")

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
        # One method per step type; each returns the new domid (CreateDomain) or None.
        self._methods: dict[type, Callable[[Any], int | None]] = {
            Transaction: self._transaction,
            Mkdir: self._xs_step, Write: self._xs_step, Rm: self._xs_step,
            SetPerms: self._xs_step, WriteIfEquals: self._xs_step,
            WaitFor: self._wait_for, WaitDomain: self._wait_domain,
            WaitFreeMemory: self._wait_memory, Introduce: self._introduce,
            CreateDomain: self._create_domain, DestroyDomain: self._destroy_domain,
            ShutdownDomain: self._shutdown_domain, PauseDomain: self._pause_domain,
            UnpauseDomain: self._unpause_domain, SetDomainHandle: self._set_domain_handle,
            SetTarget: self._set_target,
            SetMaxVcpus: self._set_max_vcpus, SetMaxMem: self._set_max_mem,
            ShadowAllocation: self._shadow_allocation, SetHvmParam: self._set_hvm_param,
            PciBind: self._pci_bind, PciFlr: self._pci_flr, LoopDetach: self._loop_detach,
            KillProcess: self._kill_process, SurfmanSetPvDisplay: self._surfman_set_pv_display,
            InputAttachVkbd: self._input_attach_vkbd, InputDetachVkbd: self._input_detach_vkbd,
        }
        self._methods.update(pci_methods(lambda: self.hv, self.host, self._run_inner))

    def run(self, plan: Plan, cancel: CancelToken | None = None) -> PlanResult:
        """Run ``plan``; raises :class:`PlanFailed` / :class:`PlanCancelled` (not best effort)."""
        logger.info("%s (%d steps)", plan.name, len(plan.steps))
        result = PlanResult()
        self._steps(plan.name, plan.steps, plan.best_effort, result, cancel)
        return result

    def _run_inner(self, name: str, steps: Iterable[Atomic], best_effort: bool
                   ) -> list[tuple[str, str]]:
        """Run steps a composite step expands into; their failures (best effort)."""
        result = PlanResult()
        self._steps(name, steps, best_effort, result, None)
        return result.failures

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
            method = self._methods.get(type(step))
            if method is None:
                raise TypeError(f"{name}: not a plan step: {step!r}")
            logger.debug("%s: %s", name, describe(step))
            try:
                domid = method(step)
            except Exception as exc:
                ignore = getattr(step, "ignore_errors", False)
                if not (best_effort or ignore):
                    raise PlanFailed(name, step, exc) from exc
                logger.warning("%s: %s failed (%s), going on", name, describe(step), exc)
                result.failures.append((describe(step), str(exc)))
                clean = False
            else:
                if domid is not None:
                    result.domid = domid
        return clean

    # ------------------------------------------------------------------ one step

    def _transaction(self, step: Transaction) -> None:
        ops = step.ops
        with _TRANSACTIONS:  # the requests pipelined: one round trip per batch (_xsbatch)
            self.xs.transaction(lambda t: run_ops(t, ops, self._xs))

    def _xs_step(self, step: Mkdir | Write | Rm | SetPerms | WriteIfEquals) -> None:
        self._xs(self.xs, step)

    def _introduce(self, step: Introduce) -> None:
        self.xs.introduce(step.domid, step.mfn, step.port)

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

    # ------------------------------------------------------------------ hypervisor calls

    def _create_domain(self, step: CreateDomain) -> int:
        return self.hv.create(step.spec)

    def _destroy_domain(self, step: DestroyDomain) -> None:
        self.hv.destroy(step.domid)

    def _shutdown_domain(self, step: ShutdownDomain) -> None:
        self.hv.shutdown(step.domid, step.reason)

    def _pause_domain(self, step: PauseDomain) -> None:
        self.hv.pause(step.domid)

    def _unpause_domain(self, step: UnpauseDomain) -> None:
        self.hv.unpause(step.domid)

    def _set_domain_handle(self, step: SetDomainHandle) -> None:
        self.hv.set_handle(step.domid, step.handle)

    def _set_target(self, step: SetTarget) -> None:
        self.hv.set_target(step.domid, step.target)

    def _set_max_vcpus(self, step: SetMaxVcpus) -> None:
        self.hv.max_vcpus(step.domid, step.vcpus)

    def _set_max_mem(self, step: SetMaxMem) -> None:
        self.hv.setmaxmem(step.domid, step.kib)

    def _shadow_allocation(self, step: ShadowAllocation) -> None:
        self.hv.shadow_allocation(step.domid, step.mib)

    def _set_hvm_param(self, step: SetHvmParam) -> None:
        self.hv.set_hvm_param(step.domid, step.param, step.value)

    # ------------------------------------------------------------------ host actions

    def _pci_bind(self, step: PciBind) -> None:
        self.host.pci_bind(step.bdf)

    def _pci_flr(self, step: PciFlr) -> None:
        self.host.pci_flr(step.bdf)

    def _loop_detach(self, step: LoopDetach) -> None:
        self.host.loop_detach(step.device)

    def _kill_process(self, step: KillProcess) -> None:
        self.host.kill_process(step.pid, step.timeout)

    def _surfman_set_pv_display(self, step: SurfmanSetPvDisplay) -> None:
        self.host.surfman_set_pv_display(step.domid)

    def _input_attach_vkbd(self, step: InputAttachVkbd) -> None:
        self.host.input_attach_vkbd(step.domid)

    def _input_detach_vkbd(self, step: InputDetachVkbd) -> None:
        self.host.input_detach_vkbd(step.domid)


_TRANSACTIONS = threading.Lock()
