"""Conditions on xenstore state that a waiter re-evaluates, and the pure wait loop's rules.

A condition names the paths to watch (`Condition.paths`) and decides from fresh reads
(`Condition.holds(read)`, where ``read(path)`` returns the value or None for a missing node).
Watch events only say when to evaluate again; the decision always comes from reads, never from
the event (the first evaluation comes from the event xenstored fires at
registration; a waiter also re-evaluates at least every ``poll`` seconds and once more at the
timeout, in case an event was missed).

Conditions, as in the original's predicates: `value_to_appear(path)` (the node exists),
`key_to_disappear(path)` (it does not), `value_to_become(path, value)` (it exists with exactly
that value), `all_of(*conditions)`, `any_of(*conditions)` (empty `all_of` holds, empty `any_of`
does not). Values are compared as text. This module does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "AllOf",
    "AnyOf",
    "Condition",
    "KeyToDisappear",
    "Reader",
    "ValueToAppear",
    "ValueToBecome",
    "all_of",
    "any_of",
    "key_to_disappear",
    "next_wait",
    "value_to_appear",
    "value_to_become",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

Reader = Callable[[str], "str | None"]


class Condition(Protocol):
    def paths(self) -> tuple[str, ...]:
        """The paths whose changes may change the outcome (each is watched)."""
        ...

    def holds(self, read: Reader) -> bool:
        """Evaluate against the current state, reading through ``read``."""
        ...


@dataclass(frozen=True, slots=True)
class ValueToAppear:
    path: str

    def paths(self) -> tuple[str, ...]:
        return (self.path,)

    def holds(self, read: Reader) -> bool:
        return read(self.path) is not None


@dataclass(frozen=True, slots=True)
class KeyToDisappear:
    path: str

    def paths(self) -> tuple[str, ...]:
        return (self.path,)

    def holds(self, read: Reader) -> bool:
        return read(self.path) is None


@dataclass(frozen=True, slots=True)
class ValueToBecome:
    path: str
    value: str

    def paths(self) -> tuple[str, ...]:
        return (self.path,)

    def holds(self, read: Reader) -> bool:
        return read(self.path) == self.value


@dataclass(frozen=True, slots=True)
class AllOf:
    conditions: tuple[Condition, ...]

    def paths(self) -> tuple[str, ...]:
        return _union(self.conditions)

    def holds(self, read: Reader) -> bool:
        return all(c.holds(read) for c in self.conditions)


@dataclass(frozen=True, slots=True)
class AnyOf:
    conditions: tuple[Condition, ...]

    def paths(self) -> tuple[str, ...]:
        return _union(self.conditions)

    def holds(self, read: Reader) -> bool:
        return any(c.holds(read) for c in self.conditions)


def _union(conditions: tuple[Condition, ...]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for c in conditions:
        for p in c.paths():
            seen.setdefault(p, None)
    return tuple(seen)


def value_to_appear(path: str) -> ValueToAppear:
    return ValueToAppear(path)


def key_to_disappear(path: str) -> KeyToDisappear:
    return KeyToDisappear(path)


def value_to_become(path: str, value: str) -> ValueToBecome:
    return ValueToBecome(path, value)


def all_of(*conditions: Condition) -> AllOf:
    return AllOf(tuple(conditions))


def any_of(*conditions: Condition) -> AnyOf:
    return AnyOf(tuple(conditions))


def next_wait(now: float, deadline: float, poll: float) -> float:
    """How long a waiter sleeps for an event before evaluating again: until the next poll or
    the deadline, whichever is first (0 when the deadline has passed)."""
    return max(0.0, min(poll, deadline - now))
