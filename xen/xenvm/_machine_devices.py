"""A VM's config and device operations: ``set``, ``set-config``, device hot-plug, CD media,
the balloon target.

:class:`ConfigOperations` is a part of :class:`~xen.xenvm._machine.VmMachine` (its base
class), kept in its own module: the lifecycle (start, stop, deaths, resume) is the machine's
own module, what changes the config of a VM in any state is here. Rules:

* **Pending while a domain exists.** ``set`` and ``set-config`` change the config the next
  start takes (``next_config``) while the VM has a domain, else the config at once.
* **Device and media changes follow both configs.** Adding or removing a device, or changing
  a CD drive's medium, changes the config of the running domain and, when one is pending, the
  pending one too (if it has that device), so a reboot keeps the change.
* **Saved first when the change adds; acted first when it takes away.** An added device and a
  new medium are saved before the domain is touched (taken back if the plug or the drive write
  fails or is refused); a removed device is unplugged before it leaves the config. A monitor
  killed in between leaves a device plugged only while the config lists it, and the config
  holding what the caller asked for when a medium changed.
* **No removal from a paused guest.** A device is unplugged cleanly: the guest's frontend is
  asked to close, which a paused guest cannot do; the removal is refused at once instead of
  waiting out the timeout.
"""

from __future__ import annotations

from collections.abc import Callable

from xen.xenops import PhysType, PlanFailed
from xen.xenvm._config import VmConfig, parse_config, set_field
from xen.xenvm._config_values import ConfigError
from xen.xenvm._domain import DomainActions
from xen.xenvm._hotplug import DeviceKey, added, removed
from xen.xenvm._lifecycle import State
from xen.xenvm._media import media_changed
from xen.xenvm._tasks import TaskError

__all__ = ["ConfigOperations"]


class ConfigOperations:
    """The config and device operations of a VM machine (see the module docstring)."""

    uuid: str
    config: VmConfig
    next_config: VmConfig | None
    state: State
    domid: int
    domain: DomainActions
    _on_change: Callable[[], None]

    def _live(self) -> bool:
        """The VM has a domain to change."""
        return self.state.has_domain and self.domid >= 0

    def set_config(self, field: str, value: str) -> None:
        """Change one config field (pending while a domain exists); the uuid only to the VM's
        own (in any case)."""
        try:
            changed = set_field(self.next_config or self.config, field, value)
        except ConfigError as exc:
            raise TaskError(f"set: {exc}") from None
        self._take(self._own(changed, "set"))

    def replace_config(self, text: str) -> None:
        """Replace the whole config with ``text`` (the file format): applied at once when no
        domain exists, else pending for the next start (a reboot's restart takes it too).

        A config that does not parse, or that names another VM's uuid, is refused
        (``TaskError``) and changes nothing.
        """
        try:
            cfg = parse_config(text, source="set-config", strict=True)
        except ConfigError as exc:
            raise TaskError(f"set-config: {exc}") from None
        self._take(self._own(cfg, "set-config"))

    def _own(self, cfg: VmConfig, task: str) -> VmConfig:
        """``cfg``, refused if it names another VM's uuid (the VM's uuid never changes)."""
        if cfg.uuid is not None and cfg.uuid.lower() != self.uuid.lower():
            raise TaskError(f"{task}: the config is VM {cfg.uuid}'s, not {self.uuid}'s")
        return cfg

    def _take(self, cfg: VmConfig) -> None:
        if self.state.has_domain:
            self.next_config = cfg
        else:
            self.config, self.next_config = cfg, None
        self._on_change()

    def _also_pending(self, edit: Callable[[VmConfig], VmConfig]) -> None:
        """A device or medium change to the pending config too, if there is one; one it cannot
        take (it lists that device already, or has no such device) leaves it as it is."""
        if self.next_config is not None:
            try:
                self.next_config = edit(self.next_config)
            except TaskError:
                pass

    def add_device(self, key: DeviceKey, entry: str) -> None:
        """Add a ``disk``, ``nic`` or ``pci`` entry; plug it now when the VM has a domain."""
        change = added(self.config, key, entry)
        before = self.config, self.next_config
        self.config = change.config
        self._also_pending(lambda cfg: added(cfg, key, entry).config)
        self._on_change()  # first: a plugged device is always in the config, so removable
        if self._live():
            try:
                self.domain.plug(self.domid, change.config, change.device)
            except Exception as exc:  # refused or failed: the config as it was
                self.config, self.next_config = before
                self._on_change()
                if isinstance(exc, PlanFailed):
                    raise TaskError(f"{key}-add: plugging failed: {exc}") from exc
                raise

    def remove_device(self, key: DeviceKey, ident: str) -> None:
        """Remove a disk (by guest device name), nic (by id) or PCI device (by BDF); unplug
        it first when the VM has a domain (refused while it is paused)."""
        change = removed(self.config, key, ident)
        if self.state.paused:  # asked to close, its frontend would never answer
            raise TaskError(f"{key}-del: the VM is paused: its guest cannot release the "
                            "device (unpause it first)")
        if self._live():
            self.domain.unplug(self.domid, change.kind, change.devid, hvm=self.config.hvm,
                               config=change.config)
        self.config = change.config
        self._also_pending(lambda cfg: removed(cfg, key, ident).config)
        self._on_change()

    def change_media(self, virtpath: str, phystype: PhysType | None, path: str) -> None:
        """Change CD drive ``virtpath``'s medium (None: eject), in the drive when live."""
        config, drive = media_changed(self.config, virtpath, phystype, path)
        before = self.config, self.next_config
        self.config = config
        self._also_pending(lambda cfg: media_changed(cfg, virtpath, phystype, path)[0])
        self._on_change()  # first: the next start has the medium asked for
        if not self._live():
            return
        try:
            self.domain.write_media(self.domid, drive, phystype)
        except Exception:  # the drive kept its medium (one transaction): so does the config
            self.config, self.next_config = before
            self._on_change()
            raise
        self.domain.replug_stub_drive(self.domid, drive, phystype)

    def set_mem_target(self, mb: int) -> None:
        """Write the balloon target of the running domain."""
        if not self._live():
            raise TaskError(f"set-mem-target is not allowed in state {self.state.value}")
        if mb <= 0:
            raise TaskError(f"set-mem-target: bad size {mb} MiB")
        self.domain.set_memory_target(self.domid, mb * 1024)
