"""After one device is unplugged from a running domain: its kind's per-domain directories
that are now empty are removed.

A destroy removes a domain's whole trees; unplugging one device removes that device's nodes
only, so the last disk (or nic, or PCI group) of a domain used to leave an empty
``/local/domain/<be>/backend/<kind>/<domid>``, ``/local/domain/<domid>/device/<kind>``,
``/xapi/<domid>/hotplug/<kind>`` (and ``hotplug-extra``, ``error/device``).
:func:`prune_device_dirs` removes each of these parents that exists and has no child, in one
transaction (a device plugged meanwhile keeps its parent: the checks and the removals commit
together).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xen.xenops import Device
    from xen.xenstore import Transaction, XenstoreClient

__all__ = ["prune_device_dirs"]


def prune_device_dirs(xs: XenstoreClient, device: Device) -> None:
    """Remove the empty parent directories of ``device``'s nodes (see the module docstring)."""
    parents = [path.rsplit("/", 1)[0] for path in (
        device.backend_path, device.frontend_path, device.hotplug_path,
        device.hotplug_extra_path, device.error_dir)]

    def body(t: Transaction) -> None:
        for parent in parents:
            if t.exists(parent) and not t.directory(parent):
                t.rm(parent)
    xs.transaction(body)
