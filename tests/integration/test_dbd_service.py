"""com.citrix.xenclient.db on a real dbus-daemon: the §3.2 semantics case by case, the
original's error names, acknowledgement after durability, per-sender order, and domstore
confinement by caller identity (registered guests, the bus identity service, non-root
callers)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jeepney import HeaderFields

import actors
from persistence import (
    DB_INTERFACE,
    DB_SERVICE,
    WAL_DIR,
    DbService,
    FlushNow,
    replay,
)
from rpc.dbus import (
    FAILED,
    INVALID_SIGNATURE,
    UNKNOWN_METHOD,
    UNKNOWN_OBJECT,
    BusConnection,
    CallerIdentity,
    DBusError,
    DBusJob,
    IdentityService,
    RemoteObject,
    start_bus,
)
from rpc.dbus._messages import method_call
from tests.helpers import run_as_nobody, wait_until
from tests.integration.dbd_helpers import Client, T, Tree

pytestmark = pytest.mark.integration


@pytest.fixture
def tree(bus_address: str, tmp_path: Path) -> Iterator[Tree]:
    root = tmp_path / "db"
    (root / "vms").mkdir(parents=True)
    (root / "vms" / "cert.pem").write_bytes(b"\x00\xffcert")
    started = Tree(root, bus_address)
    yield started
    started.stop()


@pytest.fixture
def db(tree: Tree, bus_address: str) -> Iterator[Client]:
    client = Client(bus_address)
    yield client
    client.close()


# ------------------------------------------------------------------ §3.2, method by method

SAMPLE = ('{"s": "text", "n": 5, "f": 1.5, "t": true, "arr": [1, "a"], "e": null, '
          '"node": {"x": "y"}, "empty": {}}')


def test_read(db: Client, tree: Tree) -> None:
    db.inject("/t", SAMPLE)
    cases = {"/t/s": "text", "/t/n": "5", "/t/f": "1.500000", "/t/t": "true", "/t/arr": "",
             "/t/e": "", "/t/node": "", "/t/empty": "", "/t/missing": "", "/t/s/below": "",
             "t//node/x/": "y", "/": ""}
    assert {path: db.read(path) for path in cases} == cases
    assert db.read("/vm/cert.pem") == f"file:{tree.root / 'vms' / 'cert.pem'}"


def test_read_binary(db: Client) -> None:
    assert db.read_binary("/vm/cert.pem") == b"\x00\xffcert"
    db.write("/a", "x")
    for path in ("/a", "/missing", "/vm"):
        with pytest.raises(DBusError) as info:
            db.read_binary(path)
        assert (info.value.name, info.value.message) == (FAILED, "not a binary node")


def test_write(db: Client) -> None:
    db.write("/a/b", "1")
    db.write("/a/c", "2")
    db.write("/a/0", "3")
    assert db.list("/a") == ["b", "c", "0"]  # appended after existing siblings
    db.write("/a/b/deeper", "4")  # below a leaf: the leaf becomes a node, in its place
    assert db.list("/a") == ["b", "c", "0"] and db.dump("/a/b") == '{\n  "deeper": "4"\n}\n'
    db.write("/a", "ignored")  # an interior node: silently ignored
    db.inject("/e", "{}")
    db.write("/e", "ignored too")  # even an empty one
    assert (db.read("/a"), db.dump("/e")) == ("", "{ }\n")
    db.write("/n", "5")
    assert db.dump("/n") == '"5"\n'  # always a string
    with pytest.raises(DBusError) as info:
        db.write("/vm/cert.pem/x", "no")
    assert (info.value.name, info.value.message) == (FAILED, "cannot overwrite binary file nodes")


def test_inject(db: Client) -> None:
    db.inject("/t", '{"z": "1", "a": {"q": null}, "l": [1, {"k": "v"}]}')
    assert db.list("/t") == ["z", "a", "l"]  # key order kept
    assert (db.exists("/t/a/q"), db.list("/t/a/q"), db.read("/t/l")) == (True, [], "")
    db.inject("/t", '{"only": "this"}')  # replaces the whole subtree
    assert db.list("/t") == ["only"]
    db.inject("/t/only", "7")
    assert db.read("/t/only") == "7"
    db.inject("/", '{"fresh": "db"}')  # replaces the database
    assert db.list("/") == ["fresh"]
    with pytest.raises(DBusError) as info:
        db.inject("/x", '{"a": ')
    assert info.value.name == FAILED and "line 1, column" in info.value.message


def test_dump(db: Client) -> None:
    db.inject("/t", '{"a": "x/y", "b": {}, "c": [], "d": 1.5, "e": null}')
    assert db.dump("/t") == ('{\n  "a": "x\\/y",\n  "b": { },\n  "c": [],\n  "d": 1.500000,\n'
                             '  "e": null\n}\n')
    assert db.dump("/missing") == "null\n"
    assert db.dump("/vm/cert.pem") == "null\n"


def test_list(db: Client) -> None:
    db.inject("/t", '{"b": "1", "a": "2", "c": {"x": "y"}}')
    assert db.list("/t") == ["b", "a", "c"]
    assert (db.list("/t/b"), db.list("/missing"), db.list("/t/c")) == ([], [], ["x"])


def test_exists(db: Client) -> None:
    db.rm("/")
    assert db.exists("/") is True  # always
    db.inject("/e", "{}")
    db.inject("/n", "null")
    assert (db.exists("/e"), db.exists("/n"), db.exists("/e/x"), db.exists("//e//")) == \
        (True, True, False, True)


def test_rm(db: Client) -> None:
    db.inject("/a", '{"b": {"c": "x"}, "e": null, "f": "keep"}')
    db.rm("/a/b/c")
    assert db.list("/a") == ["b", "f"]  # the empty sibling "e" was pruned on the way
    assert (db.list("/a/b"), db.dump("/a/b")) == ([], "{ }\n")  # left with no child: {}
    db.rm("/a/missing/deeper")
    assert db.list("/a") == ["b", "f"]
    with pytest.raises(DBusError) as info:
        db.rm("/vm/cert.pem")
    assert (info.value.name, info.value.message) == (FAILED, "cannot remove binary file nodes")
    db.rm("/")
    assert (db.list("/"), db.dump("/")) == ([], "null\n")


def test_dotdot_is_a_name_and_limits_are_refused(db: Client) -> None:
    db.write("/a/../b", "1")
    assert db.list("/a") == [".."]
    with pytest.raises(DBusError) as info:
        db.write("/big", "x" * ((1 << 20) + 1))
    assert info.value.name == FAILED and "exceeds the limit of 1048576 bytes" in \
        info.value.message
    with pytest.raises(DBusError) as info:
        db.read("/" + "/".join(["d"] * 65))
    assert info.value.name == FAILED and "more than the limit of 64" in info.value.message


# ------------------------------------------------------------------ error names, introspection


@pytest.mark.parametrize(("interface", "member", "sig", "args", "error"), [
    (DB_INTERFACE, "read", "i", (1,), INVALID_SIGNATURE),
    (DB_INTERFACE, "write", "s", ("/a",), INVALID_SIGNATURE),
    (DB_INTERFACE, "nope", "s", ("/",), UNKNOWN_METHOD),
    ("org.example.Other", "read", "s", ("/",), UNKNOWN_METHOD),
])
def test_error_names(db: Client, interface: str, member: str, sig: str,
                     args: tuple[Any, ...], error: str) -> None:
    with pytest.raises(DBusError) as info:
        db.obj.call(interface, member, sig, *args)
    assert info.value.name == error


def test_other_paths_and_introspection(db: Client) -> None:
    with pytest.raises(DBusError) as info:
        RemoteObject(db.conn, DB_SERVICE, "/elsewhere").call(DB_INTERFACE, "read", "s", "/")
    assert info.value.name == UNKNOWN_OBJECT
    db.write("/x", "1")
    assert db.obj.call(None, "read", "s", "/x") == ("1",)  # no interface: the declaring one
    iface = db.obj.introspect().interface(DB_INTERFACE)
    assert iface is not None
    assert sorted(m.name for m in iface.methods) == ["dump", "exists", "inject", "list",
                                                     "read", "read_binary", "rm", "write"]


# ------------------------------------------------------------------ durability and order


def test_a_write_is_acknowledged_once_its_record_is_durable(db: Client, tree: Tree) -> None:
    db.write("/durable", "yes")
    ops = [r.op for r in replay(str(tree.root / WAL_DIR)).records]
    assert any(getattr(op, "value", None) == "yes" and op.path == ("durable",) for op in ops)


def test_concurrent_writers_share_fsyncs(tree: Tree, bus_address: str) -> None:
    clients = [BusConnection(bus_address) for _ in range(8)]
    before = tree.status().wal_batches
    try:
        futures = [conn.call_async(method_call(DB_SERVICE, "/", DB_INTERFACE, "write", "ss",
                                               (f"/w{i}/k{n}", str(n))))
                   for n in range(25) for i, conn in enumerate(clients)]
        replies = [f.result(T) for f in futures]
        assert all(r.header.message_type.name == "method_return" for r in replies)
    finally:
        for conn in clients:
            conn.close()
    batches = tree.status().wal_batches - before
    assert 0 < batches < 200
    with BusConnection(bus_address) as conn:
        obj = RemoteObject(conn, DB_SERVICE, "/", timeout=T)
        assert obj.call(DB_INTERFACE, "list", "s", "/w3") == ([f"k{n}" for n in range(25)],)


def test_a_new_senders_pipelined_calls_keep_their_order(tree: Tree, bus_address: str) -> None:
    with BusConnection(bus_address) as conn:  # its first calls wait for identification
        futures = []
        for n in range(60):
            futures.append(conn.call_async(method_call(DB_SERVICE, "/", DB_INTERFACE, "write",
                                                       "ss", ("/order", str(n)))))
            futures.append(conn.call_async(method_call(DB_SERVICE, "/", DB_INTERFACE, "read",
                                                       "s", ("/order",))))
        reads = [tuple(f.result(T).body) for f in futures[1::2]]
    assert reads == [(str(n),) for n in range(60)]


def test_concurrent_clients_read_their_own_pipelined_writes(tree: Tree,
                                                            bus_address: str) -> None:
    # reads answered in the reader thread or in the store, each sees every earlier call
    def client(k: int, out: list[list[tuple[str, ...]]]) -> None:
        with BusConnection(bus_address) as conn:
            conn.bus_call("GetId")
            futures = []
            for n in range(80):
                futures.append(conn.call_async(method_call(
                    DB_SERVICE, "/", DB_INTERFACE, "write", "ss", (f"/c{k}", str(n)))))
                for path in (f"/c{k}", "/c0"):
                    futures.append(conn.call_async(method_call(
                        DB_SERVICE, "/", DB_INTERFACE, "read", "s", (path,))))
            out[k] = [tuple(f.result(T).body) for f in futures[1::3]]

    out: list[list[tuple[str, ...]]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=client, args=(k, out)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(3 * T)
    assert out == [[(str(n),) for n in range(80)] for _ in range(4)]


# ------------------------------------------------------------------ domstore


def test_a_registered_guest_is_confined_to_its_domstore(tree: Tree, db: Client,
                                                         bus_address: str) -> None:
    guest = Client(bus_address)
    try:
        tree.registry.register(guest.conn.unique_name, 5, "u5")
        guest.write("/x", "1")
        guest.write("/../y", "2")
        guest.inject("/z", '{"k": "v"}')
        assert db.list("/dom-store/u5") == ["x", "..", "z"]
        assert (guest.read("/x"), guest.list("/"), guest.exists("/")) == \
            ("1", ["x", "..", "z"], True)
        assert guest.read("/dom-store/u5/x") == ""
        db.write("/secret", "s")
        assert guest.read("/secret") == ""
        guest.rm("/")
        assert db.list("/dom-store") == [] and db.read("/secret") == "s"
    finally:
        guest.close()
    wait_until(lambda: guest.conn.unique_name not in tree.service.callers._known)


def test_a_guest_without_a_uuid_is_refused(tree: Tree, bus_address: str) -> None:
    guest = Client(bus_address)
    try:
        tree.registry.register(guest.conn.unique_name, 7, "")
        with pytest.raises(DBusError) as info:
            guest.read("/x")
        assert (info.value.name, info.value.message) == \
            (FAILED, "failed to resolve domid 7 to uuid")
    finally:
        guest.close()


def test_guests_registered_with_the_bus_identity_service(tmp_path: Path,
                                                         bus_address: str) -> None:
    proxies = CallerIdentity()  # the registry a proxy in another process would fill
    ident = IdentityService.start(bus_address, proxies)
    assert actors.actor_of(ident).wait_started(5)
    tree = Tree(tmp_path / "db", bus_address, identity_service=True)
    guest, dom0 = Client(bus_address), Client(bus_address)
    try:
        proxies.register(guest.conn.unique_name, 9, "u9")
        guest.write("/k", "v")
        assert dom0.read("/dom-store/u9/k") == "v"
        assert dom0.list("/") == ["dom-store"]
    finally:
        guest.close()
        dom0.close()
        tree.stop()
        ident.stop(block=True, timeout=5)


def call_as_nobody(address: str, member: str, *args: str) -> str:
    """Call the db from a child process running as uid 65534; the answer or the error."""
    def task() -> str:
        conn = BusConnection(address)
        try:
            return repr(RemoteObject(conn, DB_SERVICE, "/").call(
                DB_INTERFACE, member, "s" * len(args), *args))
        except DBusError as exc:
            return f"ERROR {exc.name} {exc.message}"
        finally:
            conn.close()
    return run_as_nobody(task)


def test_an_unregistered_non_root_caller_is_refused(tmp_path: Path) -> None:
    directory = Path(tempfile.mkdtemp(prefix="oxt-dbd-bus-", dir="/tmp"))
    os.chmod(directory, 0o755)
    proc, address = start_bus(directory, ("com.citrix.xenclient",))
    os.chmod(directory / "system_bus_socket", 0o777)
    tree = Tree(tmp_path / "db", address)
    try:
        for member, args in (("read", ("/",)), ("write", ("/x", "1"))):
            out = call_as_nobody(address, member, *args)
            assert out.startswith(f"ERROR {FAILED} failed to get the domid given message "
                                  f"sender ("), out
            assert "uid 65534" in out
        with BusConnection(address) as conn:  # root is dom0: nothing was written
            assert RemoteObject(conn, DB_SERVICE, "/").call(DB_INTERFACE, "dump", "s", "/") \
                == ("null\n",)
    finally:
        tree.stop()
        proc.terminate()
        proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(directory, ignore_errors=True)


def test_calls_while_the_store_restarts_fail_cleanly(tree: Tree, db: Client) -> None:
    db.write("/a", "1")
    errors: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                db.read("/a")
            except DBusError as exc:
                errors.append(exc.name)

    worker = threading.Thread(target=hammer)
    worker.start()
    crashed = (actors.actor_of(actors.resolve("/persistence/store")), tree.service)
    try:
        actors.tell("/persistence/store", actors.InjectCrash())
        # reads answered meanwhile come from the old instance's tree (the hammer's may too)
        wait_until(lambda: _restarted(crashed, tree) and _ready(db), timeout=T)
    finally:
        stop.set()
        worker.join(T)
    # calls caught by the restart fail (in flight: NoReply when the service's connection
    # closes; meanwhile: Failed or ServiceUnknown), none hangs
    assert set(errors) <= {FAILED, "org.freedesktop.DBus.Error.ServiceUnknown",
                           "org.freedesktop.DBus.Error.NoReply"}
    assert db.read("/a") == "1"


def _flushed(db: Client) -> None:
    """Write /a, and let the flusher flush it: with the fixture's interval 0 nothing but the
    test's own messages reaches the store from now on (its mailbox depth can be counted)."""
    db.write("/a", "1")
    actors.ask("/persistence/flusher", FlushNow(), timeout=T)


