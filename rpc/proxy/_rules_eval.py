"""Evaluation of the rpc-proxy firewall rules (pure). Skeleton; the implementation follows."""

from __future__ import annotations

from collections.abc import Iterable

from rpc.proxy._rules_model import DomainFacts, MessageFacts, Rule, Verdict

__pure__ = True

__all__ = ["RuleSet", "compile_rules", "deny_log_line", "evaluate"]


class RuleSet:
    """Rules compiled for fast checks (indexed by direction, kind and exact member)."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)


def compile_rules(rules: Iterable[Rule]) -> RuleSet:
    """Compile rules (in file order; later ones win) into a :class:`RuleSet`."""
    return RuleSet(rules)


def evaluate(rules: RuleSet, message: MessageFacts, domain: DomainFacts, *,
             vm_rules: RuleSet | None = None, dom0_bypass: bool = True) -> Verdict:
    """Decide one message: dom0 allowed, else the last matching rule, else deny."""
    raise NotImplementedError


def deny_log_line(message: MessageFacts, domain: DomainFacts, verdict: Verdict, *,
                  dest_domid: int = 0) -> str:
    """The one-line log of a decision (DENY, or ALLOW for ``-v``), naming the deciding rule."""
    raise NotImplementedError
