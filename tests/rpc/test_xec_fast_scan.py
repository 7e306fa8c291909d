"""The fast path's own readers checked against the full path's: argument parsing against
`rpc.xec._literal`, the introspection scan against `rpc.idl.parse_node`, the command-line scan
against `rpc.xec._options`, and the wire decoder against jeepney's encoder (both byte orders)."""

from __future__ import annotations

import _socket
from typing import Any

import pytest
from jeepney.low_level import Endianness
from jeepney.low_level import parse_signature as jeepney_signature

from rpc.idl import IdlError, parse_node
from rpc.xec import LiteralError, UsageError, parse_argument, parse_xec_argv
from rpc.xec._fast import _Fallback, parse_basic, scan_argv, scan_introspection
from rpc.xec._options import Command
from rpc.xec._wire import Unsupported, WireBus, decode, encode_basic, unix_socket_path

TEXTS = ["0", "1", "-1", " 7 ", "\t-8\n", "007", "-0", "255", "256", "-129", "32767", "32768",
         "-32769", "2147483647", "2147483648", "4294967296", "9223372036854775807",
         "9223372036854775808", "18446744073709551616", "1.5", "-0.25", "1.", ".5", "1e3",
         "true", "false", " true ", "True", "truex", "yes", "", " ", "abc", "+1", "١٢",
         "/", "/a/b_c", "a/b", "/a/", "//", "x\0y", "\udcff", "héllo", "[1]", "'q'"]


@pytest.mark.parametrize("code", list("ybnqiuxtdso"))
def test_arguments_parse_as_the_full_grammar_reads_them(code: str) -> None:
    for text in TEXTS:
        try:
            expected: Any = parse_argument(text, code)
        except LiteralError:
            with pytest.raises(ValueError):
                parse_basic(text, code)
            continue
        try:
            got = parse_basic(text, code)
        except ValueError:
            continue  # stricter is allowed: the full path reads it
        assert (got, type(got)) == (expected, type(expected)), (code, text)


def test_container_and_unwritable_types_are_not_taken() -> None:
    for code in ("g", "v", "h", "as", "a{ss}", "(i)"):
        with pytest.raises((ValueError, KeyError)):
            parse_basic("1", code)


DOCS = [
    b"""<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
    "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
    <node name="/x"><interface name="a.B"><method name="m"><arg type="s"/>
    <arg type="i" direction="out"/><arg name="z" type="a{sv}" direction="in"/></method>
    <method name="m"><arg type="u"/></method><method name="n"/>
    <signal name="s"><arg type="i"/></signal><property name="p-q" type="as" access="read"/>
    <annotation name="k" value="v"/></interface>
    <interface name="a.B"><method name="other"/></interface>
    <interface name="c.D"><method name="n"><arg type="d"/><!-- c --></method>
    <unknown><method name="bad"/></unknown></interface>
    <node name="child"><interface name="e.F"><method name="x"><arg type="(("/></method>
    </interface></node></node>""",
    b"""<node xmlns:tp="http://telepathy.freedesktop.org/wiki/DbusSpec#extensions-v0">
    <interface name="a.B"><tp:docstring>doc</tp:docstring><method name="m"/></interface></node>""",
    b"""<node><interface name="a.B"><method name="m"><arg type="(("/></method>
    </interface></node>""",
    b"""<node><interface name="a.B"><method name="m"><arg/></method></interface></node>""",
    b"""<node><interface name="a.B"><method name="m"><arg type="s" direction="up"/></method>
    </interface></node>""",
    b"""<node><interface name="a.B"><signal name="m"><arg type="s" direction="in"/></signal>
    </interface></node>""",
    b"""<node><interface name="a.B"><property name="p" type="s" access="all"/>
    </interface></node>""",
    b"""<node><interface name="a.B"><property name="p" type="s"/></interface></node>""",
    b"""<node><interface><method name="m"/></interface></node>""",
    b"""<node><interface name="a.B"><annotation name="x"/></interface></node>""",
    b"""<other><interface name="a.B"/></other>""",
    b"""<node><interface name="a.B"></node>""",
    b"""<!DOCTYPE node [<!ENTITY e "x">]><node><interface name="a.B"/></node>""",
    b"""<node xmlns:tp="http://telepathy.freedesktop.org/wiki/DbusSpec#extensions-v0">
    <interface name="a.B"><tp:enum name="E" type="u"/></interface></node>""",
    b"""<node><interface name="a.B"><method name="m"><arg type="a{vs}"/></method>
    </interface></node>""",
    b"""<node><interface name="a.B"><method name="m"><arg type="ii"/></method>
    </interface></node>""",
    b"""<node><interface name="a.B"><method name="m"><arg type="()"/></method>
    </interface></node>""",
    b"""<node><interface name="a.B"><method name="m"><arg type="{sv}"/></method>
    </interface></node>""",
    b"""<node><interface name="a.B"><method name="m"><arg type="aa{sa(ib)}"/></method>
    </interface></node>""",
    *(b"""<node><interface name="a.B"><property name="p" access="read" type="%s"/>
    </interface></node>""" % sig.encode() for sig in (
        "a" * 32 + "i", "a" * 33 + "i", "(" * 30 + "i" + ")" * 30, "(" * 33 + "i" + ")" * 33,
        "a{gs}", "a{hs}", "a{(i)i}", "(v)", "a{si}x", "z", "", "a", "(i")),
]


