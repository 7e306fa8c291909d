"""Interface definitions: our XML interface files, the model they load into, and renderers.

The ``*.xml`` files beside this module declare the OpenXT DBus interfaces with the original
names and signatures (see docs/idl.md). `load_package()` reads them all (once, cached);
`parse_node()` reads any introspection XML; `render_introspection()` produces what
``Introspect`` returns; `parse_signature()` and friends validate DBus signatures.
Errors: `IdlError` for a bad document, `SignatureError` for a bad signature (both `ValueError`).
Names are imported lazily from the private modules on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from rpc.idl._loader import (
        MAX_XML_BYTES,
        IdlError,
        load_directory,
        load_file,
        load_package,
        package_interface,
        package_interfaces,
        parse_node,
    )
    from rpc.idl._model import (
        TP_NAMESPACE,
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
    from rpc.idl._render import (
        DOCTYPE,
        render_idl,
        render_introspection,
    )
    from rpc.idl._signature import (
        BASIC_CODES,
        MAX_ARRAY_DEPTH,
        MAX_SIGNATURE_LENGTH,
        MAX_STRUCT_DEPTH,
        DBusType,
        SignatureError,
        is_valid_signature,
        parse_signature,
        parse_single_type,
        split_signature,
    )
    from rpc.idl._standard import (
        INTROSPECTABLE,
        PEER,
        PROPERTIES,
        STANDARD_INTERFACES,
    )

__all__ = [
    "BASIC_CODES",
    "DOCTYPE",
    "INTROSPECTABLE",
    "MAX_ARRAY_DEPTH",
    "MAX_SIGNATURE_LENGTH",
    "MAX_STRUCT_DEPTH",
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

# name -> defining module; imported on first use so that a command line tool pays only
# for the modules it touches (xec must start fast).
_SOURCES: dict[str, str] = {
    "Access": "rpc.idl._model",
    "Annotation": "rpc.idl._model",
    "Arg": "rpc.idl._model",
    "Direction": "rpc.idl._model",
    "Enum": "rpc.idl._model",
    "EnumValue": "rpc.idl._model",
    "Interface": "rpc.idl._model",
    "Method": "rpc.idl._model",
    "Node": "rpc.idl._model",
    "Property": "rpc.idl._model",
    "Signal": "rpc.idl._model",
    "BASIC_CODES": "rpc.idl._signature",
    "MAX_ARRAY_DEPTH": "rpc.idl._signature",
    "MAX_SIGNATURE_LENGTH": "rpc.idl._signature",
    "MAX_STRUCT_DEPTH": "rpc.idl._signature",
    "DBusType": "rpc.idl._signature",
    "SignatureError": "rpc.idl._signature",
    "is_valid_signature": "rpc.idl._signature",
    "parse_signature": "rpc.idl._signature",
    "parse_single_type": "rpc.idl._signature",
    "split_signature": "rpc.idl._signature",
    "MAX_XML_BYTES": "rpc.idl._loader",
    "TP_NAMESPACE": "rpc.idl._model",
    "IdlError": "rpc.idl._loader",
    "load_directory": "rpc.idl._loader",
    "load_file": "rpc.idl._loader",
    "load_package": "rpc.idl._loader",
    "package_interface": "rpc.idl._loader",
    "package_interfaces": "rpc.idl._loader",
    "parse_node": "rpc.idl._loader",
    "DOCTYPE": "rpc.idl._render",
    "render_idl": "rpc.idl._render",
    "render_introspection": "rpc.idl._render",
    "INTROSPECTABLE": "rpc.idl._standard",
    "PEER": "rpc.idl._standard",
    "PROPERTIES": "rpc.idl._standard",
    "STANDARD_INTERFACES": "rpc.idl._standard",
}


__getattr__, __dir__ = lazy_exports(__name__, _SOURCES)
