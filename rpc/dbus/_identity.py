"""Caller identity on a stock dbus-daemon: which domain a bus connection speaks for.

OpenXT's patched dbus-daemon told services the domid of a caller (``GetConnectionDOMID``). A
stock daemon cannot. Here the proxies that accept connections from other domains know the domid
of every connection they forward and register its unique bus name in a
:class:`CallerIdentity`; services ask it with :meth:`CallerIdentity.identify`:

* a registered name -> its domid (and VM uuid);
* an unregistered name -> domain 0 only if the bus says the connection's uid is 0
  (``GetConnectionUnixUser``); anything else is refused with ``AccessDenied`` and a message
  naming the connection.

In one process, services use the process-wide :data:`caller_identity`. For services in other
processes, :class:`IdentityService` exports the registry on the bus as
``org.openxt.toolstack.identity`` (interface ``org.openxt.toolstack.CallerIdentity`` at
``/org/openxt/toolstack/identity``: ``register``, ``register_domain`` (with the stubdomain
flag), ``unregister``, ``get_domid``, ``get_identity``); only uid-0 connections may register.
Names are dropped when their connection leaves the bus (``NameOwnerChanged``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from jeepney.low_level import Message

from rpc.dbus._connection import BusConnection
from rpc.dbus._errors import ACCESS_DENIED, DBusError
from rpc.dbus._export import Call, dbus_method
from rpc.dbus._service import BusService
from rpc.idl import package_interface

__all__ = ["IDENTITY_INTERFACE", "IDENTITY_NAME", "IDENTITY_PATH", "CallerIdentity",
           "Identity", "IdentityService", "caller_identity"]

IDENTITY_NAME = "org.openxt.toolstack.identity"
IDENTITY_PATH = "/org/openxt/toolstack/identity"
IDENTITY_INTERFACE = "org.openxt.toolstack.CallerIdentity"


@dataclass(frozen=True, slots=True)
class Identity:
    """The domain a connection speaks for (``uuid`` is "" for dom0 or when unknown;
    ``stubdom``: the domain is a stubdomain, a device model's domain, not a VM)."""

    domid: int
    uuid: str = ""
    stubdom: bool = False


class CallerIdentity:
    """The registry of unique bus name -> :class:`Identity` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, Identity] = {}
        self._uids: dict[str, int] = {}

    def register(self, unique_name: str, domid: int, uuid: str = "",
                 stubdom: bool = False) -> None:
        """Record that ``unique_name`` carries calls from domain ``domid``."""
        if not unique_name.startswith(":"):
            raise ValueError(f"not a unique bus name: {unique_name!r}")
        if domid < 0:
            raise ValueError(f"bad domid {domid}")
        with self._lock:
            self._names[unique_name] = Identity(domid, uuid, stubdom)

    def unregister(self, unique_name: str) -> None:
        """Forget ``unique_name`` (when its connection closed)."""
        with self._lock:
            self._names.pop(unique_name, None)
            self._uids.pop(unique_name, None)

    def lookup(self, unique_name: str) -> Identity | None:
        """The registered identity, or None."""
        with self._lock:
            return self._names.get(unique_name)

    def identify(self, conn: BusConnection, sender: str, timeout: float = 5.0) -> Identity:
        """Who ``sender`` is (see the module docstring). Raises DBusError(AccessDenied)."""
        found = self.lookup(sender)
        if found is not None:
            return found
        with self._lock:
            uid = self._uids.get(sender)
        if uid is None:
            uid = conn.unix_user(sender, timeout)
            with self._lock:
                self._uids[sender] = uid
        if uid == 0:
            return Identity(0)
        raise DBusError(ACCESS_DENIED, f"caller {sender} (uid {uid}) is neither a connection "
                                       f"forwarded by a proxy nor uid 0")

    def domid_of(self, conn: BusConnection, sender: str, timeout: float = 5.0) -> int:
        """Shorthand for ``identify(...).domid``."""
        return self.identify(conn, sender, timeout).domid


caller_identity = CallerIdentity()
"""The process-wide registry."""

_NOC_RULE = ("type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
             "member='NameOwnerChanged'")


class IdentityService(BusService):
    """Exports a :class:`CallerIdentity` on the bus (see the module docstring)."""

    bus_names = (IDENTITY_NAME,)

    def __init__(self, address: str, registry: CallerIdentity | None = None) -> None:
        super().__init__(address)
        self.registry = registry or caller_identity

    def setup(self) -> None:
        """Export the registry and follow connections leaving the bus."""
        self.export(IDENTITY_PATH, [package_interface(IDENTITY_INTERFACE)])
        self.bus.on_signal = self._on_signal
        self.bus.add_match(_NOC_RULE)

    def _on_signal(self, msg: Message) -> None:
        body = tuple(msg.body)
        if len(body) == 3 and str(body[0]).startswith(":") and body[2] == "":
            self.registry.unregister(body[0])

    def _require_root(self, call: Call) -> None:
        if self.registry.identify(self.bus, call.sender).domid != 0 or \
                self.registry.lookup(call.sender) is not None:
            raise DBusError(ACCESS_DENIED, "only dom0 (uid 0) may change caller identities")

    @dbus_method(IDENTITY_INTERFACE, "register")
    def _register(self, call: Call, name: str, domid: int, uuid: str) -> None:
        self._require_root(call)
        try:
            self.registry.register(name, domid, uuid)
        except ValueError as exc:
            raise DBusError("org.freedesktop.DBus.Error.InvalidArgs", str(exc)) from None

    @dbus_method(IDENTITY_INTERFACE, "register_domain")
    def _register_domain(self, call: Call, name: str, domid: int, uuid: str,
                         stubdom: bool) -> None:
        self._require_root(call)
        try:
            self.registry.register(name, domid, uuid, stubdom)
        except ValueError as exc:
            raise DBusError("org.freedesktop.DBus.Error.InvalidArgs", str(exc)) from None

    @dbus_method(IDENTITY_INTERFACE, "unregister")
    def _unregister(self, call: Call, name: str) -> None:
        self._require_root(call)
        self.registry.unregister(name)

    @dbus_method(IDENTITY_INTERFACE, "get_domid")
    def _get_domid(self, _call: Call, name: str) -> int:
        return self.registry.identify(self.bus, name).domid

    @dbus_method(IDENTITY_INTERFACE, "get_identity")
    def _get_identity(self, _call: Call, name: str) -> tuple[int, str]:
        found = self.registry.identify(self.bus, name)
        return found.domid, found.uuid
