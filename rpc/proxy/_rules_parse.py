"""The rules-file parser of the rpc-proxy firewall (pure).

Text in, :class:`~rpc.proxy._rules_model.Rule` values out, in file order. The grammar is the
original's (docs/rpc-proxy.md, "## Rules") with its two bugs fixed (``dom-id N`` parses; a
comment on the last line needs no newline) and three additions: the ``object-path``
specifier, ``*`` wildcards in names and paths, and CR ignored so CRLF files parse.

* Lexing: a word is a run of ``A-Z a-z 0-9 _ . - : / *``; spaces, tabs and CR separate words;
  ``#`` starts a comment that runs to the end of the line; a newline ends a rule. Any other
  character is an error.
* Each non-empty line is one rule: ``allow|deny [subject] (all | specifier*)``.
* A specifier given twice keeps the last value, except the VM-property ones (``dom-type``,
  ``dom-name``, ``if-boolean``) which accumulate: all must hold.

Every refusal is a :class:`RulesSyntaxError` carrying the source name, the 1-based line and
column and a reason; nothing else escapes (the input is bounded by :data:`MAX_RULES_TEXT`).
Per-VM rules from the db go through :func:`vm_rules_from_db`, which raises
:class:`RulesDbError` naming the db node of the first malformed rule.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rpc.proxy._rules_model import (
    Action,
    Direction,
    MessageKind,
    NamePattern,
    PropertyTest,
    Rule,
    Subject,
)

__pure__ = True

__all__ = [
    "MAX_RULES_TEXT",
    "MAX_WORD",
    "SPECIFIERS",
    "SUBJECTS",
    "RulesDbError",
    "RulesError",
    "RulesSyntaxError",
    "parse_rule",
    "parse_rules",
    "vm_rules_from_db",
]

MAX_RULES_TEXT = 4 * 1024 * 1024
"""Largest rules text accepted, in characters: the production file is about 5 KiB; a few MiB
of rules is a mistake, and the bound keeps a bad file from costing unbounded memory."""
MAX_WORD = 1024
"""Longest word accepted: DBus names are at most 255 characters; paths are rarely longer."""
DOMID_LIMIT = 0x7FF0
"""``dom-id`` must be below Xen's first reserved domid (DOMID_FIRST_RESERVED)."""

SUBJECTS: Mapping[str, Subject] = {
    Subject(d, k).keyword: Subject(d, k)
    for d in Direction for k in (*MessageKind, None)
}
"""The subject keywords (``inc-method-call`` ... ``out-any``) and what they mean."""

SPECIFIERS = ("destination", "sender", "interface", "member", "object-path", "dom-uuid",
              "dom-id", "dom-type", "dom-name", "stubdom", "if-boolean")
"""The specifier keywords, in the order the printer writes them."""

