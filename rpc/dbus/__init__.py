"""DBus: connections, the object export framework, services, the private bus, caller identity.

Public API::

    BusConnection                         # a bus connection with a reader thread
    ObjectTable, Call, DEFERRED           # exporting objects from the interface model
    dbus_method, dbus_getter, dbus_setter # marking handlers
    dbus_all_getter                       # a bulk getter: GetAll of an interface in one call
    ActorDispatcher, PoolDispatcher       # where handlers run
    refuse_unavailable                    # answer "service unavailable" (restarting actor)
    BusService, NameTaken                 # a supervised service actor
    BusDaemon, start_bus, bus_config      # the private dbus-daemon
    RemoteObject                          # calling methods and properties of a remote object
    CallerIdentity, Identity, caller_identity   # unique bus name -> domid
    DBusError, CallTimeout, ConnectionLost and the standard error names
    resolve_address                       # which bus to use
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from rpc.dbus._address import (
        SYSTEM_BUS,
        address_file,
        resolve_address,
        socket_path,
    )
    from rpc.dbus._client import (
        RemoteObject,
    )
    from rpc.dbus._connection import (
        DO_NOT_QUEUE,
        PRIMARY_OWNER,
        BusConnection,
    )
    from rpc.dbus._daemon import (
        DEFAULT_OWN_PREFIXES,
        BusDaemon,
        BusDaemonError,
        bus_config,
        start_bus,
    )
    from rpc.dbus._dispatch import (
        ActorDispatcher,
        DBusJob,
        PoolDispatcher,
        refuse_unavailable,
    )
    from rpc.dbus._errors import (
        ACCESS_DENIED,
        FAILED,
        INVALID_ARGS,
        INVALID_SIGNATURE,
        NAME_HAS_NO_OWNER,
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
        dbus_all_getter,
        dbus_getter,
        dbus_method,
        dbus_setter,
    )
    from rpc.dbus._identity import (
        IDENTITY_INTERFACE,
        IDENTITY_NAME,
        IDENTITY_PATH,
        CallerIdentity,
        Identity,
        IdentityService,
        caller_identity,
    )
    from rpc.dbus._messages import (
        error_reply,
        method_call,
        method_return,
        no_reply_expected,
        signal,
    )
    from rpc.dbus._service import (
        BusService,
        NameTaken,
    )

__all__ = [
    "ACCESS_DENIED",
    "DEFAULT_OWN_PREFIXES",
    "DEFERRED",
    "DO_NOT_QUEUE",
    "FAILED",
    "IDENTITY_INTERFACE",
    "IDENTITY_NAME",
    "IDENTITY_PATH",
    "INVALID_ARGS",
    "INVALID_SIGNATURE",
    "NAME_HAS_NO_OWNER",
    "NOT_SUPPORTED",
    "PRIMARY_OWNER",
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
    "Identity",
    "IdentityService",
    "NameTaken",
    "ObjectTable",
    "PoolDispatcher",
    "RemoteObject",
    "address_file",
    "bus_config",
    "caller_identity",
    "dbus_all_getter",
    "dbus_getter",
    "dbus_method",
    "dbus_setter",
    "error_reply",
    "method_call",
    "method_return",
    "no_reply_expected",
    "refuse_unavailable",
    "resolve_address",
    "signal",
    "socket_path",
    "start_bus",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "ACCESS_DENIED": "rpc.dbus._errors",
    "ActorDispatcher": "rpc.dbus._dispatch",
    "BusConnection": "rpc.dbus._connection",
    "BusDaemon": "rpc.dbus._daemon",
    "BusDaemonError": "rpc.dbus._daemon",
    "BusService": "rpc.dbus._service",
    "Call": "rpc.dbus._export",
    "CallTimeout": "rpc.dbus._errors",
    "CallerIdentity": "rpc.dbus._identity",
    "Identity": "rpc.dbus._identity",
    "ConnectionLost": "rpc.dbus._errors",
    "DBusError": "rpc.dbus._errors",
    "DBusJob": "rpc.dbus._dispatch",
    "DEFAULT_OWN_PREFIXES": "rpc.dbus._daemon",
    "DEFERRED": "rpc.dbus._export",
    "DO_NOT_QUEUE": "rpc.dbus._connection",
    "Dispatcher": "rpc.dbus._export",
    "ExportedObject": "rpc.dbus._export",
    "FAILED": "rpc.dbus._errors",
    "IDENTITY_INTERFACE": "rpc.dbus._identity",
    "IDENTITY_NAME": "rpc.dbus._identity",
    "IDENTITY_PATH": "rpc.dbus._identity",
    "INVALID_ARGS": "rpc.dbus._errors",
    "INVALID_SIGNATURE": "rpc.dbus._errors",
    "IdentityService": "rpc.dbus._identity",
    "NAME_HAS_NO_OWNER": "rpc.dbus._errors",
    "NOT_SUPPORTED": "rpc.dbus._errors",
    "NameTaken": "rpc.dbus._service",
    "ObjectTable": "rpc.dbus._export",
    "PRIMARY_OWNER": "rpc.dbus._connection",
    "PROPERTY_READ_ONLY": "rpc.dbus._errors",
    "PoolDispatcher": "rpc.dbus._dispatch",
    "refuse_unavailable": "rpc.dbus._dispatch",
    "RemoteObject": "rpc.dbus._client",
    "SERVICE_UNKNOWN": "rpc.dbus._errors",
    "SYSTEM_BUS": "rpc.dbus._address",
    "UNKNOWN_INTERFACE": "rpc.dbus._errors",
    "UNKNOWN_METHOD": "rpc.dbus._errors",
    "UNKNOWN_OBJECT": "rpc.dbus._errors",
    "UNKNOWN_PROPERTY": "rpc.dbus._errors",
    "address_file": "rpc.dbus._address",
    "bus_config": "rpc.dbus._daemon",
    "caller_identity": "rpc.dbus._identity",
    "dbus_all_getter": "rpc.dbus._export",
    "dbus_getter": "rpc.dbus._export",
    "dbus_method": "rpc.dbus._export",
    "dbus_setter": "rpc.dbus._export",
    "error_reply": "rpc.dbus._messages",
    "method_call": "rpc.dbus._messages",
    "method_return": "rpc.dbus._messages",
    "no_reply_expected": "rpc.dbus._messages",
    "resolve_address": "rpc.dbus._address",
    "signal": "rpc.dbus._messages",
    "socket_path": "rpc.dbus._address",
    "start_bus": "rpc.dbus._daemon",
})
