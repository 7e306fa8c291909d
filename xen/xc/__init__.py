"""The ``xc`` hypervisor backend: libxenctrl 4.17 through cffi (ABI mode).

`XcBackend()` opens this host's Xen and implements `xen.hypervisor.Hypervisor`; without Xen it
raises `xen.hypervisor.Unavailable` naming /dev/xen/privcmd. `XcBackend.build_guest` loads a
PV guest (`GuestImage`) into a created domain with libxenguest and returns its `GuestRings`.
This package is the only one that imports cffi (on first use of `XcBackend`: the C
declarations in `_cdefs` are pure data). See docs/hypervisor.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from xen.xc._guest import (
        GuestImage,
        GuestRings,
    )
    from xen.xc._xc import (
        XcBackend,
        ffi,
    )

__all__ = [
    "GuestImage",
    "GuestRings",
    "XcBackend",
    "ffi",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "GuestImage": "xen.xc._guest",
    "GuestRings": "xen.xc._guest",
    "XcBackend": "xen.xc._xc",
    "ffi": "xen.xc._xc",
})
