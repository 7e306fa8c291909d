"""The vocabulary of property bindings: where a DBus property of xenmgr gets its value.

A :class:`Binding` ties one property of one interface (as declared in the interface files) to
its source, one of:

* :class:`Stored` - a database key: its path (relative to the object's :class:`Scope`), the
  :class:`Codec` between the stored text and the DBus value, the default when the key is
  missing (reading never fails for a missing key), the values that remove the key instead of
  being written (``""`` for the hooks, ``auto`` for a nic's MAC...), and the original's
  special rules (a fallback key, the value forced by ``native-experience``, blanks stripped);
* :class:`Derived` - computed from database values by a named rule of ``_properties`` (the
  ``cd``, the VM's ``mac``, its ``wired-network``...), settable where the original was;
* :class:`Computed` - needs something only the service has (the domain's state, the
  hypervisor, files, the host's capabilities): ``needs`` names it; reading it here is an error;
* :class:`Fixed` - a constant the original answered (``use-networking-domain`` is true);
* :class:`Unsupported` - deliberately not provided, with the reason.

``guarded`` bindings refuse a new value when the VM's ``policies/modify-vm-settings`` is false
(error 202): the setters of ``com.citrix.xenclient.xenmgr.vm``, except ``wired-network`` and
``wireless-network``; ``...vm.unrestricted`` is never guarded. ``effects`` name what the
service must do besides writing (signals, hot-swaps, other VMs); every database change of a VM
also makes the service emit ``vm_config_changed``.

Pure data and codecs: no I/O. A codec raises :class:`~xen.xenmgr._codecs.SchemaError` for a
stored text that does not fit and ``ValueError`` with the reason for a new value that does not.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from typing import Literal, get_args

from xen.xenmgr._codecs import (
    SchemaError,
    decode_bool,
    decode_int,
    encode_bool,
)
from xen.xenmgr._schema import network_path

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "Binding",
    "Codec",
    "CodecKind",
    "Computed",
    "Derived",
    "Effect",
    "Fixed",
    "Scope",
    "Source",
    "Stored",
    "Unsupported",
    "Value",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

Value = str | bool | int | list[str] | dict[str, str]
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1  # the DBus properties' ints are int32


class Scope(enum.Enum):
    """What a Stored key's path is relative to."""

    VM = "vm"      # /vm/<uuid>
    DISK = "disk"  # /vm/<uuid>/config/disk/<disk id>
    NIC = "nic"    # /vm/<uuid>/config/nic/<nic node>
    HOST = "host"  # the database root (absolute paths)


class Effect(enum.Enum):
    """What the service does after a set, besides the database writes."""

    CONFIG_CHANGED = "emit config_changed on /"
    LANGUAGE_CHANGED = "emit language_changed on /"
    NAME_CHANGED = "emit vm_name_changed"
    TRANSFER_CHANGED = "emit vm_transfer_changed"
    SWITCHER_INFO = "rewrite the VM's switcher information in xenstore"
    SLOT_SWAP = "give the VM holding that slot this VM's old slot; tell the input daemon"
    NIC_HOTSWAP = "move the running VM's nic to the new network"
    CD_HOTSWAP = "change the medium of the running VM's CD drive"
    RPC_PROXY_RELOAD = "make the RPC proxy re-read its rules"
    NATIVE_EXCLUSIVE = "clear native-experience on every other guest VM"
    GPU_PLACEMENT = "store the GPU only if a configured GPU placement matches it"
    CD_AUTOLOCK = "lock or unlock the host's CD drives"
    PCM_CONFIG = "regenerate the host's sound configuration"
    HOST_SERVICE = "restart or stop the host service the property controls"
    UI_READY = "record that the UI is ready (xenstore) and switch to the graphics fallback"


_JOINED_SEP = ";"
CodecKind = Literal["string", "bool", "not-bool", "int", "enum", "joined", "ms", "network"]


