"""One VM's lifecycle against the hypervisor and xenstore: the operations and the reactions.

:class:`VmMachine` holds a VM's state (lifecycle state, domid, applied and pending config,
the operation in flight, a pending ``on_*`` action; :meth:`VmMachine.view` gives it as one
immutable :class:`~xen.xenvm._snapshot.VmView`) and decides every operation; what is done to
the domain (xenops plans, hypervisor calls, the save file) is done by its
:class:`~xen.xenvm._domain.DomainActions`. It is owned and driven by one
:class:`~xen.xenvm._monitor.VmMonitor` actor (one thread), which publishes the view and
persists its snapshot after every change (``on_change``). Rules:

* **Check first, act second.** Every operation validates its first transition with the table
  (:mod:`xen.xenvm._lifecycle`) before any side effect; a refused one is a ``TaskError``
  "X is not allowed in state Y" and touches nothing.
* **Operation in flight.** Before its first side effect an operation records itself (``op``,
  :mod:`xen.xenvm._snapshot`), cleared when it ends; a restarted machine finishes or rolls it
  back (:meth:`VmMachine.resume`, one lookup in :mod:`xen.xenvm._reconcile`'s table).
* **Failures roll back.** A failed start or restore destroys what it built (``StartAborted``);
  a shutdown not honoured in time leaves the VM running (``ShutdownFailed``) or destroys it.
* **Suspend** writes the save file (:mod:`xen.xenvm._image` header, then the builder's
  memory section; the guest asked to suspend when the builder calls for it), durable and in
  place (``Suspending.written``) before the domain is destroyed; a builder that cannot save
  refuses first. **Restore** checks the header (magic, version, uuid), builds the domain from
  the image with its config (config changes made meanwhile wait for the next start), deletes
  the file unless asked not to; failing: ``suspended``.
* **Config and devices** (``set``, ``set-config``, hot-plug, CD media, the balloon target)
  are the base class's (:mod:`xen.xenvm._machine_devices`): pending while a domain exists;
  what adds is saved first, what takes away acts first.
* **Deaths.** :meth:`VmMachine.check_state` looks at the hypervisor (events mean "look
  again"): a domain that died unexpected gets its ``on_*`` action exactly once (recorded as
  ``pending_action`` before, cleared after; doing it again is harmless); one destroyed from
  outside none. **Reboots keep run-time changes** (the config in memory, never a file).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

import xen.xenvm._lifecycle as lc
from xen.hypervisor import DomainInfo, HypervisorError, ShutdownReason
from xen.xenops import CancelToken, PlanFailed
from xen.xenvm._config import VmConfig, required_to_boot_kib
from xen.xenvm._domain import DomainActions, death_cause
from xen.xenvm._image import MAX_HEADER_BYTES, decode_header, encode_header
from xen.xenvm._lifecycle import DeathCause, IllegalTransition, State, next_state, reaction
from xen.xenvm._machine_devices import ConfigOperations
from xen.xenvm._reconcile import Cleanup, FollowUp, resumption
from xen.xenvm._snapshot import (
    Destroying,
    Operation,
    PendingAction,
    Rebooting,
    Restoring,
    ShuttingDown,
    Starting,
    Suspending,
    VmView,
)
from xen.xenvm._tasks import TaskError

if TYPE_CHECKING:
    from xen.xenvm._env import XenEnv

__all__ = ["VmMachine"]

logger = logging.getLogger("xenvm")


def _nothing(*_args: object) -> None:
    """The default callbacks: nothing to do."""


class VmMachine(ConfigOperations):
    """A VM's state and operations (see the module docstring).

    ``on_change()`` (publish, save) after each change of the view, ``on_view()`` (publish;
    default ``on_change``) after one the next change saves with nothing in between; ``notify``
    for notifications (``vm:state:<state>``, ``error:crashed``); ``on_quit()`` by :meth:`quit`.
    """

    def __init__(self, uuid: str, config: VmConfig, env: XenEnv, *,
                 on_change: Callable[[], None] = _nothing,
                 notify: Callable[[str], None] = _nothing,
                 on_quit: Callable[[], None] = _nothing,
                 on_view: Callable[[], None] | None = None) -> None:
        self.uuid = uuid
        self.config = config
        self.next_config: VmConfig | None = None
        self.state = State.SHUTDOWN
        self.domid = self.stubdom_domid = -1
        self.op: Operation | None = None
        self.pending_action: PendingAction | None = None
        self.domain = DomainActions(uuid, env)
        self._on_change = on_change
        self._on_view = on_view or on_change
        self._notify, self._on_quit = notify, on_quit
        self._cancel = CancelToken()

    def view(self) -> VmView:
        """The machine's state as one immutable value."""
        return VmView(self.uuid, self.state, self.domid, self.stubdom_domid, self.config,
                      self.next_config, self.op, self.pending_action)

    # ------------------------------------------------------------------ state changes

    def _check(self, event: lc.Event) -> State:
        try:
            return next_state(self.state, event)
        except IllegalTransition as exc:
            raise TaskError(str(exc)) from None

    def _go(self, event: lc.Event, *, durable: bool = True) -> None:
        """Apply ``event``; ``durable=False``: the next change saves it (docs/xenvm.md)."""
        old = self.state
        self.state = next_state(self.state, event)
        if self.state is not old:
            logger.info("%s: %s -> %s (%s)", self.uuid, old.value, self.state.value,
                        type(event).__name__)
            self._notify(f"vm:state:{self.state.value}")
        (self._on_change if durable else self._on_view)()

    def _go_if_allowed(self, event: lc.Event) -> None:
        try:
            next_state(self.state, event)
        except IllegalTransition:
            return
        self._go(event)

    def _begin(self, op: Operation, *, durable: bool = True) -> None:
        self._cancel = CancelToken()
        self._record(op, durable=durable)

    def _record(self, op: Operation | None, *, durable: bool = True) -> None:
        self.op = op
        (self._on_change if durable else self._on_view)()

    def _end(self) -> None:
        self._record(None)

    def _created(self, domid: int) -> None:
        self.domid = domid
        self._on_view()

    def _stub_created(self, stub: int) -> None:
        self.stubdom_domid = stub
        self._on_change()

    def _destroy(self, domid: int) -> None:
        """Destroy ``domid`` (best effort); forget it if it is ours. Does not publish: every
        caller applies a transition next, which does (nobody sees "running" without a domain)."""
        if domid < 0:
            return
        stub = self.stubdom_domid if domid == self.domid else -1
        self.domain.destroy(domid, hvm=self.config.hvm, stub=stub)
        if domid == self.domid:
            self.domid = -1
            self.stubdom_domid = -1

    # ------------------------------------------------------------------ start and restore

    def start(self, paused: bool = False) -> None:
        """Create, build, plug devices, unpause (see the module docstring for failures)."""
        self._check(lc.Start())
        self.domain.check_pci(self.next_config or self.config, own_domid=self.domid)
        self._destroy(self.domid)  # a preserved dead domain, or a leftover
        if self.next_config is not None:
            self.config, self.next_config = self.next_config, None
        cfg = self.config = self.domain.with_live_nic_backends(self.config)
        if not cfg.no_mem_check:
            need, free = required_to_boot_kib(cfg), self.domain.free_kib()
            if free < need:
                raise TaskError(f"not enough memory: {need} KiB needed, {free} KiB free")
        self._begin(Starting(paused), durable=False)
        self._go(lc.Start())
        self._bring_up(cfg, paused=paused, what="start")

    def restore(self, file: str, paused: bool = False, delete: bool = True) -> None:
        """Start the domain from the save file ``file`` (see the module docstring)."""
        self._check(lc.Restore())
        image = Path(file)
        try:
            source = image.open("rb")
        except OSError as exc:
            raise TaskError(f"restore: cannot read {image}: {exc.strerror}") from None
        with source:
            cfg, offset = decode_header(source.read(MAX_HEADER_BYTES), self.uuid, str(image))
            cfg = self.domain.with_live_nic_backends(cfg)
            source.seek(offset)
            wanted = self.next_config or self.config  # changed while suspended: kept
            self._begin(Restoring(str(image), paused), durable=False)
            self._go(lc.Restore())
            self.config, self.next_config = cfg, wanted if wanted != cfg else None
            self._bring_up(cfg, paused=paused, what="restore", source=source)
        if delete:
            image.unlink(missing_ok=True)

    def _bring_up(self, cfg: VmConfig, *, paused: bool, what: str,
                  source: IO[bytes] | None = None) -> None:
        """Build (or restore from ``source``), plug, unpause; roll back on failure."""
        try:
            self.domain.build(cfg, self._cancel, self._created, source)
            if source is None:
                self._go(lc.DomainBuilt(), durable=False)  # no recovery tells it apart
            self.domain.plug_devices(self.domid, cfg, self._cancel, self._stub_created)
            self._go(lc.DevicesAdded(), durable=not paused)
            if not paused:
                self.domain.unpause(self.domid)
                self._go(lc.Unpaused(), durable=False)  # _end saves it
        except Exception as exc:
            logger.error("%s: %s failed: %s", self.uuid, what, exc)
            self._destroy(self.domid)
            self._go(lc.StartAborted(), durable=False)  # _end saves it
            self._end()
            raise TaskError(f"{what} failed: {exc}") from exc
        self._end()

    # ------------------------------------------------------------------ stop and suspend

    def destroy(self) -> None:
        """Destroy the domain now."""
        self._check(lc.Destroy())
        self._begin(Destroying())
        self._destroy(self.domid)
        self._go(lc.Destroy(), durable=False)  # _end saves it
        self._end()

    def shutdown(self, *, reboot: bool = False, force: bool = False, timeout: float = 30.0,
                 destroy_after: bool = False, auto_start: bool = True) -> None:
        """Ask the guest to power off (or reboot), wait for its death, clean up."""
        request: lc.Event = lc.Reboot(force) if reboot else lc.Shutdown(force)
        self._check(request)
        if self.state.guest_halted and not force:  # it would wait out the timeout for nothing
            if not destroy_after:
                raise TaskError(f"{'reboot' if reboot else 'shutdown'}: the VM is "
                                f"{self.state.value}: its guest cannot answer (unpause it "
                                "first, or force it)")
            timeout = 0.0  # asked, then destroyed at once, as the caller wants
        self._begin(Rebooting(force, auto_start) if reboot else ShuttingDown(force))
        self._go(request)
        domid = self.domid
        reason = ShutdownReason.REBOOT if reboot else ShutdownReason.POWEROFF
        try:
            self.domain.shutdown(domid, reason, force=force, hvm=self.config.hvm,
                                 timeout=timeout, cancel=self._cancel)
        except (PlanFailed, HypervisorError) as exc:
            if destroy_after:
                logger.warning("%s: %s; destroying", self.uuid, exc)
                self._destroy(domid)
                self._go(lc.DomainReleased())
                self._end()
                return
            self._go(lc.ShutdownFailed())
            info = self.domain.own_info(domid)
            if info is not None:  # paused from outside meanwhile (no event says so)
                self._sync_pause(info)
            self._end()
            raise TaskError(f"guest did not {'reboot' if reboot else 'shut down'}: "
                            f"{exc}") from exc
        self._destroy(domid)
        self._go(lc.DomainRebooted() if reboot else lc.DomainReleased())
        if not (reboot and auto_start):
            self._end()
            return
        try:  # the reboot stays recorded until the start's first save: a restart starts it
            self.start()
        finally:
            if isinstance(self.op, Rebooting):  # the start refused before it began
                self._end()

    def pause(self) -> None:
        """Pause the domain."""
        self._check(lc.Pause())
        self.domain.pause(self.domid)
        self._go(lc.Pause())

    def unpause(self) -> None:
        """Unpause the domain."""
        self._check(lc.Unpause())
        self.domain.unpause(self.domid)
        self._go(lc.Unpause())

    def quit(self) -> None:
        """Stop being monitored (the owner stops; the domain keeps running)."""
        self._on_quit()

    def suspend(self, file: str, timeout: float = 30.0) -> None:
        """Save the domain to ``file`` and destroy it (see the module docstring)."""
        self._check(lc.Suspend())
        if self.state.guest_halted:
            raise TaskError(f"suspend: the VM is {self.state.value}: its guest cannot suspend "
                            "(unpause it first)")
        target = Path(file)
        if not target.parent.is_dir():
            raise TaskError(f"suspend: directory {target.parent} does not exist")
        domid = self.domid
        asked = False

        def suspend_guest() -> None:
            nonlocal asked
            asked = True
            self._begin(Suspending(str(target)))
            self._go(lc.Suspend())
            self.domain.shutdown(domid, ShutdownReason.SUSPEND, force=False,
                                 hvm=self.config.hvm, timeout=timeout, cancel=self._cancel)
            info = self.domain.info(domid)
            if info is None or info.shutdown_reason is not ShutdownReason.SUSPEND:
                raise HypervisorError("the domain did not shut down for a suspend")

        try:
            self.domain.save(domid, target, encode_header(self.uuid, self.config),
                             suspend_guest)
        except (PlanFailed, HypervisorError, OSError) as exc:
            if not asked:  # refused before the guest was asked: nothing changed
                raise TaskError(f"suspend: {exc}") from None
            self._go(lc.SuspendFailed())
            self._end()
            raise TaskError(f"suspend failed: {exc}") from exc
        assert isinstance(self.op, Suspending)
        self._record(dataclasses.replace(self.op, written=True))
        self._destroy(domid)
        self._go(lc.Saved())
        self._end()

    # ------------------------------------------------------------------ deaths

    def check_state(self) -> None:
        """Look at the hypervisor and react (see the module docstring)."""
        if self.op is not None:
            return  # an operation owns the domain; it looks for itself
        if self.pending_action is not None:
            self._carry_out(self.pending_action)
            return
        if not self.state.has_domain:
            live = self.domain.live_domains()
            if live:
                self._adopt(live[0])
            return
        info, cause = self.domain.observe_death(self.domid, self.stubdom_domid)
        if cause is None:
            assert info is not None
            self._sync_pause(info)
            return
        if self.state.keeps_dead_domain:
            if info is None:
                self.domid = -1
                self._go(lc.DomainReleased())
            return
        react = reaction(cause, self.config.on_poweroff, self.config.on_reboot,
                         self.config.on_crash)
        if cause is DeathCause.CRASH:
            self._notify("error:crashed")
        logger.info("%s: domain %d died (%s); action %s", self.uuid, self.domid, cause.value,
                    react.action.value if react.action else "none")
        self.pending_action = PendingAction(self.domid, cause, react.action, react.event)
        self._on_change()
        self._carry_out(self.pending_action)

    def _carry_out(self, pending: PendingAction) -> None:
        """Perform a recorded on_* action; doing it twice changes nothing more."""
        event = pending.event
        if isinstance(event, lc.DomainPreserved):
            if self.state.has_domain and not self.state.keeps_dead_domain:
                self._go(event)
        else:
            if pending.domid >= 0:
                self.domid = pending.domid
                self._destroy(pending.domid)
            if self.state.has_domain:
                self._go(event)
        self.pending_action = None
        if not (isinstance(event, lc.DomainRebooted) and not self.domain.live_domains()):
            self._on_change()
            return
        try:  # the action stays saved until the start's first save: a restart does it again
            self.start()
        except TaskError as exc:
            logger.error("%s: restart after reboot failed: %s", self.uuid, exc)
            self._on_change()

    def _adopt(self, info: DomainInfo) -> None:
        self.domid = info.domid
        self.stubdom_domid = self.domain.stubdom_of(info.domid)
        self._go(lc.Adopted())
        self._sync_pause(info)
        logger.info("%s: adopted running domain %d", self.uuid, info.domid)

    def _sync_pause(self, info: DomainInfo) -> None:
        """Follow a pause or unpause done outside the toolstack (a created VM's domain is
        paused because it has not run yet: it stays created, as the original's)."""
        if info.paused and self.state.built_not_run:
            return
        event: lc.Event = lc.Pause() if info.paused else lc.Unpaused()
        try:
            target = next_state(self.state, event)
        except IllegalTransition:
            return
        if target is not self.state:
            self._go(event)

    # ------------------------------------------------------------------ resume

    def resume(self, view: VmView) -> tuple[FollowUp, ...]:
        """Take the state of a snapshot and reconcile it with the world; the follow-up tasks
        the owner should queue (see :mod:`xen.xenvm._reconcile`)."""
        self.state, self.domid, self.stubdom_domid = view.state, view.domid, view.stubdom_domid
        self.config, self.next_config = view.config, view.next_config
        self.pending_action, self.op = view.pending, None
        op = view.op
        logger.info("%s: resuming in state %s, domid %d, op %s", self.uuid, self.state.value,
                    self.domid, op.task if op else "none")
        if self.pending_action is not None or op is None:
            self.check_state()  # carries a recorded action out, or looks as after any event
            return ()
        info = self.domain.own_info(self.domid)
        image = Path(op.file) if isinstance(op, Suspending) and op.written else None
        plan = resumption(op, self.state, alive=death_cause(info) is None,
                          exists=info is not None,
                          image_complete=image is not None and self.domain.image_complete(image),
                          domain_paused=info is not None and info.paused)
        if plan.cleanup is not Cleanup.NOTHING:
            self._destroy(self.domid)
        if plan.cleanup is Cleanup.DOMAIN_AND_STRAYS:
            self.domain.destroy_strays(hvm=self.config.hvm, stub_uuid=self.config.stubdom)
        for event in plan.events:
            self._go_if_allowed(event)
        self._on_change()
        return plan.follow_ups
