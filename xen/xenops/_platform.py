"""Choosing a hypervisor backend by name: ``sim`` (a socket path) or ``xc`` (this host's Xen).

`open_backend` is what a command line's ``--backend`` option calls. ``xc`` is imported only
when asked for, so that nothing loads cffi or libxenctrl on a host that runs the simulator.
Failures: an unknown name or a missing socket path raise ValueError; the backends' own errors
(`Unavailable` when there is no Xen) pass through.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from xen.hypervisor import SimBackend

if TYPE_CHECKING:
    from xen.hypervisor import Hypervisor

__all__ = ["BACKEND_NAMES", "open_backend"]

BACKEND_NAMES = ("sim", "xc")


def open_backend(
    name: str, *, socket_path: str | os.PathLike[str] | None = None, timeout: float = 5.0
) -> Hypervisor:
    """The backend ``name``: ``sim`` needs ``socket_path``; ``xc`` opens libxenctrl."""
    if name == "sim":
        if socket_path is None:
            raise ValueError("the sim backend needs the simulated hypervisor's socket path")
        return SimBackend(socket_path, timeout=timeout)
    if name == "xc":
        from xen.xc import XcBackend

        return XcBackend()
    raise ValueError(f"unknown hypervisor backend {name!r} (expected one of {BACKEND_NAMES})")
