"""The ``xc`` hypervisor backend: libxenctrl 4.17 through cffi (ABI mode).

`XcBackend()` opens this host's Xen and implements `xen.backend.Hypervisor`; without Xen it
raises `xen.backend.Unavailable` naming /dev/xen/privcmd. This package is the only one that
imports cffi. See docs/hypervisor.md.
"""

from __future__ import annotations

from xen.xc._xc import XcBackend

__all__ = ["XcBackend"]
