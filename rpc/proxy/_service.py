"""The ``-s`` service: ``com.citrix.xenclient.rpc_proxy`` at ``/`` (``rpc/idl/rpc_proxy.xml``).

Other dom0 daemons ask it whether a domain may make a call or send/receive a signal, by the
same rules the proxy applies (reference §2.9):

* ``validate_call(i domid, s dest, s intf, s member) -> b``: an incoming method call;
  ``validate_send_signal(i domid, s intf, s member) -> b``: an incoming signal;
  ``validate_recv_signal(i domid, s intf, s member) -> b``: an outgoing signal (so ``out-*``
  rules matter here, unlike in the proxy path).
* The source's VM uuid comes from xenstore; no uuid -> ``false``. The stubdomain flag is false,
  property specifiers are not resolved (they never match) and domid 0 is not special-cased,
  as in the original. A denial is logged (``DENY UID ...``). Rules that cannot be used answer
  ``Failed`` with the reason.
* ``list_rules -> as``: the global rules as understood, one canonical line each, the file's
  then the added ones (the original declared it and did not provide it).
* ``add_rule(s rule)``: one rule in the rules grammar, appended after the others (so it wins
  over them); a rule that does not parse answers ``InvalidArgs`` with ``add_rule:LINE:COLUMN:
  reason``. ``delete_rule(s rule)``: the rule's text (any spelling that parses to the same
  rule) or its 0-based index in ``list_rules``; every equal rule goes. No such rule ->
  ``InvalidArgs``. Both take effect for the next message of every client of the instance, and
  are kept across a reload (SIGHUP): they are a layer on top of the file
  (:class:`~rpc.proxy._policy.ProxyPolicy`). The original declared both and built neither.

Calls run in this actor's mailbox, in order; a db lookup for per-VM rules is bounded.
"""

from __future__ import annotations

import logging

from actors import service
from rpc.dbus import FAILED, INVALID_ARGS, BusService, Call, DBusError, dbus_method
from rpc.idl import package_interface
from rpc.proxy._policy import NoSuchRule, PolicyError, ProxyPolicy
from rpc.proxy._rules_format import format_rule
from rpc.proxy._rules_model import Direction, DomainFacts, MessageFacts, MessageKind
from rpc.proxy._rules_parse import RulesError

__all__ = ["RPC_PROXY_INTERFACE", "RPC_PROXY_SERVICE", "RpcProxyService"]

log = logging.getLogger("rpc.proxy")

RPC_PROXY_SERVICE = "com.citrix.xenclient.rpc_proxy"
RPC_PROXY_INTERFACE = "com.citrix.xenclient.rpc_proxy"


class RpcProxyService(BusService):
    """``com.citrix.xenclient.rpc_proxy`` (see the module docstring)."""

    bus_names = (RPC_PROXY_SERVICE,)

    def __init__(self, address: str, policy: str) -> None:
        super().__init__(address)
        self._policy_name = policy

    def setup(self) -> None:
        """Export ``/``."""
        self.export("/", [package_interface(RPC_PROXY_INTERFACE)])

    def _policy(self) -> ProxyPolicy:
        return service(self._policy_name, ProxyPolicy)

    def _validate(self, domid: int, facts: MessageFacts, what: str) -> bool:
        policy = self._policy()
        uuid = None
        if policy.domains is not None and domid >= 0:
            try:
                uuid = policy.domains.vm_uuid(domid)
            except Exception as exc:
                log.warning("validate: domain %d: %s", domid, exc)
        if uuid is None:
            log.warning("DENY UID %s: domain %d has no VM uuid", what, domid)
            return False
        domain = DomainFacts(domid, uuid, False)
        try:
            verdict = policy.check_facts(facts, domain, dom0_bypass=False)
        except PolicyError as exc:
            raise DBusError(FAILED, str(exc)) from None
        if not verdict.allowed:
            log.warning("DENY UID %s: domain %d (%s)", what, domid, uuid)
        return verdict.allowed

    @dbus_method(RPC_PROXY_INTERFACE, "validate_call")
    def _validate_call(self, _call: Call, domid: int, dest: str, intf: str,
                       member: str) -> bool:
        facts = MessageFacts(MessageKind.METHOD_CALL, Direction.INCOMING, destination=dest,
                             interface=intf, member=member)
        return self._validate(domid, facts, f"method call:{dest} {intf}.{member}")

    @dbus_method(RPC_PROXY_INTERFACE, "validate_send_signal")
    def _validate_send_signal(self, _call: Call, domid: int, intf: str, member: str) -> bool:
        facts = MessageFacts(MessageKind.SIGNAL, Direction.INCOMING, interface=intf,
                             member=member)
        return self._validate(domid, facts, f"send signal:{intf}.{member}")

    @dbus_method(RPC_PROXY_INTERFACE, "validate_recv_signal")
    def _validate_recv_signal(self, _call: Call, domid: int, intf: str, member: str) -> bool:
        facts = MessageFacts(MessageKind.SIGNAL, Direction.OUTGOING, interface=intf,
                             member=member)
        return self._validate(domid, facts, f"receive signal:{intf}.{member}")

    @dbus_method(RPC_PROXY_INTERFACE, "list_rules")
    def _list_rules(self, _call: Call) -> list[str]:
        try:
            return [format_rule(rule) for rule in self._policy().rules().rules]
        except PolicyError as exc:
            raise DBusError(FAILED, str(exc)) from None

    @dbus_method(RPC_PROXY_INTERFACE, "add_rule")
    def _add_rule(self, _call: Call, rule: str) -> None:
        try:
            self._policy().add_rule(rule)
        except RulesError as exc:
            raise DBusError(INVALID_ARGS, str(exc)) from None

    @dbus_method(RPC_PROXY_INTERFACE, "delete_rule")
    def _delete_rule(self, _call: Call, rule: str) -> None:
        policy = self._policy()
        try:
            policy.delete_rule(rule)
        except RulesError as exc:
            raise DBusError(INVALID_ARGS, str(exc)) from None
        except NoSuchRule as exc:
            raise DBusError(INVALID_ARGS, str(exc)) from None
        except PolicyError as exc:
            raise DBusError(FAILED, str(exc)) from None
