"""The crash test: a ``dbd`` process under concurrent write load, killed with SIGKILL at random
moments, dozens of times. After every restart each acknowledged write (and rm) is there, in
the acknowledged key order (a removed key written again goes to the end), every database file
parses, and nothing was set aside as corrupt."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persistence import DB_INTERFACE, DB_SERVICE
from persistence._jsonfmt import decode_utf8, loads, parse_document
from rpc.dbus import BusConnection, DBusError, RemoteObject, start_bus
from tests.integration.dbd_helpers import Dbd, T

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = 30  # kills wanted when the machine keeps up
MIN_KILLS = 20  # kills required, however slow a loaded machine makes each round
BUDGET = 45.0  # seconds after which the loop stops once it has MIN_KILLS
LIMIT = 150.0  # seconds the loop may take at the most (the test's timeout is 180 s)
# Each writer owns one subtree, so its acknowledged operations alone decide what must be there.
AREAS = ["/crash/w0", "/vm/w1", "/dom-store/w2", "/crash/w3", "/vm/w4"]


class Writer(threading.Thread):
    """Writes (and sometimes removes, or writes again after removing) keys in its area until a
    call fails. The model keeps the acknowledged keys in the tree's order."""

    def __init__(self, address: str, area: str, model: dict[str, str],
                 counter: list[int], seed: int) -> None:
        super().__init__(name=f"writer{area}", daemon=True)
        self.address = address
        self.area = area
        self.model = model  # acknowledged state: key -> value, in the tree's order
        self.counter = counter
        self.random = random.Random(seed)
        self.in_flight: tuple[str, str | None] | None = None
        self.acked = 0

    def run(self) -> None:
        with BusConnection(self.address) as conn:
            db = RemoteObject(conn, DB_SERVICE, "/", timeout=T)
            while True:
                n = self.counter[0]
                chance = self.random.random()
                gone = [f"k{i}" for i in range(n) if f"k{i}" not in self.model]
                if n > 3 and chance < 0.2:
                    key, value = f"k{self.random.randrange(n - 3)}", None
                elif gone and chance < 0.35:  # back, at the end of the keys
                    key, value = self.random.choice(gone), f"again-{self.random.random():.6f}"
                else:
                    key, value = f"k{n}", f"v{n}-{self.random.random():.6f}"
                    self.counter[0] += 1
                self.in_flight = (key, value)
                try:
                    if value is None:
                        db.call(DB_INTERFACE, "rm", "s", f"{self.area}/{key}")
                    else:
                        db.call(DB_INTERFACE, "write", "ss", f"{self.area}/{key}", value)
                except DBusError:
                    return  # dbd died: this one is unknown
                self.model.pop(key, None)
                if value is not None:
                    self.model[key] = value
                self.in_flight = None
                self.acked += 1


def check_files(root: Path) -> None:
    """Every database file parses completely; nothing has been set aside."""
    files = [root / "db"] if (root / "db").exists() else []
    for directory in ("vms", "dom-store"):
        if (root / directory).is_dir():
            files.extend(p for p in (root / directory).iterdir() if p.name.endswith(".db"))
    for path in files:
        data = path.read_bytes()
        parsed = parse_document(decode_utf8(data))
        assert data.endswith(b"\n") and not parsed.trailing, path
    corrupt = [str(p) for p in root.rglob("*") if ".corrupt-" in p.name]
    assert not corrupt, corrupt


def lookup(tree: Any, path: str) -> Any:
    node = tree
    for segment in (s for s in path.split("/") if s):
        if not isinstance(node, dict) or segment not in node:
            return None
        node = node[segment]
    return node


def check_state(address: str, writers: list[Writer],
                models: dict[str, dict[str, str]]) -> None:
    """Everything acknowledged is there, in order; an operation in flight at the kill either
    happened or not (and the model learns which)."""
    with BusConnection(address) as conn:
        tree = loads(RemoteObject(conn, DB_SERVICE, "/", timeout=T).call(
            DB_INTERFACE, "dump", "s", "/")[0])
    in_flight = {w.area: w.in_flight for w in writers}
    for area, model in models.items():
        node = lookup(tree, area) or {}
        assert isinstance(node, dict), (area, node)
        unsure = in_flight.get(area)
        for key in set(model) | set(node):
            got = node.get(key)
            want = model.get(key)
            if unsure is not None and key == unsure[0]:
                assert got in (want, unsure[1]), (area, key, got, want, unsure)
                if got != want:  # it happened: later runs build on it
                    model.pop(key, None)
                    if got is not None:
                        model[key] = got
            else:
                assert got == want, (area, key, got, want)
        assert list(node) == list(model), (area, "key order", list(node), list(model))


@pytest.fixture
def private_bus() -> Iterator[str]:
    directory = Path(tempfile.mkdtemp(prefix="oxt-dbd-crash-", dir="/tmp"))
    proc, address = start_bus(directory, ("com.citrix.xenclient",))
    yield address
    proc.terminate()
    proc.wait(5)
    if proc.stderr is not None:
        proc.stderr.close()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.timeout(180)
def test_no_acknowledged_write_is_lost_across_sigkills(private_bus: str, tmp_path: Path) -> None:
    rnd = random.Random(os.getpid())
    root = tmp_path / "db"
    models: dict[str, dict[str, str]] = {area: {} for area in AREAS}
    counters = {area: [0] for area in AREAS}
    writers: list[Writer] = []
    started = time.monotonic()
    kills = acked = 0
    def go_on() -> bool:
        elapsed = time.monotonic() - started
        if kills < MIN_KILLS:
            return elapsed < LIMIT
        return kills < KILLS and elapsed < BUDGET

    while go_on():
        check_files(root)
        dbd = Dbd(root, private_bus, "--flush-interval", rnd.choice(["0.05", "0.2", "3"]))
        try:
            dbd.wait_ready()
            check_state(private_bus, writers, models)
            writers = [Writer(private_bus, area, models[area], counters[area], rnd.random())
                       for area in AREAS]
            for writer in writers:
                writer.start()
            time.sleep(rnd.uniform(0.02, 0.3))  # the random moment of the kill
        finally:
            dbd.kill()
        for writer in writers:
            writer.join(T)
            assert not writer.is_alive()
            acked += writer.acked
        kills += 1
    assert kills >= MIN_KILLS, f"only {kills} kills in {LIMIT} s"
    assert acked > kills * 10, f"too little load: {acked} acknowledged operations"
    check_files(root)
    dbd = Dbd(root, private_bus, "--flush-interval", "3")
    dbd.wait_ready()
    check_state(private_bus, writers, models)
    assert dbd.stop() == 0  # orderly: everything flushed, the log truncated
    check_files(root)
    segments = [p for p in (root / "db.wal").iterdir() if p.name.endswith(".wal")]
    assert len(segments) == 1 and segments[0].stat().st_size == 0
