"""rpc-proxy's runtime: forged replies, crashes and restarts, many clients, Argo with per-VM
rules and ``-n``, the ``-s`` service."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from jeepney.low_level import HeaderFields, MessageType
from jeepney.wrappers import new_method_return

import actors
from rpc.dbus import (
    BusConnection,
    CallTimeout,
    RemoteObject,
    method_call,
)
from rpc.proxy import argo_connect
from tests.integration.proxy_fixtures import (
    T,
    World,
    db_call,
    host,  # noqa: F401  (fixture)
    make_world,
    wait_until,
)
from xen.hypervisor import DomainSpec, SimBackend
from xen.sim import SimHost

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path: Path, bus_address: str, host: SimHost) -> Iterator[World]:  # noqa: F811
    from tests.integration.proxy_fixtures import RULES
    # guests may answer calls made to them
    w = make_world(tmp_path, bus_address, host, ["-d", "5"], RULES + "allow inc-method-return\n")
    try:
        yield w
    finally:
        w.stop()


def test_a_forged_reply_serial_is_dropped(world: World, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[object] = []
    got = threading.Event()

    def on_call(msg: object) -> None:
        calls.append(msg)
        got.set()

    guest = BusConnection(f"unix:path={world.proxy_socket}", on_call=on_call)
    victim = BusConnection(world.address)  # dom0, directly on the bus
    try:
        future = victim.call_async(method_call(guest.unique_name, "/", "org.example.T", "Slow"))
        assert got.wait(T)
        call = calls[0]
        forged = new_method_return(call, "s", ("forged",))  # type: ignore[arg-type]
        forged.header.fields[HeaderFields.reply_serial] += 1000
        with caplog.at_level(logging.INFO, logger="rpc.proxy"):
            guest.send(forged)
            wait_until(lambda: "answers no call" in caplog.text)
        assert not future.done()
        guest.send(new_method_return(call, "s", ("real",)))  # type: ignore[arg-type]
        assert future.result(T).body == ("real",)
        # a second answer to the same call is a forgery too
        guest.send(new_method_return(call, "s", ("again",)))  # type: ignore[arg-type]
    finally:
        guest.close()
        victim.close()


def _connects(world: World) -> bool:
    try:
        conn = world.guest()
    except Exception:
        return False
    try:
        return bool(db_call(world.db(conn), "read", "/nothing") == "")
    except Exception:
        return False
    finally:
        conn.close()


def test_a_listener_crash_restarts_it_and_it_listens_again(world: World) -> None:
    before = actors.resolve("/proxy/listener")
    kept = world.guest()
    try:
        actors.tell("/proxy/listener", actors.InjectCrash("test"))
        wait_until(lambda: actors.names().get("/proxy/listener") not in (None, before)
                   if isinstance(actors.names(), dict) else True)
        wait_until(lambda: _connects(world))
        assert db_call(world.db(kept), "read", "/x") == ""  # clients keep going
    finally:
        kept.close()


def test_a_killed_listener_lets_the_next_one_listen(world: World) -> None:
    old = actors.actor_of(actors.resolve("/proxy/listener"))
    old.kill()  # idle in its accept loop: let go at once, it stops listening
    wait_until(lambda: not old.thread_alive)
    wait_until(lambda: _connects(world)
               and actors.actor_of(actors.resolve("/proxy/listener")) is not old)
    assert os.path.exists(world.proxy_socket)  # the killed one's close left the new socket alone


def test_a_killed_client_is_disconnected_and_others_go_on(world: World) -> None:
    first, other = world.guest(), world.guest()
    try:
        assert db_call(world.db(first), "read", "/x") == ""
        names = [n for n in actors.names() if n.startswith("/proxy/clients/")]
        assert len(names) == 2
        victim = actors.actor_of(actors.resolve(min(names)))  # the first client's
        victim.kill()
        wait_until(lambda: not victim.thread_alive)
        # its streams are closed (its pump threads end: the fixture's leak check) ...
        wait_until(lambda: not _still_talks(world, first))
        # ... and the other client goes on
        assert db_call(world.db(other), "read", "/x") == ""
    finally:
        first.close()
        other.close()


def _still_talks(world: World, conn: BusConnection) -> bool:
    try:
        return bool(db_call(world.db(conn), "read", "/x") == "")
    except Exception:
        return False


def test_an_instance_crash_restarts_it_and_it_listens_again(world: World) -> None:
    actors.tell("/proxy", actors.InjectCrash("test"))
    wait_until(lambda: _connects(world))


def test_two_hundred_concurrent_clients(world: World) -> None:
    conns: list[BusConnection] = []
    try:
        for _ in range(200):
            conns.append(world.guest())
        futures = [c.call_async(method_call("com.citrix.xenclient.db", "/",
                                            "com.citrix.xenclient.db", "read", "s", ("/n",)))
                   for c in conns]
        assert all(f.result(30).body == ("",) for f in futures)
        count = actors.ask("/proxy/clients", _count(), timeout=T)
        assert count["active"] == 200
    finally:
        for c in conns:
            c.close()
    wait_until(lambda: actors.ask("/proxy/clients", _count(), timeout=T)["active"] == 0, 30)


def _count() -> object:
    from supervision import CountChildren
    return CountChildren()


def _argo_guest(argo_dir: str, domid: int, port: int) -> tuple[socket.socket, str]:
    """A DBus client over the Argo stand-in: auth, Hello; returns the socket and its name."""
    from jeepney.bus_messages import message_bus
    from jeepney.low_level import Parser
    sock = argo_connect(argo_dir, domid, 0, port)
    sock.settimeout(T)
    sock.sendall(b"\0AUTH EXTERNAL 30\r\nBEGIN\r\n")
    line = b""
    while not line.endswith(b"\r\n"):
        line += sock.recv(1)
    assert line.startswith(b"OK ")
    sock.sendall(message_bus.Hello().serialise(serial=1))
    parser = Parser()
    while True:
        for msg in parser.feed(sock.recv(4096)):
            if msg.header.fields.get(HeaderFields.reply_serial) == 1:
                return sock, str(msg.body[0])


def _argo_call(sock: socket.socket, serial: int, member: str, signature: str,
               *args: object) -> object:
    from jeepney.low_level import Parser
    msg = method_call("com.citrix.xenclient.db", "/", "com.citrix.xenclient.db", member,
                      signature, args)
    sock.sendall(msg.serialise(serial=serial))
    parser = Parser()
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        for reply in parser.feed(data):
            if reply.header.fields.get(HeaderFields.reply_serial) == serial:
                if reply.header.message_type is MessageType.error:
                    raise RuntimeError(reply.body)
                return reply.body[0] if reply.body else None


def test_argo_identity_per_vm_rules_and_request_name(tmp_path: Path, bus_address: str,
                                                     host: SimHost) -> None:  # noqa: F811
    backend = SimBackend(host.hypervisor_path, timeout=5.0)
    domid = backend.create(DomainSpec(memory_kib=1024))
    uuid = "00000000-0000-0000-0000-0000000000aa"
    host.xenstore.write(f"/local/domain/{domid}/vm", f"/vm/{uuid}")
    host.xenstore.write(f"/vm/{uuid}/uuid", uuid)
    rules = ("deny all\nallow destination org.freedesktop.DBus\n"
             "allow destination com.citrix.xenclient.db member read\nallow out-any\n")
    w = make_world(tmp_path, bus_address, host,
                   ["-i", "argo:5556", "-n", "com.citrix.xenclient.guest.uuid_$UUID"], rules)
    try:
        with BusConnection(bus_address) as root:
            db = RemoteObject(root, "com.citrix.xenclient.db", "/", timeout=T)
            db_call(db, "write", f"/dom-store/{uuid}/k", "v")
            # a per-VM rule lets this VM write
            db_call(db, "write", f"/vm/{uuid}/rpc-firewall-rules/0",
                    "allow destination com.citrix.xenclient.db member write")
            wait_until(lambda: _listening(host.argo_dir, 5556))
            sock, name = _argo_guest(host.argo_dir, domid, 5556)
            try:
                ident = w.registry.lookup(name)
                assert ident is not None and (ident.domid, ident.uuid) == (domid, uuid)
                assert _argo_call(sock, 2, "read", "s", "/k") == "v"
                _argo_call(sock, 3, "write", "ss", "/w", "1")
                assert db_call(db, "read", f"/dom-store/{uuid}/w") == "1"
                # RequestName is rewritten to the VM's name
                from jeepney.bus_messages import message_bus
                sock.sendall(message_bus.RequestName("org.example.mine", 4).serialise(serial=4))
                wanted = "com.citrix.xenclient.guest.uuid_" + uuid.replace("-", "_")
                wait_until(lambda: root.bus_call("NameHasOwner", "s", (wanted,))[0])
                assert root.bus_call("GetNameOwner", "s", (wanted,))[0] == name
            finally:
                sock.close()
    finally:
        w.stop()
        backend.destroy(domid)
        backend.close()


def _listening(argo_dir: str, port: int) -> bool:
    return Path(argo_dir, "listen", f"0.{port}").exists()


def test_the_server_validates_calls(tmp_path: Path, bus_address: str,
                                    host: SimHost) -> None:  # noqa: F811
    from tests.integration.proxy_fixtures import RULES
    w = make_world(tmp_path, bus_address, host, ["-d", "5", "-s"], RULES)
    try:
        with BusConnection(bus_address) as root:
            svc = RemoteObject(root, "com.citrix.xenclient.rpc_proxy", "/", timeout=T)
            iface = "com.citrix.xenclient.rpc_proxy"
            assert svc.call(iface, "validate_call", "isss", 5, "com.citrix.xenclient.db",
                            "com.citrix.xenclient.db", "read") == (True,)
            assert svc.call(iface, "validate_call", "isss", 5, "com.citrix.xenclient.db",
                            "com.citrix.xenclient.db", "rm") == (False,)
            assert svc.call(iface, "validate_call", "isss", 42, "com.citrix.xenclient.db",
                            "com.citrix.xenclient.db", "read") == (False,)  # no uuid
            assert svc.call(iface, "validate_recv_signal", "iss", 5, "a.b", "C") == (True,)
            # a signal has no destination, and a rule field the message lacks matches (as the
            # original): "allow destination org.freedesktop.DBus" allows it
            assert svc.call(iface, "validate_send_signal", "iss", 5, "a.b", "C") == (True,)
            assert svc.call(iface, "validate_send_signal", "iss", 42, "a.b", "C") == (False,)
            rules = svc.call(iface, "list_rules")[0]
            assert rules[0] == "deny inc-any all" and len(rules) == 6
    finally:
        w.stop()


def test_bad_rules_deny_everything_and_a_reload_fixes_them(tmp_path: Path, bus_address: str,
                                                           host: SimHost) -> None:  # noqa: F811
    from rpc.proxy import Reload
    from tests.integration.proxy_fixtures import RULES
    w = make_world(tmp_path, bus_address, host, ["-d", "5"], "allow :bad\n")
    try:
        guest = w.guest()
        try:
            with pytest.raises(CallTimeout):
                w.db(guest).call("com.citrix.xenclient.db", "read", "s", "/x", timeout=0.5)
            (tmp_path / "rpc-proxy.rules").write_text(RULES)
            actors.tell("/proxy/policy", Reload())
            wait_until(lambda: _reads(w, guest))
        finally:
            guest.close()
    finally:
        w.stop()


def _reads(w: World, guest: BusConnection) -> bool:
    try:
        return w.db(guest).call("com.citrix.xenclient.db", "read", "s", "/x",
                                timeout=0.5) == ("",)
    except CallTimeout:
        return False
