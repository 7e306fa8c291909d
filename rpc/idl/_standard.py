"""The standard freedesktop interfaces every exported object may list in its introspection.

`org.freedesktop.DBus.Introspectable`, `org.freedesktop.DBus.Properties` (with
``PropertiesChanged``) and `org.freedesktop.DBus.Peer`, as model values, keyed by name in
`STANDARD_INTERFACES`. Pure data; nothing here can fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from rpc.idl._model import Arg, Direction, Interface, Method, Signal

__all__ = ["INTROSPECTABLE", "PEER", "PROPERTIES", "STANDARD_INTERFACES"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_IN = Direction.IN
_OUT = Direction.OUT

INTROSPECTABLE = Interface(
    name="org.freedesktop.DBus.Introspectable",
    methods=(Method("Introspect", (Arg("xml_data", "s", _OUT),)),),
)

PROPERTIES = Interface(
    name="org.freedesktop.DBus.Properties",
    methods=(
        Method(
            "Get",
            (
                Arg("interface_name", "s", _IN),
                Arg("property_name", "s", _IN),
                Arg("value", "v", _OUT),
            ),
        ),
        Method("GetAll", (Arg("interface_name", "s", _IN), Arg("props", "a{sv}", _OUT))),
        Method(
            "Set",
            (
                Arg("interface_name", "s", _IN),
                Arg("property_name", "s", _IN),
                Arg("value", "v", _IN),
            ),
        ),
    ),
    signals=(
        Signal(
            "PropertiesChanged",
            (
                Arg("interface_name", "s", _OUT),
                Arg("changed_properties", "a{sv}", _OUT),
                Arg("invalidated_properties", "as", _OUT),
            ),
        ),
    ),
)

PEER = Interface(
    name="org.freedesktop.DBus.Peer",
    methods=(
        Method("Ping"),
        Method("GetMachineId", (Arg("machine_uuid", "s", _OUT),)),
    ),
)

#: Name -> interface, in the order Introspectable, Properties, Peer.
STANDARD_INTERFACES: Mapping[str, Interface] = MappingProxyType(
    {i.name: i for i in (INTROSPECTABLE, PROPERTIES, PEER)}
)