@pytest.mark.parametrize("doc", DOCS)
def test_the_introspection_scan_agrees_with_the_model(doc: bytes) -> None:
    text = doc.decode()
    try:
        scanned = scan_introspection(text)
    except _Fallback:
        return  # the full path reads it
    node = parse_node(text, strict=False)  # the scan took it: the model must too
    assert scanned == [(i.name, {m.name: [a.type for a in m.in_args] for m in i.methods})
                       for i in node.interfaces]


def test_documents_the_model_refuses_are_never_scanned() -> None:
    refused = scanned = 0
    for doc in DOCS:
        try:
            parse_node(doc.decode(), strict=False)
        except IdlError:
            refused += 1
            with pytest.raises(_Fallback):
                scan_introspection(doc.decode())
            continue
        try:
            scan_introspection(doc.decode())
            scanned += 1
        except _Fallback:
            pass
    assert refused >= 8 and scanned >= 3


ARGVS = [["m"], ["-q", "m", "1"], ["--query", "-s", "a.b", "--object", "/x", "-i", "i.j", "m-n"],
         ["-s", "a.b", "-s", "c.d", "m"], ["-o", "/a", "-o", "/b", "m", "-q"], ["get", "p"],
         ["get"], ["set", "p"], ["getall"], [], ["-h"], ["-q", "--list-methods"], ["-g", "p"],
         ["-x", "p", "v"], ["-t", "1", "m"], ["-s"], ["-o", "x", "m"], ["-s", "bad", "m"],
         ["--session", "m"], ["--help=1", "m"], ["-qx", "m"]]


@pytest.mark.parametrize("argv", ARGVS)
def test_the_command_line_scan_agrees_with_the_parser(argv: list[str]) -> None:
    found = scan_argv(argv)
    if found is None:
        return
    request = parse_xec_argv(argv)
    assert request.action.command is Command.CALL and request.target_domid == -1
    location = request.location
    assert (found["service"], found["object"], found.get("interface")) == \
        (location.service, location.object, location.interface)
    assert (found["method"], tuple(found["args"])) == (request.action.name, request.action.args)
    assert (found.get("query", False), found.get("session", False)) == \
        (request.query, request.session)


def test_a_command_line_error_is_the_parsers() -> None:
    assert scan_argv(["-s"]) is None
    with pytest.raises(UsageError):
        parse_xec_argv(["-s"])


VALUES: list[tuple[str, Any]] = [
    ("y", 200), ("b", True), ("n", -3), ("q", 65535), ("i", -5), ("u", 7), ("x", -2**63),
    ("t", 2**64 - 1), ("d", 1.5), ("s", "héllo"), ("o", "/a/b"), ("g", "a{sv}"),
    ("as", ["a", "", "bc"]), ("a{sv}", {"n": ("i", 3), "l": ("as", ["x"]), "b": ("b", False)}),
    ("(isb)", (1, "two", True)), ("aai", [[1, 2], [], [3]]), ("ay", b"\0\xff"), ("ad", [0.5]),
    ("v", ("(yd)", (1, 2.5))), ("a(ys)", [(1, "a"), (2, "b")]), ("a{ya{sx}}", {1: {"k": -1}}),
]


@pytest.mark.parametrize("big", [False, True])
def test_decoding_reads_what_jeepney_writes(big: bool) -> None:
    endianness = Endianness.big if big else Endianness.little
    for offset in (0, 1, 3, 5):
        for sig, value in VALUES:
            data = b"\0" * offset + jeepney_signature(list(sig)).serialise(value, offset,
                                                                            endianness)
            decoded, end = decode(data, offset, sig, big)
            assert (decoded, end) == (value, len(data)), (sig, offset)


def test_encoding_writes_what_jeepney_writes() -> None:
    for offset in (0, 1, 3):
        for sig, value in VALUES[:12]:
            buf = bytearray(b"\0" * offset)
            encode_basic(buf, sig, value)
            assert bytes(buf[offset:]) == jeepney_signature(list(sig)).serialise(
                value, offset, Endianness.little), sig
    with pytest.raises(Unsupported):
        encode_basic(bytearray(), "a", [])


def test_addresses() -> None:
    assert unix_socket_path("unix:path=/run/bus") == "/run/bus"
    assert unix_socket_path("unix:guid=1,abstract=/tmp/x;tcp:host=h") == "\0/tmp/x"
    for address in ("tcp:host=localhost,port=1", "unix:path=/a%20b", "unix:tmpdir=/tmp", "x"):
        with pytest.raises(Unsupported):
            unix_socket_path(address)


@pytest.mark.parametrize("garbage", [
    b"l\2\0\1\0\0\0\0\1\0\0\0\10\0\0\0\5\7\0\0\0\0\0\0",  # a field of no type
    b"l\2\0\1\0\0\0\0\1\0\0\0\20\0\0\0\10\1g\0\2z\0\0\0\0\0\0\0\0\0\0\0",  # a variant cut short
])
def test_a_malformed_message_is_a_value_error(garbage: bytes) -> None:
    ours, theirs = _socket.socketpair()
    try:
        theirs.sendall(garbage)
        theirs.close()
        bus = WireBus(ours)
        with pytest.raises(ValueError):
            bus._receive(1)
    finally:
        ours.close()
