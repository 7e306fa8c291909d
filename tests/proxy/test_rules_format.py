"""The rules printer (canonical form, round trip through the parser) and check-rules."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from rpc.proxy import (
    Action,
    Direction,
    MessageKind,
    NamePattern,
    PropertyTest,
    Rule,
    Subject,
    check_rules_text,
    format_rule,
    format_rules,
    parse_rules,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rpc-proxy.rules"


def test_canonical_form() -> None:
    assert format_rule(Rule(Action.DENY)) == "deny inc-any all"
    assert format_rule(Rule(Action.ALLOW, Subject(Direction.OUTGOING, MessageKind.SIGNAL))) == \
        "allow out-signal all"
    rule = Rule(Action.ALLOW, Subject(Direction.INCOMING, MessageKind.METHOD_CALL),
                member=NamePattern("m"), destination=NamePattern("d.*"),
                interface=NamePattern("i"), sender=NamePattern(":1.2"),
                object_path=NamePattern("/p/*"), dom_uuid="u", dom_id=3, stubdom=True,
                properties=(PropertyTest("usb-control", True), PropertyTest("type", "t"),
                            PropertyTest("name", "n"), PropertyTest("x", False)))
    assert format_rule(rule) == (
        "allow inc-method-call destination d.* sender :1.2 interface i member m object-path /p/* "
        "dom-uuid u dom-id 3 if-boolean usb-control true dom-type t dom-name n "
        "if-boolean x false stubdom true")
    assert parse_rules(format_rule(rule)) == (rule,)


def test_repeated_specifiers_print_once_with_the_winning_value() -> None:
    rules = parse_rules("allow member a member b stubdom true stubdom false")
    assert format_rules(rules) == "allow inc-any member b\n"


def test_origins_are_printed_as_comments_the_parser_ignores() -> None:
    rules = parse_rules("\n# x\nallow member a\n", source="f")
    assert format_rules(rules, origins=True) == "allow inc-any member a  # f:3\n"
    assert parse_rules(format_rules(rules, origins=True)) == rules
    assert format_rules([]) == ""
    odd = parse_rules("allow", source="a\nb")
    assert format_rules(odd, origins=True) == "allow inc-any all  # a\\nb:1\n"
    assert parse_rules(format_rules(odd, origins=True)) == odd


def test_check_rules_ok_prints_the_rules_as_understood() -> None:
    ok, output = check_rules_text("deny\n\nallow out-any # back\n", source="my.rules")
    assert ok
    assert output.splitlines() == [
        "# my.rules: 2 rules, as understood (last match wins, default deny, stubdomains only "
        "where 'stubdom true')",
        "deny inc-any all  # my.rules:1",
        "allow out-any all  # my.rules:3",
    ]
    assert check_rules_text("allow")[1].startswith("# <rules>: 1 rule,")


def test_check_rules_error_is_one_line_with_the_position() -> None:
    assert check_rules_text("deny all\nallow member\n", source="my.rules") == \
        (False, "my.rules:2:13: 'member' needs a name\n")
    assert check_rules_text("\x00", source="x") == (False, "x:1:1: unexpected character '\\x00'\n")


def test_check_rules_on_the_example_file() -> None:
    ok, output = check_rules_text(EXAMPLE.read_text(), source="rpc-proxy.rules")
    assert ok
    assert parse_rules(output) == parse_rules(EXAMPLE.read_text())


# --------------------------------------------------------------- round trip (hypothesis)

NAMES = st.sampled_from(["a", "com.citrix.xenclient.db", "*", "com.*", "*.vm", "get_*",
                         "x-y", "read", "a*b*c", "Get"])
BUS_NAMES = NAMES | st.sampled_from([":1.42", ":1.*"])
PATHS = st.sampled_from(["/", "/vm", "/vm/*", "/a/b_c", "/*/disk/*"])
PLAIN = st.sampled_from(["syncvm", "usb-control", "u1", "00000000-0000-0000-0000-000000000001",
                         "0", "a.b", "x_y"])
BOOL = st.sampled_from(["true", "false"])
SUBJECT = st.sampled_from([f"{d}-{k}" for d in ("inc", "out")
                           for k in ("method-call", "signal", "method-return", "error", "any")])

SPECIFIER = st.one_of(
    st.tuples(st.sampled_from(["destination", "sender"]), BUS_NAMES),
    st.tuples(st.sampled_from(["interface", "member"]), NAMES),
    st.tuples(st.just("object-path"), PATHS),
    st.tuples(st.sampled_from(["dom-uuid", "dom-type", "dom-name"]), PLAIN),
    st.tuples(st.just("dom-id"), st.integers(0, 32751).map(str)),
    st.tuples(st.just("stubdom"), BOOL),
    st.tuples(st.just("if-boolean"), PLAIN, BOOL),
)
SPACE = st.sampled_from([" ", "  ", "\t", " \t "])


@st.composite
def rule_lines(draw: st.DrawFn) -> str:
    words = [draw(st.sampled_from(["allow", "deny"]))]
    if draw(st.booleans()):
        words.append(draw(SUBJECT))
    if draw(st.booleans()):
        words.append("all")
    else:
        for specifier in draw(st.lists(SPECIFIER, max_size=6)):
            words.extend(specifier)
    line = draw(st.sampled_from(["", " ", "\t"])) + "".join(
        word + (draw(SPACE) if i < len(words) - 1 else "") for i, word in enumerate(words))
    if draw(st.booleans()):
        line += draw(SPACE) + "# " + draw(st.text(st.characters(blacklist_characters="\n"),
                                               max_size=10))
    return line


@st.composite
def rules_texts(draw: st.DrawFn) -> str:
    parts = []
    for line in draw(st.lists(rule_lines(), max_size=8)):
        parts.append(line)
        parts.extend(draw(st.lists(st.sampled_from(["", "# note", "  ", "\t# x"]), max_size=2)))
    text = draw(st.sampled_from(["\n", "\r\n"])).join(parts)
    return text + draw(st.sampled_from(["", "\n", "# end"]))  # a comment may end the file


@given(rules_texts())
def test_round_trip_through_the_printer(text: str) -> None:
    rules = parse_rules(text)
    printed = format_rules(rules)
    assert parse_rules(printed) == rules
    assert format_rules(parse_rules(printed)) == printed  # canonical: a fixed point
    assert len(printed.splitlines()) == len(rules)


def test_the_docs_examples_parse_and_the_check_output_shown_is_current() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "rpc-proxy.md").read_text()
    section = doc[doc.index("### Examples"):]
    block = section.split("```\n")[1]
    assert len(parse_rules(block, source="docs")) == 7
    shown = doc[doc.index("$ rpc-proxy --check-rules examples/rpc-proxy.rules\n"):]
    shown_lines = shown.splitlines()[1:4]
    ok, output = check_rules_text(EXAMPLE.read_text(), source="examples/rpc-proxy.rules")
    assert ok and output.splitlines()[:3] == shown_lines
