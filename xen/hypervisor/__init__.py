"""Hypervisor backends of the `xen.backend.Hypervisor` interface.

`SimBackend` talks to the simulated hypervisor's unix socket (`xen.sim`); the ``xc`` backend
(libxenctrl through cffi) lives in `xen.xc` so that cffi is imported only there.
`open_backend(name, ...)` picks one by name. See docs/hypervisor.md.
"""

from __future__ import annotations

from xen.hypervisor._open import BACKEND_NAMES, open_backend
from xen.hypervisor._sim import SimBackend

__all__ = ["BACKEND_NAMES", "SimBackend", "open_backend"]
