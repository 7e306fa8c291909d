"""How xenmgr stores values in the config database as strings, and reads them back.

* **Booleans** are written ``true``/``false`` and read accepting exactly ``true yes 1`` and
  ``false no 0`` (case matters, no blanks; the original failed on anything else, so do we).
* **Integers** are written in decimal and read as an optional ``-`` and decimal digits
  (surrounding blanks allowed, as the original's reader allowed them), at most 64 bits.
* **Enumerations** are strings from a fixed set.
* **Lists** are the children ``0``, ``1``, ... of a node, in the database's order; a list is
  rewritten by removing the node and writing each child (:func:`list_writes`).
* **Maps** are children keyed by an id (disks, nics, PCI rules, firewall rules).

Every decoder raises :class:`SchemaError` naming the database key and the value; every encoder
checks the value's type and range the same way, so nothing malformed is ever written. Pure: no
I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = [
    "FALSE_TEXTS",
    "INT64_MAX",
    "INT64_MIN",
    "TRUE_TEXTS",
    "SchemaError",
    "decode_bool",
    "decode_enum",
    "decode_int",
    "encode_bool",
    "encode_enum",
    "encode_int",
    "list_writes",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

TRUE_TEXTS = ("true", "yes", "1")
FALSE_TEXTS = ("false", "no", "0")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_INT_RE = re.compile(r"\s*(-?[0-9]{1,19})\s*")


class SchemaError(ValueError):
    """A database value that does not fit its key, with both named."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        super().__init__(f"db key {key}: {value!r} {reason}")
        self.key, self.value, self.reason = key, value, reason


def decode_bool(key: str, text: str) -> bool:
    """A stored boolean (``true yes 1`` / ``false no 0``)."""
    if text in TRUE_TEXTS:
        return True
    if text in FALSE_TEXTS:
        return False
    raise SchemaError(key, text, "is not a boolean (true, yes, 1, false, no or 0)")


def encode_bool(key: str, value: object) -> str:
    if not isinstance(value, bool):
        raise SchemaError(key, value, "is not a boolean")
    return "true" if value else "false"


def decode_int(key: str, text: str) -> int:
    """A stored integer (decimal, optional ``-``, blanks around allowed)."""
    match = _INT_RE.fullmatch(text)
    if match is None:
        raise SchemaError(key, text, "is not a decimal integer")
    value = int(match.group(1))
    if not INT64_MIN <= value <= INT64_MAX:
        raise SchemaError(key, text, "is out of the 64-bit range")
    return value


def encode_int(key: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(key, value, "is not an integer")
    if not INT64_MIN <= value <= INT64_MAX:
        raise SchemaError(key, value, "is out of the 64-bit range")
    return str(value)


def decode_enum(key: str, text: str, allowed: Sequence[str]) -> str:
    """A stored value of a fixed set."""
    if text not in allowed:
        raise SchemaError(key, text, f"is not one of {', '.join(map(repr, allowed))}")
    return text


def encode_enum(key: str, value: object, allowed: Sequence[str]) -> str:
    if not isinstance(value, str):
        raise SchemaError(key, value, "is not a string")
    return decode_enum(key, value, allowed)


def list_writes(path: str, items: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The (path, text) writes that store ``items`` as the list at ``path`` after the node is
    removed: children ``0``, ``1``, ... in order."""
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise SchemaError(f"{path}/{index}", item, "is not a string")
        out.append((f"{path.rstrip('/')}/{index}", item))
    return tuple(out)
