"""Fuzzing a live proxy end to end: several raw clients send thousands of hostile, malformed
and truncated messages through a proxy instance (domain 5, the test rules) on a real bus; a
monitor records what the bus receives. Asserted: no proxy crash (no pump failure logged, the
instance's actors never restarted, a new client still works), and nothing denied reaches the
bus (every message the bus got from a fuzzing client is allowed by the rules and not one of
the always-denied ones)."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import actors
from rpc.proxy._message import MessageType
from rpc.proxy._rules_eval import compile_rules, evaluate
from rpc.proxy._rules_model import Direction, DomainFacts, MessageFacts, MessageKind
from rpc.proxy._rules_parse import parse_rules
from tests.fuzz.fuzz_wire import mutate
from tests.integration.proxy_fixtures import (
    RULES,
    UUID5,
    World,
    host,  # noqa: F401  (fixture)
    make_world,
    wait_until,
)
from tests.integration.proxy_wire_helpers import BusMonitor, RawClient, call
from xen.sim import SimHost

pytestmark = pytest.mark.integration

CLIENTS = 4
PER_CLIENT = 800
DB = "com.citrix.xenclient.db"
_KINDS = {1: MessageKind.METHOD_CALL, 2: MessageKind.METHOD_RETURN, 3: MessageKind.ERROR,
          4: MessageKind.SIGNAL}
_NEVER = {"BecomeMonitor", "UpdateActivationEnvironment", "ReloadConfig"}


@pytest.fixture
def world(tmp_path: Path, bus_address: str, host: SimHost) -> Iterator[World]:  # noqa: F811
    w = make_world(tmp_path, bus_address, host, ["-d", "5"])
    try:
        yield w
    finally:
        w.stop()


def _hostile(rng: random.Random, serial: int) -> bytes:
    """A well-formed message the rules or the always-denied checks must stop, or one they
    allow (so some traffic does reach the bus)."""
    choice = rng.randrange(10)
    if choice == 0:
        return call(serial, "AddMatch", signature="s",
                    args=(rng.choice(["eavesdrop=true", "type='signal',EAVESDROP='true'"]),))
    if choice == 1:
        return call(serial, rng.choice(sorted(_NEVER)), interface=rng.choice([None, "x.Y"]))
    if choice == 2:
        return call(serial, rng.choice(["rm", "write", "dump"]), destination=DB, path="/",
                    interface=DB, signature="s", args=("/k",))
    if choice == 3:
        return call(serial, "Frob", destination=rng.choice(["org.test.Nobody", ":1.1"]),
                    path="/", interface="org.test.X")
    if choice == 4:
        from rpc.proxy._message import build_message
        return build_message(MessageType(rng.choice([2, 3])), serial=serial,
                             reply_serial=rng.randrange(1, 1 << 32), destination=":1.1",
                             error_name="a.B", sender=None)
    if choice == 5:
        from rpc.proxy._message import build_message
        return build_message(MessageType.SIGNAL, serial=serial, path="/", interface="a.B",
                             member="S", reply_serial=rng.choice([None, 5]))
    if choice == 6:
        return call(serial, "read", destination=DB, path="/", interface=DB, signature="s",
                    args=("/x",))
    return call(serial, rng.choice(["GetId", "ListNames", "NameHasOwner"]),
                signature="s" if choice == 9 else "", args=(DB,) if choice == 9 else ())


def _fuzz(world: World, seed: int, names: list[str], errors: list[str]) -> None:
    rng = random.Random(seed)
    pool = [_hostile(rng, s) for s in range(2, 60)]
    sent = 0
    client: RawClient | None = None
    try:
        while sent < PER_CLIENT:
            if client is None:
                client = RawClient(world.proxy_socket)
                names.append(client.unique_name)
            data = _hostile(rng, 100 + sent)
            if rng.random() < 0.25:
                data = mutate(rng, data, pool)
            if rng.random() < 0.1:
                data = data[:rng.randrange(len(data))]  # truncated (the stream then stalls)
            try:
                client.sock.sendall(data)
                client.drain()
            except OSError:
                client.close()
                client = None
            sent += 1
            if client is not None and rng.random() < 0.05:  # start over now and then
                client.close()
                client = None
    except Exception as exc:  # reported by the test
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        if client is not None:
            client.close()


def _allowed_on_the_bus(seen: tuple[Any, ...], rules: Any, domain: DomainFacts) -> bool:
    _sender, dest, intf, member, mtype, _serial, _reply = seen
    if member in _NEVER or (member == "AddMatch"):
        return False
    facts = MessageFacts(_KINDS[mtype], Direction.INCOMING, dest, None, None, intf, member,
                         None, 0, None)
    return evaluate(rules, facts, domain).allowed


def test_thousands_of_hostile_messages_from_several_clients(
        world: World, bus_address: str, caplog: pytest.LogCaptureFixture) -> None:
    monitor = BusMonitor(bus_address)
    before = {n: actors.resolve(n) for n in ("/proxy/policy", "/proxy/listener",
                                              "/proxy/clients")}
    names: list[str] = []
    errors: list[str] = []
    try:
        with caplog.at_level(logging.WARNING, logger="rpc.proxy"):
            threads = [threading.Thread(target=_fuzz, args=(world, seed, names, errors),
                                        daemon=True) for seed in range(CLIENTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
            assert not any(t.is_alive() for t in threads)
            marker = RawClient(world.proxy_socket)  # the proxy still serves
            marker.sock.sendall(call(7, "GetId"))
            assert marker.wait_reply(7).type == MessageType.METHOD_RETURN
            wait_until(lambda: bool(monitor.from_sender(marker.unique_name)))
            marker.close()
        assert not errors
        assert "failed" not in caplog.text.lower().replace("authentication failed", "")
        assert {n: actors.resolve(n) for n in before} == before  # nothing restarted
        rules = compile_rules(parse_rules(RULES))
        domain = DomainFacts(5, UUID5, False)
        ours = set(names)
        reached = [m for m in list(monitor.seen) if m[0] in ours]
        assert reached, "nothing allowed reached the bus: the test did not exercise much"
        bad = [m for m in reached if not _allowed_on_the_bus(m, rules, domain)]
        assert bad == []
    finally:
        monitor.close()
