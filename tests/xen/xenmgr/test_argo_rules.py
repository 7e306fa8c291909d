"""xenmgr's Argo firewall rules (pure): parsing, resolution against running VMs, diffs."""

from __future__ import annotations

import pytest

from xen.xenmgr._argo_rules import (
    ArgoRuleError,
    EffectiveRule,
    Endpoint,
    RunningVm,
    TableCache,
    diff,
    effective_rules,
    parse_rule,
    table,
    viptables_args,
)

U1 = "11111111-2222-3333-4444-555555555555"
U2 = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
UI = RunningVm("00000000-0000-0000-0000-000000000001", 1, type="uivm", name="uivm")
NDVM = RunningVm("00000000-0000-0000-0000-000000000002", 2, type="ndvm", name="Network")
GUEST = RunningVm(U1, 7, stubdom_domid=8, type="svm", name="Win", seamless=True)
OTHER = RunningVm(U2, 9, type="svm", name="linux")
ALL = [UI, NDVM, GUEST, OTHER]


@pytest.mark.parametrize(("text", "source", "destination"), [
    ("myself -> 0:5556", Endpoint("myself"), Endpoint("dom0", "", 5556)),
    ("  MySelf:*  ->  dom-type=NDVM ", Endpoint("myself"), Endpoint("dom-type", "ndvm")),
    (f"{U1.upper()}:80 -> *", Endpoint("uuid", U1, 80), Endpoint("*")),
    ("my-stubdom -> myself-if-seamless:4294967295", Endpoint("my-stubdom"),
     Endpoint("myself-if-seamless", "", 4294967295)),
    ("seamless->dom-name=network:0", Endpoint("seamless"), Endpoint("dom-name", "network", 0)),
])
def test_rules_parse(text: str, source: Endpoint, destination: Endpoint) -> None:
    rule = parse_rule(text)
    assert (rule.source, rule.destination) == (source, destination)
    assert parse_rule(rule.text()) == rule  # the canonical text parses back


@pytest.mark.parametrize(("text", "why"), [
    ("myself 0", "expected"), ("myself -> ", "expected"), ("-> 0", "expected"),
    ("a -> b -> c", "expected"), ("myself -> 0:http", "bad port"),
    ("myself -> 0:4294967296", "bad port"), ("myself -> 5", "domain ids other than 0"),
    ("myself -> dom-type=", "needs a word"), ("myself -> dom-type=a.b", "needs a word"),
    ("yourself -> 0", "unknown endpoint"), ("my self -> 0", "expected"),
    ("1234-5678 -> 0", "unknown endpoint"),
])
def test_bad_rules_name_the_reason(text: str, why: str) -> None:
    with pytest.raises(ArgoRuleError) as info:
        parse_rule(text)
    assert why in str(info.value) and repr(text) in str(info.value)


def test_a_rule_and_its_inverse_resolved_against_the_running_vms() -> None:
    got = effective_rules(GUEST, [parse_rule("myself -> dom-type=ndvm:5556")], ALL)
    assert got == {EffectiveRule(7, None, 2, 5556), EffectiveRule(2, 5556, 7, None)}


@pytest.mark.parametrize(("text", "expected"), [
    ("myself -> 0", {(7, 0), (0, 7)}),
    ("my-stubdom -> myself", {(8, 7), (7, 8)}),
    ("myself-if-seamless -> *", {(7, None), (None, 7)}),
    ("seamless -> 0", {(7, 0), (0, 7)}),
    (f"myself -> {U2}", {(7, 9), (9, 7)}),
    ("myself -> dom-name=LINUX", {(7, 9), (9, 7)}),
    ("myself -> dom-type=svm", {(7, 9), (9, 7)}),  # itself dropped, the other svm kept
    ("myself -> myself", set()),
    ("myself -> dom-type=nothing", set()),
    ("myself -> 99999999-9999-9999-9999-999999999999", set()),
])
def test_endpoint_resolution(text: str, expected: set[tuple[int | None, int | None]]) -> None:
    got = effective_rules(GUEST, [parse_rule(text)], ALL)
    assert {(r.source, r.destination) for r in got} == expected


