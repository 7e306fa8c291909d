"""CD media: what ``cd-insert-file``, ``cd-insert-real`` and ``cd-eject`` change.

A CD drive is a disk of the config with devtype ``cdrom``, named by its guest device
(``hdc``...). Changing its medium writes the drive's backend ``type`` and ``params`` in one
xenstore transaction (empty both to eject), as the original did; the device model (or the
guest's frontend) watches them. A drive whose backend says ``locked`` = ``true`` (the guest
locked the tray) refuses the change. The config follows, so a reboot keeps the medium.

:func:`media_changed` (pure) gives the new config and drive; :func:`write_media` does the
xenstore part for a running domain. Errors are :class:`~xen.xenvm.TaskError` naming the drive.
With a stub domain, an inserted medium also re-plugs the stub's read-only copy of the drive
(:func:`xen.xenvm._stubdom.replug_stub_drive`, as the original); an eject leaves the copy.
"""

from __future__ import annotations

import dataclasses

from xen.xenops import PhysType
from xen.xenstore import Transaction, XenstoreClient
from xen.xenvm._config import VmConfig
from xen.xenvm._config_devices import DiskConfig
from xen.xenvm._tasks import TaskError

__all__ = ["media_changed", "write_media"]


def media_changed(config: VmConfig, virtpath: str, phystype: PhysType | None,
                  path: str) -> tuple[VmConfig, DiskConfig]:
    """``config`` with CD drive ``virtpath`` holding ``path`` (``phystype`` None: ejected)."""
    drives = [d for d in config.disks if d.virtpath == virtpath]
    if not drives or drives[0].devtype != "cdrom":
        raise TaskError(f"no CD drive {virtpath!r} (a disk with devtype cdrom)")
    if phystype is not None and (not path or ":" in path or "\n" in path):
        raise TaskError(f"bad medium path {path!r} for CD drive {virtpath}")
    drive = dataclasses.replace(drives[0], physpath=path if phystype else "",
                                phystype=phystype or drives[0].phystype)
    disks = tuple(drive if d.virtpath == virtpath else d for d in config.disks)
    return dataclasses.replace(config, disks=disks), drive


def write_media(xs: XenstoreClient, domid: int, devid: int, phystype: PhysType | None,
                path: str) -> None:
    """Write the drive's backend ``type``/``params`` (module docstring)."""
    backend = xs.try_read(f"/local/domain/{domid}/device/vbd/{devid}/backend")
    if not backend:
        raise TaskError(f"the CD drive {devid} of domain {domid} is not plugged")

    def body(t: Transaction) -> None:
        if (t.try_read(f"{backend}/locked") or "") == "true":
            raise TaskError(f"the CD drive {devid} of domain {domid} is locked by the guest")
        t.write(f"{backend}/type", phystype.value if phystype else "")
        t.write(f"{backend}/params", path if phystype else "")
    xs.transaction(body)
