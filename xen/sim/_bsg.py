"""The simulated device models' side of xenmgr's CD drive assignment (the original's bsg
passthrough), shared by the dom0 device model (``qemu_dm``) and a stub domain's (the dm-agent).

:func:`answer_bsg_requests` looks at ``/local/domain/<guest>/bsgdev-req/<a_b_c_d>/``:
``req-assign`` -> ``/local/domain/<guest>/bsgdev/<a_b_c_d>/lock`` = ``1`` (the guest holds the
drive), ``req-eject`` -> the lock removed; each request node is removed once done (xenmgr waits
for that). ``gate(write)`` runs each write as the device model's domain would (a stub domain's
only while it runs); a refused write leaves the request for the next look.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xen.xenstore import XenstoreClient

__all__ = ["answer_bsg_requests", "bsg_requests_path"]

log = logging.getLogger("xen.sim.bsg")

Gate = Callable[[Callable[[], object]], bool]


def _direct(write: Callable[[], object]) -> bool:
    write()
    return True


def bsg_requests_path(guest: int) -> str:
    """Where xenmgr writes its requests for ``guest``'s drives (the path to watch)."""
    return f"/local/domain/{guest}/bsgdev-req"


def answer_bsg_requests(client: XenstoreClient, guest: int, gate: Gate = _direct) -> None:
    """Answer the pending requests (see the module docstring)."""
    root = bsg_requests_path(guest)
    if not client.exists(root):
        return
    for dev in client.directory(root):
        req = f"{root}/{dev}"
        lock = f"/local/domain/{guest}/bsgdev/{dev}/lock"
        if client.try_read(f"{req}/req-assign") is not None:
            def assign(req: str = req, lock: str = lock) -> None:
                client.write(lock, "1")
                client.rm(f"{req}/req-assign")
            if gate(assign):
                log.info("domain %d: CD drive %s assigned", guest, dev)
        if client.try_read(f"{req}/req-eject") is not None:
            def release(req: str = req, lock: str = lock) -> None:
                if client.exists(lock):
                    client.rm(lock)
                client.rm(f"{req}/req-eject")
            if gate(release):
                log.info("domain %d: CD drive %s released", guest, dev)
