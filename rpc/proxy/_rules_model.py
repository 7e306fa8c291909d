"""The rules model of the rpc-proxy firewall: rules, message facts, domain facts, verdicts (pure).

A :class:`Rule` is one line of a rules file as understood: an :class:`Action` (allow/deny), a
:class:`Subject` (direction and message kind, default ``inc-any``) and the specifiers, each
``None`` when the rule does not constrain it. Names (destination, sender, interface, member)
and the object path are :class:`NamePattern` values: ``*`` matches any run of characters,
``.`` and ``/`` included, so ``com.citrix.*`` matches ``com.citrix.xenclient.db`` and
``/vm/*`` matches ``/vm/abc`` and ``/vm/abc/disk/0`` (but not ``/vm`` itself); a name without
``*`` matches only itself.

A rule is checked against two sets of facts, both plain values so the evaluator stays pure:

* :class:`MessageFacts`: what the DBus message says (kind, direction, header fields, and for
  ``org.freedesktop.DBus.Properties`` ``Get``/``Set``/``GetAll`` calls the interface named by the
  first argument, :func:`properties_target`);
* :class:`DomainFacts`: who sent it (domid, VM uuid if known, stubdomain or not) and a callable
  ``property(name) -> str | None`` through which the I/O side answers VM properties for the
  ``dom-type``, ``dom-name`` and ``if-boolean`` specifiers. The evaluator calls it only when
  every other field of a rule already matched, and never when the uuid is unknown.

The outcome of a check is a :class:`Verdict`: allowed or not, why (:class:`VerdictReason`) and
the rule that decided (``None`` for dom0 and for the default deny).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field

__pure__ = True

__all__ = [
    "PROPERTIES_INTERFACE",
    "PROPERTIES_MEMBERS",
    "Action",
    "Direction",
    "DomainFacts",
    "MessageFacts",
    "MessageKind",
    "NamePattern",
    "PropertyTest",
    "Rule",
    "Subject",
    "Verdict",
    "VerdictReason",
    "no_properties",
    "properties_target",
]

PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"
"""Calls on this interface are also matched by ``interface X`` when their first argument is X."""
PROPERTIES_MEMBERS = frozenset({"Get", "Set", "GetAll"})
"""The members of :data:`PROPERTIES_INTERFACE` whose first argument names an interface."""


class Action(enum.Enum):
    """What a matching rule decides."""

    ALLOW = "allow"
    DENY = "deny"


class Direction(enum.Enum):
    """Which way a message goes: from the client to the bus (``inc``) or back (``out``)."""

    INCOMING = "inc"
    OUTGOING = "out"


class MessageKind(enum.Enum):
    """The DBus message type, spelled as in the rules' subjects."""

    METHOD_CALL = "method-call"
    SIGNAL = "signal"
    METHOD_RETURN = "method-return"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Subject:
    """Which messages a rule is about: a direction and a kind (``None`` = any kind)."""

    direction: Direction = Direction.INCOMING
    kind: MessageKind | None = None

    @property
    def keyword(self) -> str:
        """The rules-file spelling: ``inc-method-call``, ``out-any``, ..."""
        return f"{self.direction.value}-{'any' if self.kind is None else self.kind.value}"

    def covers(self, direction: Direction, kind: MessageKind) -> bool:
        """Whether a message going ``direction`` of type ``kind`` is about this subject."""
        return self.direction is direction and (self.kind is None or self.kind is kind)


@dataclass(frozen=True, slots=True)
class NamePattern:
    """A name or object path, where each ``*`` matches any run of characters (even empty)."""

    text: str

    @property
    def is_exact(self) -> bool:
        """Whether the pattern has no wildcard (it matches only its own text)."""
        return "*" not in self.text

    def matches(self, value: str) -> bool:
        """Whether ``value`` matches the pattern as a whole (the definition; slow path)."""
        if self.is_exact:
            return value == self.text
        regex = ".*".join(re.escape(part) for part in self.text.split("*"))
        return re.fullmatch(regex, value, re.DOTALL) is not None


@dataclass(frozen=True, slots=True)
class PropertyTest:
    """A condition on a property of the source VM (as xenmgr reports it).

    ``expected`` a string: the property must equal it (``dom-type W`` is ``("type", W)``,
    ``dom-name W`` is ``("name", W)``). ``expected`` a bool: ``if-boolean PROP true|false``, the
    property must read as that boolean (``true``/``yes``/``1`` or ``false``/``no``/``0``,
    as xenmgr's db booleans; anything else matches neither).
    """

    property: str
    expected: str | bool


@dataclass(frozen=True, slots=True)
class Rule:
    """One firewall rule as understood; unset (``None``/empty) specifiers match anything.

    ``stubdom`` is always present: a rule matches only sources whose stubdomain flag equals it
    (so stubdomains are denied unless a rule says ``stubdom true``). ``properties`` accumulate
    (all must hold). ``origin`` says where the rule came from (``FILE:LINE`` or the db path);
    it is for logs and is not part of equality.
    """

    action: Action
    subject: Subject = Subject()
    destination: NamePattern | None = None
    sender: NamePattern | None = None
    interface: NamePattern | None = None
    member: NamePattern | None = None
    object_path: NamePattern | None = None
    dom_uuid: str | None = None
    dom_id: int | None = None
    stubdom: bool = False
    properties: tuple[PropertyTest, ...] = ()
    origin: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What the firewall sees of one DBus message; ``None`` = the message lacks that field.

    ``properties_interface`` is the interface named by the first argument of a
    ``Properties.Get/Set/GetAll`` call (see :func:`properties_target`), else ``None``.
    ``serial`` and ``reply_serial`` are only for the log line.
    """

    kind: MessageKind
    direction: Direction = Direction.INCOMING
    destination: str | None = None
    sender: str | None = None
    path: str | None = None
    interface: str | None = None
    member: str | None = None
    properties_interface: str | None = None
    serial: int | None = None
    reply_serial: int | None = None


def no_properties(name: str) -> str | None:
    """The property source of a domain whose VM properties are unknown: none."""
    return None


@dataclass(frozen=True, slots=True)
class DomainFacts:
    """The source of a message: its domid, VM uuid (if known), stubdomain flag, VM properties.

    ``property(name)`` returns the VM property ``name`` as a string (booleans as
    ``"true"``/``"false"``) or ``None`` when it is unknown. The I/O side may fetch and cache;
    the evaluator calls it lazily and only when ``uuid`` is known.
    """

    domid: int
    uuid: str | None = None
    is_stubdom: bool = False
    property: Callable[[str], str | None] = field(default=no_properties, compare=False)


class VerdictReason(enum.Enum):
    """Why a message was allowed or denied."""

    DOM0 = "dom0"        # the source is domid 0: allowed without looking at rules
    RULE = "rule"        # the last matching rule decided
    DEFAULT = "default"  # no rule matched: denied


@dataclass(frozen=True, slots=True)
class Verdict:
    """The firewall's answer for one message: ``allowed``, ``reason``, and the deciding rule."""

    allowed: bool
    reason: VerdictReason
    rule: Rule | None = None


def properties_target(interface: str | None, member: str | None,
                      first_argument: object) -> str | None:
    """The interface a ``Properties.Get/Set/GetAll`` call is about, for ``MessageFacts``.

    Returns ``first_argument`` when ``interface`` is ``org.freedesktop.DBus.Properties``,
    ``member`` is ``Get``, ``Set`` or ``GetAll`` and the argument is a string; else ``None``.
    """
    if (interface == PROPERTIES_INTERFACE and member in PROPERTIES_MEMBERS
            and isinstance(first_argument, str)):
        return first_argument
    return None
