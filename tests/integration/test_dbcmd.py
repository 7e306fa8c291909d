"""db-cmd and the db-* wrappers as subprocesses against the db service: every subcommand's
output byte for byte, exit statuses, refusals, errors, and a start without the actor runtime."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.dbd_helpers import BIN, Client, Tree, env_for

pytestmark = pytest.mark.integration


@pytest.fixture
def tree(bus_address: str, tmp_path: Path) -> Iterator[Tree]:
    root = tmp_path / "db"
    (root / "vms").mkdir(parents=True)
    (root / "vms" / "blob.bin").write_bytes(b"\x00\x01raw\xff")
    started = Tree(root, bus_address)
    client = Client(bus_address)
    try:
        client.inject("/a", '{"b": "1", "c": {"d": "x y"}, "n": 7}')
        client.inject("/e", "{}")
    finally:
        client.close()
    yield started
    started.stop()


def run(address: str, command: str, *args: str) -> tuple[bytes, bytes, int]:
    proc = subprocess.run([str(BIN / command), *args], env=env_for(address),
                          capture_output=True, timeout=30, check=False)
    return proc.stdout, proc.stderr, proc.returncode


@pytest.mark.parametrize(("args", "out"), [
    (("read", "/a/b"), b"1\n"),
    (("read", "a//c/d/"), b"x y\n"),
    (("read", "/a/n"), b"7\n"),
    (("read", "/missing"), b"\n"),
    (("exists", "/a/c"), b"true\n"),
    (("exists", "/zz"), b"false\n"),
    (("nodes", "/"), b"vm a e\n"),
    (("nodes", "/a/b"), b"\n"),
    (("cat", "/vm/blob.bin"), b"\x00\x01raw\xff"),
    (("ls", "/a"), b'a =\n b = "1"\n c =\n  d = "x y"\n n = "7"\n'),
    (("ls", "-f", "/a/c"), b'/a/c =\n/a/c/d = "x y"\n'),
    (("ls", "/e"), b'e = ""\n'),
])
def test_outputs(tree: Tree, bus_address: str, args: tuple[str, ...], out: bytes) -> None:
    assert run(bus_address, "db-cmd", *args) == (out, b"", 0)


def test_ls_of_the_whole_tree(tree: Tree, bus_address: str) -> None:
    blob = tree.root / "vms" / "blob.bin"
    assert run(bus_address, "db-cmd", "ls") == (
        f' =\n vm =\n  blob.bin = "file:{blob}"\n a =\n  b = "1"\n  c =\n   d = "x y"\n'
        f'  n = "7"\n e = ""\n'.encode(), b"", 0)
    out, _, status = run(bus_address, "db-cmd", "ls", "-f")
    assert status == 0 and out.endswith(b'/a =\n/a/b = "1"\n/a/c =\n/a/c/d = "x y"\n'
                                        b'/a/n = "7"\n/e = ""\n')
    assert out.startswith(f'/ =\n/vm =\n/vm/blob.bin = "file:{blob}"\n'.encode())


def test_write_and_rm(tree: Tree, bus_address: str) -> None:
    assert run(bus_address, "db-cmd", "write", "/w/x", "hello world") == (b"", b"", 0)
    assert run(bus_address, "db-cmd", "read", "/w/x") == (b"hello world\n", b"", 0)
    assert run(bus_address, "db-cmd", "write", "/vm/u/x", "ok") == (b"", b"", 0)
    assert run(bus_address, "db-cmd", "rm", "/w") == (b"", b"", 0)
    assert run(bus_address, "db-cmd", "exists", "/w") == (b"false\n", b"", 0)


@pytest.mark.parametrize("path", ["/", "", "//", "/vm", "vm/"])
def test_write_refuses_the_root_and_vm(tree: Tree, bus_address: str, path: str) -> None:
    assert run(bus_address, "db-cmd", "write", path, "x") == \
        (b"", b"Nope, not doing that.\n", 1)
    assert run(bus_address, "db-cmd", "nodes", "/") == (b"vm a e\n", b"", 0)


def test_rm_of_the_root_is_refused(tree: Tree, bus_address: str) -> None:
    assert run(bus_address, "db-cmd", "rm", "/") == (b"bad path\n", b"", 0)
    assert run(bus_address, "db-cmd", "nodes", "/") == (b"vm a e\n", b"", 0)


@pytest.mark.parametrize("args", [(), ("read",), ("read", "/a", "/b"), ("bogus", "/a"),
                                  ("ls", "-f", "/a", "/b"), ("write", "/a")])
def test_usage(tree: Tree, bus_address: str, args: tuple[str, ...]) -> None:
    assert run(bus_address, "db-cmd", *args) == (b"Usage: db-cmd <cmd> <parameters>\n", b"", 1)


def test_a_dbus_error_goes_to_stderr_with_status_2(tree: Tree, bus_address: str) -> None:
    assert run(bus_address, "db-cmd", "cat", "/a/b") == \
        (b"", b"db-cmd: org.freedesktop.DBus.Error.Failed: not a binary node\n", 2)


def test_no_bus(tmp_path: Path) -> None:
    out, err, status = run(f"unix:path={tmp_path}/no-socket", "db-cmd", "read", "/a")
    assert (out, status) == (b"", 2)
    assert err.startswith(b"db-cmd: org.freedesktop.DBus.Error.NoServer: cannot connect to "
                          b"the bus at unix:path=")


def test_wrappers(tree: Tree, bus_address: str) -> None:
    assert run(bus_address, "db-read", "/a/b", "ignored") == (b"1\n", b"", 0)
    assert run(bus_address, "db-write", "/w", "v w", "ignored") == (b"", b"", 0)
    assert run(bus_address, "db-read", "/w") == (b"v w\n", b"", 0)
    assert run(bus_address, "db-write", "/w") == (b"", b"", 0)  # "$2" is empty
    assert run(bus_address, "db-exists", "/w") == (b"true\n", b"", 0)
    assert run(bus_address, "db-read", "/w") == (b"\n", b"", 0)
    assert run(bus_address, "db-nodes", "/a/c") == (b"d\n", b"", 0)
    assert run(bus_address, "db-ls", "-f /a/c") == (b'/a/c =\n/a/c/d = "x y"\n', b"", 0)
    assert run(bus_address, "db-cat", "/vm/blob.bin") == (b"\x00\x01raw\xff", b"", 0)
    assert run(bus_address, "db-rm", "/w") == (b"", b"", 0)
    assert run(bus_address, "db-rm") == (b"bad path\n", b"", 0)
    assert run(bus_address, "db-write", "/") == (b"", b"Nope, not doing that.\n", 1)


def test_db_cmd_does_not_import_the_actor_runtime(tree: Tree, bus_address: str) -> None:
    code = ("import sys\nfrom persistence._dbcmd import main\nstatus = main(['exists', '/a'])\n"
            "heavy = sorted(m for m in ('pykka', 'actors._actor', 'supervision._supervisor', "
            "'rpc.dbus._service') "
            "if m in sys.modules)\nprint(status, heavy)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env_for(bus_address),
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.stdout == "true\n0 []\n", proc.stderr