def test_a_vm_without_a_stub_domain_or_seamless_flag_gets_nothing_from_those() -> None:
    rules = [parse_rule("my-stubdom -> 0"), parse_rule("myself-if-seamless -> 0")]
    assert effective_rules(OTHER, rules, ALL) == frozenset()


def test_table_is_the_union_of_running_vms_and_diff_gives_the_change() -> None:
    rules = {U1: [parse_rule("myself -> 0:5556")], U2: [parse_rule("myself -> 0:5556")],
             "stopped": [parse_rule("* -> *")]}
    both = table(rules, ALL)
    assert {(r.source, r.destination) for r in both} == {(7, 0), (0, 7), (9, 0), (0, 9)}
    one = table(rules, [UI, NDVM, GUEST])
    remove, add = diff(both, one)
    assert add == [] and {(r.source, r.destination) for r in remove} == {(9, 0), (0, 9)}
    assert remove == sorted(remove, key=EffectiveRule.sort_key)
    mixed = frozenset({EffectiveRule(None, None, 3, 1), EffectiveRule(2, 5, None, None)})
    assert [r.source for r in diff(frozenset(), mixed)[1]] == [None, 2]
    assert diff(one, one) == ([], [])


def test_the_cached_table_equals_a_full_recompute_through_a_sequence_of_stops() -> None:
    """A host shutdown: VMs stop one by one (and one changes its rules, one restarts with a new
    domid); after each step the cached table is the full recompute's, and only VMs whose inputs
    changed (their own, or the running VMs for rules naming others) were resolved again."""
    texts = ["myself -> 0:5556", "my-stubdom -> myself-if-seamless", f"myself -> {U1}:80",
             "seamless -> dom-type=ndvm", "myself:7 -> dom-name=network", "* -> myself"]
    vms = [RunningVm(f"00000000-0000-0000-0000-{i:012d}", 10 + i, stubdom_domid=50 + i if i % 3
                     else -1, type="ndvm" if i % 4 == 0 else "svm",
                     name="network" if i == 5 else f"vm{i}", seamless=i % 2 == 0)
           for i in range(12)] + [GUEST]
    rules = {vm.uuid: [parse_rule(texts[i % len(texts)]), parse_rule(texts[(i * 5) % len(texts)])]
             for i, vm in enumerate(vms)}
    local = {vm.uuid for vm in vms if all(r.source.kind in ("*", "dom0", "myself", "my-stubdom",
                                                            "myself-if-seamless")
                                          and r.destination.kind in ("*", "dom0", "myself",
                                                                     "my-stubdom",
                                                                     "myself-if-seamless")
                                          for r in rules[vm.uuid])}
    assert local and len(local) < len(vms)  # both kinds are exercised
    cache = TableCache()
    running = list(vms)
    assert cache.table(rules, running) == table(rules, running)
    assert cache.resolved == len(running)
    steps = 0
    while running:
        stopped = running.pop(len(running) // 2)
        if steps == 2:  # a VM's rules change between two stops
            rules[running[0].uuid] = [parse_rule("myself -> *:9")]
        if steps == 4:  # a VM restarts with a new domain
            running[-1] = RunningVm(running[-1].uuid, 99, type=running[-1].type,
                                    name=running[-1].name, seamless=running[-1].seamless)
        before = cache.resolved
        assert cache.table(rules, running) == table(rules, running), stopped
        again = cache.resolved - before
        others = sum(1 for vm in running if vm.uuid not in local)
        assert again <= others + 2  # the VMs naming others, plus the changed ones
        steps += 1
    assert cache.kept == {} and cache.table(rules, []) == frozenset()


def test_viptables_rendering() -> None:
    assert viptables_args(EffectiveRule(7, None, 0, 5556)) == [
        "--dom-in", "7", "--dom-out", "0", "--port-out", "5556"]
    assert viptables_args(EffectiveRule(None, None, None, None)) == []
    assert EffectiveRule(None, 3, 0, None).text() == "*:3 -> 0:*"
