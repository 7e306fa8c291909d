"""Fixtures for the proxy's end-to-end tests: dbd and a proxy instance in one tree on the test
bus, guests' domains in a simulated host's xenstore."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka
import pytest

import actors
from persistence import DB_INTERFACE, DB_SERVICE, db_supervisor_spec
from rpc.dbus import BusConnection, CallerIdentity, RemoteObject
from rpc.proxy import parse_options, proxy_instance_spec
from supervision import Strategy, Supervisor, SupFlags
from supervision.dom0._proxies import XenstoreDomains, forwarding_to
from xen.sim import SimHost

T = 10.0
UUID5 = "00000000-0000-0000-0000-000000000005"
UUID6 = "00000000-0000-0000-0000-000000000006"

RULES = """\
# test rules: dbd reads and lists only, and the bus driver
deny all
allow destination org.freedesktop.DBus
allow destination com.citrix.xenclient.db interface com.citrix.xenclient.db member read
allow destination com.citrix.xenclient.db interface com.citrix.xenclient.db member list
allow destination com.citrix.xenclient.db interface com.citrix.xenclient.db member write
allow out-any
"""


def wait_until(cond: Callable[[], bool], timeout: float = T) -> None:
    """Poll ``cond`` (bounded)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHost]:
    """A simulated host whose xenstore knows domains 5 and 6 (VMs) and 7 (a stubdomain)."""
    h = SimHost(tmp_path_factory.mktemp("sim"), memory_mib=1024).start()
    xs = h.xenstore
    for domid, uuid in ((5, UUID5), (6, UUID6)):
        xs.write(f"/local/domain/{domid}/vm", f"/vm/{uuid}")
        xs.write(f"/vm/{uuid}/uuid", uuid)
    try:
        yield h
    finally:
        h.close()


@dataclass
class World:
    """dbd and one proxy instance (``/proxy``) on the test bus."""

    root: pykka.ActorRef[Any]
    registry: CallerIdentity
    address: str
    proxy_socket: str
    host: SimHost

    def guest(self, domid: int | None = None) -> BusConnection:
        """A client through the proxy (``domid`` is what ``-d`` or the transport says)."""
        return BusConnection(f"unix:path={self.proxy_socket}", label="guest")

    def db(self, conn: BusConnection) -> RemoteObject:
        return RemoteObject(conn, DB_SERVICE, "/", timeout=T)

    def stop(self) -> None:
        sup = actors.actor_of(self.root)
        sup.request_stop()
        assert sup.wait_dead(30)


def make_world(tmp_path: Path, address: str, host: SimHost, argv: list[str],
               rules: str = RULES) -> World:
    """Start dbd and a proxy with ``argv`` (``-r`` and ``-i`` added when absent)."""
    registry = CallerIdentity()
    rules_file = tmp_path / "rpc-proxy.rules"
    rules_file.write_text(rules)
    sock = str(tmp_path / "proxy.sock")
    full = [*([] if "-i" in argv else ["-i", f"unix:{sock}"]), "-r", str(rules_file), *argv]
    options = forwarding_to(parse_options(full), address)
    (tmp_path / "db").mkdir(exist_ok=True)
    specs = [db_supervisor_spec(str(tmp_path / "db"), address, 0.0, registry=registry),
             proxy_instance_spec("proxy", options, address, registry=registry,
                                 domains=XenstoreDomains(lambda: host.xenstore),
                                 argo_dir=host.argo_dir, supervisor_path="/proxy")]
    root = Supervisor.start_root(SupFlags(Strategy.ONE_FOR_ONE, intensity=3), specs)
    return World(root, registry, address, sock, host)


def db_call(obj: RemoteObject, member: str, *args: str) -> Any:
    sig = {"read": "s", "list": "s", "write": "ss", "rm": "s", "exists": "s"}[member]
    body = obj.call(DB_INTERFACE, member, sig, *args)
    return body[0] if body else None


def raw_client(path: str) -> socket.socket:
    """A raw stream to the proxy, authenticated (EXTERNAL) but without Hello."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(T)
    s.connect(path)
    s.sendall(b"\0AUTH EXTERNAL 30\r\n")
    assert s.recv(256).startswith(b"OK ")
    s.sendall(b"BEGIN\r\n")
    return s
