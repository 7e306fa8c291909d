"""How xenmgr reaches the host: one accessor for each channel, so no module resolves them
itself.

* :func:`xenstore`: the tree's xenstore client (``settings.xenstore_service``, resolved at each
  use: a restarted xenstore actor is picked up);
* :func:`pci_sysfs`, :func:`scsi_sysfs`: the host's device inventory, through the same
  interfaces the VM monitors' host actions use (``xen.xenops``): on a dom0
  (``settings.pci_inventory`` = ``dom0``) its ``/sys``; on the simulated host (``sim``) the
  stand-ins on its hypervisor socket, over the connection the tree's hypervisor actor
  publishes (``settings.hypervisor_service``); ``none``: no inventory (None: the host has no
  devices to list).

Failures: a channel that cannot be had raises ``XenmgrError`` naming it (the hypervisor or
xenstore actor restarting, a backend that is not the simulated host's).
"""

from __future__ import annotations

from actors import ActorDeadError, NoSuchActor, ServiceUnavailable, service
from xen.hypervisor import Hypervisor, SimBackend
from xen.xenmgr._errors import plain
from xen.xenmgr._settings import ManagerSettings
from xen.xenops import HostPciSysfs, HostScsiSysfs, PciSysfs, ScsiSysfs, SimPciSysfs, SimScsiSysfs
from xen.xenstore import XenstoreClient

__all__ = ["pci_sysfs", "scsi_sysfs", "xenstore"]


def xenstore(settings: ManagerSettings) -> XenstoreClient:
    """The tree's xenstore client (see the module docstring)."""
    return service(settings.xenstore_service, XenstoreClient)


def _sim_backend(settings: ManagerSettings) -> SimBackend:
    try:
        hv = service(settings.hypervisor_service, Hypervisor)
    except (NoSuchActor, ServiceUnavailable, ActorDeadError):
        raise plain("the host's devices cannot be read: the hypervisor connection is "
                    "restarting, try again") from None
    if not isinstance(hv, SimBackend):
        raise plain(f"the host's devices cannot be read: inventory 'sim' needs the simulated "
                    f"host's backend, this tree runs {getattr(hv, 'name', type(hv).__name__)}")
    return hv


def pci_sysfs(settings: ManagerSettings) -> PciSysfs | None:
    """The host's PCI sysfs (see the module docstring)."""
    if settings.pci_inventory == "sim":
        return SimPciSysfs(_sim_backend(settings))
    if settings.pci_inventory == "dom0":
        return HostPciSysfs()
    return None


def scsi_sysfs(settings: ManagerSettings) -> ScsiSysfs | None:
    """The host's SCSI disks and CD drives (see the module docstring)."""
    if settings.pci_inventory == "sim":
        return SimScsiSysfs(_sim_backend(settings))
    if settings.pci_inventory == "dom0":
        return HostScsiSysfs()
    return None
