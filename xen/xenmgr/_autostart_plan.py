"""Which VMs autostart, in which order (pure).

A VM is a candidate when its ``start_on_boot`` is true and its ``ready`` is true (default
true). Candidates start by ``start_on_boot_priority`` descending, then by ``slot`` ascending
(a VM without a slot last), then by uuid, so the order is total and stable. Stored values that
do not parse read as their defaults (``start_on_boot`` false, priority 0, no slot): a broken
entry never stops the others from starting. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["AUTOSTART_PENDING", "autostart_order"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: The database list of VMs still to be autostarted (the original's).
AUTOSTART_PENDING = "/xenmgr/autostart-pending-vms"

_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def _bool(value: Any, default: bool) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return default


def _int(value: Any) -> int | None:
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit() and text.count("-") <= 1 and not text.endswith("-"):
            return int(text)
    return None


def autostart_order(vms: Mapping[str, Any]) -> list[str]:
    """The uuids of the VMs of ``vms`` (uuid -> db subtree) to autostart, in order."""
    chosen = []
    for uuid, tree in vms.items():
        if not isinstance(tree, Mapping):
            continue
        if not _bool(tree.get("start_on_boot"), False) or not _bool(tree.get("ready"), True):
            continue
        priority = _int(tree.get("start_on_boot_priority")) or 0
        slot = _int(tree.get("slot"))
        chosen.append((-priority, slot is None, slot or 0, uuid))
    return [uuid for *_key, uuid in sorted(chosen)]
