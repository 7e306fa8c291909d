"""DBus: connections, the object export framework, services, the private bus, caller identity.

Public API::

    BusConnection                         # a bus connection with a reader thread
    ObjectTable, Call, DEFERRED           # exporting objects from the interface model
    dbus_method, dbus_getter, dbus_setter # marking handlers
    ActorDispatcher, PoolDispatcher       # where handlers run
    BusService, NameTaken                 # a supervised service actor
    BusDaemon, start_bus, bus_config      # the private dbus-daemon
    RemoteObject                          # calling methods and properties of a remote object
    CallerIdentity, caller_identity       # unique bus name -> domid
    DBusError, CallTimeout, ConnectionLost and the standard error names
    resolve_address                       # which bus to use
"""

from __future__ import annotations

from rpc.dbus._address import SYSTEM_BUS, address_file, resolve_address, socket_path
from rpc.dbus._client import RemoteObject
from rpc.dbus._connection import BusConnection
from rpc.dbus._daemon import DEFAULT_OWN_PREFIXES, BusDaemon, BusDaemonError, bus_config, start_bus
from rpc.dbus._dispatch import ActorDispatcher, DBusJob, PoolDispatcher
from rpc.dbus._errors import (
    ACCESS_DENIED,
    FAILED,
    INVALID_ARGS,
    INVALID_SIGNATURE,
    NOT_SUPPORTED,
    PROPERTY_READ_ONLY,
    SERVICE_UNKNOWN,
    UNKNOWN_INTERFACE,
    UNKNOWN_METHOD,
    UNKNOWN_OBJECT,
    UNKNOWN_PROPERTY,
    CallTimeout,
    ConnectionLost,
    DBusError,
)
from rpc.dbus._export import (
    DEFERRED,
    Call,
    Dispatcher,
    ExportedObject,
    ObjectTable,
    dbus_getter,
    dbus_method,
    dbus_setter,
)
from rpc.dbus._identity import CallerIdentity, IdentityService, caller_identity
from rpc.dbus._service import BusService, NameTaken

__all__ = [
    "ACCESS_DENIED",
    "DEFAULT_OWN_PREFIXES",
    "DEFERRED",
    "FAILED",
    "INVALID_ARGS",
    "INVALID_SIGNATURE",
    "NOT_SUPPORTED",
    "PROPERTY_READ_ONLY",
    "SERVICE_UNKNOWN",
    "SYSTEM_BUS",
    "UNKNOWN_INTERFACE",
    "UNKNOWN_METHOD",
    "UNKNOWN_OBJECT",
    "UNKNOWN_PROPERTY",
    "ActorDispatcher",
    "BusConnection",
    "BusDaemon",
    "BusDaemonError",
    "BusService",
    "Call",
    "CallTimeout",
    "CallerIdentity",
    "ConnectionLost",
    "DBusError",
    "DBusJob",
    "Dispatcher",
    "ExportedObject",
    "IdentityService",
    "NameTaken",
    "ObjectTable",
    "PoolDispatcher",
    "RemoteObject",
    "address_file",
    "bus_config",
    "caller_identity",
    "dbus_getter",
    "dbus_method",
    "dbus_setter",
    "resolve_address",
    "socket_path",
    "start_bus",
]
