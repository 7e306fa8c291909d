"""Benchmark the rpc-proxy rules engine: microseconds per check, against a linear baseline.

The rule set is the example file (examples/rpc-proxy.rules) followed by ``--rules`` synthetic
rules in the production style (allow a destination + member, a few with wildcards, paths and
property tests), so most messages are decided late in the list or by the default deny. The
messages are a fixed mix: allowed and denied calls, Properties.Get calls, replies (no member,
so no index help) and signals.

Baseline, measured in the same run: a straightforward linear scan from the last rule using
``NamePattern.matches`` (what the engine would cost without compiling and indexing). Printed:
the compile time, microseconds per check for the engine when message shapes repeat (the memo
answers), when every message is new (a fresh sender each time: only the index helps), for the
baseline, and the ratios.

Run: ``.venv/bin/python benchmarks/proxy_rules.py [--rules 300] [--quick]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rpc.proxy import (  # noqa: E402
    PROPERTIES_INTERFACE,
    Action,
    Direction,
    DomainFacts,
    MessageFacts,
    MessageKind,
    Rule,
    compile_rules,
    evaluate,
    parse_rules,
)


def synthetic_rules(n: int) -> str:
    """``n`` production-style rules as text."""
    lines = []
    for i in range(n):
        service = f"com.example.service{i % 40}"
        if i % 10 == 0:
            lines.append(f"allow inc-method-call destination {service} member get_* "
                         f"if-boolean flag{i % 7} true")
        elif i % 10 == 1:
            lines.append(f"deny destination {service} object-path /private/*")
        elif i % 10 == 2:
            lines.append(f"allow interface {service}.config dom-type type{i % 5}")
        else:
            lines.append(f"allow inc-method-call destination {service} member method_{i}")
    return "\n".join(lines) + "\n"


def messages() -> list[MessageFacts]:
    call = MessageKind.METHOD_CALL
    return [
        MessageFacts(call, destination="com.example.service3", interface="com.example.service3",
                     path="/", member="method_3", serial=1),
        MessageFacts(call, destination="com.example.service5", interface="com.example.service5",
                     path="/", member="method_99999", serial=2),
        MessageFacts(call, destination="com.citrix.xenclient.db",
                     interface="com.citrix.xenclient.db", path="/", member="read", serial=3),
        MessageFacts(call, destination="com.example.service2", interface=PROPERTIES_INTERFACE,
                     path="/obj", member="Get", properties_interface="com.example.service2.config"),
        MessageFacts(call, destination="com.example.service10", interface="x", path="/private/a",
                     member="get_value"),
        MessageFacts(MessageKind.METHOD_RETURN, reply_serial=7),
        MessageFacts(MessageKind.SIGNAL, interface="com.example.service1", path="/",
                     member="changed"),
    ]


def linear(rules: Sequence[Rule], message: MessageFacts, domain: DomainFacts) -> bool:
    """The baseline: a straightforward scan from the last rule, patterns matched each time."""
    if domain.domid == 0:
        return True
    for rule in reversed(rules):
        if not rule.subject.covers(message.direction, message.kind):
            continue
        if rule.stubdom != domain.is_stubdom:
            continue
        if rule.dom_id is not None and rule.dom_id != domain.domid:
            continue
        if rule.dom_uuid is not None and rule.dom_uuid != domain.uuid:
            continue
        pairs = ((rule.destination, message.destination), (rule.sender, message.sender),
                 (rule.member, message.member), (rule.object_path, message.path))
        if any(p is not None and v is not None and not p.matches(v) for p, v in pairs):
            continue
        if rule.interface is not None and message.interface is not None \
                and not rule.interface.matches(message.interface):
            target = message.properties_interface
            if target is None or not rule.interface.matches(target):
                continue
        if rule.properties:
            if domain.uuid is None:
                continue
            ok = True
            for test in rule.properties:
                value = domain.property(test.property)
                ok = ok and value is not None and (
                    value == test.expected if isinstance(test.expected, str)
                    else (value == "true") == test.expected)
            if not ok:
                continue
        return rule.action is Action.ALLOW
    return False


def per_check(check: Callable[[MessageFacts], object], msgs: list[MessageFacts],
              rounds: int) -> float:
    """Microseconds per check, best of 3."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            for message in msgs:
                check(message)
        best = min(best, time.perf_counter() - start)
    return best / (rounds * len(msgs)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=300, help="synthetic rules to add")
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    text = (ROOT / "examples" / "rpc-proxy.rules").read_text() + synthetic_rules(args.rules)
    rules = parse_rules(text)
    start = time.perf_counter()
    ruleset = compile_rules(rules)
    compile_ms = (time.perf_counter() - start) * 1e3
    props = {"type": "type1", "flag3": "true", "domstore-read-access": "true"}
    domain = DomainFacts(5, "u1", property=props.get)
    msgs = messages()
    for message in msgs:  # the two must agree before their speed means anything
        assert evaluate(ruleset, message, domain).allowed == linear(rules, message, domain)
    rounds = 200 if args.quick else 2000
    ours = per_check(lambda m: evaluate(ruleset, m, domain), msgs, rounds)
    counter = iter(range(10**9))

    def cold(message: MessageFacts) -> object:
        # a sender never seen before: the memo cannot help, only the index
        fresh = dataclasses.replace(message, sender=f":1.{next(counter)}")
        return evaluate(ruleset, fresh, domain)

    fresh_cost = per_check(lambda m: dataclasses.replace(m, sender=":1.0"), msgs, rounds)
    ours_cold = per_check(cold, msgs, rounds) - fresh_cost
    base = per_check(lambda m: linear(rules, m, domain), msgs, max(rounds // 10, 20))
    call_cost = per_check(lambda m: None, msgs, rounds)  # the scale: one empty Python call
    print(f"{len(rules)} rules, compiled in {compile_ms:.2f} ms ({Direction.INCOMING.value} "
          f"mix of {len(msgs)} messages)")
    print(f"  engine, repeated message shapes {ours:8.2f} us/check")
    print(f"  engine, every message new       {ours_cold:8.2f} us/check")
    print(f"  linear baseline                 {base:8.2f} us/check")
    print(f"  ratio baseline/engine {base / ours:.1f}x repeated, {base / ours_cold:.1f}x new")
    print(f"  (scale: an empty Python call costs {call_cost:.3f} us on this machine now; "
          f"a repeated check costs {ours / call_cost:.0f} of them)")


if __name__ == "__main__":
    main()
