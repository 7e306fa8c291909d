"""VM uuids as xenmgr uses them: the canonical text form, the reserved ones, object paths.

A VM uuid is the canonical 8-4-4-4-12 hexadecimal form; :func:`canonical_uuid` accepts either
case and returns it in lower case (the form used in db paths, D-Bus object paths and xenstore).
The nil uuid names dom0 and never a VM. The service VMs have fixed uuids (their templates
carry them): ``...0001`` the UI VM, ``...0002`` the network VM, ``...0003`` the USB VM.

Failure: :func:`canonical_uuid` raises ValueError naming what was given and where it came from;
nothing else here can fail.
"""

from __future__ import annotations

import functools
import re

__all__ = [
    "NDVM_UUID",
    "NIL_UUID",
    "UIVM_UUID",
    "USBVM_UUID",
    "canonical_uuid",
    "is_canonical_uuid",
    "vm_object_path",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

NIL_UUID = "00000000-0000-0000-0000-000000000000"  # dom0
UIVM_UUID = "00000000-0000-0000-0000-000000000001"
NDVM_UUID = "00000000-0000-0000-0000-000000000002"
USBVM_UUID = "00000000-0000-0000-0000-000000000003"


def is_canonical_uuid(text: str) -> bool:
    """True if ``text`` is a uuid in canonical lower-case form (nothing to normalise)."""
    return _UUID.fullmatch(text) is not None


def canonical_uuid(text: str, *, what: str = "uuid") -> str:
    """``text`` as a canonical lower-case uuid; ValueError naming ``what`` if it is not one.

    Surrounding blanks are not accepted: a uuid with spaces is a caller's bug, not a uuid.
    """
    lowered = text.lower()
    if not _UUID.fullmatch(lowered):
        raise ValueError(f"{what} {text!r} is not a uuid (expected the form "
                         f"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in hexadecimal)")
    return lowered


@functools.lru_cache(maxsize=4096)
def vm_object_path(uuid: str) -> str:
    """The D-Bus object path of a VM: ``/vm/<uuid with every - replaced by _>`` (remembered:
    ``list_vms`` asks for every VM's at each call); ValueError as :func:`canonical_uuid`."""
    return "/vm/" + canonical_uuid(uuid).replace("-", "_")