def test_calls_queued_at_a_crashing_store_fail_at_once(tree: Tree, db: Client) -> None:
    _flushed(db)
    release = threading.Event()

    def busy_then_crash() -> None:
        release.wait(T)
        raise RuntimeError("crash with calls queued")

    store = actors.actor_of(actors.resolve("/persistence/store"))
    store.actor_ref.tell(DBusJob(busy_then_crash))
    wait_until(lambda: store.stats().current_message == "DBusJob", timeout=T)
    replies = [db.conn.call_async(method_call(DB_SERVICE, "/", DB_INTERFACE, "write", "ss",
                                              ("/b", str(n)))) for n in range(3)]
    wait_until(lambda: store.stats().mailbox_depth == 3, timeout=T)
    release.set()  # it crashes with the three writes still in its mailbox
    for reply in replies:  # answered now, not after the caller's DBus timeout
        msg = reply.result(5)
        assert msg.header.fields[HeaderFields.error_name] == FAILED
        assert "service unavailable: /persistence/store ended (Crashed)" in msg.body[0]
    wait_until(lambda: _ready(db), timeout=T)


def test_reads_wait_for_earlier_calls_and_only_for_them(tree: Tree, db: Client) -> None:
    _flushed(db)
    release = threading.Event()
    store = actors.actor_of(actors.resolve("/persistence/store"))
    store.actor_ref.tell(DBusJob(lambda: release.wait(T)))  # busy with something else
    wait_until(lambda: store.stats().current_message == "DBusJob", timeout=T)
    try:
        # nothing of the service's is pending: a read is answered at once, from memory
        assert db.read("/a") == "1"
        # a write is queued behind the busy store; a read sent after it waits for it
        call = db.conn.call_async
        write = call(method_call(DB_SERVICE, "/", DB_INTERFACE, "write", "ss", ("/a", "2")))
        read = call(method_call(DB_SERVICE, "/", DB_INTERFACE, "read", "s", ("/a",)))
        wait_until(lambda: store.stats().mailbox_depth == 2, timeout=T)
        assert not read.done() and not write.done()
    finally:
        release.set()
    assert read.result(T).body == ("2",) and write.result(T).body == ()


