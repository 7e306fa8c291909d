"""What xenmgr does to one VM: start, stop and the other lifecycle operations, hooks first.

Every operation drives the VM only through its monitor's tasks (``_monitors``); the database
is read at each call, so the monitor always boots what the database says:

* **start**: a VM that does not exist: ``no vm with uuid X``. ``run-insteadof-start`` hooks,
  when configured, replace the start (they must succeed). A VM already running is left as it
  is (logged, as the original). Otherwise the config is translated from the database and
  given to the monitor (``set-config``), the ``run-pre-boot`` hooks run (a failure stops the
  start before any domain exists), and the monitor starts the domain, or restores a
  hibernated VM from its image (then deleted), or restores the VM's
  ``start-from-suspend-image`` when that file exists (kept: each start restores it again);
  then ``hibernated`` is cleared. Each nic whose backend VM runs is served in its domain.
* **shutdown**, **reboot** (the new config goes to the monitor first, so the restarted guest
  boots it, on the temporary snapshots it ran on), **destroy**, **pause**, **unpause**: the
  monitor's task; a refusal in the VM's state is error 102, a guest that does not shut down
  104. ``submit_shutdown`` queues the shutdown task and returns it (`QueuedTask`) for its
  answer to be awaited later: one path for a VM's shutdown and the host's (which asks a whole
  group before waiting).
* **hibernate**: the monitor saves the domain to ``<storage>/hibernate/<uuid>.img`` and
  ``hibernated`` is set; the next start restores it (the VM is ``suspended`` meanwhile); a
  ``destroy`` discards the image, so the next start boots afresh. **sleep** and **resume**
  (ACPI S3) are refused: our monitors cannot put a guest in S3.

Each call is bounded (the settings' task and hook timeouts); errors are ``XenmgrError``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from rpc.dbus import BusConnection
from xen.xenmgr._codecs import SchemaError
from xen.xenmgr._dbclient import DbClient
from xen.xenmgr._dbview import DbView
from xen.xenmgr._depgraph import DependencyCycle, start_order
from xen.xenmgr._devices import read_nics, read_pci_rules
from xen.xenmgr._errors import XenmgrError, no_vm_with_uuid, plain
from xen.xenmgr._hooks import run_hooks
from xen.xenmgr._monitors import monitor_view, run_task, submit_task, sync_config, task_result
from xen.xenmgr._pci_inventory import HostPci, host_pci_devices, matching
from xen.xenmgr._schema import LEGACY_NETWORKS
from xen.xenmgr._settings import ManagerSettings
from xen.xenmgr._snapshots import (
    existing_temporary_snapshots,
    make_temporary_snapshots,
    remove_files,
)
from xen.xenmgr._states import InternalState, from_monitor_state, is_running
from xen.xenmgr._vm_deps import nic_backend_domids
from xen.xenmgr._vmconfig import HostFacts, VmConfigError, translate

__all__ = ["QueuedTask", "VmFlows", "bridge_of", "config_text", "internal_state"]

logger = logging.getLogger("xenmgr")


def internal_state(uuid: str) -> InternalState:
    """VM ``uuid``'s internal state from its monitor (no monitor: ``shutdown``)."""
    view = monitor_view(uuid)
    if view is None:
        return InternalState.SHUTDOWN
    return from_monitor_state(view.state.value)


def bridge_of(network: str) -> str:
    """The bridge of a network object path: the original's names for its four networks
    (``/wired/0/bridged`` is ``brbridged``...), else ``br`` and the path's letters and digits
    (at most 15 characters, Linux's limit). The network daemon is not built yet; it will say."""
    for bridge, path in LEGACY_NETWORKS.items():
        if path == network:
            return bridge
    return ("br" + "".join(c for c in network if c.isalnum()))[:15]


def config_text(uuid: str, tree: dict[str, Any],
                snapshots: Mapping[int, str] | None = None,
                pci_devices: list[HostPci] | None = None,
                nic_backends: Mapping[int, int] | None = None) -> str:
    """The monitor config of VM ``uuid`` from its database subtree (``XenmgrError`` naming
    the database key the monitor would refuse); ``snapshots``: the temporary snapshots' overlays
    to boot from; ``pci_devices``: the host's devices that class/vendor/device rules are matched
    against (None: none, the rules select nothing); ``nic_backends``: nic id -> the domain
    serving it (absent: dom0)."""
    vm = DbView(tree)
    matches = {rule.id: tuple(d.bdf for d in matching(rule, pci_devices or []))
               for rule in read_pci_rules(vm) if rule.bdf is None}
    try:
        bridges = {nic.network: bridge_of(nic.network) for nic in read_nics(vm)}
    except SchemaError as exc:
        raise plain(f"VM {uuid}: {exc}") from None
    try:
        return translate(vm, uuid, HostFacts(bridges=bridges, pci_matches=matches,
                                             snapshots=snapshots or {},
                                             nic_backends=nic_backends or {})).text
    except VmConfigError as exc:
        raise plain(f"VM {uuid}: {exc}") from None


