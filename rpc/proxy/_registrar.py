"""Where a proxy registers the identity of each forwarded connection (docs/dbus.md).

The dom0 bus is a stock dbus-daemon: it cannot tell services which domain a connection speaks
for, and the proxy's own bus connections authenticate as the proxy's uid (root), which services
would take for dom0. So before the proxy forwards any message of a client, it registers the
unique name of that client's bus connection with the client's domid, VM uuid and stubdomain
flag, and unregisters it when the client goes. A registration that fails refuses the client.

* :class:`LocalRegistrar`: the process-wide :class:`~rpc.dbus.CallerIdentity` (the proxy runs
  in ``oxt-supervisor`` beside dbd and xenmgr, and the tree's identity service exports the
  same registry on the bus).
* :class:`BusRegistrar`: the identity service on the bus (``org.openxt.toolstack.identity``,
  ``register_domain``), for a standalone ``rpc-proxy`` process; bounded by ``timeout``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from rpc.dbus import (
    IDENTITY_INTERFACE,
    IDENTITY_NAME,
    IDENTITY_PATH,
    BusConnection,
    CallerIdentity,
    RemoteObject,
    caller_identity,
)

__all__ = ["BusRegistrar", "IdentityRegistrar", "LocalRegistrar"]

log = logging.getLogger("rpc.proxy")


class IdentityRegistrar(Protocol):
    """Records which domain a forwarded bus connection speaks for."""

    def register(self, unique_name: str, domid: int, uuid: str, stubdom: bool) -> None:
        """Record it; raises when it cannot (the client is then refused)."""

    def unregister(self, unique_name: str) -> None:
        """Forget it (never raises)."""


class LocalRegistrar:
    """The in-process registry (see the module docstring)."""

    def __init__(self, registry: CallerIdentity | None = None) -> None:
        self.registry = registry if registry is not None else caller_identity

    def register(self, unique_name: str, domid: int, uuid: str, stubdom: bool) -> None:
        """Record it in the registry."""
        self.registry.register(unique_name, domid, uuid, stubdom)

    def unregister(self, unique_name: str) -> None:
        """Forget it."""
        self.registry.unregister(unique_name)


class BusRegistrar:
    """The identity service on the bus (see the module docstring)."""

    def __init__(self, connection: Callable[[], BusConnection], timeout: float = 5.0) -> None:
        self._connection = connection
        self.timeout = timeout

    def _remote(self) -> RemoteObject:
        return RemoteObject(self._connection(), IDENTITY_NAME, IDENTITY_PATH,
                            timeout=self.timeout)

    def register(self, unique_name: str, domid: int, uuid: str, stubdom: bool) -> None:
        """Call ``register_domain``; raises DBusError, CallTimeout or ConnectionLost."""
        self._remote().call(IDENTITY_INTERFACE, "register_domain", "sisb", unique_name, domid,
                            uuid, stubdom)

    def unregister(self, unique_name: str) -> None:
        """Call ``unregister`` (the service also forgets names that leave the bus)."""
        try:
            self._remote().call(IDENTITY_INTERFACE, "unregister", "s", unique_name)
        except Exception as exc:
            log.debug("unregister %s: %s", unique_name, exc)
