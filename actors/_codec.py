"""msgpack encoding, with a version tag, for every message that crosses a socket or a disk.

Wire form: ``msgpack([CODEC_VERSION, value])``. Plain values (None, bool, int, float, str,
bytes, lists/tuples, dicts with str/int/bytes keys) encode as themselves. A dataclass or an
``enum.Enum`` registered with :func:`wire_type` encodes as a msgpack extension carrying its tag
and its fields by name, so adding a field with a default stays readable by older data.

Decoding checks the version and the tag and rebuilds the registered type; arrays decode as
tuples (messages are immutable). Anything else is a :class:`CodecError` naming what was wrong:
unknown version, unknown tag, missing or unexpected fields, truncated or oversize input.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any, TypeVar

import msgpack

__all__ = [
    "CODEC_VERSION",
    "MAX_MESSAGE_BYTES",
    "CodecError",
    "decode",
    "encode",
    "registered_types",
    "wire_type",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

CODEC_VERSION = 1
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest encoded value accepted by :func:`decode` (a snapshot of 200 VMs is far below)."""

_EXT_DATACLASS = 1
_EXT_ENUM = 2

T = TypeVar("T")

_Packer = msgpack.Packer
_by_tag: dict[str, type] = {}
_tag_of: dict[type, str] = {}


class CodecError(ValueError):
    """Data that cannot be encoded or decoded, with the reason."""


def wire_type(tag: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: register a dataclass or Enum under ``tag`` for :func:`encode`."""

    def register(cls: type[T]) -> type[T]:
        if not (dataclasses.is_dataclass(cls) or issubclass(cls, enum.Enum)):
            raise TypeError(f"{cls.__name__} is neither a dataclass nor an Enum")
        other = _by_tag.get(tag)
        if other is not None and other is not cls:
            raise ValueError(f"wire tag {tag!r} already used by {other.__name__}")
        _by_tag[tag] = cls
        _tag_of[cls] = tag
        return cls

    return register


def registered_types() -> dict[str, type]:
    """A copy of the tag table."""
    return dict(_by_tag)


def _default(obj: Any) -> Any:
    tag = _tag_of.get(type(obj))
    if tag is None:
        raise CodecError(f"cannot encode {type(obj).__name__}: not a registered wire type")
    if isinstance(obj, enum.Enum):
        return msgpack.ExtType(_EXT_ENUM, _pack([tag, obj.value]))
    fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return msgpack.ExtType(_EXT_DATACLASS, _pack([tag, fields]))


def _pack(value: Any) -> bytes:
    try:  # a Packer of our own: msgpack.packb adds a Python-level call around the same thing
        return _Packer(default=_default, use_bin_type=True).pack(value)
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode: {exc}") from exc


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(
        data, ext_hook=_ext_hook, use_list=False, raw=False, strict_map_key=False
    )


def _ext_hook(code: int, data: bytes) -> Any:
    if code not in (_EXT_DATACLASS, _EXT_ENUM):
        raise CodecError(f"unknown msgpack extension type {code}")
    body = _unpack(data)
    if not (isinstance(body, tuple) and len(body) == 2 and isinstance(body[0], str)):
        raise CodecError("malformed typed value")
    tag, payload = body
    cls = _by_tag.get(tag)
    if cls is None:
        raise CodecError(f"unknown wire type {tag!r}")
    if code == _EXT_ENUM:
        if not issubclass(cls, enum.Enum):
            raise CodecError(f"wire type {tag!r} is not an enum")
        try:
            return cls(payload)
        except ValueError as exc:
            raise CodecError(f"bad value for {tag!r}: {payload!r}") from exc
    if not isinstance(payload, dict):
        raise CodecError(f"fields of {tag!r} must be a map")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(payload) - names
    if unknown:
        raise CodecError(f"{tag!r} has no field(s) {sorted(map(str, unknown))}")
    try:
        return cls(**payload)
    except TypeError as exc:
        raise CodecError(f"cannot build {tag!r}: {exc}") from exc


def encode(value: Any) -> bytes:
    """Encode ``value`` with the version tag. Raises :class:`CodecError`."""
    return _pack([CODEC_VERSION, value])


def decode(data: bytes) -> Any:
    """Decode bytes made by :func:`encode`. Raises :class:`CodecError` on any problem."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise CodecError(f"message of {len(data)} bytes is over the {MAX_MESSAGE_BYTES} limit")
    try:
        frame = _unpack(data)
    except CodecError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.UnpackException) as exc:
        raise CodecError(f"malformed msgpack data: {exc}") from exc
    if not (isinstance(frame, tuple) and len(frame) == 2 and isinstance(frame[0], int)):
        raise CodecError("not a versioned message (expected [version, value])")
    version, value = frame
    if version != CODEC_VERSION:
        raise CodecError(f"unsupported message version {version} (this side speaks "
                         f"{CODEC_VERSION})")
    return value
