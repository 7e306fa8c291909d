"""Evaluation of the rpc-proxy firewall rules (pure).

Semantics (the original's, docs/rpc-proxy.md "## Rules"):

* A source with domid 0 is allowed without looking at the rules (``dom0_bypass``; the
  validation service turns it off).
* Otherwise the rules considered are the global rules followed by the source VM's per-VM
  rules; only rules whose subject covers the message's direction and kind take part. The LAST
  matching rule decides (allow or deny); when none matches the message is denied.
* A rule matches when every specifier it sets matches. A message that lacks a header field
  (no destination, sender, interface, path or member) matches any pattern for that field, as
  in the original. ``interface X`` also matches an ``org.freedesktop.DBus.Properties``
  ``Get``/``Set``/``GetAll`` call whose first argument is X. ``dom-uuid`` never matches a
  source whose uuid is unknown, ``stubdom`` must equal the source's flag (default false),
  and VM-property tests call ``domain.property`` (only after everything else matched, and
  never without a uuid; ``None`` fails the test).

Speed: :func:`compile_rules` indexes the rules once by (direction, kind) and by exact member
name, precompiles each pattern to the cheapest test (equality, prefix, suffix, regex), and
orders each candidate list from last to first, so a check visits only the rules that could
match and stops at the first hit. ``benchmarks/proxy_rules.py`` measures it.

Errors: evaluation never raises on its own; an exception from ``domain.property`` propagates
to the caller (the I/O side decides; the original blocked and retried).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from rpc.proxy._rules_format import format_rule
from rpc.proxy._rules_model import (
    PROPERTIES_INTERFACE,
    PROPERTIES_MEMBERS,
    Action,
    Direction,
    DomainFacts,
    MessageFacts,
    MessageKind,
    NamePattern,
    PropertyTest,
    Rule,
    Verdict,
    VerdictReason,
)

__pure__ = True

__all__ = ["RuleSet", "compile_rules", "deny_log_line", "evaluate"]

TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})

_Test = Callable[[str], bool]


def _always(value: str) -> bool:
    return True


def _test(pattern: NamePattern | None) -> _Test | None:
    """The cheapest callable deciding ``pattern`` (``None`` when the rule does not set it)."""
    if pattern is None:
        return None
    text = pattern.text
    stars = text.count("*")
    if stars == 0:
        return text.__eq__
    if text == "*":
        return _always
    if stars == 1 and text.endswith("*"):
        prefix = text[:-1]
        return lambda value: value.startswith(prefix)
    if stars == 1 and text.startswith("*"):
        suffix = text[1:]
        return lambda value: value.endswith(suffix)
    regex = re.compile(".*".join(re.escape(part) for part in text.split("*")), re.DOTALL)
    return lambda value: regex.fullmatch(value) is not None


class _Compiled:
    """One rule with its patterns turned into tests."""

    __slots__ = ("allow", "destination", "dom_id", "dom_uuid", "interface", "member", "path",
                 "properties", "rule", "sender", "stubdom")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.allow = rule.action is Action.ALLOW
        self.destination = _test(rule.destination)
        self.sender = _test(rule.sender)
        self.interface = _test(rule.interface)
        self.member = _test(rule.member)
        self.path = _test(rule.object_path)
        self.dom_uuid = rule.dom_uuid
        self.dom_id = rule.dom_id
        self.stubdom = rule.stubdom
        self.properties = rule.properties

    def matches(self, message: MessageFacts, domain: DomainFacts) -> bool:
        """Whether the rule matches (the subject was checked by the index)."""
        if self.stubdom is not domain.is_stubdom:
            return False
        if self.dom_id is not None and self.dom_id != domain.domid:
            return False
        if self.dom_uuid is not None and self.dom_uuid != domain.uuid:
            return False
        value = message.member
        if self.member is not None and value is not None and not self.member(value):
            return False
        value = message.destination
        if self.destination is not None and value is not None and not self.destination(value):
            return False
        value = message.path
        if self.path is not None and value is not None and not self.path(value):
            return False
        value = message.sender
        if self.sender is not None and value is not None and not self.sender(value):
            return False
        value = message.interface
        if self.interface is not None and value is not None and not self.interface(value):
            target = message.properties_interface
            if (target is None or message.kind is not MessageKind.METHOD_CALL
                    or value != PROPERTIES_INTERFACE
                    or message.member not in PROPERTIES_MEMBERS
                    or not self.interface(target)):
                return False
        return not self.properties or _properties_hold(self.properties, domain)


def _properties_hold(tests: Sequence[PropertyTest], domain: DomainFacts) -> bool:
    if domain.uuid is None:
        return False
    for test in tests:
        value = domain.property(test.property)
        if value is None:
            return False
        if isinstance(test.expected, bool):
            word = value.lower()
            if word not in (TRUE_WORDS if test.expected else FALSE_WORDS):
                return False
        elif value != test.expected:
            return False
    return True


class _Bucket:
    """The rules of one (direction, kind), last first, with an index by exact member."""

    __slots__ = ("by_member", "everything", "generic")

    def __init__(self, rules: Sequence[_Compiled]) -> None:
        self.everything = tuple(reversed(rules))
        self.generic = tuple(c for c in self.everything
                             if c.rule.member is None or not c.rule.member.is_exact)
        names = {c.rule.member.text for c in rules
                 if c.rule.member is not None and c.rule.member.is_exact}
        self.by_member = {
            name: tuple(c for c in self.everything if c.rule.member is None
                        or not c.rule.member.is_exact or c.rule.member.text == name)
            for name in names
        }

    def candidates(self, member: str | None) -> tuple[_Compiled, ...]:
        if member is None:
            return self.everything
        return self.by_member.get(member, self.generic)


class RuleSet:
    """Rules compiled for fast checks (indexed by direction, kind and exact member).

    Immutable once built; ``rules`` keeps them in their original order.
    """

    __slots__ = ("_buckets", "rules")

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        compiled = [_Compiled(rule) for rule in self.rules]
        self._buckets = {
            (direction, kind): _Bucket([c for c in compiled
                                        if c.rule.subject.covers(direction, kind)])
            for direction in Direction for kind in MessageKind
        }

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"RuleSet({len(self.rules)} rules)"

    def last_match(self, message: MessageFacts, domain: DomainFacts) -> Rule | None:
        """The last rule that matches ``message`` from ``domain``, or ``None``."""
        bucket = self._buckets[message.direction, message.kind]
        for candidate in bucket.candidates(message.member):
            if candidate.matches(message, domain):
                return candidate.rule
        return None


def compile_rules(rules: Iterable[Rule]) -> RuleSet:
    """Compile rules (in file order; later ones win) into a :class:`RuleSet`."""
    return RuleSet(rules)


def evaluate(rules: RuleSet, message: MessageFacts, domain: DomainFacts, *,
             vm_rules: RuleSet | None = None, dom0_bypass: bool = True) -> Verdict:
    """Decide one message: dom0 allowed, else the last matching rule, else deny.

    ``vm_rules`` (the source VM's per-VM rules) count as coming after ``rules``, so they are
    tried first. Outcomes: ``Verdict(True, DOM0)`` for domid 0 with ``dom0_bypass``;
    ``Verdict(allowed, RULE, rule)`` when a rule matched; ``Verdict(False, DEFAULT)`` else.
    """
    if dom0_bypass and domain.domid == 0:
        return Verdict(True, VerdictReason.DOM0)
    rule = vm_rules.last_match(message, domain) if vm_rules is not None else None
    if rule is None:
        rule = rules.last_match(message, domain)
    if rule is None:
        return Verdict(False, VerdictReason.DEFAULT)
    return Verdict(rule.action is Action.ALLOW, VerdictReason.RULE, rule)


_MAX_LOGGED = 256  # characters of one field in a log line (DBus names are at most 255)


def _shown(value: object) -> str:
    if value is None:
        return "<none>"
    text = str(value)
    if len(text) > _MAX_LOGGED:
        text = text[:_MAX_LOGGED] + "..."
    return "".join(c if c.isprintable() and c not in "'\\" else
                   (f"\\{c}" if c in "'\\" else c.encode("unicode_escape").decode("ascii"))
                   for c in text)


def deny_log_line(message: MessageFacts, domain: DomainFacts, verdict: Verdict, *,
                  dest_domid: int = 0) -> str:
    """The one-line log of a decision (``DENY``, or ``ALLOW`` for ``-v``), naming the rule.

    ``(<src domid>-><dest domid>) DENY <kind> { sender='..' dest='..' intf='..' member='..'
    serial='..' reply-to='..' } uuid='..' by <what>`` where missing fields read ``<none>`` and
    ``<what>`` is ``rule <origin> '<rule as understood>'``, ``default deny`` or ``dom0``.
    Field values are escaped (quotes, backslashes, non-printables) and bounded.
    """
    from_kind = message.kind.value
    fields = " ".join(f"{name}='{_shown(value)}'" for name, value in (
        ("sender", message.sender), ("dest", message.destination),
        ("intf", message.interface), ("member", message.member),
        ("serial", message.serial), ("reply-to", message.reply_serial)))
    if verdict.reason is VerdictReason.RULE and verdict.rule is not None:
        origin = verdict.rule.origin or "<unknown>"
        by = f"rule {_shown(origin)} '{_shown(format_rule(verdict.rule))}'"
    elif verdict.reason is VerdictReason.DOM0:
        by = "dom0"
    else:
        by = "default deny"
    decision = "ALLOW" if verdict.allowed else "DENY"
    return (f"({domain.domid}->{dest_domid}) {decision} {from_kind} {{ {fields} }} "
            f"uuid='{_shown(domain.uuid)}' by {by}")
