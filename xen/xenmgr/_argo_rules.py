"""xenmgr's Argo firewall rules: parse a VM's rule texts, resolve them against the running VMs
into effective rules, and diff two rule sets (pure: no I/O).

A VM's rules are the db list ``/vm/<uuid>/argo-firewall-rules/<n>``, each a text
``<from>[:<port>] -> <to>[:<port>]``, lower-cased before parsing as the original did. An
endpoint is one of:

==========================  ================================================================
``*``                       any domain
``0``                       dom0
``<uuid>``                  that VM, while it runs
``myself``                  the VM the rule belongs to
``my-stubdom``              its stub domain, while one runs
``myself-if-seamless``      the VM itself when its ``seamless-traffic`` flag is true
``seamless``                every running VM whose ``seamless-traffic`` flag is true
``dom-type=<word>``         every running VM of that ``type`` (``svm``, ``ndvm``, ``uivm``...)
``dom-name=<word>``         every running VM of that name (compared lower-cased)
==========================  ================================================================

A port is ``:<n>`` (0..2**32-1), ``:*`` or nothing (any port). Unlike the original, a numeric
domid other than ``0`` is an error (the original took it for a uuid that never matched).

:func:`effective_rules` gives, for the rules of one running VM, the set of
:class:`EffectiveRule` (source domain and port, destination domain and port; ``None`` = any):
each rule and its inverse (the reply direction, ports swapped), with every endpoint resolved
against the running VMs (an endpoint that names no running domain drops the rule), and a rule
from a domain to itself dropped. :func:`table` is the union over every running VM, and
:func:`diff` what to remove and add to go from one table to another. :func:`viptables_args`
renders a rule as the arguments of the ``viptables`` tool of an OpenXT dom0.

:class:`TableCache` gives the same table as :func:`table`, keeping each running VM's effective
rules between calls: a VM's rules are resolved again only when the VM itself, its rules or
(when one of its endpoints names other VMs: ``<uuid>``, ``seamless``, ``dom-type``,
``dom-name``) the running VMs changed, so a host shutdown's VM stops do not each resolve every
VM's rules again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "ArgoRule",
    "ArgoRuleError",
    "EffectiveRule",
    "Endpoint",
    "RunningVm",
    "TableCache",
    "diff",
    "effective_rules",
    "parse_rule",
    "table",
    "viptables_args",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_WORD = re.compile(r"[a-z0-9_-]+")
_KEYWORDS = ("*", "myself", "my-stubdom", "myself-if-seamless", "seamless")
_MAX_PORT = (1 << 32) - 1
_SELF_KINDS = frozenset({"*", "dom0", "myself", "my-stubdom", "myself-if-seamless"})


class ArgoRuleError(ValueError):
    """A rule text that does not parse; the message names the rule and the reason."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a rule: ``kind`` is ``*``, ``dom0``, ``uuid``, ``myself``, ``my-stubdom``,
    ``myself-if-seamless``, ``seamless``, ``dom-type`` or ``dom-name``; ``value`` the uuid,
    type or name (empty otherwise); ``port`` ``None`` for any."""

    kind: str
    value: str = ""
    port: int | None = None

    def text(self) -> str:
        """The endpoint as a rule writes it."""
        base = {"dom0": "0", "uuid": self.value, "dom-type": f"dom-type={self.value}",
                "dom-name": f"dom-name={self.value}"}.get(self.kind, self.kind)
        return base if self.port is None else f"{base}:{self.port}"


@dataclass(frozen=True, slots=True)
class ArgoRule:
    """A parsed rule: traffic from ``source`` to ``destination`` is allowed."""

    source: Endpoint
    destination: Endpoint

    def text(self) -> str:
        """The rule in its canonical text form."""
        return f"{self.source.text()} -> {self.destination.text()}"


@dataclass(frozen=True, slots=True)
class RunningVm:
    """What rule resolution needs of a running VM."""

    uuid: str
    domid: int
    stubdom_domid: int = -1
    type: str = "svm"
    name: str = ""
    seamless: bool = False


@dataclass(frozen=True, slots=True)
class EffectiveRule:
    """One allowed flow between concrete domains (``None``: any domain, or any port)."""

    source: int | None
    source_port: int | None
    destination: int | None
    destination_port: int | None

    def sort_key(self) -> tuple[int, int, int, int]:
        """An order for listings (any = -1)."""
        return tuple(-1 if v is None else v for v in (  # type: ignore[return-value]
            self.source, self.source_port, self.destination, self.destination_port))

    def text(self) -> str:
        """``<src>:<port> -> <dst>:<port>`` with ``*`` for any."""
        def side(dom: int | None, port: int | None) -> str:
            return f"{'*' if dom is None else dom}:{'*' if port is None else port}"
        return f"{side(self.source, self.source_port)} -> " \
               f"{side(self.destination, self.destination_port)}"


def _endpoint(text: str, rule: str) -> Endpoint:
    name, colon, port_text = text.partition(":")
    port: int | None = None
    if colon and port_text != "*":
        if not port_text.isdigit() or int(port_text) > _MAX_PORT:
            raise ArgoRuleError(f"Argo rule {rule!r}: bad port {port_text!r} (0..{_MAX_PORT} "
                                "or *)")
        port = int(port_text)
    if name in _KEYWORDS:
        return Endpoint(name, "", port)
    if name == "0":
        return Endpoint("dom0", "", port)
    if _UUID.fullmatch(name):
        return Endpoint("uuid", name, port)
    for kind in ("dom-type", "dom-name"):
        if name.startswith(kind + "="):
            value = name[len(kind) + 1:]
            if not _WORD.fullmatch(value):
                raise ArgoRuleError(f"Argo rule {rule!r}: {kind} needs a word, got {value!r}")
            return Endpoint(kind, value, port)
    if name.isdigit():
        raise ArgoRuleError(f"Argo rule {rule!r}: domain ids other than 0 are not endpoints "
                            "(name the VM by uuid, dom-type= or dom-name=)")
    raise ArgoRuleError(f"Argo rule {rule!r}: unknown endpoint {name!r} (expected *, 0, a "
                        "uuid, myself, my-stubdom, myself-if-seamless, seamless, dom-type=, "
                        "dom-name=)")


def parse_rule(text: str) -> ArgoRule:
    """Parse one rule text (lower-cased first); :class:`ArgoRuleError` when it does not."""
    lowered = text.strip().lower()
    left, arrow, right = lowered.partition("->")
    if not arrow or "->" in right:
        raise ArgoRuleError(f"Argo rule {text!r}: expected '<from>[:port] -> <to>[:port]'")
    source, destination = left.strip(), right.strip()
    if not source or not destination or any(c.isspace() for c in source + destination):
        raise ArgoRuleError(f"Argo rule {text!r}: expected '<from>[:port] -> <to>[:port]'")
    return ArgoRule(_endpoint(source, text), _endpoint(destination, text))


def _domains(ep: Endpoint, me: RunningVm, running: Sequence[RunningVm]) -> list[int | None]:
    """The domains an endpoint stands for (``[None]``: any; ``[]``: none runs)."""
    kind = ep.kind
    if kind == "*":
        return [None]
    if kind == "dom0":
        return [0]
    if kind == "myself":
        return [me.domid]
    if kind == "my-stubdom":
        return [me.stubdom_domid] if me.stubdom_domid >= 0 else []
    if kind == "myself-if-seamless":
        return [me.domid] if me.seamless else []
    if kind == "uuid":
        return [vm.domid for vm in running if vm.uuid == ep.value]
    if kind == "seamless":
        return [vm.domid for vm in running if vm.seamless]
    if kind == "dom-type":
        return [vm.domid for vm in running if vm.type.lower() == ep.value]
    return [vm.domid for vm in running if vm.name.lower() == ep.value]


def effective_rules(me: RunningVm, rules: Iterable[ArgoRule],
                    running: Sequence[RunningVm]) -> frozenset[EffectiveRule]:
    """The effective rules of running VM ``me`` (module docstring)."""
    out: set[EffectiveRule] = set()
    for rule in rules:
        src, dst = rule.source, rule.destination
        for a in _domains(src, me, running):
            for b in _domains(dst, me, running):
                if a is not None and a == b:
                    continue  # a domain to itself: dropped, as the original
                out.add(EffectiveRule(a, src.port, b, dst.port))
                out.add(EffectiveRule(b, dst.port, a, src.port))
    return frozenset(out)


def table(rules_by_vm: Mapping[str, Sequence[ArgoRule]],
          running: Sequence[RunningVm]) -> frozenset[EffectiveRule]:
    """The union of every running VM's effective rules (VMs not running contribute none)."""
    out: set[EffectiveRule] = set()
    for vm in running:
        out |= effective_rules(vm, rules_by_vm.get(vm.uuid, ()), running)
    return frozenset(out)


