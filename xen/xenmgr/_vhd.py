"""New VHD files for ``create_vhd``: ``qemu-img create -f vpc`` (dynamic, exact size).

The file is ``<storage>/<fresh uuid>.vhd``; ``qemu-img info`` reads it back as ``vpc`` of
exactly the size asked (``force_size``: no rounding to a disk geometry). The original ran
``vhd-util create``; qemu-img writes the same format and is packaged everywhere. Bounded by
``timeout``; any failure (no qemu-img, a full disk, a bad size) is error 223 "IO error: ..."
and leaves no partial file.
"""

from __future__ import annotations

import os
import subprocess
import uuid as uuidlib

from xen.xenmgr._errors import error, plain

__all__ = ["MAX_VHD_MB", "create_vhd"]

MAX_VHD_MB = 2040 * 1024  # the VHD format's limit (2040 GiB)


def create_vhd(storage_dir: str, size_mb: int, *, timeout: float = 60.0) -> str:
    """Create a VHD of ``size_mb`` MiB under ``storage_dir``; its path."""
    if not 0 < size_mb <= MAX_VHD_MB:
        raise plain(f"create_vhd: size {size_mb} MiB is not between 1 and {MAX_VHD_MB}")
    try:
        os.makedirs(storage_dir, exist_ok=True)
    except OSError as exc:
        raise error(223, f"{storage_dir}: {exc.strerror or exc}") from None
    path = os.path.join(storage_dir, f"{uuidlib.uuid4()}.vhd")
    argv = ["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on",
            path, f"{size_mb}M"]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _remove(path)
        raise error(223, f"qemu-img: {exc}") from None
    if done.returncode != 0:
        _remove(path)
        raise error(223, f"qemu-img: {done.stderr.strip() or f'exit {done.returncode}'}")
    return path


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
