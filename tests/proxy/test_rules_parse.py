"""The rules parser: every construct, every error with its line and column, the fixed bugs,
the per-VM rules from the db, and the shipped example file."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpc.proxy import (
    Action,
    Direction,
    MessageKind,
    NamePattern,
    PropertyTest,
    Rule,
    RulesDbError,
    RulesError,
    RulesSyntaxError,
    Subject,
    parse_rule,
    parse_rules,
    vm_rules_from_db,
)
from rpc.proxy._rules_parse import MAX_RULES_TEXT, MAX_WORD

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rpc-proxy.rules"


def one(text: str) -> Rule:
    rules = parse_rules(text)
    assert len(rules) == 1
    return rules[0]


# ------------------------------------------------------------------------------ constructs

@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "  \t\n# a\n\n# b"])
def test_no_rules(text: str) -> None:
    assert parse_rules(text) == ()


def test_allow_alone_is_allow_all_and_matches_everything_incoming() -> None:
    assert one("allow") == one("allow all") == Rule(Action.ALLOW)
    assert one("deny all") == Rule(Action.DENY, Subject(Direction.INCOMING, None))


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("kind", [*MessageKind, None])
def test_every_subject(direction: Direction, kind: MessageKind | None) -> None:
    word = f"{direction.value}-{'any' if kind is None else kind.value}"
    assert one(f"deny {word}").subject == Subject(direction, kind)
    assert one(f"deny {word} all").subject == Subject(direction, kind)
    assert one(f"deny {word} member m").member == NamePattern("m")


@pytest.mark.parametrize(("text", "expected"), [
    ("allow destination com.citrix.xenclient.db",
     Rule(Action.ALLOW, destination=NamePattern("com.citrix.xenclient.db"))),
    ("allow sender :1.42", Rule(Action.ALLOW, sender=NamePattern(":1.42"))),
    ("allow interface com.citrix.xenclient.xenmgr.vm",
     Rule(Action.ALLOW, interface=NamePattern("com.citrix.xenclient.xenmgr.vm"))),
    ("allow member read_binary", Rule(Action.ALLOW, member=NamePattern("read_binary"))),
    ("allow object-path /vm/abc_1", Rule(Action.ALLOW, object_path=NamePattern("/vm/abc_1"))),
    ("allow object-path /vm/*", Rule(Action.ALLOW, object_path=NamePattern("/vm/*"))),
    ("allow dom-uuid 00000000-0000-0000-0000-000000000001",
     Rule(Action.ALLOW, dom_uuid="00000000-0000-0000-0000-000000000001")),
    ("allow dom-id 7", Rule(Action.ALLOW, dom_id=7)),
    ("allow dom-id 0", Rule(Action.ALLOW, dom_id=0)),
    ("allow dom-type syncvm", Rule(Action.ALLOW, properties=(PropertyTest("type", "syncvm"),))),
    ("allow dom-name My_VM", Rule(Action.ALLOW, properties=(PropertyTest("name", "My_VM"),))),
    ("allow stubdom true", Rule(Action.ALLOW, stubdom=True)),
    ("allow stubdom false", Rule(Action.ALLOW, stubdom=False)),
    ("allow if-boolean usb-control true",
     Rule(Action.ALLOW, properties=(PropertyTest("usb-control", True),))),
    ("allow if-boolean usb-control false",
     Rule(Action.ALLOW, properties=(PropertyTest("usb-control", False),))),
    ("allow destination com.citrix.* interface *.vm member get_*",
     Rule(Action.ALLOW, destination=NamePattern("com.citrix.*"),
          interface=NamePattern("*.vm"), member=NamePattern("get_*"))),
])
def test_every_specifier(text: str, expected: Rule) -> None:
    assert one(text) == expected


def test_specifiers_in_any_order_and_the_last_value_wins() -> None:
    rule = one("deny member a destination d1 member b stubdom true destination d2 stubdom false")
    assert rule == Rule(Action.DENY, member=NamePattern("b"), destination=NamePattern("d2"))
    assert one("allow dom-id 1 dom-id 2").dom_id == 2
    assert one("allow object-path /a object-path /b").object_path == NamePattern("/b")


def test_property_specifiers_accumulate_in_order() -> None:
    rule = one("allow dom-type a if-boolean x true dom-name n dom-type b if-boolean x false")
    assert rule.properties == (PropertyTest("type", "a"), PropertyTest("x", True),
                               PropertyTest("name", "n"), PropertyTest("type", "b"),
                               PropertyTest("x", False))


def test_keywords_are_plain_words_in_value_position() -> None:
    assert one("allow member allow").member == NamePattern("allow")
    assert one("allow destination all").destination == NamePattern("all")


def test_layout_blank_lines_comments_tabs_and_origins() -> None:
    text = "\n\n# head\n\tdeny\tall   # closed\n\n\n  allow member x#tight\nallow out-any\n"
    rules = parse_rules(text, source="f.rules")
    assert [r.action for r in rules] == [Action.DENY, Action.ALLOW, Action.ALLOW]
    assert [r.origin for r in rules] == ["f.rules:4", "f.rules:7", "f.rules:8"]
    assert rules[1].member == NamePattern("x")


def test_fixed_bug_dom_id_parses() -> None:
    # the original lexed digits as words, so "dom-id N" never parsed
    assert one("allow dom-id 12 member m") == Rule(Action.ALLOW, dom_id=12,
                                                   member=NamePattern("m"))


def test_fixed_bug_comment_at_end_of_file_without_newline() -> None:
    assert parse_rules("allow all\n# the end") == (Rule(Action.ALLOW),)
    assert parse_rules("allow all # the end") == (Rule(Action.ALLOW),)


def test_crlf_line_ends_are_accepted() -> None:
    assert parse_rules("deny all\r\nallow member x\r\n") == (
        Rule(Action.DENY), Rule(Action.ALLOW, member=NamePattern("x")))


def test_parse_rule_takes_exactly_one_rule() -> None:
    assert parse_rule("  allow member x  # c") == Rule(Action.ALLOW, member=NamePattern("x"))
    with pytest.raises(RulesSyntaxError) as none:
        parse_rule("# nothing", source="db")
    assert (none.value.line, none.value.column, none.value.reason) == \
        (1, 1, "expected a rule, found none")
    with pytest.raises(RulesSyntaxError) as two:
        parse_rule("allow\n\ndeny", source="db")
    assert (two.value.line, two.value.column) == (3, 1)


# ---------------------------------------------------------------------------------- errors

@pytest.mark.parametrize(("text", "line", "column", "reason"), [
    ("allow x=1", 1, 8, "unexpected character '='"),
    ("allow member read()", 1, 18, "unexpected character '('"),
    ("deny all\nallow member \u00e9t\u00e9", 2, 14, "unexpected character '\u00e9'"),
    ("permit all", 1, 1, "a rule starts with 'allow' or 'deny', found 'permit'"),
    ("\n\n  inc-any allow", 3, 3, "a rule starts with 'allow' or 'deny', found 'inc-any'"),
    ("allow all member x", 1, 11, "nothing may follow 'all', found 'member'"),
    ("allow member x inc-signal", 1, 16, "'inc-signal' must come right after 'allow' or 'deny'"),
    ("allow inc-any out-any", 1, 15, "'out-any' must come right after 'allow' or 'deny'"),
    ("allow member x all", 1, 16, "'all' must come right after 'allow' or 'deny'"),
    ("allow member", 1, 13, "'member' needs a name"),
    ("allow destination   # why", 1, 18, "'destination' needs a bus name"),
    ("allow sender", 1, 13, "'sender' needs a bus name"),
    ("allow interface", 1, 16, "'interface' needs an interface name"),
    ("allow object-path", 1, 18, "'object-path' needs an object path"),
    ("allow dom-uuid", 1, 15, "'dom-uuid' needs a VM uuid"),
    ("allow dom-id", 1, 13, "'dom-id' needs a domid"),
    ("allow dom-type", 1, 15, "'dom-type' needs a value"),
    ("allow dom-name", 1, 15, "'dom-name' needs a value"),
    ("allow stubdom", 1, 14, "'stubdom' needs 'true' or 'false'"),
    ("allow if-boolean", 1, 17, "'if-boolean' needs a property name"),
    ("allow if-boolean usb-control", 1, 29,
     "'if-boolean' needs 'true' or 'false' after the property name"),
    ("allow if-boolean usb-control maybe", 1, 30, "expected 'true' or 'false', found 'maybe'"),
    ("allow stubdom yes", 1, 15, "expected 'true' or 'false', found 'yes'"),
    ("allow member a/b", 1, 14, "'a/b' is not a valid member"),
    ("allow interface com:x", 1, 17, "'com:x' is not a valid interface"),
    ("allow destination /a", 1, 19, "'/a' is not a bus name or pattern"),
    ("allow object-path vm/1", 1, 19, "an object path starts with '/', found 'vm/1'"),
    ("allow object-path /a:b", 1, 19, "an object path starts with '/', found '/a:b'"),
    ("allow dom-id x", 1, 14, "a domid is a number from 0 to 32751, found 'x'"),
    ("allow dom-id -1", 1, 14, "a domid is a number from 0 to 32751, found '-1'"),
    ("allow dom-id 32752", 1, 14, "a domid is a number from 0 to 32751, found '32752'"),
    ("allow dom-type a*", 1, 16, "'a*' is not a property value (no '*', ':' or '/' here)"),
    ("allow dom-name :1", 1, 16, "':1' is not a property value (no '*', ':' or '/' here)"),
    ("allow dom-uuid *", 1, 16, "'*' is not a VM uuid (no '*', ':' or '/' here)"),
    ("allow if-boolean a/b true", 1, 18,
     "'a/b' is not a property name (no '*', ':' or '/' here)"),
])
def test_errors_say_where_and_why(text: str, line: int, column: int, reason: str) -> None:
    with pytest.raises(RulesSyntaxError) as caught:
        parse_rules(text, source="r.rules")
    error = caught.value
    assert (error.line, error.column, error.reason) == (line, column, reason)
    assert str(error) == f"r.rules:{line}:{column}: {reason}"
    assert isinstance(error, RulesError) and isinstance(error, ValueError)


def test_unknown_specifiers_are_named_with_the_known_ones() -> None:
    with pytest.raises(RulesSyntaxError) as caught:
        parse_rules("allow\nallow member m frobnicate x")
    assert (caught.value.line, caught.value.column) == (2, 16)
    assert caught.value.reason.startswith("unknown specifier 'frobnicate'; known: destination,")
    assert "object-path" in caught.value.reason and "if-boolean" in caught.value.reason


def test_the_stale_sample_domain_specifier_gets_a_hint() -> None:
    with pytest.raises(RulesSyntaxError, match=r"unknown specifier 'domain' \(for a VM, use "
                                               r"dom-uuid\)"):
        parse_rules("allow domain 00000000-0000-0000-0000-000000000001")


def test_inputs_are_bounded() -> None:
    with pytest.raises(RulesSyntaxError, match="word longer than") as word:
        parse_rules("allow\nallow member " + "m" * (MAX_WORD + 1))
    assert (word.value.line, word.value.column) == (2, 14)
    assert parse_rules("allow member " + "m" * MAX_WORD)[0].member == NamePattern("m" * MAX_WORD)
    with pytest.raises(RulesSyntaxError, match="rules text longer than"):
        parse_rules("#" * (MAX_RULES_TEXT + 1))


# ------------------------------------------------------------------------- per-VM db rules

UUID = "11111111-2222-3333-4444-555555555555"


def test_vm_rules_keep_db_order_and_get_the_vm_uuid_forced() -> None:
    rules = vm_rules_from_db(UUID, {"0": "allow destination com.citrix.xenclient.xenmgr",
                                    "2": "deny member delete dom-uuid someone-else",
                                    "1": "allow stubdom true"})
    base = f"/vm/{UUID}/rpc-firewall-rules"
    assert rules == (
        Rule(Action.ALLOW, destination=NamePattern("com.citrix.xenclient.xenmgr"), dom_uuid=UUID),
        Rule(Action.DENY, member=NamePattern("delete"), dom_uuid=UUID),
        Rule(Action.ALLOW, stubdom=True, dom_uuid=UUID),
    )
    assert [r.origin for r in rules] == [f"{base}/0", f"{base}/2", f"{base}/1"]


@pytest.mark.parametrize("value", [None, "", {}, []])
def test_no_vm_rules(value: object) -> None:
    assert vm_rules_from_db(UUID, value) == ()


def test_vm_rules_as_a_list() -> None:
    assert vm_rules_from_db(UUID, ["allow", "deny member x"]) == (
        Rule(Action.ALLOW, dom_uuid=UUID), Rule(Action.DENY, member=NamePattern("x"),
                                                dom_uuid=UUID))


@pytest.mark.parametrize(("value", "key", "message"), [
    ({"0": "allow", "1": "allow member"}, "1",
     "Malformed rule ('allow member') in database at path /vm/{u}/rpc-firewall-rules/1: "
     "'member' needs a name (line 1, column 13)"),
    ({"0": "allow\nallow"}, "0",
     "Malformed rule ('allow\\nallow') in database at path /vm/{u}/rpc-firewall-rules/0: "
     "expected one rule, found a second one (line 2, column 1)"),
    ({"0": {"nested": "allow"}}, "0",
     "Malformed rule ({'nested': 'allow'}) in database at path /vm/{u}/rpc-firewall-rules/0: "
     "not a string"),
    ({"0": ""}, "0",
     "Malformed rule ('') in database at path /vm/{u}/rpc-firewall-rules/0: "
     "expected a rule, found none (line 1, column 1)"),
])
def test_malformed_vm_rules_name_the_db_path(value: object, key: str, message: str) -> None:
    with pytest.raises(RulesDbError) as caught:
        vm_rules_from_db(UUID, value)
    assert str(caught.value) == message.replace("{u}", UUID)
    assert caught.value.path == f"/vm/{UUID}/rpc-firewall-rules/{key}"


def test_a_leaf_where_the_list_should_be_is_refused() -> None:
    with pytest.raises(RulesDbError, match="expected a list of rules, found str"):
        vm_rules_from_db(UUID, "allow all")


def test_the_shipped_template_rules_parse() -> None:
    template = {"0": "allow destination org.freedesktop.DBus",
                "1": "allow destination com.citrix.xenclient.xenmgr"}
    assert len(vm_rules_from_db("00000000-0000-0000-0000-000000000001", template)) == 2


# ------------------------------------------------------------------------ the example file

def test_the_example_rules_file_parses_into_the_production_shape() -> None:
    rules = parse_rules(EXAMPLE.read_text(), source=str(EXAMPLE))
    assert rules[0] == Rule(Action.DENY)
    assert rules[-1] == Rule(Action.ALLOW, Subject(Direction.OUTGOING, None))
    tests = {t for r in rules for t in r.properties}
    assert {PropertyTest("domstore-read-access", True), PropertyTest("domstore-write-access", True),
            PropertyTest("usb-control", True), PropertyTest("type", "syncvm")} <= tests
    members = {r.member.text for r in rules
               if r.destination == NamePattern("com.citrix.xenclient.db") and r.member}
    assert members == {"read", "read_binary", "list", "exists", "write", "rm"}
    assert not any(r.stubdom for r in rules)
