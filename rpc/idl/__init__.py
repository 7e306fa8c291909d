"""Interface definitions: our XML interface files, the model they load into, and renderers.

The ``*.xml`` files beside this module declare the OpenXT DBus interfaces with the original
names and signatures (see docs/idl.md). `load_package()` reads them all (once, cached);
`parse_node()` reads any introspection XML; `render_introspection()` produces what
``Introspect`` returns; `parse_signature()` and friends validate DBus signatures.
Errors: `IdlError` for a bad document, `SignatureError` for a bad signature (both `ValueError`).
"""

from __future__ import annotations

from rpc.idl._loader import (
    MAX_XML_BYTES,
    TP_NAMESPACE,
    IdlError,
    load_directory,
    load_file,
    load_package,
    package_interface,
    package_interfaces,
    parse_node,
)
from rpc.idl._model import (
    Access,
    Annotation,
    Arg,
    Direction,
    Enum,
    EnumValue,
    Interface,
    Method,
    Node,
    Property,
    Signal,
)
from rpc.idl._render import DOCTYPE, render_idl, render_introspection
from rpc.idl._signature import (
    BASIC_CODES,
    DBusType,
    SignatureError,
    is_valid_signature,
    parse_signature,
    parse_single_type,
    split_signature,
)
from rpc.idl._standard import INTROSPECTABLE, PEER, PROPERTIES, STANDARD_INTERFACES

__all__ = [
    "BASIC_CODES",
    "DOCTYPE",
    "INTROSPECTABLE",
    "MAX_XML_BYTES",
    "PEER",
    "PROPERTIES",
    "STANDARD_INTERFACES",
    "TP_NAMESPACE",
    "Access",
    "Annotation",
    "Arg",
    "DBusType",
    "Direction",
    "Enum",
    "EnumValue",
    "IdlError",
    "Interface",
    "Method",
    "Node",
    "Property",
    "Signal",
    "SignatureError",
    "is_valid_signature",
    "load_directory",
    "load_file",
    "load_package",
    "package_interface",
    "package_interfaces",
    "parse_node",
    "parse_signature",
    "parse_single_type",
    "render_idl",
    "render_introspection",
    "split_signature",
]