def _suspend_image(tree: dict[str, Any]) -> str | None:
    """The VM's ``start-from-suspend-image`` when it names an existing file (else None)."""
    path = tree.get("start-from-suspend-image")
    return path if isinstance(path, str) and path and os.path.isfile(path) else None


@dataclass(frozen=True, slots=True)
class QueuedTask:
    """A task in VM ``uuid``'s monitor's mailbox; its answer comes in ``future``, expected
    within ``bound`` s of the submission."""

    uuid: str
    name: str
    future: Future[str]
    bound: float

    def result(self, timeout: float | None = None) -> str:
        """Wait at most ``timeout`` s (default: the bound) for the answer; errors as
        ``run_task`` raises them (``XenmgrError``)."""
        return task_result(self.uuid, self.name, self.future,
                           self.bound if timeout is None else timeout)


class VmFlows:
    """The operations on VMs (see the module docstring); thread-safe, stateless."""

    def __init__(self, settings: ManagerSettings, db: DbClient,
                 conn: BusConnection | None) -> None:
        self.settings = settings
        self.db = db
        self.conn = conn

    # ------------------------------------------------------------------ helpers

    def tree(self, uuid: str) -> dict[str, Any]:
        """VM ``uuid``'s subtree (``no vm with uuid X`` when it does not exist)."""
        tree = self.db.vm_tree(uuid)
        if not tree:
            raise no_vm_with_uuid(uuid)
        return tree

    def hooks(self, hook: str, value: object, args: list[str], *, fatal: bool) -> int:
        """Run hook ``hook`` (its stored ``value``); raise when ``fatal``, else only log."""
        if not isinstance(value, str) or not value.strip():
            return 0
        try:
            return run_hooks(hook, value, args, timeout=self.settings.hook_timeout,
                             conn=self.conn)
        except XenmgrError as exc:
            if fatal:
                raise
            logger.warning("%s", exc.message)
            return 0

    def hibernation_image(self, uuid: str) -> str:
        return os.path.join(self.settings.storage_dir, "hibernate", f"{uuid}.img")

    # ------------------------------------------------------------------ operations

    def start(self, uuid: str) -> None:
        tree = self.tree(uuid)
        if self.hooks("run-insteadof-start", tree.get("run-insteadof-start"), [uuid],
                      fatal=True):
            return
        if str(tree.get("track-dependencies", "")).lower() in ("true", "yes", "1"):
            self._start_dependencies(uuid)
        self._start(uuid, tree)

    def _start_dependencies(self, uuid: str) -> None:
        """Start the VMs ``uuid`` depends on that do not run, each after its own (without
        their hooks' ``run-insteadof-start`` replacing them); an error naming those still not
        running after that, or the cycle."""
        try:
            order = start_order(uuid, self.db.vms())
        except DependencyCycle as exc:
            raise plain(f"VM {uuid}: {exc}") from None
        for dep in order:
            if not is_running(internal_state(dep)):
                logger.info("VM %s: starting its dependency %s first", uuid, dep)
                self._start(dep, self.tree(dep))
        missing = [dep for dep in order if not is_running(internal_state(dep))]
        if missing:
            raise plain(f"VM {uuid}: the VMs it depends on are not running: "
                        f"{', '.join(missing)}")

    def nic_backends(self, uuid: str, tree: dict[str, Any]) -> dict[int, int]:
        """Nic id -> the domain of its running backend VM (``_vm_deps``)."""
        config = tree.get("config")
        if not isinstance(config, dict) or not config.get("nic"):
            return {}
        return nic_backend_domids(uuid, self.db.cached_vms())

    def _pci_devices(self, uuid: str, tree: dict[str, Any]) -> list[HostPci]:
        """The host's devices, when the VM has rules to match against them."""
        if not any(r.bdf is None for r in read_pci_rules(DbView(tree))):
            return []
        try:
            return host_pci_devices(self.settings)
        except Exception as exc:  # no inventory: the rules select nothing (logged)
            logger.warning("VM %s: cannot read the host's PCI devices: %s", uuid, exc)
            return []

    def _start(self, uuid: str, tree: dict[str, Any]) -> None:
        state = internal_state(uuid)
        image = self.hibernation_image(uuid)
        resume = state is InternalState.SUSPENDED and os.path.exists(image)
        saved = _suspend_image(tree)
        if is_running(state) and not resume and not (
                saved and state is InternalState.SUSPENDED):
            logger.warning("VM %s: start: already running (%s)", uuid, state.value)
            return
        overlays = make_temporary_snapshots(uuid, tree, reuse=resume)
        try:
            sync_config(self.settings, uuid, config_text(
                uuid, tree, overlays, self._pci_devices(uuid, tree),
                self.nic_backends(uuid, tree)))
            self.hooks("run-pre-boot", tree.get("run-pre-boot"), [uuid], fatal=True)
            if resume:
                run_task(self.settings, uuid, "restore", {"file": image, "delete": "true"})
            elif saved:  # start-from-suspend-image: restored, the image kept for next time
                logger.info("VM %s: starting from its suspend image %s", uuid, saved)
                run_task(self.settings, uuid, "restore", {"file": saved, "delete": "false"})
            else:
                run_task(self.settings, uuid, "start")
        except BaseException:  # nothing boots from them (a hibernated VM's stay for it)
            if not resume and not is_running(internal_state(uuid)):
                remove_files(overlays.values())
            raise
        if tree.get("hibernated") in ("true", "1", "yes"):
            self.db.write(f"/vm/{uuid}/hibernated", "false")

    def shutdown(self, uuid: str, timeout: float | None = None) -> None:
        """Ask the guest to power off and wait (``timeout``: the guest's bound, else the
        monitor's default)."""
        self.tree(uuid)
        self.submit_shutdown(uuid, timeout).result()

    def submit_shutdown(self, uuid: str, timeout: float | None = None) -> QueuedTask:
        """:meth:`shutdown` without the wait nor the check that the VM exists (the caller
        knows it does): the task is in the monitor's mailbox when this returns; its
        ``result()`` waits for the answer (the host shutdown asks a whole group this way)."""
        if timeout is None:
            params, bound = None, self.settings.task_timeout
        else:
            params, bound = {"timeout": str(timeout)}, timeout + self.settings.task_timeout
        return QueuedTask(uuid, "shutdown", submit_task(self.settings, uuid, "shutdown", params),
                          bound)

    def reboot(self, uuid: str) -> None:
        tree = self.tree(uuid)
        overlays = make_temporary_snapshots(uuid, tree, reuse=True)  # the guest's, kept
        sync_config(self.settings, uuid, config_text(
            uuid, tree, overlays, pci_devices=self._pci_devices(uuid, tree),
            nic_backends=self.nic_backends(uuid, tree)))
        run_task(self.settings, uuid, "reboot")

    def offer_overlays(self, uuid: str, tree: dict[str, Any]) -> bool:
        """VM ``uuid``'s monitor came up with a domain: if the config it would boot next does
        not name the temporary disk snapshots that exist (it lost its snapshot and adopted the
        domain with its start config, which names the disks), send it the config with them,
        so that the guest's next reboot goes on with its overlays, never the disks they
        protect. True if it was sent (logged)."""
        view = monitor_view(uuid)
        if view is None or view.domid <= 0:
            return False
        overlays = existing_temporary_snapshots(tree)
        named = {disk.physpath for disk in (view.next_config or view.config).disks}
        if set(overlays.values()) <= named:
            return False
        logger.warning("VM %s: its monitor's config does not name its temporary disk "
                       "snapshots (%s): sending them again", uuid, ", ".join(overlays.values()))
        sync_config(self.settings, uuid, config_text(
            uuid, tree, overlays, pci_devices=self._pci_devices(uuid, tree),
            nic_backends=self.nic_backends(uuid, tree)))
        return True

    def destroy(self, uuid: str) -> None:
        self.tree(uuid)
        run_task(self.settings, uuid, "destroy")
        self._forget_image(uuid)

    def _forget_image(self, uuid: str) -> None:
        """A destroyed VM boots afresh: its hibernation image goes, ``hibernated`` false."""
        try:
            os.unlink(self.hibernation_image(uuid))
        except FileNotFoundError:
            return
        except OSError as exc:
            logger.warning("VM %s: cannot delete its hibernation image: %s", uuid, exc)
        self.db.write(f"/vm/{uuid}/hibernated", "false")

    def pause(self, uuid: str) -> None:
        self.tree(uuid)
        run_task(self.settings, uuid, "pause")

    def unpause(self, uuid: str) -> None:
        self.tree(uuid)
        run_task(self.settings, uuid, "unpause")

    def hibernate(self, uuid: str) -> None:
        self.tree(uuid)
        image = self.hibernation_image(uuid)
        os.makedirs(os.path.dirname(image), exist_ok=True)
        run_task(self.settings, uuid, "suspend", {"file": image})
        self.db.write(f"/vm/{uuid}/hibernated", "true")

    def suspend_to_file(self, uuid: str, path: str) -> None:
        """Save the running VM to ``path`` (absolute, in an existing directory) and stop it;
        the VM is then ``suspended`` (not ``hibernated``: its next plain start boots afresh)."""
        self.tree(uuid)
        if not os.path.isabs(path) or not os.path.isdir(os.path.dirname(path)):
            raise plain(f"suspend_to_file: {path!r} is not an absolute path in an existing "
                        "directory")
        run_task(self.settings, uuid, "suspend", {"file": path})

    def resume_from_file(self, uuid: str, path: str) -> None:
        """Start the VM from the save file ``path`` (kept afterwards)."""
        tree = self.tree(uuid)
        if not os.path.isfile(path):
            raise plain(f"resume_from_file: no save file at {path!r}")
        overlays = make_temporary_snapshots(uuid, tree, reuse=True)
        sync_config(self.settings, uuid, config_text(uuid, tree, overlays))
        run_task(self.settings, uuid, "restore", {"file": path, "delete": "false"})

    def sleep(self, uuid: str) -> None:
        self.tree(uuid)
        raise plain("sleep is not supported: our VM monitors cannot put a guest in ACPI S3")

    def resume(self, uuid: str) -> None:
        self.tree(uuid)
        raise plain("resume is not supported: our VM monitors cannot put a guest in ACPI S3")
