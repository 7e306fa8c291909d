"""Calling a remote object: methods, properties, introspection, each with a timeout."""

from __future__ import annotations

from typing import Any

from rpc.dbus._connection import BusConnection
from rpc.dbus._messages import method_call
from rpc.idl import Node, parse_node

__all__ = ["RemoteObject"]

PROPERTIES = "org.freedesktop.DBus.Properties"


class RemoteObject:
    """An object ``path`` of ``service`` reached through ``conn``."""

    def __init__(self, conn: BusConnection, service: str, path: str = "/",
                 timeout: float = 10.0) -> None:
        self.conn = conn
        self.service = service
        self.path = path
        self.timeout = timeout

    def call(self, interface: str | None, member: str, signature: str = "", *args: Any,
             timeout: float | None = None) -> tuple[Any, ...]:
        """Call ``interface.member``; returns the reply body. Raises DBusError."""
        msg = method_call(self.service, self.path, interface, member, signature, tuple(args))
        return tuple(self.conn.call(msg, timeout or self.timeout).body)

    def get(self, interface: str, prop: str, timeout: float | None = None) -> Any:
        """The value of a property (unwrapped from its variant)."""
        (variant,) = self.call(PROPERTIES, "Get", "ss", interface, prop, timeout=timeout)
        return variant[1]

    def set(self, interface: str, prop: str, signature: str, value: Any,
            timeout: float | None = None) -> None:
        """Set a property to ``value`` of type ``signature``."""
        self.call(PROPERTIES, "Set", "ssv", interface, prop, (signature, value), timeout=timeout)

    def get_all(self, interface: str, timeout: float | None = None) -> dict[str, Any]:
        """Every readable property of ``interface``, unwrapped."""
        (values,) = self.call(PROPERTIES, "GetAll", "s", interface, timeout=timeout)
        return {name: variant[1] for name, variant in values.items()}

    def introspect(self, timeout: float | None = None) -> Node:
        """The object's introspection data as an interface model."""
        (xml,) = self.call("org.freedesktop.DBus.Introspectable", "Introspect",
                           timeout=timeout)
        return parse_node(xml.encode(), source=f"{self.service}{self.path}", strict=False)