def test_a_killed_store_stops_its_log_thread(tree: Tree, db: Client) -> None:
    db.write("/a", "1")
    store = actors.actor_of(actors.resolve("/persistence/store"))
    seq = len(threading.enumerate())
    store.kill()  # idle: its thread is let go at once and closes the log
    wait_until(lambda: not store.thread_alive, timeout=T)
    wait_until(lambda: _ready(db), timeout=T)  # the next instance serves
    db.write("/b", "2")
    assert db.read("/a") == "1" and db.read("/b") == "2"
    # the killed instance's group-commit thread ended (the conftest's leak check too)
    wait_until(lambda: sum(t.name.startswith("dbd-wal") for t in threading.enumerate()) == 1,
               timeout=T)
    assert len(threading.enumerate()) <= seq + 1


def test_a_killed_service_lets_its_bus_name_go(tree: Tree, db: Client) -> None:
    db.write("/a", "1")
    service = tree.service
    service.kill()  # its connection owns com.citrix.xenclient.db: closed once let go
    wait_until(lambda: not service.thread_alive, timeout=T)
    wait_until(lambda: _ready(db) and tree.service is not service, timeout=T)


def _restarted(crashed: tuple[Any, DbService], tree: Tree) -> bool:
    try:  # the store and the service after it (rest_for_one) are new instances
        store = actors.actor_of(actors.resolve("/persistence/store"))
        service = tree.service
    except actors.NoSuchActor:
        return False
    return store is not crashed[0] and service is not crashed[1] and service.wait_started(0)


def _ready(db: Client) -> bool:
    try:
        return bool(db.read("/a") == "1")
    except DBusError:
        return False
