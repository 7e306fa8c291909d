"""The simulated Xen host: the pieces a real dom0 has outside the toolstack.

`XenstoredServer` is a xenstored on a unix socket (run it alone with
``python -m xen.sim.xenstored --socket PATH``).
"""

from __future__ import annotations

from xen.sim._xenstored import XenstoredServer

__all__ = ["XenstoredServer"]
