"""`HypervisorActor`: the "hypervisor" child of the "xen" supervisor; it owns the backend.

It opens the backend at start (``sim``: the simulated host's socket; ``xc``: libxenctrl) and
publishes the thread-safe backend (``actors.service("/xen/hypervisor", Hypervisor)``, resolved
by name at each use). Every ``health_interval`` seconds it
asks the hypervisor for its version; if the hypervisor cannot be reached the actor crashes, so
its supervisor restarts it (and, under ``rest_for_one``, the children after it). On stop the
backend is closed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from actors import Actor, handles
from xen.xenops import open_backend

if TYPE_CHECKING:
    from xen.hypervisor import Hypervisor

__all__ = ["HypervisorActor"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Health:
    """Time to check that the hypervisor still answers."""


class HypervisorActor(Actor):
    """Owns the hypervisor backend (see the module docstring)."""

    def __init__(self, backend: str = "sim", socket_path: str | None = None,
                 timeout: float = 5.0, health_interval: float = 2.0) -> None:
        super().__init__()
        self.kind = backend
        self.socket_path = socket_path
        self.timeout = timeout
        self.health_interval = health_interval
        self._backend: Hypervisor | None = None

    @property
    def backend(self) -> Hypervisor:
        """The open backend (thread-safe)."""
        if self._backend is None:
            raise RuntimeError("the hypervisor backend is not open")
        return self._backend

    def on_start(self) -> None:
        """Open the backend and check that it answers."""
        self._backend = open_backend(self.kind, socket_path=self.socket_path,
                                     timeout=self.timeout)
        version = self._backend.version()
        logger.info("hypervisor %s backend: Xen %s", self.kind, version)
        if self.health_interval > 0:
            self.send_every(self.health_interval, _Health())

    @handles(_Health)
    def _health(self, _msg: _Health) -> None:
        self.backend.version()  # raises Unavailable when the hypervisor is gone: a crash

    def published(self) -> Hypervisor | None:
        """The open backend, for ``actors.service(name, Hypervisor)``."""
        return self._backend

    def snapshot(self) -> dict[str, object]:
        """Which backend, for inspection."""
        return {"backend": self.kind, "socket": self.socket_path}

    def _close(self) -> None:
        if self._backend is not None:
            try:
                self._backend.close()
            finally:
                self._backend = None

    def on_stop(self) -> None:
        """Close the backend."""
        self._close()

    def on_failure(self, *_exc: object) -> None:
        """Close the backend after a crash or a kill."""
        self._close()

    on_killed = on_failure
