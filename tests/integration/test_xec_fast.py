"""xec's fast path (rpc.xec._fast) against the full path, on a real dbus-daemon: every command
is run by the installed console script twice, once with ``XEC_FULL_PATH=1``, and stdout,
stderr and the exit status must be the same bytes. In-process, the commands the fast path is
meant to carry must not fall back (else the comparison would prove nothing)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpc.xec._fast import FALL_BACK, try_call
from tests.integration.test_xec_cli import OBJECT, SCALARS, SERVICE, XecEcho, _script, _serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

# carried by the fast path: basic arguments, any reply, error replies
FAST = [
    ["echo-s", "x"],
    ["echo_s", ""],
    ["echo-s", 'x "y" \\z'],
    ["echo-s", "héllo"],
    ["-i", "org.test.Second", "echo-s", "a"],
    ["--interface", "org.test.Iface", "-i", "org.test.Second", "echo-s", "a"],
    ["only-here"],
    ["divmod", "17", "5"],
    ["divmod", " -17 ", "5"],
    ["nothing"],
    ["fail-plain", "it broke"],
    ["fail_named", "why"],
    ["unimplemented"],
    ["bad-return"],
    ["fire", "now"],
    ["-o", SCALARS, "echo-scalars", "255", "true", "-3", "65535", "-5", "-1", "-9",
     "18446744073709551615", "1.5", "a b 'c'", "/a/b"],
    ["-o", SCALARS, "echo-scalars", "0", "0", "0", "0", "0", "0", "0", "0", "0.01", "", "/"],
    ["-o", SCALARS, "echo-scalars", "256", "1", "-32768", "70000", "2147483647", "-7",
     "-9223372036854775808", "-1", "12345678", "s", "/x_1/y"],
    ["-o", SCALARS, "echo-scalars", "0", " false ", "0", "0", "0", "0", "0", "0", "-0.5", "\t",
     "/"],
    ["-o", SCALARS, "variants"],
    ["-o", SCALARS, "signature"],
]

# the full path's business (containers, properties, listings, local errors): the fast path
# must hand them over before sending anything, and the output must not change
FALLS_BACK = [
    ["echo-containers", '["a", \'b c\']', '{"k": "v", "key2": "w"}', "{}", '[1, "two", false]',
     "[[1, 2], [], [3]]", "[0, 255, 65]"],
    ["echo-containers", "[]", "{}", "{}", "[0, '', true]", "[]", "[]"],
    ["-o", SCALARS, "echo-bytes", "[9, 10, 34, 92, 200, 49]"],
    ["echo-basic", "1", "true", "1", "1", "1", "1", "1", "1", "1", "s", "/", "s"],
    ["nosuch"],
    ["-i", "org.test.Nope", "divmod", "1", "2"],
    ["-i", "org.test.Second", "divmod", "1", "2"],
    ["divmod", "1"],
    ["nothing", "x"],
    ["divmod", "1", "x"],
    ["divmod", "12abc", "1"],
    ["divmod", "1", "2147483648"],
    ["-o", SCALARS, "echo-scalars", "0", "yes", "0", "0", "0", "0", "0", "0", "1e3", "s", "/"],
    ["-o", SCALARS, "echo-scalars", "0", "0", "0", "0", "0", "0", "0", "0", "1", "s", "a/b"],
    ["get", "read-only-prop"],
    ["-g", "read-only-prop"],
    ["-i", "org.test.Iface", "get", "plain_name"],
    ["set", "read-write-prop", "42"],
    ["get", "read-write-prop"],
    ["-x", "plain_name", '["p", "q"]'],
    ["getall"],
    ["--list-methods"],
    [],
    ["-o", "no/path", "x"],
    ["-o", "/org/test/Nowhere", "divmod"],  # Introspect fails: the full path reports it
    ["-t", "3", "divmod", "1", "2"],
    ["-s"],
    ["-s", "org.test.Nobody", "x"],
    ["--session", "divmod", "1", "2"],
]


@pytest.fixture
def echo(bus_address: str) -> Iterator[None]:
    yield from _serve(XecEcho, bus_address)


def _run(args: list[str], address: str, full: bool) -> tuple[bytes, bytes, int]:
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    env.pop("XEC_FULL_PATH", None)
    if full:
        env["XEC_FULL_PATH"] = "1"
    done = subprocess.run([*_script("xec"), *args], capture_output=True, env=env, timeout=60)
    return done.stdout, done.stderr, done.returncode


def _command(args: list[str]) -> list[str]:
    if "-o" in args or "-s" in args:
        return ["-q", "-s", SERVICE, *args] if "-s" not in args else ["-q", *args]
    return ["-q", "-s", SERVICE, "-o", OBJECT, *args]


@pytest.mark.parametrize("cases", [FAST, FALLS_BACK], ids=["fast", "falls-back"])
def test_both_paths_print_the_same_bytes(bus_address: str, echo: None,
                                         cases: list[list[str]]) -> None:
    for args in cases:
        command = _command(args)
        fast = _run(command, bus_address, full=False)
        full = _run(command, bus_address, full=True)
        assert fast == full, command
        assert fast[2] in (0, 1), (command, fast)


def test_the_fast_path_carries_plain_calls(bus_address: str, echo: None,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_address)
    monkeypatch.delenv("XEC_FULL_PATH", raising=False)
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    for args in FAST:
        assert try_call(_command(args)) != FALL_BACK, args
    assert try_call(_command(["divmod", "17", "5"])) == 0
    assert capsysbinary.readouterr().out.endswith(b"3\n2\n")
    for args in FALLS_BACK:
        assert try_call(_command(args)) == FALL_BACK, args
        assert capsysbinary.readouterr() == (b"", b""), args
    monkeypatch.setenv("XEC_FULL_PATH", "1")
    assert try_call(_command(["nothing"])) == FALL_BACK


def test_a_bus_that_does_not_answer_falls_back(tmp_path: Path) -> None:
    missing = f"unix:path={tmp_path}/no-bus"
    command = ["-q", "divmod", "1", "2"]
    fast = _run(command, missing, full=False)
    assert fast == _run(command, missing, full=True)
    assert fast[2] == 1 and fast[1].startswith(b"xec: cannot connect to the bus at ")
