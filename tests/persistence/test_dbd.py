"""The dbd command line: options, defaults, and the bus address a daemon keeps after chdir."""

from __future__ import annotations

import os

import pytest

from persistence._dbd import absolute_address, parse_args


def test_defaults_and_options(tmp_path: object) -> None:
    args = parse_args([])
    assert (args.root, args.bus, args.flush_interval, args.foreground, args.pidfile) == \
        ("/config", None, 3.0, False, None)
    args = parse_args(["--root", "db", "--bus", "unix:path=/s", "--flush-interval", "0.5",
                       "--foreground", "--pidfile", "p", "-v"])
    assert args.root == os.path.abspath("db") and args.pidfile == os.path.abspath("p")
    assert (args.bus, args.flush_interval, args.foreground, args.verbose) == \
        ("unix:path=/s", 0.5, True, True)


def test_a_negative_flush_interval_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(["--flush-interval", "-1"])
    assert info.value.code == 2
    assert "--flush-interval must be >= 0" in capsys.readouterr().err


def test_relative_socket_paths_become_absolute() -> None:
    here = os.getcwd()
    assert absolute_address("unix:path=bus/sock,guid=ab") == f"unix:path={here}/bus/sock,guid=ab"
    assert absolute_address("unix:path=/abs/sock") == "unix:path=/abs/sock"
    assert absolute_address("unix:abstract=x;unix:path=s") == \
        f"unix:abstract=x;unix:path={here}/s"
    assert absolute_address("tcp:host=h,port=1") == "tcp:host=h,port=1"
