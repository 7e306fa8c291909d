"""Temporary disk snapshots: a disk with ``snapshot`` = ``temporary`` boots from a throw-away
overlay, so nothing the guest writes to it survives the VM's stop.

At a start (not a resume from hibernation) :func:`make_temporary_snapshots` creates, for each
enabled such disk, ``snap_<file name>.snap.tmp.qcow2`` beside the disk's file: a qcow2 overlay
whose backing file is the disk (``qemu-img create -f qcow2 -F vpc|raw -b <disk>``, bounded by
60 s; a stale overlay from a crash is replaced), and the monitor's config names the overlay
(``qcow``) instead of the disk. A reboot, and a resume from hibernation, go on with the
overlays that exist (``reuse``: the monitor's config names them again), making only missing
ones. When the VM reaches ``shutdown`` (not a reboot: the guest reboots on the same overlay),
:func:`remove_temporary_snapshots` deletes them.

Only VHD and raw (``file``/``raw``) disks can be overlaid; ``temporary-encrypted`` needs
OpenXT's VHD encryption, which this project does not have: both are refused with a clear
error before anything is created. A disk whose file does not exist gets no overlay (logged):
the monitor boots what the config names and refuses what it cannot (the simulated host's
service VMs name files that do not exist). The
original made VHD snapshots with ``vhd-util snapshot``; qemu cannot write a differencing VHD,
hence the qcow2 overlay.
"""

from __future__ import annotations

import logging
import os
import subprocess
from typing import Any

from xen.xenmgr._dbview import DbView
from xen.xenmgr._devices import read_disks
from xen.xenmgr._errors import plain

__all__ = ["existing_temporary_snapshots", "make_temporary_snapshots", "overlay_path",
           "remove_temporary_snapshots"]

logger = logging.getLogger("xenmgr")

_FORMATS = {"vhd": "vpc", "file": "raw", "raw": "raw"}


def overlay_path(disk_path: str) -> str:
    """Where the overlay of ``disk_path`` goes."""
    base = os.path.basename(disk_path)
    return os.path.join(os.path.dirname(disk_path), f"snap_{base}.snap.tmp.qcow2")


def _temporary_disks(tree: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(disk id, path, type) of the enabled disks with a temporary snapshot mode."""
    out = []
    for disk in read_disks(DbView(tree)):
        if disk.enabled and disk.snapshot in ("temporary", "temporary-encrypted"):
            if disk.snapshot == "temporary-encrypted":
                raise plain(f"disk {disk.id}: snapshot temporary-encrypted needs VHD "
                            "encryption, which this host does not have")
            if disk.type not in _FORMATS or not disk.path:
                raise plain(f"disk {disk.id}: a temporary snapshot needs a vhd or raw disk "
                            f"file, not {disk.type!r}")
            out.append((disk.id, disk.path, disk.type))
    return out


def make_temporary_snapshots(uuid: str, tree: dict[str, Any], *, reuse: bool = False
                             ) -> dict[int, str]:
    """Create the overlays of VM ``uuid`` (module docstring); disk id -> overlay path.
    ``reuse``: an overlay that exists is kept as it is (a reboot, or a resume from
    hibernation, goes on with the overlay the guest ran on); only missing ones are made."""
    made: dict[int, str] = {}
    created: list[str] = []
    for ident, path, kind in _temporary_disks(tree):
        if not os.path.isfile(path):  # the monitor refuses what it cannot boot (not the sim)
            logger.warning("VM %s: disk %d: no disk file at %s: no temporary snapshot",
                           uuid, ident, path)
            continue
        overlay = overlay_path(path)
        if reuse and os.path.isfile(overlay):
            made[ident] = overlay
            continue
        try:
            os.unlink(overlay)
        except FileNotFoundError:
            pass
        try:
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", _FORMATS[kind],
                            "-b", os.path.abspath(path), overlay],
                           check=True, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", None) or str(exc)
            remove_files(created)
            raise plain(f"VM {uuid}: disk {ident}: cannot make its temporary snapshot: "
                        f"{detail.strip()}") from None
        made[ident] = overlay
        created.append(overlay)
    return made


def remove_files(paths: Any) -> None:
    """Delete these files, logging (not raising) what cannot be."""
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("cannot delete temporary snapshot %s: %s", path, exc.strerror)


def remove_temporary_snapshots(tree: dict[str, Any]) -> None:
    """Delete the overlays of the VM's temporary disks (what exists of them)."""
    try:
        disks = _temporary_disks(tree)
    except Exception:
        return
    remove_files(overlay_path(path) for _id, path, _type in disks)


def existing_temporary_snapshots(tree: dict[str, Any]) -> dict[int, str]:
    """Disk id -> overlay path of the VM's temporary disks whose overlay exists."""
    try:
        disks = _temporary_disks(tree)
    except Exception:
        return {}
    return {ident: overlay for ident, path, _type in disks
            if os.path.isfile(overlay := overlay_path(path))}
