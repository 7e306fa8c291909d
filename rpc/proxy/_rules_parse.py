"""The rules-file parser of the rpc-proxy firewall (pure).

Skeleton: the grammar is documented in docs/rpc-proxy.md (## Rules); the implementation follows.
"""

from __future__ import annotations

from rpc.proxy._rules_model import Rule

__pure__ = True

__all__ = ["RulesDbError", "RulesError", "RulesSyntaxError", "parse_rule", "parse_rules",
           "vm_rules_from_db"]


class RulesError(ValueError):
    """Rules that cannot be used: the base of every error of the rules engine."""


class RulesSyntaxError(RulesError):
    """A rules text that does not parse; ``source``, ``line`` and ``column`` (1-based) say where."""

    def __init__(self, message: str, *, source: str, line: int, column: int) -> None:
        super().__init__(f"{source}:{line}:{column}: {message}")
        self.reason = message
        self.source = source
        self.line = line
        self.column = column


class RulesDbError(RulesError):
    """Per-VM rules in the db that cannot be used; ``path`` names the db node."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


def parse_rules(text: str, *, source: str = "<rules>") -> tuple[Rule, ...]:
    """Parse a whole rules file into rules, in file order; raises :class:`RulesSyntaxError`."""
    raise NotImplementedError


def parse_rule(text: str, *, source: str = "<rule>") -> Rule:
    """Parse exactly one rule (a per-VM db entry); raises :class:`RulesSyntaxError`."""
    raise NotImplementedError


def vm_rules_from_db(uuid: str, value: object) -> tuple[Rule, ...]:
    """The per-VM rules of ``uuid`` from the decoded db subtree ``/vm/<uuid>/rpc-firewall-rules``.

    ``value`` is what dbd's ``dump`` of that node decodes to: a mapping of children ``"0"``,
    ``"1"``, ... to rule strings (db order is kept), or ``None``/``""`` when there are none.
    Every rule gets ``dom-uuid <uuid>`` forced. Raises :class:`RulesDbError` naming the node.
    """
    raise NotImplementedError
