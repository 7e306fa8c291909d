"""The rules printer and the check-rules mode of the rpc-proxy firewall (pure).

Skeleton; the implementation follows.
"""

from __future__ import annotations

from collections.abc import Iterable

from rpc.proxy._rules_model import Rule

__pure__ = True

__all__ = ["check_rules_text", "format_rule", "format_rules"]


def format_rule(rule: Rule) -> str:
    """One rule in canonical form (one line, no newline); parses back to an equal rule."""
    raise NotImplementedError


def format_rules(rules: Iterable[Rule], *, origins: bool = False) -> str:
    """The rules as understood, one per line; with ``origins`` each ends with ``# <origin>``."""
    raise NotImplementedError


def check_rules_text(text: str, *, source: str = "<rules>") -> tuple[bool, str]:
    """What ``rpc-proxy --check-rules FILE`` prints: ``(True, rules)`` or ``(False, error)``."""
    raise NotImplementedError
