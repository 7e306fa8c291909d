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

Speed: :func:`compile_rules` indexes the rules once by (direction, kind), by exact member
name and by exact destination, precompiles each pattern to the cheapest test (equality,
prefix, suffix, regex), and orders each candidate list from last to first. A check first
takes the rules whose message fields match (remembered per message shape in a bounded memo,
see :class:`RuleSet`), then walks them from the last and stops at the first whose source
conditions hold. ``benchmarks/proxy_rules.py`` measures it against a linear scan.

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

__all__ = ["MEMO_KEY_CHARS", "MEMO_SIZE", "RuleSet", "compile_rules", "deny_log_line", "evaluate"]

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

    __slots__ = ("destination", "dom_id", "dom_uuid", "interface", "member", "path",
                 "position", "properties", "rule", "sender", "stubdom", "verdict")

    def __init__(self, rule: Rule, position: int) -> None:
        self.rule = rule
        self.position = position  # in the rule list; a higher position wins
        # built once: a frozen dataclass costs microseconds to make, a check should not
        self.verdict = Verdict(rule.action is Action.ALLOW, VerdictReason.RULE, rule)
        self.destination = _test(rule.destination)
        self.sender = _test(rule.sender)
        self.interface = _test(rule.interface)
        self.member = _test(rule.member)
        self.path = _test(rule.object_path)
        self.dom_uuid = rule.dom_uuid
        self.dom_id = rule.dom_id
        self.stubdom = rule.stubdom
        self.properties = rule.properties

    def message_matches(self, message: MessageFacts) -> bool:
        """Whether the message's fields match (the subject was checked by the index)."""
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
        return True

    def domain_matches(self, domain: DomainFacts) -> bool:
        """Whether the source matches; VM properties are asked last, only if all else holds."""
        if self.stubdom is not domain.is_stubdom:
            return False
        if self.dom_id is not None and self.dom_id != domain.domid:
            return False
        if self.dom_uuid is not None and self.dom_uuid != domain.uuid:
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


class _Index:
    """Rules by the exact value of one field; rules without one (or with a pattern) are generic.

    Memory and build time are linear in the number of rules: a lookup returns the rules of
    that exact value and the generic ones as two tuples, and the caller orders the matches.
    """

    __slots__ = ("by_value", "everything", "generic")

    def __init__(self, rules: Sequence[_Compiled],
                 field: Callable[[Rule], NamePattern | None]) -> None:
        self.everything = tuple(rules)
        self.generic = tuple(c for c in rules if (p := field(c.rule)) is None or not p.is_exact)
        exact: dict[str, list[_Compiled]] = {}
        for c in rules:
            pattern = field(c.rule)
            if pattern is not None and pattern.is_exact:
                exact.setdefault(pattern.text, []).append(c)
        self.by_value = {value: tuple(own) for value, own in exact.items()}

    def candidates(self, value: str | None) -> tuple[tuple[_Compiled, ...], ...]:
        if value is None:  # a message without the field matches every rule on it
            return (self.everything,)
        return (self.by_value.get(value, ()), self.generic)


class _Bucket:
    """The rules of one (direction, kind), indexed by exact member and exact destination."""

    __slots__ = ("by_destination", "by_member")

    def __init__(self, rules: Sequence[_Compiled]) -> None:
        self.by_member = _Index(rules, lambda rule: rule.member)
        self.by_destination = _Index(rules, lambda rule: rule.destination)

    def candidates(self, message: MessageFacts) -> tuple[tuple[_Compiled, ...], ...]:
        """The shorter of the two candidate sets (each a superset of the matches)."""
        by_member = self.by_member.candidates(message.member)
        by_destination = self.by_destination.candidates(message.destination)
        if sum(map(len, by_member)) <= sum(map(len, by_destination)):
            return by_member
        return by_destination


def _by_position(rule: _Compiled) -> int:
    return rule.position


MEMO_SIZE = 4096
"""Distinct message shapes remembered per rule set; when full the memo starts afresh, so a
client sending ever new names costs memory bounded by this and falls back to the index."""

MEMO_KEY_CHARS = 2048
"""Messages whose header fields are longer than this in total (paths and the Properties
argument are unbounded in DBus) are checked without the memo, so it stays small in bytes."""

_MessageKey = tuple[Direction, MessageKind, "str | None", "str | None", "str | None",
                    "str | None", "str | None", "str | None"]


class RuleSet:
    """Rules compiled for fast checks.

    The rules are indexed by (direction, kind), exact member and exact destination. On top,
    the rules whose message fields match a given message shape (all header fields but the
    serials) are remembered, last first, in a memo bounded by :data:`MEMO_SIZE`, so a
    repeated call costs only the source checks of those few rules. The rules never change
    once built (``rules`` keeps them in their original order); the memo is one dict whose
    updates are atomic, so a rule set may be shared between threads.
    """

    __slots__ = ("_buckets", "_memo", "rules")

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        compiled = [_Compiled(rule, position) for position, rule in enumerate(self.rules)]
        self._buckets = {
            (direction, kind): _Bucket([c for c in compiled
                                        if c.rule.subject.covers(direction, kind)])
            for direction in Direction for kind in MessageKind
        }
        self._memo: dict[_MessageKey, tuple[_Compiled, ...]] = {}

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"RuleSet({len(self.rules)} rules)"

    def _candidates(self, message: MessageFacts) -> tuple[_Compiled, ...]:
        key = (message.direction, message.kind, message.destination, message.sender,
               message.path, message.interface, message.member, message.properties_interface)
        found = self._memo.get(key)
        if found is None:
            bucket = self._buckets[message.direction, message.kind]
            matches = [c for group in bucket.candidates(message) for c in group
                       if c.message_matches(message)]
            matches.sort(key=_by_position, reverse=True)  # the last rule first
            found = tuple(matches)
            if sum(len(part) for part in key[2:] if part is not None) <= MEMO_KEY_CHARS:
                if len(self._memo) >= MEMO_SIZE:
                    self._memo.clear()
                self._memo[key] = found
        return found

    def last_match(self, message: MessageFacts, domain: DomainFacts) -> Rule | None:
        """The last rule that matches ``message`` from ``domain``, or ``None``."""
        verdict = self.decide(message, domain)
        return None if verdict is None else verdict.rule

    def decide(self, message: MessageFacts, domain: DomainFacts) -> Verdict | None:
        """The verdict of the last rule that matches, or ``None`` (no dom0 special case)."""
        for candidate in self._candidates(message):
            if candidate.domain_matches(domain):
                return candidate.verdict
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
        return _DOM0
    verdict = vm_rules.decide(message, domain) if vm_rules is not None else None
    if verdict is None:
        verdict = rules.decide(message, domain)
    return _DEFAULT_DENY if verdict is None else verdict


_DOM0 = Verdict(True, VerdictReason.DOM0)
_DEFAULT_DENY = Verdict(False, VerdictReason.DEFAULT)


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
