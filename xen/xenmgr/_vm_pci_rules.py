"""``com.citrix.xenclient.xenmgr.vm.pci``: a VM's PCI passthrough rules in the database (a
mixin of the VM object), ``/vm/<uuid>/config/pci/<id>/``: either ``bdf`` (a device address,
``DDDD:BB:SS.F``, optionally ``@<guest slot hex>``) or a match on ``class``/``vendor``/
``device`` (each written ``0x%04x``; a missing one matches anything).

* ``add_pt_rule(class, vendor, device)``: each a 16-bit hex number (``0x`` optional), or ``""``
  / ``any`` / ``*`` for any; all three "any" is refused (it would pass every device through);
* ``add_pt_rule_bdf(bdf)``: a well-formed address (domain optional: ``BB:SS.F`` means domain
  0), written in the full form; the same rule twice is stored once;
* ``delete_pt_rule``/``delete_pt_rule_bdf``: remove the rules equal to it (values compared as
  numbers); none -> an error naming the rule;
* ``list_pt_rules``: each rule's stored keys plus ``id``, by id;
* ``list_pt_pci_devices``: the host's devices the rules select (``_pci_inventory``).

The rules take effect at the VM's next start (the translation to the monitor's config matches
class/vendor/device rules against the host's devices). A change sends ``vm_config_changed``.
"""

from __future__ import annotations

import re
from typing import Any

from rpc.dbus import Call, dbus_method
from xen.xenmgr._dbview import DbView
from xen.xenmgr._devices import read_pci_rules
from xen.xenmgr._errors import plain
from xen.xenmgr._pci_inventory import HostPci, device_map, host_pci_devices, matching
from xen.xenmgr._schema import next_id
from xen.xenmgr._vm_mixin import VmMixin, db_map

__all__ = ["PciRuleMethods", "parse_bdf", "parse_id16"]

PCI = "com.citrix.xenclient.xenmgr.vm.pci"
_BDF = re.compile(r"(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])"
                  r"(?:@([0-9a-fA-F]{1,2}))?")


def parse_id16(text: str, what: str) -> int | None:
    """A 16-bit hex id, or None for any (``""``, ``any``, ``*``); ValueError naming ``what``."""
    value = text.strip().lower()
    if value in ("", "any", "*"):
        return None
    digits = value[2:] if value.startswith("0x") else value
    if not digits or len(digits) > 4 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"PCI {what} {text!r} is not a 16-bit hex number (or any)")
    return int(digits, 16)


def parse_bdf(text: str) -> str:
    """The canonical ``DDDD:BB:SS.F[@ss]`` of ``text``; ValueError when malformed."""
    m = _BDF.fullmatch(text.strip())
    if m is None or int(m.group(3), 16) > 0x1F:
        raise ValueError(f"PCI address {text!r} is not DDDD:BB:SS.F (hex; slot <= 1f)")
    dom, bus, slot, func, guest = m.groups()
    out = f"{int(dom or '0', 16):04x}:{int(bus, 16):02x}:{int(slot, 16):02x}.{func}"
    return out if guest is None else f"{out}@{int(guest, 16):02x}"


def _rules(tree: dict[str, Any]) -> dict[str, dict[str, str]]:
    return db_map(tree, "config/pci")


def _match_key(rule: dict[str, str]) -> tuple[int | None, int | None, int | None] | None:
    if "bdf" in rule:
        return None
    try:
        return (parse_id16(rule.get("class", ""), "class"),
                parse_id16(rule.get("vendor", ""), "vendor"),
                parse_id16(rule.get("device", ""), "device"))
    except ValueError:
        return None


def _bdf_key(rule: dict[str, str]) -> str | None:
    try:
        return parse_bdf(rule["bdf"]) if "bdf" in rule else None
    except ValueError:
        return None


class PciRuleMethods(VmMixin):
    """See the module docstring (mixed into the VM object, which provides the rest)."""

    def _match(self, pciclass: str, vendor: str, device: str
               ) -> tuple[int | None, int | None, int | None]:
        try:
            key = (parse_id16(pciclass, "class"), parse_id16(vendor, "vendor"),
                   parse_id16(device, "device"))
        except ValueError as exc:
            raise plain(str(exc)) from None
        return key

    def _add(self, fields: dict[str, str], same: Any) -> None:
        with self.ctx.vm_lock(self.uuid):
            rules = _rules(self.tree())
            if any(same(r) for r in rules.values()):
                return
            ident = next_id(int(k) for k in rules if k.isdigit())
            self.put_entry("config/pci", str(ident), fields)
        self.changed()

    def _delete(self, same: Any, text: str) -> None:
        with self.ctx.vm_lock(self.uuid):
            gone = [k for k, r in _rules(self.tree()).items() if same(r)]
            if not gone:
                raise plain(f"VM {self.uuid} has no PCI passthrough rule {text}")
            for k in gone:
                self.drop_entry("config/pci", k)
        self.changed()

    @dbus_method(PCI, "add_pt_rule")
    def add_pt_rule(self, call: Call, pciclass: str, vendor_id: str, device_id: str) -> None:
        key = self._match(pciclass, vendor_id, device_id)
        if key == (None, None, None):
            raise plain("a PCI passthrough rule matching every device is refused: give a "
                        "class, vendor or device")
        fields = {name: f"0x{value:04x}" for name, value in zip(
            ("class", "vendor", "device"), key, strict=True) if value is not None}
        self._add(fields, lambda r: _match_key(r) == key)

    @dbus_method(PCI, "add_pt_rule_bdf")
    def add_pt_rule_bdf(self, call: Call, bdf: str) -> None:
        try:
            canonical = parse_bdf(bdf)
        except ValueError as exc:
            raise plain(str(exc)) from None
        self._add({"bdf": canonical}, lambda r: _bdf_key(r) == canonical)

    @dbus_method(PCI, "delete_pt_rule")
    def delete_pt_rule(self, call: Call, pciclass: str, vendor_id: str, device_id: str) -> None:
        key = self._match(pciclass, vendor_id, device_id)
        self._delete(lambda r: _match_key(r) == key,
                     f"class {pciclass!r} vendor {vendor_id!r} device {device_id!r}")

    @dbus_method(PCI, "delete_pt_rule_bdf")
    def delete_pt_rule_bdf(self, call: Call, bdf: str) -> None:
        try:
            canonical = parse_bdf(bdf)
        except ValueError as exc:
            raise plain(str(exc)) from None
        self._delete(lambda r: _bdf_key(r) == canonical, canonical)

    @dbus_method(PCI, "list_pt_pci_devices")
    def list_pt_pci_devices(self, call: Call) -> list[dict[str, str]]:
        devices = host_pci_devices(self.ctx.settings)
        chosen: dict[str, HostPci] = {}
        for rule in read_pci_rules(DbView(self.tree())):
            for dev in matching(rule, devices):
                chosen.setdefault(dev.bdf, dev)
        return [device_map(d) for _bdf, d in sorted(chosen.items())]

    @dbus_method(PCI, "list_pt_rules")
    def list_pt_rules(self, call: Call) -> list[dict[str, str]]:
        return [{**rule, "id": k} for k, rule in _rules(self.tree()).items()]
