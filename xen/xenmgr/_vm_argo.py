"""The Argo firewall rule methods of ``com.citrix.xenclient.xenmgr.vm`` (a mixin of the VM
object).

* ``list_argo_firewall_rules``: the VM's rule texts as stored, in list order;
* ``add_argo_firewall_rule(rule)``: a rule that does not parse is refused with the reason
  (nothing stored); a rule already in the list (the same text) changes nothing; else it is
  appended to ``argo-firewall-rules``;
* ``delete_argo_firewall_rule(rule)``: removes the entries equal to ``rule`` (the same text,
  or the same rule once parsed: ``MYSELF -> 0`` deletes ``myself -> 0``); none -> an error
  naming the rule. The list is rewritten ``0..n-1``.

A change sends ``vm_config_changed`` and has the Argo firewall recompute (applied at once for
a running VM). Edits of one VM's list are serialised (``ServiceContext.vm_lock``).
"""

from __future__ import annotations

from rpc.dbus import Call, dbus_method
from xen.xenmgr._argo_firewall import recompute_argo, rule_texts
from xen.xenmgr._argo_rules import ArgoRule, ArgoRuleError, parse_rule
from xen.xenmgr._errors import plain
from xen.xenmgr._vm_mixin import VmMixin

__all__ = ["ArgoRuleMethods"]

VM = "com.citrix.xenclient.xenmgr.vm"


def _same(text: str, rule: str, parsed: ArgoRule) -> bool:
    if text.strip() == rule.strip():
        return True
    try:
        return parse_rule(text) == parsed
    except ArgoRuleError:
        return False


class ArgoRuleMethods(VmMixin):
    """See the module docstring (mixed into the VM object, which provides the rest)."""

    @dbus_method(VM, "list_argo_firewall_rules")
    def list_argo_firewall_rules(self, call: Call) -> list[str]:
        return rule_texts(self.tree())

    @dbus_method(VM, "add_argo_firewall_rule")
    def add_argo_firewall_rule(self, call: Call, rule: str) -> None:
        try:
            parse_rule(rule)
        except ArgoRuleError as exc:
            raise plain(str(exc)) from None
        with self.ctx.vm_lock(self.uuid):
            rules = rule_texts(self.tree())
            if rule.strip() in (r.strip() for r in rules):
                return
            self.put_list("argo-firewall-rules", [*rules, rule.strip()])
        self._rules_changed("rule added")

    @dbus_method(VM, "delete_argo_firewall_rule")
    def delete_argo_firewall_rule(self, call: Call, rule: str) -> None:
        try:
            parsed = parse_rule(rule)
        except ArgoRuleError as exc:
            raise plain(str(exc)) from None
        with self.ctx.vm_lock(self.uuid):
            rules = rule_texts(self.tree())
            kept = [r for r in rules if not _same(r, rule, parsed)]
            if len(kept) == len(rules):
                raise plain(f"VM {self.uuid} has no Argo firewall rule {rule.strip()!r}")
            self.put_list("argo-firewall-rules", kept)  # in one durable step
        self._rules_changed("rule deleted")

    def _rules_changed(self, why: str) -> None:
        self.changed()
        recompute_argo(self.ctx.settings, f"VM {self.uuid}: {why}")