_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-:/*")
_BUS_NAME = re.compile(r"[A-Za-z0-9_.:*-]+")
_MEMBER_OR_INTERFACE = re.compile(r"[A-Za-z0-9_.*-]+")
_PLAIN = re.compile(r"[A-Za-z0-9_.-]+")


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


@dataclass(frozen=True, slots=True)
class _Word:
    text: str
    line: int
    column: int


def _lex(text: str, source: str) -> list[list[_Word]]:
    """The words of ``text``, one list per line (comments and blank lines give empty lists)."""
    if len(text) > MAX_RULES_TEXT:
        raise RulesSyntaxError(f"rules text longer than {MAX_RULES_TEXT} characters",
                               source=source, line=1, column=1)
    lines: list[list[_Word]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        words: list[_Word] = []
        start = -1
        for index, char in enumerate(line):
            if char in _WORD_CHARS:
                if start < 0:
                    start = index
                continue
            if start >= 0:
                words.append(_word(line, start, index, number, source))
                start = -1
            if char == "#":
                break
            if char not in " \t\r":
                raise RulesSyntaxError(f"unexpected character {char!r}", source=source,
                                       line=number, column=index + 1)
        else:
            if start >= 0:
                words.append(_word(line, start, len(line), number, source))
        lines.append(words)
    return lines


def _word(line: str, start: int, end: int, number: int, source: str) -> _Word:
    if end - start > MAX_WORD:
        raise RulesSyntaxError(f"word longer than {MAX_WORD} characters", source=source,
                               line=number, column=start + 1)
    return _Word(line[start:end], number, start + 1)


class _Line:
    """The words of one rule and a cursor over them, for error positions."""

    def __init__(self, words: list[_Word], source: str, end_column: int) -> None:
        self.words = words
        self.source = source
        self.end_column = end_column
        self.next = 0

    def error(self, message: str, word: _Word | None = None) -> RulesSyntaxError:
        line = self.words[0].line
        column = self.end_column if word is None else word.column
        return RulesSyntaxError(message, source=self.source, line=line, column=column)

    def take(self) -> _Word | None:
        if self.next >= len(self.words):
            return None
        word = self.words[self.next]
        self.next += 1
        return word

    def argument(self, keyword: _Word, what: str) -> _Word:
        word = self.take()
        if word is None:
            raise self.error(f"{keyword.text!r} needs {what}")
        return word


def _boolean(line: _Line, word: _Word) -> bool:
    if word.text == "true":
        return True
    if word.text == "false":
        return False
    raise line.error(f"expected 'true' or 'false', found {word.text!r}", word)


def _pattern(line: _Line, word: _Word, shape: re.Pattern[str], what: str) -> NamePattern:
    if not shape.fullmatch(word.text):
        raise line.error(f"{word.text!r} is not {what}", word)
    return NamePattern(word.text)


def _plain(line: _Line, word: _Word, what: str) -> str:
    if not _PLAIN.fullmatch(word.text):
        raise line.error(f"{word.text!r} is not {what} (no '*', ':' or '/' here)", word)
    return word.text


def _parse_line(line: _Line) -> Rule:
    first = line.take()
    assert first is not None  # only non-empty lines are parsed
    try:
        action = Action(first.text)
    except ValueError:
        raise line.error(f"a rule starts with 'allow' or 'deny', found {first.text!r}",
                         first) from None
    fields: dict[str, object] = {}
    properties: list[PropertyTest] = []
    word = line.take()
    if word is not None and word.text in SUBJECTS:
        fields["subject"] = SUBJECTS[word.text]
        word = line.take()
    if word is not None and word.text == "all":
        extra = line.take()
        if extra is not None:
            raise line.error(f"nothing may follow 'all', found {extra.text!r}", extra)
        word = None
    while word is not None:
        _specifier(line, word, fields, properties)
        word = line.take()
    return Rule(action, properties=tuple(properties), **fields)  # type: ignore[arg-type]


def _specifier(line: _Line, word: _Word, fields: dict[str, object],
               properties: list[PropertyTest]) -> None:
    keyword = word.text
    if keyword in ("destination", "sender"):
        arg = line.argument(word, "a bus name")
        fields[keyword] = _pattern(line, arg, _BUS_NAME, "a bus name or pattern")
    elif keyword in ("interface", "member"):
        arg = line.argument(word, f"an {keyword} name" if keyword == "interface" else "a name")
        fields[keyword] = _pattern(line, arg, _MEMBER_OR_INTERFACE, f"a valid {keyword}")
    elif keyword == "object-path":
        arg = line.argument(word, "an object path")
        if not arg.text.startswith("/") or ":" in arg.text:
            raise line.error(f"an object path starts with '/', found {arg.text!r}", arg)
        fields["object_path"] = NamePattern(arg.text)
    elif keyword == "dom-uuid":
        fields["dom_uuid"] = _plain(line, line.argument(word, "a VM uuid"), "a VM uuid")
    elif keyword == "dom-id":
        arg = line.argument(word, "a domid")
        if not (arg.text.isascii() and arg.text.isdigit()) or int(arg.text) >= DOMID_LIMIT:
            raise line.error(f"a domid is a number from 0 to {DOMID_LIMIT - 1}, "
                             f"found {arg.text!r}", arg)
        fields["dom_id"] = int(arg.text)
    elif keyword == "stubdom":
        fields["stubdom"] = _boolean(line, line.argument(word, "'true' or 'false'"))
    elif keyword in ("dom-type", "dom-name"):
        value = _plain(line, line.argument(word, "a value"), "a property value")
        properties.append(PropertyTest(keyword[4:], value))
    elif keyword == "if-boolean":
        name = _plain(line, line.argument(word, "a property name"), "a property name")
        properties.append(PropertyTest(name, _boolean(
            line, line.argument(word, "'true' or 'false' after the property name"))))
    elif keyword in SUBJECTS or keyword == "all":
        raise line.error(f"{keyword!r} must come right after 'allow' or 'deny'", word)
    else:
        hint = " (for a VM, use dom-uuid)" if keyword == "domain" else ""
        raise line.error(f"unknown specifier {keyword!r}{hint}; known: "
                         + ", ".join(SPECIFIERS), word)


def parse_rules(text: str, *, source: str = "<rules>") -> tuple[Rule, ...]:
    """Parse a whole rules file into rules, in file order.

    Each rule's ``origin`` is ``"<source>:<line>"``. An empty file (or only comments) gives no
    rules. Raises :class:`RulesSyntaxError` (with source, line, column) at the first problem.
    """
    rules = []
    for words in _lex(text, source):
        if not words:
            continue
        number = words[0].line
        line = _Line(words, source, words[-1].column + len(words[-1].text))
        rules.append(dataclasses.replace(_parse_line(line), origin=f"{source}:{number}"))
    return tuple(rules)


def parse_rule(text: str, *, source: str = "<rule>") -> Rule:
    """Parse exactly one rule (a per-VM db entry); raises :class:`RulesSyntaxError`.

    Comments and blank lines around it are allowed; no rule or a second rule is an error.
    """
    rules = parse_rules(text, source=source)
    if not rules:
        raise RulesSyntaxError("expected a rule, found none", source=source, line=1, column=1)
    if len(rules) > 1:
        line = int(rules[1].origin.rsplit(":", 1)[1])
        raise RulesSyntaxError("expected one rule, found a second one", source=source,
                               line=line, column=1)
    return rules[0]


def vm_rules_from_db(uuid: str, value: object) -> tuple[Rule, ...]:
    """The per-VM rules of ``uuid`` from the decoded db subtree ``/vm/<uuid>/rpc-firewall-rules``.

    ``value`` is what dbd's ``dump`` of that node decodes to: a mapping of children ``"0"``,
    ``"1"``, ... to rule strings (db order is kept; a list of strings is accepted too), or
    ``None``/``""`` when there are none. Every rule gets ``dom-uuid <uuid>`` forced and the db
    path as its origin. The first malformed entry raises :class:`RulesDbError`
    ``Malformed rule (<text>) in database at path <path>: <reason>``.
    """
    base = f"/vm/{uuid}/rpc-firewall-rules"
    if value is None or value == "":
        return ()
    items: Sequence[tuple[str, object]]
    if isinstance(value, Mapping):
        items = [(str(key), entry) for key, entry in value.items()]
    elif isinstance(value, list | tuple):
        items = [(str(index), entry) for index, entry in enumerate(value)]
    else:
        raise RulesDbError(f"Malformed rules in database at path {base}: expected a list of "
                           f"rules, found {type(value).__name__}", path=base)
    rules = []
    for key, entry in items:
        path = f"{base}/{key}"
        if not isinstance(entry, str):
            raise RulesDbError(f"Malformed rule ({entry!r}) in database at path {path}: "
                               "not a string", path=path)
        try:
            rule = parse_rule(entry, source=path)
        except RulesSyntaxError as exc:
            raise RulesDbError(f"Malformed rule ({entry!r}) in database at path {path}: "
                               f"{exc.reason} (line {exc.line}, column {exc.column})",
                               path=path) from None
        rules.append(dataclasses.replace(rule, dom_uuid=uuid, origin=path))
    return tuple(rules)
