"""The rules printer and the check-rules mode of the rpc-proxy firewall (pure).

:func:`format_rules` prints rules as the parser understood them, in a canonical form: one rule
per line, the subject always spelled out, specifiers in a fixed order (``SPECIFIERS``), a
repeated specifier once (the value that won), ``stubdom true`` only when set, ``all`` for a rule
with no specifier. Round trip: ``parse_rules(format_rules(parse_rules(x))) == parse_rules(x)``
for every text the parser accepts (origins are not part of equality).

:func:`check_rules_text` is the pure part of ``rpc-proxy --check-rules FILE``: the rules as
understood with their line numbers, or the parse error.
"""

from __future__ import annotations

from collections.abc import Iterable

from rpc.proxy._rules_model import Rule
from rpc.proxy._rules_parse import RulesSyntaxError, parse_rules

__pure__ = True

__all__ = ["check_rules_text", "format_rule", "format_rules"]


def format_rule(rule: Rule) -> str:
    """One rule in canonical form (one line, no newline); parses back to an equal rule."""
    words = [rule.action.value, rule.subject.keyword]
    for keyword, pattern in (("destination", rule.destination), ("sender", rule.sender),
                             ("interface", rule.interface), ("member", rule.member),
                             ("object-path", rule.object_path)):
        if pattern is not None:
            words += [keyword, pattern.text]
    if rule.dom_uuid is not None:
        words += ["dom-uuid", rule.dom_uuid]
    if rule.dom_id is not None:
        words += ["dom-id", str(rule.dom_id)]
    for test in rule.properties:
        if isinstance(test.expected, bool):
            words += ["if-boolean", test.property, "true" if test.expected else "false"]
        else:
            words += [f"dom-{test.property}", test.expected]
    if rule.stubdom:
        words += ["stubdom", "true"]
    if len(words) == 2:
        words.append("all")
    return " ".join(words)


def format_rules(rules: Iterable[Rule], *, origins: bool = False) -> str:
    """The rules as understood, one per line (each ending in a newline).

    With ``origins``, each line ends with a comment naming where the rule came from
    (``# <source>:<line>``), which the parser ignores.
    """
    lines = []
    for rule in rules:
        text = format_rule(rule)
        if origins and rule.origin:
            origin = rule.origin.replace("\r", "\\r").replace("\n", "\\n")
            text = f"{text}  # {origin}"
        lines.append(text + "\n")
    return "".join(lines)


def check_rules_text(text: str, *, source: str = "<rules>") -> tuple[bool, str]:
    """What ``rpc-proxy --check-rules FILE`` prints.

    ``(True, output)``: the output is a header comment with the rule count, then the rules as
    understood with their origins. ``(False, output)``: the output is the one-line error
    ``<source>:<line>:<column>: <reason>``. Never raises for any text.
    """
    try:
        rules = parse_rules(text, source=source)
    except RulesSyntaxError as exc:
        return False, f"{exc}\n"
    count = f"{len(rules)} rule{'' if len(rules) == 1 else 's'}"
    header = (f"# {source}: {count}, as understood (last match wins, default deny, "
              "stubdomains only where 'stubdom true')\n")
    return True, header + format_rules(rules, origins=True)
