"""A VM's network firewall rules (methods of ``com.citrix.xenclient.xenmgr.vm``; a mixin of
the VM object), kept in the database as the original kept them: ``/vm/<uuid>/firewall-rule/
<id>/{direction,remote-ip,extra}``.

* ``add_net_firewall_rule(id, direction, remoteip, extra)``: ``id`` >= 0, ``direction`` ``in``
  or ``out``, ``remoteip`` an IPv4/IPv6 address or network (``10.0.0.0/8``) or empty for any,
  ``extra`` free text of at most 256 printable characters; a bad value is refused naming it,
  nothing written; an existing id is replaced;
* ``delete_net_firewall_rule(id)``: an unknown id is an error naming it;
* ``list_net_firewall_rules``: each rule as ``id``, ``direction``, ``remote-ip``, ``extra``,
  by id.

Applying the rules is the network daemon's job in the network VM (the original passed them
on); this project has no network daemon, so they are stored and listed only.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from rpc.dbus import Call, dbus_method
from xen.xenmgr._errors import plain
from xen.xenmgr._vm_mixin import VmMixin, db_map

__all__ = ["NetFirewallMethods"]

VM = "com.citrix.xenclient.xenmgr.vm"


def _rules(tree: dict[str, Any]) -> dict[int, dict[str, str]]:
    return {int(k): r for k, r in db_map(tree, "firewall-rule").items() if k.isdigit()}


class NetFirewallMethods(VmMixin):
    """See the module docstring (mixed into the VM object, which provides the rest)."""

    @dbus_method(VM, "add_net_firewall_rule")
    def add_net_firewall_rule(self, call: Call, id: int, direction: str, remoteip: str,
                              extra: str) -> None:
        if id < 0:
            raise plain(f"network firewall rule id {id} is negative")
        if direction not in ("in", "out"):
            raise plain(f"network firewall rule direction {direction!r} is not in or out")
        if remoteip:
            try:
                ipaddress.ip_network(remoteip, strict=False)
            except ValueError:
                raise plain(f"network firewall rule remote address {remoteip!r} is not an "
                            "IP address or network") from None
        if len(extra) > 256 or not extra.isprintable():
            raise plain("network firewall rule extra text is over 256 characters or not "
                        "printable")
        self.tree()  # no VM: its error
        self.put_entry("firewall-rule", str(id),
                       {"direction": direction, "remote-ip": remoteip, "extra": extra})
        self.changed()

    @dbus_method(VM, "delete_net_firewall_rule")
    def delete_net_firewall_rule(self, call: Call, id: int) -> None:
        if id not in _rules(self.tree()):
            raise plain(f"VM {self.uuid} has no network firewall rule {id}")
        self.drop_entry("firewall-rule", str(id))
        self.changed()

    @dbus_method(VM, "list_net_firewall_rules")
    def list_net_firewall_rules(self, call: Call) -> list[dict[str, str]]:
        return [{"id": str(k), "direction": r.get("direction", ""),
                 "remote-ip": r.get("remote-ip", ""), "extra": r.get("extra", "")}
                for k, r in sorted(_rules(self.tree()).items())]