@dataclass(frozen=True, slots=True)
class Codec:
    """Stored text <-> DBus value. ``kind``: string, bool, not-bool (stored negated), int,
    enum, joined (a list of children shown as one ';'-joined string), ms (seconds stored as a
    decimal fraction, shown as integer milliseconds), network (legacy names mapped)."""

    kind: CodecKind
    allowed: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()  # value -> what is stored/shown instead
    pattern: str | None = None
    lenient: str | None = None  # an unknown stored value reads as this one
    read_any: bool = False      # an unknown stored value reads as it is (only sets are checked)

    def __post_init__(self) -> None:
        if self.kind not in get_args(CodecKind):
            raise ValueError(f"unknown codec kind {self.kind!r}")
        if (self.kind == "enum") != bool(self.allowed):
            raise ValueError("allowed values go with an enum codec only")

    def decode(self, key: str, text: str) -> Value:
        """The DBus value of stored ``text`` (``key`` names it in errors)."""
        kind = self.kind
        if kind == "bool":
            return decode_bool(key, text)
        if kind == "not-bool":
            return not decode_bool(key, text)
        if kind == "int":
            value = decode_int(key, text)
            if not INT32_MIN <= value <= INT32_MAX:
                raise SchemaError(key, text, "is out of range for the property")
            return value
        if kind == "ms":
            try:
                seconds = float(text)
            except ValueError:
                raise SchemaError(key, text, "is not a number of seconds") from None
            if not math.isfinite(seconds) or abs(seconds) > INT32_MAX / 1000:
                raise SchemaError(key, text, "is out of range")
            return round(seconds * 1000)
        text = dict(self.aliases).get(text, text)
        if kind == "network":
            return network_path(text)
        if kind == "enum" and text not in self.allowed and not self.read_any:
            if self.lenient is not None:
                return self.lenient
            raise SchemaError(key, text, f"is not one of {', '.join(map(repr, self.allowed))}")
        if self.pattern is not None and not re.fullmatch(self.pattern, text):
            raise SchemaError(key, text, "is malformed")
        return text

    def check(self, value: object) -> Value:
        """``value`` if it is a valid DBus value for this codec, else ``ValueError``."""
        kind = self.kind
        if kind in ("bool", "not-bool"):
            if not isinstance(value, bool):
                raise ValueError("is not a boolean")
            return value
        if kind in ("int", "ms"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("is not an integer")
            if not INT32_MIN <= value <= INT32_MAX:
                raise ValueError(f"is out of range {INT32_MIN}..{INT32_MAX}")
            return value
        if not isinstance(value, str):
            raise ValueError("is not a string")
        if "\0" in value:
            raise ValueError("contains a NUL character")
        if kind == "enum":
            shown = dict(self.aliases).get(value, value)
            if shown not in self.allowed:
                raise ValueError(f"is not one of {', '.join(map(repr, self.allowed))}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ValueError("is malformed")
        return value

    def encode(self, value: Value) -> str | list[str]:
        """The stored form of a checked value (``joined``: the list of children)."""
        kind = self.kind
        if kind == "bool":
            return encode_bool("", value)
        if kind == "not-bool":
            return encode_bool("", not value)
        if kind == "int":
            return str(value)
        if kind == "ms":
            assert isinstance(value, int)
            return repr(value / 1000)
        assert isinstance(value, str)
        if kind == "joined":
            return [part.strip() for part in value.split(_JOINED_SEP) if part.strip()]
        if kind == "network":
            return network_path(value)
        return dict(self.aliases).get(value, value)

    def show_list(self, items: list[str]) -> str:
        """The DBus value of a ``joined`` list."""
        return _JOINED_SEP.join(items)


@dataclass(frozen=True, slots=True)
class Stored:
    """A property kept at one database key (see the module docstring)."""

    key: str
    codec: Codec
    default: Value
    remove_on: tuple[Value, ...] = ()  # values that remove the key instead of being written
    remove_nonpositive: bool = False   # an int <= 0 removes the key
    fallback: str | None = None        # read this key instead when unset or <= 0
    native: bool | None = None         # the value shown while native-experience is true
    strip: bool = False                # a new string is stripped of blanks first
    always_write: bool = False         # written even when unchanged


@dataclass(frozen=True, slots=True)
class Derived:
    """Computed from database values by the rule ``rule`` of ``_properties``."""

    rule: str
    doc: str


@dataclass(frozen=True, slots=True)
class Computed:
    """Needs what only the service has; ``needs`` names it. ``writes``: the key a set stores
    (else a settable Computed property is set by the service itself)."""

    needs: str
    writes: Stored | None = None


@dataclass(frozen=True, slots=True)
class Fixed:
    """A constant. ``on_set``: ``None`` ignores a set (as the original did), else a set fails
    with that message."""

    value: Value
    on_set: str | None = None


@dataclass(frozen=True, slots=True)
class Unsupported:
    """Deliberately not provided."""

    reason: str


Source = Stored | Derived | Computed | Fixed | Unsupported


@dataclass(frozen=True, slots=True)
class Binding:
    """One property of one interface and where its value comes from."""

    interface: str
    name: str
    signature: str
    settable: bool
    scope: Scope
    source: Source
    guarded: bool = False
    effects: tuple[Effect, ...] = field(default=())
