"""``com.citrix.xenclient.xenmgr.vm.product``: a VM's OVF product properties (a mixin of the
VM object), kept in the database under ``/vm/<uuid>/productproperty/<id>/``.

Each property is a map of strings: ``value`` and, as an OVF descriptor declares them,
``key``, ``class``, ``instance``, ``type``, ``label``, ``description``, ``password``,
``userConfigurable``; ``<id>`` is the property's id (the OVF ``class.key.instance`` naming,
any word without ``/``).

* ``list_product_properties``: every property's map plus ``id``, ordered by id;
* ``get_product_property(id)``: its ``value``; an unknown id is an error naming it;
* ``set_product_property(id, value)``: sets ``value`` (creating the property if the VM has no
  such id yet, with ``key`` = id and ``userConfigurable`` = ``true``); a property whose
  ``userConfigurable`` is ``false`` is refused; written only when the value changes, then
  ``vm_config_changed``;
* ``get_ovf_env_xml``: the OVF environment document a guest reads (DMTF DSP0243: an
  ``Environment`` with a ``PropertySection`` of ``oe:key``/``oe:value`` pairs, the property's
  ``key`` or else its id), escaped; the original also wrote it to an ISO for the guest, which
  this project does not (no ISO tooling).
"""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import quoteattr

from rpc.dbus import Call, dbus_method
from xen.xenmgr._errors import plain
from xen.xenmgr._vm_mixin import VmMixin, db_map

__all__ = ["ProductMethods", "ovf_environment"]

PRODUCT = "com.citrix.xenclient.xenmgr.vm.product"
_ID = re.compile(r"[A-Za-z0-9_.:-]+")


def _properties(tree: dict[str, Any]) -> dict[str, dict[str, str]]:
    return db_map(tree, "productproperty")


def ovf_environment(vm_uuid: str, properties: dict[str, dict[str, str]]) -> str:
    """The OVF environment XML for these properties (module docstring)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1"',
             '     xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"',
             f'     oe:id={quoteattr(vm_uuid)}>',
             '  <PropertySection>']
    for pid, prop in properties.items():
        key = prop.get("key") or pid
        lines.append(f'    <Property oe:key={quoteattr(key)} '
                     f'oe:value={quoteattr(prop.get("value", ""))}/>')
    lines += ['  </PropertySection>', '</Environment>', '']
    return "\n".join(lines)


class ProductMethods(VmMixin):
    """See the module docstring (mixed into the VM object, which provides the rest)."""

    @dbus_method(PRODUCT, "list_product_properties")
    def list_product_properties(self, call: Call) -> list[dict[str, str]]:
        return [{**prop, "id": pid} for pid, prop in _properties(self.tree()).items()]

    @dbus_method(PRODUCT, "get_product_property")
    def get_product_property(self, call: Call, property_id: str) -> str:
        prop = _properties(self.tree()).get(property_id)
        if prop is None:
            raise plain(f"VM {self.uuid} has no product property {property_id!r}")
        return prop.get("value", "")

    @dbus_method(PRODUCT, "set_product_property")
    def set_product_property(self, call: Call, property_id: str, value: str) -> None:
        if not _ID.fullmatch(property_id):
            raise plain(f"product property id {property_id!r} is not a word")
        with self.ctx.vm_lock(self.uuid):
            prop = _properties(self.tree()).get(property_id)
            if prop is None:
                self.put_entry("productproperty", property_id, {
                    "key": property_id, "value": value, "userConfigurable": "true"})
            elif prop.get("userConfigurable", "true").lower() in ("false", "0", "no"):
                raise plain(f"product property {property_id!r} of VM {self.uuid} is not "
                            "user configurable")
            elif prop.get("value") == value:
                return
            else:
                self.ctx.db.write(f"/vm/{self.uuid}/productproperty/{property_id}/value", value)
        self.changed()

    @dbus_method(PRODUCT, "get_ovf_env_xml")
    def get_ovf_env_xml(self, call: Call) -> str:
        return ovf_environment(self.uuid, _properties(self.tree()))
