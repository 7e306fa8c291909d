"""Fuzz the proxy's wire core: valid messages from jeepney, then broken on purpose.

Usage: ``python tests/fuzz/fuzz_wire.py [--count N] [--seed S]`` (default 1,000,000 inputs).
Each input is a valid message (random type, fields, signature and body, serialised by
jeepney, either byte order) or a mutation of one: truncated, extended, bit-flipped, bytes
overwritten, length fields set to hostile values, two messages spliced, or random bytes. Every
input goes through a ``MessageSplitter`` in random chunks; every message that parses goes
through ``decode_body``, ``always_denied`` and ``rewrite``. Anything raised other than
``WireError`` is a crash: the script prints the counts (inputs, messages parsed, rejected,
crashes), the first crashes with their inputs in hex, and exits 1 if there was any.

The generators are also used by ``tests/proxy/test_wire_fuzz.py``.
"""

from __future__ import annotations

import argparse
import random
import string
import struct
import sys
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from jeepney.low_level import Endianness, Header, HeaderFields, Message, MessageType

from rpc.proxy import (
    CLIENT_LIMITS,
    MessageSplitter,
    WireError,
    WireLimits,
    always_denied,
    decode_body,
    parse_message,
    rewrite,
)

BASIC = "ybnqiuxtdsog"
NAMES = ["org.freedesktop.DBus", "com.citrix.xenclient.db", ":1.42", "a.b", "org.x_y.Z-q"]
MEMBERS = ["Hello", "AddMatch", "RequestName", "GetNameOwner", "read", "Get", "BecomeMonitor"]
PATHS = ["/", "/org/freedesktop/DBus", "/vm/00000000_0000", "/a/b_c/D9"]


def random_type(rng: random.Random, depth: int = 0) -> str:
    """One random complete type (nesting bounded by ``depth``)."""
    roll = rng.random()
    if depth > 3 or roll < 0.55:
        return rng.choice(BASIC)
    if roll < 0.65:
        return "v"
    if roll < 0.8:
        return "a" + random_type(rng, depth + 1)
    if roll < 0.9:
        return "a{" + rng.choice(BASIC) + random_type(rng, depth + 1) + "}"
    return "(" + "".join(random_type(rng, depth + 1) for _ in range(rng.randint(1, 3))) + ")"


def random_value(rng: random.Random, sig: str) -> tuple[Any, str]:
    """A random value of the complete type at the start of ``sig``, and the rest of ``sig``."""
    c, rest = sig[0], sig[1:]
    ints = {"y": (0, 255), "n": (-(1 << 15), (1 << 15) - 1), "q": (0, (1 << 16) - 1),
            "i": (-(1 << 31), (1 << 31) - 1), "u": (0, (1 << 32) - 1),
            "x": (-(1 << 63), (1 << 63) - 1), "t": (0, (1 << 64) - 1)}
    if c in ints:
        return rng.randint(*ints[c]), rest
    if c == "b":
        return rng.random() < 0.5, rest
    if c == "d":
        return rng.uniform(-1e9, 1e9), rest
    if c == "s":
        alphabet = string.printable + "é€☃"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))), rest
    if c == "o":
        return rng.choice(PATHS), rest
    if c == "g":
        return "".join(random_type(rng, 2) for _ in range(rng.randint(0, 3))), rest
    if c == "v":
        inner = random_type(rng, 2)
        return (inner, random_value(rng, inner)[0]), rest
    if c == "a":
        if rest[0] == "{":
            key_sig = rest[1]
            value_sig = _one(rest[2:])
            after = rest[2 + len(value_sig) + 1:]
            return {random_value(rng, key_sig)[0]: random_value(rng, value_sig)[0]
                    for _ in range(rng.randint(0, 3))}, after
        elem = _one(rest)
        if elem == "y":
            return bytes(rng.randrange(256) for _ in range(rng.randint(0, 8))), rest[1:]
        return [random_value(rng, elem)[0] for _ in range(rng.randint(0, 3))], rest[len(elem):]
    # struct
    inner = _one(sig)[1:-1]
    values = []
    while inner:
        value, inner = random_value(rng, inner)
        values.append(value)
    return tuple(values), sig[len(_one(sig)):]


def _one(sig: str) -> str:
    """The first complete type of ``sig``."""
    c = sig[0]
    if c == "a":
        return "a" + _one(sig[1:])
    if c in "({":
        depth = 0
        for end, ch in enumerate(sig, 1):
            depth += ch in "({"
            depth -= ch in ")}"
            if depth == 0:
                return sig[:end]
        return sig
    return c


