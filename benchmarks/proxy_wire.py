"""Per-message cost of the proxy's wire core: parse + serial rewrite of a typical call.

Prints microseconds per operation (CPU time, best of several rounds, since these machines are
shared) for: header parse, serial rewrite, parse + rewrite, the splitter on a stream, and
jeepney's full parse of the same bytes as the baseline measured in the same run.
Usage: ``python benchmarks/proxy_wire.py [--n N]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jeepney import DBusAddress, new_method_call, new_method_return
from jeepney.low_level import HeaderFields, Message

from rpc.proxy import (
    BUS_LIMITS,
    CallTable,
    Forward,
    HeaderCache,
    MessageSplitter,
    always_denied,
    parse_message,
    rewrite,
)


def per_op(fn: Callable[[], object], n: int, rounds: int = 5) -> float:
    """Best CPU microseconds per call of ``fn`` over ``rounds`` rounds of ``n``."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, time.process_time() - start)
    return best / n * 1e6


def main() -> None:
    """Run and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    n = parser.parse_args().n
    db = DBusAddress("/", bus_name="com.citrix.xenclient.db", interface="com.citrix.xenclient.db")
    raw = new_method_call(db, "read", "s", ("/vm/00000000-0000-0000-0000-000000000001/name",)
                          ).serialise(serial=42)
    msg = parse_message(raw)
    table = CallTable()
    stream = raw * 100
    cache = HeaderCache()
    reply = new_method_return(Message.from_buffer(raw), "s", ("a-value",))
    reply.header.fields[HeaderFields.sender] = ":1.7"
    reply_msg = parse_message(reply.serialise(serial=99), BUS_LIMITS)  # the bus's answer

    def round_trip() -> None:
        """The proxy's wire work for one call and its reply (the reply's bytes are made
        with the serial the call got, as the bus would, then parsed from scratch)."""
        call = parse_message(raw, cache=cache)
        always_denied(call)
        out = table.from_client(call)
        assert isinstance(out, Forward)
        answer = rewrite(reply_msg, reply_serial=out.message.serial).data
        assert isinstance(table.from_bus(parse_message(answer, BUS_LIMITS)), Forward)

    def through_table() -> None:
        m = parse_message(raw)
        always_denied(m)
        table.from_client(m)
        table.close()

    figures = {
        "parse_message": per_op(lambda: parse_message(raw), n),
        "parse_message, header cached (repeated call)": per_op(
            lambda: parse_message(raw, cache=cache), n),
        "rewrite(serial)": per_op(lambda: rewrite(msg, serial=7), n),
        "parse + rewrite": per_op(lambda: rewrite(parse_message(raw), serial=7), n),
        "parse + always_denied + CallTable": per_op(through_table, n),
        "round trip: call in (cached) + reply back": per_op(round_trip, n),
        "splitter, per message (100 in one feed)": per_op(
            lambda: MessageSplitter().feed(stream), max(1, n // 100)) / 100,
        "jeepney Message.from_buffer (baseline)": per_op(lambda: Message.from_buffer(raw), n),
    }
    print(f"typical call: {len(raw)} bytes")
    for name, us in figures.items():
        print(f"{name:45s} {us:7.2f} us")


if __name__ == "__main__":
    main()