class TableCache:
    """:func:`table` with each VM's effective rules kept between calls (module docstring)."""

    def __init__(self) -> None:
        # uuid -> (the VM, its rules, the running VMs when they matter else None, its rules'
        # effective rules)
        self.kept: dict[str, tuple[RunningVm, tuple[ArgoRule, ...],
                                   tuple[RunningVm, ...] | None, frozenset[EffectiveRule]]] = {}
        self.resolved = 0  # VMs whose rules were resolved (not taken from the cache)

    def table(self, rules_by_vm: Mapping[str, Sequence[ArgoRule]],
              running: Sequence[RunningVm]) -> frozenset[EffectiveRule]:
        """Equal to ``table(rules_by_vm, running)``; forgets the VMs that no longer run."""
        everyone = tuple(running)
        kept: dict[str, tuple[RunningVm, tuple[ArgoRule, ...],
                              tuple[RunningVm, ...] | None, frozenset[EffectiveRule]]] = {}
        out: set[EffectiveRule] = set()
        for vm in everyone:
            rules = tuple(rules_by_vm.get(vm.uuid, ()))
            others = everyone if any(r.source.kind not in _SELF_KINDS
                                     or r.destination.kind not in _SELF_KINDS
                                     for r in rules) else None
            old = self.kept.get(vm.uuid)
            if old is not None and old[0] == vm and old[1] == rules and old[2] == others:
                effective = old[3]
            else:
                effective = effective_rules(vm, rules, everyone)
                self.resolved += 1
            kept[vm.uuid] = (vm, rules, others, effective)
            out |= effective
        self.kept = kept
        return frozenset(out)


def diff(old: frozenset[EffectiveRule], new: frozenset[EffectiveRule]
         ) -> tuple[list[EffectiveRule], list[EffectiveRule]]:
    """(rules to remove, rules to add), each sorted (:meth:`EffectiveRule.sort_key`)."""
    return (sorted(old - new, key=EffectiveRule.sort_key),
            sorted(new - old, key=EffectiveRule.sort_key))


def viptables_args(rule: EffectiveRule) -> list[str]:
    """The rule as ``viptables`` options (``--dom-in`` the source, ``--dom-out`` the
    destination), without the command (``-I 1``/``-D``) and the target (``-j ACCEPT``)."""
    args: list[str] = []
    for flag, value in (("--dom-in", rule.source), ("--dom-out", rule.destination),
                        ("--port-in", rule.source_port), ("--port-out", rule.destination_port)):
        if value is not None:
            args += [flag, str(value)]
    return args
