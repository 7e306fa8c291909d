"""rpc-proxy's command line (rpc/proxy/_options.py): the original's options, GNU getopt style."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.proxy import Channel, OptionsError, ProxyOptions, parse_channel, parse_options


def test_defaults_are_the_originals() -> None:
    opts = parse_options([])
    assert opts.incoming == Channel("argo", port=5555)
    assert opts.outgoing == Channel("unix", path="/var/run/dbus/system_bus_socket")
    assert opts.rules == "/etc/rpc-proxy.rules"
    assert opts.incoming_domid is None and opts.firewall and not opts.server
    assert opts == ProxyOptions(argv=())


def test_every_option_short_and_long() -> None:
    opts = parse_options(["-i", "unix:/tmp/in", "-o", "argo-domid:5556:7", "-d", "3", "-v",
                          "-r", "/x.rules", "-n", "com.x.uuid_$UUID", "-s", "-w", "-u",
                          "--owner-name", "--translate-anonymous-dests", "--json-in",
                          "--json-out", "--websockets-in", "--auto-auth"])
    assert opts.incoming == Channel("unix", path="/tmp/in")
    assert opts.outgoing == Channel("argo-domid", port=5556, domid=7)
    assert opts.incoming_domid == 3 and opts.verbose and opts.rules == "/x.rules"
    assert opts.request_name == "com.x.uuid_$UUID"
    assert opts.server and opts.no_firewall and not opts.firewall and opts.send_uuid
    assert opts.owner_name and opts.translate_anonymous_dests
    assert opts.json_in and opts.json_out and opts.websockets_in and opts.auto_auth
    longs = parse_options(["--listen-channel=tcp:8080", "--forward-channel", "unix:/b",
                           "--incoming-domid=4", "--rules=/r", "--request-name=n", "--server",
                           "--no-firewall", "--uuid", "--verbose"])
    assert longs.incoming == Channel("tcp", port=8080) and longs.outgoing.path == "/b"
    assert longs.incoming_domid == 4 and longs.rules == "/r" and longs.request_name == "n"
    assert longs.server and longs.no_firewall and longs.send_uuid and longs.verbose


def test_later_flags_override_and_prefixes_abbreviate() -> None:
    opts = parse_options(["-i", "argo:1", "--incoming-chan=argo:2", "-l", "unix:/z"])
    assert opts.incoming == Channel("unix", path="/z")
    assert parse_options(["--json-i"]).json_in


def test_help_and_check_rules() -> None:
    assert parse_options(["-h"]).help and parse_options(["--help"]).help
    assert parse_options(["--check-rules", "/f"]).check_rules == "/f"


@pytest.mark.parametrize("argv, needle", [
    (["-x"], "-x"),
    (["--bogus"], "--bogus"),
    (["stray"], "stray"),
    (["-v", "stray", "-s"], "stray"),
    (["-i"], "-i"),
    (["-d", "x"], "domid"),
    (["-d", "-1"], "domid"),
    (["-d", "40000"], "domid"),
    (["-i", "argo-domid:1:2"], "incoming"),
    (["-o", "tcp:80"], "outgoing"),
    (["-i", "argo:abc"], "port"),
    (["-i", "argo:0"], "port"),
    (["-i", "unix:"], "unix:PATH"),
    (["-i", "unix:/a:b"], "unix:PATH"),
    (["-o", "argo-uuid:5:not-a-uuid"], "uuid"),
    (["-o", "argo-domid:5"], "DOMID"),
    (["-i", "tcp:h:70000"], "port"),
    (["-r", ""], "-r"),
    (["--json"], "json"),  # ambiguous prefix
])
def test_bad_command_lines_name_what_is_wrong(argv: list[str], needle: str) -> None:
    with pytest.raises(OptionsError, match=None) as info:
        parse_options(argv)
    assert needle in str(info.value)


def test_channels_print_as_parsed() -> None:
    for spec, outgoing in [("unix:/a/b", False), ("tcp:80", False), ("tcp:0.0.0.0:80", False),
                           ("argo:5555", False), ("argo-domid:5556:12", True),
                           ("argo-uuid:1:00000000-0000-0000-0000-000000000001", True)]:
        assert str(parse_channel(spec, outgoing=outgoing)) == spec


_FLAG_WORDS = ["-v", "-s", "-w", "-u", "--json-in", "--auto-auth", "--owner-name"]


@given(st.permutations([*_FLAG_WORDS, "-i", "unix:/in", "-r", "/rules"]))
def test_flag_order_does_not_matter_when_pairs_stay_together(words: list[str]) -> None:
    # rebuild so that every option keeps its argument right after it
    pairs = {"-i": "unix:/in", "-r": "/rules"}
    argv: list[str] = []
    for word in words:
        if word in pairs:
            argv += [word, pairs[word]]
        elif word not in pairs.values():
            argv.append(word)
    opts = parse_options(argv)
    assert opts.verbose and opts.server and opts.no_firewall and opts.send_uuid
    assert opts.json_in and opts.auto_auth and opts.owner_name
    assert opts.incoming.path == "/in" and opts.rules == "/rules"


def test_allow_origin_is_repeatable_and_needs_a_value() -> None:
    opts = parse_options(["--websockets-in", "--allow-origin", "null",
                          "--allow-origin=http://ui.local:8080"])
    assert opts.allow_origins == ("null", "http://ui.local:8080")
    assert parse_options([]).allow_origins == ()
    with pytest.raises(OptionsError, match="allow-origin"):
        parse_options(["--allow-origin", " "])