def random_message(rng: random.Random) -> bytes:
    """A valid message, serialised by jeepney."""
    mtype = rng.choice(list(MessageType))
    fields: dict[HeaderFields, Any] = {}
    if mtype in (MessageType.method_call, MessageType.signal):
        fields[HeaderFields.path] = rng.choice(PATHS)
        fields[HeaderFields.member] = rng.choice(MEMBERS)
    if mtype == MessageType.signal or rng.random() < 0.7:
        fields[HeaderFields.interface] = rng.choice(["org.freedesktop.DBus", "com.x.y"])
    if mtype == MessageType.error:
        fields[HeaderFields.error_name] = "org.freedesktop.DBus.Error.Failed"
    if mtype in (MessageType.method_return, MessageType.error):
        fields[HeaderFields.reply_serial] = rng.randint(1, 1 << 20)
    if rng.random() < 0.8:
        fields[HeaderFields.destination] = rng.choice(NAMES)
    if rng.random() < 0.3:
        fields[HeaderFields.sender] = rng.choice(NAMES)
    types = [random_type(rng) for _ in range(rng.randint(0, 4))]
    sig = "".join(types)
    body = tuple(random_value(rng, t)[0] for t in types)
    if sig:
        fields[HeaderFields.signature] = sig
    endian = rng.choice([Endianness.little, Endianness.big])
    header = Header(endian, mtype, rng.choice([0, 1, 2, 3]), 1, -1, -1, fields)
    return Message(header, body).serialise(serial=rng.randint(1, (1 << 32) - 1))


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """``data`` broken in one of several ways."""
    how = rng.randrange(10)
    buf = bytearray(data)
    if how == 0:
        return bytes(buf[:rng.randrange(len(buf))])
    if how == 1:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        return bytes(buf)
    if how == 2:
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        return bytes(buf)
    if how == 3:
        at = rng.choice([4, 8, 12])
        hostile = rng.choice([0, 1, 7, 0xFFFFFFFF, 0x7FFFFFFF, 1 << 27, len(buf),
                              rng.randrange(1 << 32)])
        struct.pack_into("<I" if buf[0] == 0x6C else ">I", buf, at, hostile)
        return bytes(buf)
    if how == 4:
        i = rng.randrange(len(buf))
        return bytes(buf[:i] + rng.randbytes(rng.randint(1, 16)) + buf[i:])
    if how == 5:
        other = rng.choice(pool)
        i, j = rng.randrange(len(buf)), rng.randrange(len(other))
        return bytes(buf[:i] + other[j:])
    if how == 6:
        return rng.randbytes(rng.randint(0, 64))
    if how == 7:  # a hostile signature or field array inside a plausible header
        sig = rng.choice(["a" * 40 + "y", "(" * 40 + "y" + ")" * 40, "a{vy}", "a{yy", "()",
                          "a" * 70 + "y", "v" * 200, "{yy}", "aa{yy}"]).encode()
        field = bytes((8, 1)) + b"g\0" + bytes((len(sig),)) + sig + b"\0"
        fixed = b"l\x01\x00\x01" + struct.pack("<III", 0, 1, len(field))
        return fixed + field + b"\0" * (-len(field) % 8)
    if how == 8 and len(buf) >= 16:  # field array length rounded up over its padding
        fmt = "<I" if buf[0] == 0x6C else ">I"
        (fields_len,) = struct.unpack_from(fmt, buf, 12)
        struct.pack_into(fmt, buf, 12, fields_len + (-fields_len % 8))
        return bytes(buf)
    i = rng.randrange(len(buf))
    del buf[i:i + rng.randint(1, 8)]
    return bytes(buf)


def exercise(data: bytes, rng: random.Random, limits: WireLimits = CLIENT_LIMITS) -> int:
    """Feed ``data`` in random chunks and touch every parsed message: the number of messages
    parsed. Raises only ``WireError`` for a bad input (anything else is a crash)."""
    splitter = MessageSplitter(limits)
    parsed = []
    pos = 0
    while pos < len(data):
        step = rng.randint(1, max(1, len(data) - pos))
        parsed += splitter.feed(data[pos:pos + step])
        pos += step
    for msg in parsed:
        try:
            decode_body(msg, limits)
        except WireError:
            pass
        always_denied(msg)
        rewrite(msg, serial=7)
        if msg.reply_serial is not None:
            rewrite(msg, reply_serial=9)
        again = parse_message(msg.data, limits)
        assert again == msg, "parse is not deterministic"
    return len(parsed)


def run(count: int, seed: int, report_every: float = 10.0) -> tuple[int, int, int, int]:
    """Fuzz ``count`` inputs: (inputs, messages parsed, rejected, crashes)."""
    rng = random.Random(seed)
    pool = [random_message(rng) for _ in range(min(count, 2000) or 1)]
    limits = WireLimits(max_message_size=1 << 16, max_unix_fds=0)
    parsed = rejected = crashes = 0
    last = time.monotonic()
    for n in range(count):
        base = rng.choice(pool)
        data = base if rng.random() < 0.1 else mutate(rng, base, pool)
        if rng.random() < 0.2:
            data += rng.choice(pool)
        try:
            parsed += exercise(data, rng, limits)
        except WireError:
            rejected += 1
        except Exception:
            crashes += 1
            if crashes <= 5:
                print(f"CRASH on input {data.hex()}", file=sys.stderr)
                traceback.print_exc()
        if time.monotonic() - last > report_every:
            last = time.monotonic()
            print(f"... {n + 1} inputs", file=sys.stderr)
    return count, parsed, rejected, crashes


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.monotonic()
    inputs, parsed, rejected, crashes = run(args.count, args.seed)
    took = time.monotonic() - start
    print(f"inputs={inputs} messages={parsed} rejected={rejected} crashes={crashes} "
          f"seconds={took:.1f}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
