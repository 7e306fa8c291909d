"""db-cmd without a bus: the ls layout, the wrappers' argument handling, refusals and usage
(which never reach the bus), and the bus address order shared with rpc.dbus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from persistence._dbcmd import USAGE, bus_address, format_ls, main, wrapper_argv
from rpc.dbus import SYSTEM_BUS, resolve_address

TREE: dict[str, Any] = {"a": {"b": "1", "c": {"d": "x y"}}, "e": {}, "f": "2"}


def lookup(path: str) -> Any:
    node: Any = TREE
    for segment in (s for s in path.split("/") if s):
        node = node.get(segment, "") if isinstance(node, dict) else ""
    return node


def list_(path: str) -> list[str]:
    node = lookup(path)
    return list(node) if isinstance(node, dict) else []


def read(path: str) -> str:
    node = lookup(path)
    return node if isinstance(node, str) else ""


def test_ls_indents_one_space_per_level_and_quotes_leaves() -> None:
    assert format_ls("/", False, list_, read) == (
        ' =\n a =\n  b = "1"\n  c =\n   d = "x y"\n e = ""\n f = "2"\n')
    assert format_ls("/a/c", False, list_, read) == 'c =\n d = "x y"\n'
    assert format_ls("/f", False, list_, read) == 'f = "2"\n'
    assert format_ls("a/", False, list_, read) == ' =\n b = "1"\n c =\n  d = "x y"\n'


def test_ls_full_paths() -> None:
    assert format_ls("/", True, list_, read) == (
        '/ =\n/a =\n/a/b = "1"\n/a/c =\n/a/c/d = "x y"\n/e = ""\n/f = "2"\n')
    assert format_ls("a", True, list_, read) == 'a =\na/b = "1"\na/c =\na/c/d = "x y"\n'


@pytest.mark.parametrize(("command", "args", "expected"), [
    ("read", [], ["read", ""]),
    ("read", ["/a", "extra"], ["read", "/a"]),
    ("write", ["/a"], ["write", "/a", ""]),
    ("write", ["/a", "v w", "x"], ["write", "/a", "v w"]),
    ("rm", ["/a b"], ["rm", "/a b"]),
    ("cat", [], ["cat", ""]),
    ("ls", ["-f /a", "b\tc"], ["ls", "-f", "/a", "b", "c"]),
    ("ls", [], ["ls"]),
])
def test_wrappers_pass_arguments_as_the_original_scripts(command: str, args: list[str],
                                                         expected: list[str]) -> None:
    assert wrapper_argv(command, args) == expected


@pytest.mark.parametrize(("argv", "out", "err", "status"), [
    ([], USAGE, "", 1),
    (["read"], USAGE, "", 1),
    (["read", "/a", "/b"], USAGE, "", 1),
    (["ls", "-f", "/a", "x"], USAGE, "", 1),
    (["frobnicate", "/a"], USAGE, "", 1),
    (["write", "/", "x"], "", "Nope, not doing that.\n", 1),
    (["write", "//", "x"], "", "Nope, not doing that.\n", 1),
    (["write", "/vm", "x"], "", "Nope, not doing that.\n", 1),
    (["write", "vm//", "x"], "", "Nope, not doing that.\n", 1),
    (["rm", "/"], "bad path\n", "", 0),
    (["rm", ""], "bad path\n", "", 0),
])
def test_refusals_and_usage_never_touch_the_bus(
        argv: list[str], out: str, err: str, status: int,
        capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/socket")
    assert main(argv) == status
    captured = capsysbinary.readouterr()
    assert (captured.out.decode(), captured.err.decode()) == (out, err)


def test_bus_address_order_is_rpc_dbus_resolve_address(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("OXT_STATE_DIR", str(tmp_path))
    assert bus_address() == resolve_address() == SYSTEM_BUS
    (tmp_path / "dbus").mkdir()
    (tmp_path / "dbus" / "address").write_text("unix:path=/from/file\n")
    assert bus_address() == resolve_address() == "unix:path=/from/file"
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/from/env")
    assert bus_address() == resolve_address() == "unix:path=/from/env"
    monkeypatch.delenv("OXT_STATE_DIR")
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS")
    monkeypatch.chdir(tmp_path)  # ./state by default
    (tmp_path / "state" / "dbus").mkdir(parents=True)
    (tmp_path / "state" / "dbus" / "address").write_text("unix:path=/default/state\n")
    assert bus_address() == resolve_address() == "unix:path=/default/state"
