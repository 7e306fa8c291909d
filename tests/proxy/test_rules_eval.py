"""Evaluation: the cases of the original's semantics, the DENY log line, and the indexed engine
against a naive reference evaluator written here independently."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.proxy import (
    PROPERTIES_INTERFACE,
    Action,
    Direction,
    DomainFacts,
    MessageFacts,
    MessageKind,
    NamePattern,
    PropertyTest,
    Rule,
    RuleSet,
    Subject,
    Verdict,
    VerdictReason,
    compile_rules,
    deny_log_line,
    evaluate,
    parse_rules,
    properties_target,
    vm_rules_from_db,
)
from rpc.proxy._rules_eval import MEMO_KEY_CHARS, MEMO_SIZE

T = TypeVar("T")
CALL = MessageKind.METHOD_CALL
UUID = "11111111-2222-3333-4444-555555555555"


def rules(text: str) -> RuleSet:
    return compile_rules(parse_rules(text, source="t"))


def call(member: str | None = "read", destination: str | None = "com.citrix.xenclient.db",
         interface: str | None = "com.citrix.xenclient.db", path: str | None = "/",
         **kw: object) -> MessageFacts:
    return MessageFacts(CALL, Direction.INCOMING, destination=destination, path=path,
                        interface=interface, member=member, **kw)  # type: ignore[arg-type]


def guest(domid: int = 5, uuid: str | None = UUID, stubdom: bool = False,
          **props: str) -> DomainFacts:
    return DomainFacts(domid, uuid, stubdom, property=lambda name: props.get(name))


def vm(props: dict[str, str], stubdom: bool = False) -> DomainFacts:
    return DomainFacts(5, UUID, stubdom, property=props.get)


def allowed(ruleset: RuleSet, message: MessageFacts, domain: DomainFacts | None = None,
            **kw: object) -> bool:
    return evaluate(ruleset, message, domain or guest(), **kw).allowed  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the semantics

def test_default_deny_and_last_match_wins() -> None:
    assert evaluate(rules(""), call(), guest()) == Verdict(False, VerdictReason.DEFAULT)
    ruleset = rules("deny all\nallow member read\n")
    verdict = evaluate(ruleset, call(), guest())
    assert verdict.allowed and verdict.reason is VerdictReason.RULE
    assert verdict.rule is not None and verdict.rule.origin == "t:2"
    assert not allowed(ruleset, call("write"))
    assert not allowed(rules("allow member read\ndeny all\n"), call())
    assert not allowed(rules("deny all\nallow member read\ndeny destination com.citrix.*"), call())


def test_dom0_is_allowed_without_rules_unless_bypass_is_off() -> None:
    deny = rules("deny all")
    assert evaluate(deny, call(), guest(0)) == Verdict(True, VerdictReason.DOM0)
    assert not allowed(deny, call(), guest(0), dom0_bypass=False)
    assert allowed(rules("allow dom-id 0"), call(), guest(0), dom0_bypass=False)


def test_stubdomains_are_denied_unless_a_rule_says_stubdom_true() -> None:
    stub = guest(7, stubdom=True)
    assert not allowed(rules("allow all"), call(), stub)
    assert allowed(rules("allow stubdom true"), call(), stub)
    # a stubdom rule is only about stubdomains
    assert not allowed(rules("allow stubdom true"), call(), guest(7))
    # and a plain deny does not touch stubdomains: the default deny does
    verdict = evaluate(rules("allow stubdom true\ndeny all"), call(), stub)
    assert verdict.allowed and verdict.rule is not None and verdict.rule.stubdom


@pytest.mark.parametrize("member", ["Get", "Set", "GetAll"])
def test_interface_matches_properties_calls_on_that_interface(member: str) -> None:
    ruleset = rules("allow interface com.citrix.xenclient.xenmgr.vm")
    msg = call(member, "com.citrix.xenclient.xenmgr", PROPERTIES_INTERFACE, "/vm/x",
               properties_interface=properties_target(PROPERTIES_INTERFACE, member,
                                                       "com.citrix.xenclient.xenmgr.vm"))
    assert allowed(ruleset, msg)
    other = call(member, "com.citrix.xenclient.xenmgr", PROPERTIES_INTERFACE, "/vm/x",
                 properties_interface="com.citrix.xenclient.xenmgr.host")
    assert not allowed(ruleset, other)
    assert allowed(rules("allow interface com.citrix.xenclient.xenmgr.*"), msg)


def test_the_properties_argument_counts_only_for_properties_get_set_getall_calls() -> None:
    ruleset = rules("allow interface com.x")
    assert not allowed(ruleset, call("Introspect", "d", PROPERTIES_INTERFACE,
                                     properties_interface="com.x"))
    assert not allowed(ruleset, call("Get", "d", "com.other", properties_interface="com.x"))
    signal = MessageFacts(MessageKind.SIGNAL, interface=PROPERTIES_INTERFACE, member="Get",
                          properties_interface="com.x")
    assert not allowed(ruleset, signal)
    assert properties_target(PROPERTIES_INTERFACE, "Get", 3) is None
    assert properties_target("com.x", "Get", "com.y") is None
    assert properties_target(PROPERTIES_INTERFACE, "GetAll", "com.y") == "com.y"


def test_a_message_lacking_a_field_matches_any_pattern_for_it() -> None:
    ruleset = rules("allow destination d interface i member m object-path /p sender :1.1")
    assert allowed(ruleset, MessageFacts(CALL))
    assert allowed(ruleset, call("m", None, None, None))
    assert not allowed(ruleset, call("m", "d", "other", None))
    assert not allowed(ruleset, call("m", "d", None, "/q"))
    assert not allowed(ruleset, call("m", "d", None, None, sender=":1.2"))
    # a reply has no member: every member-specific rule applies to it
    reply = MessageFacts(MessageKind.METHOD_RETURN, reply_serial=3)
    assert allowed(rules("allow member read"), reply)
    assert not allowed(rules("allow\ndeny member read"), reply)


def test_subjects_select_direction_and_kind() -> None:
    for kind in MessageKind:
        inc = MessageFacts(kind, Direction.INCOMING, member="m")
        out = MessageFacts(kind, Direction.OUTGOING, member="m")
        assert allowed(rules("allow"), inc) and not allowed(rules("allow"), out)
        assert allowed(rules("allow out-any"), out) and not allowed(rules("allow out-any"), inc)
        own = f"allow inc-{kind.value}"
        assert allowed(rules(own), inc)
        assert [allowed(rules(f"allow inc-{k.value}"), inc) for k in MessageKind] == \
            [k is kind for k in MessageKind]
        assert not allowed(rules(f"allow inc-any\ndeny inc-{kind.value} member m"), inc)


def test_wildcards() -> None:
    assert allowed(rules("allow destination com.citrix.*"), call())
    assert not allowed(rules("allow destination com.citrix.*"), call(destination="com.citrix"))
    assert allowed(rules("allow member *_binary"), call("read_binary"))
    assert allowed(rules("allow interface com.*.db"), call())
    assert not allowed(rules("allow interface com.*.dbx"), call())
    assert allowed(rules("allow member *"), call("anything"))
    paths = rules("allow object-path /vm/*")
    assert allowed(paths, call(path="/vm/a")) and allowed(paths, call(path="/vm/a/disk/0"))
    assert not allowed(paths, call(path="/vm")) and not allowed(paths, call(path="/vmx/a"))
    assert allowed(rules("allow object-path /vm/*/disk/*"), call(path="/vm/a/disk/0"))
    exact = rules("allow object-path /vm")
    assert allowed(exact, call(path="/vm")) and not allowed(exact, call(path="/vm/a"))
    assert NamePattern("a*b").matches("a.x/b") and not NamePattern("a*b").matches("ab.")


def test_domain_specifiers() -> None:
    assert allowed(rules(f"allow dom-uuid {UUID}"), call())
    assert not allowed(rules(f"allow dom-uuid {UUID}"), call(), guest(uuid=None))
    assert not allowed(rules("allow dom-uuid other"), call())
    assert allowed(rules("allow dom-id 5"), call()) and not allowed(rules("allow dom-id 6"), call())


def test_property_specifiers() -> None:
    props = {"type": "syncvm", "name": "sync", "usb-control": "true"}
    syncvm = DomainFacts(5, UUID, property=props.get)
    assert allowed(rules("allow dom-type syncvm"), call(), syncvm)
    assert not allowed(rules("allow dom-type uivm"), call(), syncvm)
    assert allowed(rules("allow dom-name sync dom-type syncvm if-boolean usb-control true"),
                   call(), syncvm)
    assert not allowed(rules("allow dom-type syncvm dom-type uivm"), call(), syncvm)
    assert not allowed(rules("allow if-boolean usb-control false"), call(), syncvm)
    assert not allowed(rules("allow if-boolean missing false"), call(), syncvm)
    for word, value in [("true", True), ("yes", True), ("1", True), ("True", True),
                        ("false", False), ("no", False), ("0", False)]:
        domain = guest(flag=word)
        assert allowed(rules(f"allow if-boolean flag {'true' if value else 'false'}"),
                       call(), domain)
        assert not allowed(rules(f"allow if-boolean flag {'false' if value else 'true'}"),
                           call(), domain)
    assert not allowed(rules("allow if-boolean flag true"), call(), guest(flag="maybe"))
    assert not allowed(rules("allow if-boolean flag false"), call(), guest(flag="maybe"))


def test_properties_are_asked_lazily_and_never_without_a_uuid() -> None:
    asked: list[str] = []

    def prop(name: str) -> str | None:
        asked.append(name)
        return "syncvm"

    ruleset = rules("allow member write dom-type syncvm\nallow member read dom-type syncvm")
    assert not allowed(ruleset, call("other"), DomainFacts(5, UUID, property=prop))
    assert asked == []
    assert not allowed(ruleset, call("read"), DomainFacts(5, None, property=prop))
    assert asked == []
    assert allowed(ruleset, call("read"), DomainFacts(5, UUID, property=prop))
    assert asked == ["type"]


def test_a_failing_property_source_propagates() -> None:
    def broken(name: str) -> str | None:
        raise TimeoutError("xenmgr did not answer")

    with pytest.raises(TimeoutError):
        evaluate(rules("allow dom-type x"), call(), DomainFacts(5, UUID, property=broken))


def test_vm_rules_come_after_the_global_rules() -> None:
    global_rules = rules("deny all\nallow member read")
    vm = compile_rules(vm_rules_from_db(UUID, {"0": "allow member write",
                                               "1": "deny member read"}))
    assert allowed(global_rules, call("write"), vm_rules=vm)
    verdict = evaluate(global_rules, call("read"), guest(), vm_rules=vm)
    assert not verdict.allowed and verdict.rule is not None
    assert verdict.rule.origin == f"/vm/{UUID}/rpc-firewall-rules/1"
    # the forced dom-uuid keeps one VM's rules from applying to another
    assert not allowed(global_rules, call("write"), guest(uuid="other"), vm_rules=vm)
    assert allowed(global_rules, call("read"), guest(uuid="other"), vm_rules=vm)


def test_ruleset_keeps_the_rules() -> None:
    parsed = parse_rules("deny\nallow member m")
    ruleset = compile_rules(parsed)
    assert ruleset.rules == parsed and len(ruleset) == 2 and "2 rules" in repr(ruleset)


# --------------------------------------------------------------------------- the log line

def test_deny_log_line_names_the_source_the_message_and_the_rule() -> None:
    msg = call(serial=9)
    domain = guest(5)
    verdict = evaluate(rules("allow\ndeny member read"), msg, domain)
    assert deny_log_line(msg, domain, verdict) == (
        "(5->0) DENY method-call { sender='<none>' dest='com.citrix.xenclient.db' "
        "intf='com.citrix.xenclient.db' member='read' serial='9' reply-to='<none>' } "
        f"uuid='{UUID}' by rule t:2 'deny inc-any member read'")
    default = evaluate(rules(""), msg, guest(5, uuid=None))
    assert deny_log_line(msg, guest(5, uuid=None), default, dest_domid=3) == (
        "(5->3) DENY method-call { sender='<none>' dest='com.citrix.xenclient.db' "
        "intf='com.citrix.xenclient.db' member='read' serial='9' reply-to='<none>' } "
        "uuid='<none>' by default deny")


def test_allow_log_line_for_verbose_mode() -> None:
    reply = MessageFacts(MessageKind.METHOD_RETURN, Direction.OUTGOING, sender=":1.3",
                         serial=4, reply_serial=2)
    line = deny_log_line(reply, guest(0), evaluate(rules(""), reply, guest(0)))
    assert line == ("(0->0) ALLOW method-return { sender=':1.3' dest='<none>' intf='<none>' "
                    "member='<none>' serial='4' reply-to='2' } uuid='" + UUID + "' by dom0")


def test_log_line_escapes_and_bounds_what_the_client_controls() -> None:
    msg = call("a'b\nc\\", destination="x" * 1000)
    line = deny_log_line(msg, guest(), evaluate(rules(""), msg, guest()))
    assert "\n" not in line and "member='a\\'b\\nc\\\\'" in line
    assert len(line) < 700


# ------------------------------------------------- the engine against a naive reference

def reference(rule_list: Sequence[Rule], message: MessageFacts, domain: DomainFacts,
              property_of: Callable[[str], str | None]) -> tuple[bool, Rule | None]:
    """Linear, obviously correct: walk all rules from the end; first match decides."""
    if domain.domid == 0:
        return True, None

    def field_ok(pattern: NamePattern | None, value: str | None) -> bool:
        return pattern is None or value is None or fnmatch.fnmatchcase(value, pattern.text)

    for rule in reversed(rule_list):
        if rule.subject.direction != message.direction:
            continue
        if rule.subject.kind is not None and rule.subject.kind != message.kind:
            continue
        if rule.stubdom != domain.is_stubdom:
            continue
        if rule.dom_id is not None and rule.dom_id != domain.domid:
            continue
        if rule.dom_uuid is not None and (domain.uuid is None or rule.dom_uuid != domain.uuid):
            continue
        if not (field_ok(rule.destination, message.destination)
                and field_ok(rule.sender, message.sender)
                and field_ok(rule.member, message.member)
                and field_ok(rule.object_path, message.path)):
            continue
        if not field_ok(rule.interface, message.interface):
            is_props_call = (message.kind == MessageKind.METHOD_CALL
                             and message.interface == "org.freedesktop.DBus.Properties"
                             and message.member in ("Get", "Set", "GetAll"))
            if not (is_props_call and message.properties_interface is not None
                    and field_ok(rule.interface, message.properties_interface)):
                continue
        if rule.properties and domain.uuid is None:
            continue
        ok = True
        for test in rule.properties:
            value = property_of(test.property)
            if isinstance(test.expected, bool):
                words = ("true", "yes", "1") if test.expected else ("false", "no", "0")
                ok = ok and value is not None and value.lower() in words
            else:
                ok = ok and value == test.expected
        if ok:
            return rule.action == Action.ALLOW, rule
    return False, None


NAME_VALUES = ["com.a", "com.a.b", "org.x", "read", "write", "Get", "GetAll",
               "org.freedesktop.DBus.Properties", ":1.5"]
PATTERNS = st.sampled_from([*NAME_VALUES, "*", "com.*", "*.b", "*e*", "re*d", "com.*.b",
                            "org.freedesktop.DBus.*", ":1.*"]).map(NamePattern)
PATH_PATTERNS = st.sampled_from(["/", "/vm", "/vm/*", "/vm/1", "/*/disk/*", "/*"]).map(NamePattern)
PROPS = {"type": ["syncvm", "uivm"], "name": ["a", "b"], "flag": ["true", "0", "maybe"]}


@st.composite
def a_rule(draw: st.DrawFn) -> Rule:
    def maybe(strategy: st.SearchStrategy[T]) -> T | None:
        # each specifier is set one time in four, so that rules often match
        return draw(strategy) if draw(st.integers(0, 3)) == 0 else None

    tests = draw(st.lists(st.one_of(
        st.builds(PropertyTest, st.sampled_from(["type", "name"]),
                  st.sampled_from(["syncvm", "uivm", "a", "b"])),
        st.builds(PropertyTest, st.sampled_from(["flag", "absent"]), st.booleans())),
        max_size=2)) if draw(st.booleans()) else []
    return Rule(
        draw(st.sampled_from(Action)),
        Subject(draw(st.sampled_from(Direction)), draw(st.none() | st.sampled_from(MessageKind))),
        destination=maybe(PATTERNS), sender=maybe(PATTERNS), interface=maybe(PATTERNS),
        member=maybe(PATTERNS), object_path=maybe(PATH_PATTERNS),
        dom_uuid=maybe(st.sampled_from(["u1", "u2"])), dom_id=maybe(st.integers(0, 3)),
        stubdom=draw(st.integers(0, 3)) == 0, properties=tuple(tests))


@st.composite
def a_message(draw: st.DrawFn) -> MessageFacts:
    name = st.none() | st.sampled_from(NAME_VALUES)
    return MessageFacts(
        draw(st.sampled_from(MessageKind)), draw(st.sampled_from(Direction)),
        destination=draw(name), sender=draw(name), interface=draw(name), member=draw(name),
        path=draw(st.none() | st.sampled_from(["/", "/vm", "/vm/1", "/vm/1/disk/0"])),
        properties_interface=draw(name))


DOMAINS = st.builds(
    lambda domid, uuid, stubdom, props: DomainFacts(domid, uuid, stubdom, property=props.get),
    st.sampled_from([0, 1, 2, 2, 3, 3]), st.none() | st.sampled_from(["u1", "u2"]),
    st.booleans(),
    st.fixed_dictionaries({k: st.none() | st.sampled_from(v) for k, v in PROPS.items()}))


@given(st.lists(a_rule(), max_size=12), st.lists(a_rule(), max_size=4), a_message(),
       st.lists(DOMAINS, min_size=1, max_size=3))
def test_engine_agrees_with_the_reference(global_rules: list[Rule], vm_rules: list[Rule],
                                          message: MessageFacts,
                                          domains: list[DomainFacts]) -> None:
    compiled, compiled_vm = compile_rules(global_rules), compile_rules(vm_rules)
    # the same message from several sources: later checks are answered through the memo
    for domain in domains:
        verdict = evaluate(compiled, message, domain, vm_rules=compiled_vm)
        expected_allowed, expected_rule = reference(global_rules + vm_rules, message, domain,
                                                    domain.property)
        assert verdict.allowed == expected_allowed
        assert verdict.rule is expected_rule
        reason = (VerdictReason.DOM0 if domain.domid == 0 else
                  VerdictReason.RULE if expected_rule is not None else VerdictReason.DEFAULT)
        assert verdict.reason is reason


def test_the_memo_is_bounded_and_never_changes_an_answer() -> None:
    ruleset = rules("deny\nallow sender :1.7\nallow member m* stubdom true")
    for i in range(MEMO_SIZE + 50):
        msg = call(f"n{i}", sender=f":1.{i}")
        assert allowed(ruleset, msg) == (i == 7)
        assert not allowed(ruleset, msg, guest(stubdom=True))
    assert 0 < len(ruleset._memo) <= MEMO_SIZE
    assert allowed(ruleset, call("m1", sender=":1.99"), guest(stubdom=True))
    assert not allowed(ruleset, call("m1", sender=":1.99"), guest())
    assert allowed(ruleset, call("m1"), guest())  # no sender: "sender :1.7" matches


def test_huge_messages_are_not_remembered() -> None:
    ruleset = rules("allow object-path /a/*")
    long_path = "/a/" + "x" * MEMO_KEY_CHARS
    assert allowed(ruleset, call(path=long_path))
    assert not allowed(ruleset, call(path="/b/" + "x" * MEMO_KEY_CHARS))
    assert ruleset._memo == {}
    assert allowed(ruleset, call(path="/a/b")) and len(ruleset._memo) == 1


def test_the_example_file_in_action() -> None:
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "examples" / "rpc-proxy.rules").read_text()
    example = rules(text)
    reader = vm({"domstore-read-access": "true"})
    writer = vm({"domstore-read-access": "true", "domstore-write-access": "true"})
    nobody = guest()
    hello = call("Hello", "org.freedesktop.DBus", "org.freedesktop.DBus")
    assert allowed(example, hello, reader) and not allowed(example, hello, nobody)
    assert allowed(example, call("read"), reader) and not allowed(example, call("write"), reader)
    assert allowed(example, call("write"), writer)
    usb = call("list_devices", "com.citrix.xenclient.usbdaemon", "com.citrix.xenclient.usb")
    assert allowed(example, usb, vm({"usb-control": "true"}))
    assert not allowed(example, usb, vm({"usb-control": "false"}))
    syncvm = guest(type="syncvm")
    get = call("Get", "com.citrix.xenclient.xenmgr", PROPERTIES_INTERFACE, "/vm/abc",
               properties_interface="com.citrix.xenclient.xenmgr.vm")
    assert allowed(example, get, syncvm) and not allowed(example, get, guest(type="uivm"))
    start = call("start", "com.citrix.xenclient.xenmgr", "com.citrix.xenclient.xenmgr.vm", "/vm/a")
    assert allowed(example, start, syncvm)
    assert not allowed(example, call("read"), vm({"domstore-read-access": "true"}, True))
    back = MessageFacts(MessageKind.METHOD_RETURN, Direction.OUTGOING, reply_serial=1)
    assert allowed(example, back, nobody)
