"""The settings of the manager branch, and the names of its actors.

One frozen value, built by the composition root (``supervision.dom0``) or the standalone
``xenmgr`` script and passed to every actor of the branch, so nothing reads a global. Paths
are absolute by the time they reach here. The actors find each other by name under
``settings.branch`` (``/manager`` in the dom0 tree): ``queue``, ``creator``, ``vm-events``,
``service``, ``autostart``; the VM monitors under ``settings.vms`` (``/vms``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_STORAGE_DIR", "ManagerSettings"]

DEFAULT_STORAGE_DIR = "/storage/disks"


@dataclass(frozen=True, slots=True)
class ManagerSettings:
    """What the manager branch needs to know (see the module docstring).

    ``address``: the bus (dbd is reached there, xenmgr owns its name there); ``storage_dir``:
    where ``create_vhd`` puts new VHDs, and the only directory whose VHDs a delete removes;
    ``admin_templates``: the administrator's template directory (``None``: none);
    ``workers``: threads serving calls in parallel; ``hook_timeout``: the bound of one hook
    script; ``task_timeout``: the bound of one VM monitor operation; ``autostart``: start the
    ``start_on_boot`` VMs when the branch starts; ``config_debounce``: the quiet time before
    ``vm_config_changed`` is sent; ``argo_table``: where the Argo firewall applies its rules
    (``sim``: the simulated host's xenstore, reached through the ``xenstore_service`` actor;
    ``viptables``: a real dom0's tool; ``none``: computed and logged only); ``eula``: the file
    ``get_eula`` answers with; ``host_power``: what a host shutdown or reboot does once every
    VM is down (``sim``: recorded in the simulated host's xenstore; ``dom0``: ``systemctl``;
    ``none``: logged); ``vm_shutdown_timeout``: how long a host shutdown waits for each guest;
    ``idle_shutdown_cap``: an idle shutdown forces the host off this long after it began;
    ``diag_dir``: where diagnostics and status reports are written; ``diag_wait``: how long a
    gathering waits for contributions; ``storage_check``, ``storage_low_percent``: the period
    of the storage check and its threshold (``_storage_watch``); ``pci_inventory``: where the
    host's devices (PCI, disks, CD drives) are read (``sim``, ``dom0``, ``none``; ``_host_io``);
    ``xenstore_service``, ``hypervisor_service``: the tree's actors publishing those
    connections; ``license_key``: the key licence hashes are made with (``_host_extras``);
    ``ui_plugins``: the UI's plugin directory; ``asound_dir``: ALSA's ``/proc/asound``.
    """

    address: str
    storage_dir: str = DEFAULT_STORAGE_DIR
    admin_templates: str | None = "/config/xenmgr/templates"
    flavour: str = "default"
    workers: int = 8
    hook_timeout: float = 30.0
    task_timeout: float = 120.0
    db_timeout: float = 10.0
    autostart: bool = True
    config_debounce: float = 0.5
    branch: str = "/manager"
    vms: str = "/vms"
    argo_table: str = "none"
    eula: str = "/usr/share/xenclient/EULA"
    host_power: str = "none"
    vm_shutdown_timeout: float = 30.0
    idle_shutdown_cap: float = 300.0
    diag_dir: str = "/storage/diag"
    diag_wait: float = 2.0
    storage_check: float = 30.0
    storage_low_percent: int = 10
    pci_inventory: str = "none"
    xenstore_service: str = "/xen/xenstore"
    hypervisor_service: str = "/xen/hypervisor"
    license_key: str = ""
    ui_plugins: str = "/usr/lib/xui/plugins"
    asound_dir: str = "/proc/asound"

    @property
    def queue(self) -> str:
        """The notification queue's name."""
        return f"{self.branch}/queue"

    @property
    def creator(self) -> str:
        """The creation actor's name."""
        return f"{self.branch}/creator"

    @property
    def vm_events(self) -> str:
        """The supervisor of the per-VM event handlers."""
        return f"{self.branch}/vm-events"

    @property
    def autostart_actor(self) -> str:
        """The autostart's name."""
        return f"{self.branch}/autostart"

    @property
    def argo_firewall(self) -> str:
        """The Argo firewall actor's name."""
        return f"{self.branch}/argo-firewall"

    @property
    def service(self) -> str:
        """The bus service's name."""
        return f"{self.branch}/service"
