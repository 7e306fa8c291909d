"""Bounds on what the proxy reads from a peer, and the one error a bad byte stream raises.

Every parser of the proxy's wire core (``_frames``, ``_message``, ``_signature``) checks its
input against a :class:`WireLimits` and fails with :class:`WireError`, whose ``reason`` is one
:class:`WireReason` and whose message names the offending value. A ``WireError`` on a client's
stream closes that client's connection only: the runtime never lets one client's bytes touch
another's state.

The defaults and why (the DBus specification's own maxima are in brackets):

* ``max_message_size`` 4 MiB for clients [128 MiB]: OpenXT calls carry config strings and
  small lists; 4 MiB is far above any call in the IDL and keeps a hostile guest from making the
  proxy buffer 128 MiB per connection. The bus side keeps the spec's 128 MiB (the dom0 bus is
  trusted, and replies such as a db dump can be large).
* ``max_header_size`` 16 KiB [bounded only by the message size]: nine standard fields of at
  most 255-byte names plus an object path; 16 KiB leaves room for long paths.
* ``max_header_fields`` 16 [unbounded]: the spec defines 9 codes and a code may appear once.
* ``max_array_length`` 64 MiB [64 MiB], ``max_depth`` 32 arrays, 32 structs, 64 in all (the
  spec's nesting limits, applied to every signature we read).
* ``max_unix_fds`` 0: the proxy passes no file descriptors (Argo and TCP cannot carry them, and
  a guest has no business handing dom0 services descriptors); a message announcing any is
  refused.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["BUS_LIMITS", "CLIENT_LIMITS", "ProxyProtocolError", "WireError", "WireLimits",
           "WireReason"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

MIB = 1 << 20
SPEC_MAX_MESSAGE = 128 * MIB
"""The DBus specification's maximum message size (2**27 bytes)."""
SPEC_MAX_ARRAY = 64 * MIB
"""The DBus specification's maximum array length in bytes (2**26)."""


class ProxyProtocolError(Exception):
    """Base of the errors of the proxy's protocol cores (wire, auth)."""


class WireReason(enum.Enum):
    """Why a byte stream was refused (the ``reason`` of a :class:`WireError`)."""

    TOO_LARGE = "too-large"            # message, header or array over its limit
    BAD_FIXED_HEADER = "bad-fixed-header"  # endianness, type, version, serial
    BAD_HEADER_FIELD = "bad-header-field"  # field code/signature/value, duplicates, padding
    MISSING_FIELD = "missing-field"    # a field the message type requires is absent
    BAD_NAME = "bad-name"              # path, interface, member, error or bus name syntax
    BAD_SIGNATURE = "bad-signature"    # not a valid signature, or nested too deep
    BAD_BODY = "bad-body"              # body does not match its signature (decode_body)
    UNIX_FDS = "unix-fds"              # file descriptors announced (over max_unix_fds)
    TRUNCATED = "truncated"            # a complete message is shorter than it claims
    POISONED = "poisoned"              # an earlier error made the stream unreadable


class WireError(ProxyProtocolError):
    """A message or stream the proxy refuses; ``reason`` says which rule it broke.

    ``messages`` holds the messages a splitter completed in the same ``feed`` before the
    error (``MessageSplitter``), so the caller may still forward them.
    """

    def __init__(self, reason: WireReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.messages: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class WireLimits:
    """Bounds applied when reading messages from one side (see the module docstring)."""

    max_message_size: int = 4 * MIB
    max_header_size: int = 16 * 1024
    max_header_fields: int = 16
    max_array_length: int = SPEC_MAX_ARRAY
    max_array_depth: int = 32
    max_struct_depth: int = 32
    max_total_depth: int = 64
    max_unix_fds: int = 0

    def __post_init__(self) -> None:
        if not 16 <= self.max_message_size <= SPEC_MAX_MESSAGE:
            raise ValueError(f"max_message_size must be 16..{SPEC_MAX_MESSAGE}, "
                             f"got {self.max_message_size!r}")
        for name in ("max_header_size", "max_header_fields", "max_array_length",
                     "max_array_depth", "max_struct_depth", "max_total_depth"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.max_unix_fds < 0:
            raise ValueError(f"max_unix_fds must be >= 0, got {self.max_unix_fds!r}")


CLIENT_LIMITS = WireLimits()
"""Limits for messages from an untrusted client (guest, browser)."""
BUS_LIMITS = WireLimits(max_message_size=SPEC_MAX_MESSAGE, max_header_size=64 * 1024)
"""Limits for messages from dom0's bus (trusted; the spec's maxima)."""
