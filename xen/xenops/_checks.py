"""What makes a plan value well-formed: `PlanError` and the checks the atomics run when built.

Every atomic of a plan (xenstore steps, waits, hypervisor calls, host actions) checks its
fields in ``__post_init__`` with these functions, so a malformed plan fails where it is built,
never half-way through running. A failed check raises `PlanError` (a ValueError) naming the
class and the field and showing the value, e.g. ``SetMaxMem.kib must be an integer >= 0, got
-1``. Pure: no I/O.
"""

from __future__ import annotations

import math
import re

from xen.hypervisor import DOMID_FIRST_RESERVED

__all__ = [
    "PlanError",
    "check_bdf",
    "check_bool",
    "check_domid",
    "check_instance",
    "check_int",
    "check_path",
    "check_timeout",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_MAX_PATH = 3072  # xenstore's absolute path limit (XENSTORE_ABS_PATH_MAX)
#: A PCI function as sysfs and pciback name it: domain:bus:slot.function, in hex.
_BDF = re.compile(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[01][0-9a-fA-F]\.[0-7]")


class PlanError(ValueError):
    """An atomic or plan that is malformed (bad path, bad argument, bad timeout)."""


def _field(step: object, name: str) -> tuple[str, object]:
    return f"{type(step).__name__}.{name}", getattr(step, name)


def check_path(path: str) -> None:
    """A xenstore path: absolute and normalised (or a special ``@`` watch path), bounded."""
    if not isinstance(path, str) or not path or len(path) > _MAX_PATH:
        raise PlanError(f"bad xenstore path {path!r}")
    if path.startswith("@"):
        return
    if not path.startswith("/") or "//" in path or (path != "/" and path.endswith("/")):
        raise PlanError(f"bad xenstore path {path!r}")
    if "\0" in path:
        raise PlanError(f"xenstore path contains NUL: {path!r}")


def check_timeout(timeout: float) -> None:
    """A finite number of seconds > 0."""
    if (isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
            or math.isinf(timeout)):
        raise PlanError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")


def check_int(step: object, name: str, low: int, high: int | None = None) -> None:
    """``step.<name>`` is an int (not a bool) in ``low..high`` (no upper bound when None)."""
    where, value = _field(step, name)
    if (isinstance(value, bool) or not isinstance(value, int) or value < low
            or (high is not None and value > high)):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise PlanError(f"{where} must be an integer {bound}, got {value!r}")


def check_domid(step: object, name: str = "domid") -> None:
    """``step.<name>`` is the id a domain can have: 0..0x7FEF (DOMID_SELF, DOMID_IO, ... come
    after)."""
    check_int(step, name, 0, DOMID_FIRST_RESERVED - 1)


def check_bool(step: object, *names: str) -> None:
    """Each ``step.<name>`` is a bool."""
    for name in names:
        where, value = _field(step, name)
        if not isinstance(value, bool):
            raise PlanError(f"{where} must be a bool, got {value!r}")


def check_instance(step: object, name: str, kind: type) -> None:
    """``step.<name>`` is an instance of ``kind``."""
    where, value = _field(step, name)
    if not isinstance(value, kind):
        raise PlanError(f"{where} must be a {kind.__name__}, got {value!r}")


def check_bdf(step: object, name: str = "bdf") -> None:
    """``step.<name>`` is a PCI address ``dddd:bb:ss.f`` (hex; slot 00..1f, function 0..7)."""
    where, value = _field(step, name)
    if not isinstance(value, str) or not _BDF.fullmatch(value):
        raise PlanError(f"{where} must be a PCI address dddd:bb:ss.f, got {value!r}")
