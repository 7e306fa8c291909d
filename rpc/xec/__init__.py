"""xec and xec-vm: command-line DBus clients compatible with OpenXT's.

This package holds the pure parts: the command-line parser and command choice (`_options`),
the argument grammar that turns strings into typed DBus values (`_literal`), the output
formats (`_format`) and Haskell's ``show`` for doubles and strings (`_haskell`). None of them
does I/O; the console scripts that talk to the bus build on them. Errors: `UsageError` for a
bad command line, `LiteralError` for an argument that does not parse (both `ValueError`).
Names are imported lazily from the private modules on first use, so that ``xec -h`` does not
pay for the XML loader.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not `typing`'s, nor `actors.lazy_exports`: xec's start-up pays for both
if TYPE_CHECKING:
    from rpc.xec._format import (
        VM_TABLE_RULE,
        VmRow,
        format_error,
        format_getall,
        format_interface_names,
        format_introspection,
        format_method_names,
        format_property_names,
        format_reply,
        format_value,
        format_vm_table,
        show_signature,
    )
    from rpc.xec._haskell import (
        show_bytes,
        show_double,
        show_string,
    )
    from rpc.xec._literal import (
        LiteralError,
        parse_argument,
        parse_arguments,
    )
    from rpc.xec._options import (
        DEFAULT_OBJECT,
        DEFAULT_SERVICE,
        XEC_OPTIONS,
        XEC_USAGE,
        XEC_VM_OPTIONS,
        XEC_VM_USAGE,
        Action,
        Command,
        Location,
        OptionSpec,
        ParsedArgs,
        ParsedOption,
        UsageError,
        VmSelector,
        XecRequest,
        XecVmRequest,
        parse_argv,
        parse_xec_argv,
        parse_xec_vm_argv,
        xec_vm_forward_argv,
    )

__all__ = [
    "DEFAULT_OBJECT",
    "DEFAULT_SERVICE",
    "VM_TABLE_RULE",
    "XEC_OPTIONS",
    "XEC_USAGE",
    "XEC_VM_OPTIONS",
    "XEC_VM_USAGE",
    "Action",
    "Command",
    "LiteralError",
    "Location",
    "OptionSpec",
    "ParsedArgs",
    "ParsedOption",
    "UsageError",
    "VmRow",
    "VmSelector",
    "XecRequest",
    "XecVmRequest",
    "format_error",
    "format_getall",
    "format_interface_names",
    "format_introspection",
    "format_method_names",
    "format_property_names",
    "format_reply",
    "format_value",
    "format_vm_table",
    "parse_argument",
    "parse_arguments",
    "parse_argv",
    "parse_xec_argv",
    "parse_xec_vm_argv",
    "show_bytes",
    "show_double",
    "show_signature",
    "show_string",
    "xec_vm_forward_argv",
]

# name -> defining module; imported on first use so that a command line tool pays only
# for the modules it touches (xec must start fast).
_SOURCES: dict[str, str] = {
    "DEFAULT_OBJECT": "rpc.xec._options",
    "DEFAULT_SERVICE": "rpc.xec._options",
    "XEC_OPTIONS": "rpc.xec._options",
    "XEC_USAGE": "rpc.xec._options",
    "XEC_VM_OPTIONS": "rpc.xec._options",
    "XEC_VM_USAGE": "rpc.xec._options",
    "Action": "rpc.xec._options",
    "Command": "rpc.xec._options",
    "Location": "rpc.xec._options",
    "OptionSpec": "rpc.xec._options",
    "ParsedArgs": "rpc.xec._options",
    "ParsedOption": "rpc.xec._options",
    "UsageError": "rpc.xec._options",
    "VmSelector": "rpc.xec._options",
    "XecRequest": "rpc.xec._options",
    "XecVmRequest": "rpc.xec._options",
    "parse_argv": "rpc.xec._options",
    "parse_xec_argv": "rpc.xec._options",
    "parse_xec_vm_argv": "rpc.xec._options",
    "xec_vm_forward_argv": "rpc.xec._options",
    "LiteralError": "rpc.xec._literal",
    "parse_argument": "rpc.xec._literal",
    "parse_arguments": "rpc.xec._literal",
    "VM_TABLE_RULE": "rpc.xec._format",
    "VmRow": "rpc.xec._format",
    "format_error": "rpc.xec._format",
    "format_getall": "rpc.xec._format",
    "format_interface_names": "rpc.xec._format",
    "format_introspection": "rpc.xec._format",
    "format_method_names": "rpc.xec._format",
    "format_property_names": "rpc.xec._format",
    "format_reply": "rpc.xec._format",
    "format_value": "rpc.xec._format",
    "format_vm_table": "rpc.xec._format",
    "show_signature": "rpc.xec._format",
    "show_bytes": "rpc.xec._haskell",
    "show_double": "rpc.xec._haskell",
    "show_string": "rpc.xec._haskell",
}


def __getattr__(name: str) -> object:
    """A public name, imported from its module on first use (as `actors.lazy_exports`)."""
    try:
        module = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names."""
    return sorted(_SOURCES)
