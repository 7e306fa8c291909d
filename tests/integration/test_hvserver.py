"""The simulated hypervisor server and its client over real unix sockets: events and guest
hooks, errors over the wire, broken peers, timeouts, the command line."""

from __future__ import annotations

import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from tests.helpers import wait_until
from xen.hypervisor import (
    DomainSpec,
    HvmParam,
    HypervisorError,
    HypervisorTimeout,
    InvalidArgument,
    OutOfMemory,
    ShutdownReason,
    SimBackend,
    Unavailable,
)
from xen.sim.hypervisor._model import (
    DomainCreated,
    DomainDying,
    DomainGone,
    DomainShutdown,
    DomainUnpaused,
    HypervisorEvent,
    SimHypervisor,
)
from xen.sim.hypervisor._server import HypervisorServer
from xen.xenops import open_backend

pytestmark = pytest.mark.integration

MIB = 1024
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HypervisorServer]:
    srv = HypervisorServer(tmp_path / "hv.sock", SimHypervisor(2048 * MIB, dom0_kib=512 * MIB))
    srv.start()
    yield srv
    srv.close()


@pytest.fixture
def backend(server: HypervisorServer) -> Iterator[SimBackend]:
    client = SimBackend(server.socket_path, timeout=5.0)
    yield client
    client.close()


def raw_call(path: str, frame: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(frame)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def pack(obj: object) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def test_events_reach_subscribers_in_order(server: HypervisorServer,
                                           backend: SimBackend) -> None:
    got: queue.Queue[HypervisorEvent] = queue.Queue()
    server.subscribe(got.put)
    vm = uuid.uuid4()
    domid = backend.create(DomainSpec(handle=vm, memory_kib=64 * MIB))
    backend.unpause(domid)
    backend.shutdown(domid, ShutdownReason.POWEROFF)
    backend.destroy(domid)
    events = [got.get(timeout=5) for _ in range(5)]
    assert events == [DomainCreated(domid, vm), DomainUnpaused(domid, 0),
                      DomainShutdown(domid, ShutdownReason.POWEROFF, by_guest=False),
                      DomainDying(domid), DomainGone(domid)]


def test_guest_hooks_show_through_the_backend(server: HypervisorServer,
                                              backend: SimBackend) -> None:
    got: queue.Queue[HypervisorEvent] = queue.Queue()
    sub = server.subscribe(got.put)
    domid = backend.create(DomainSpec(memory_kib=64 * MIB))
    backend.unpause(domid)
    server.set_busy(domid, True)
    assert backend.getinfo(domid).running
    server.crash(domid)
    info = backend.getinfo(domid)
    assert info.shutdown and info.shutdown_reason is ShutdownReason.CRASH
    other = backend.create(DomainSpec(memory_kib=MIB))
    server.guest_shutdown(other, ShutdownReason.SUSPEND)
    assert backend.getinfo(other).shutdown_reason is ShutdownReason.SUSPEND
    assert server.wait_delivered(5)
    seen = []
    while not got.empty():
        seen.append(got.get_nowait())
    assert DomainShutdown(domid, ShutdownReason.CRASH, by_guest=True) in seen
    sub.cancel()
    server.crash(backend.create(DomainSpec()))
    assert server.wait_delivered(5) and got.empty()


def test_held_domain_stays_dying_until_released(server: HypervisorServer,
                                                backend: SimBackend) -> None:
    domid = backend.create(DomainSpec(memory_kib=256 * MIB))
    free = backend.physinfo().free_kib
    server.hold(domid)
    backend.destroy(domid)
    assert backend.getinfo(domid).dying
    assert backend.physinfo().free_kib == free
    server.unhold(domid)
    assert domid not in [d.domid for d in backend.getinfolist()]
    assert backend.physinfo().free_kib == free + 256 * MIB


def test_errors_cross_the_wire_by_name(backend: SimBackend) -> None:
    with pytest.raises(OutOfMemory, match="cannot create a domain of 4194304 KiB"):
        backend.create(DomainSpec(memory_kib=4096 * MIB))
    with pytest.raises(InvalidArgument, match="domain 0") as err:
        backend.pause(0)
    assert err.value.errno == 22
    assert backend.getinfo(0).running  # the connection survived the errors


def test_domain_build_steps_over_the_wire(server: HypervisorServer,
                                          backend: SimBackend) -> None:
    got: list[HypervisorEvent] = []
    server.subscribe(got.append)
    domid = backend.create(DomainSpec(hvm=True, memory_kib=64 * MIB))
    free = backend.physinfo().free_kib
    backend.max_vcpus(domid, 4)
    assert backend.getinfo(domid).nr_online_vcpus == 4
    assert backend.shadow_allocation(domid, 16) == 16
    assert backend.physinfo().free_kib == free - 16 * MIB
    assert server.inspect(lambda m: m.get_shadow_allocation(domid)) == 16
    backend.set_hvm_param(domid, HvmParam.TIMER_MODE, 2)
    backend.set_hvm_param(domid, HvmParam.CALLBACK_IRQ, (1 << 64) - 1)  # uint64 on the wire
    assert backend.get_hvm_param(domid, HvmParam.TIMER_MODE) == 2
    assert backend.get_hvm_param(domid, HvmParam.CALLBACK_IRQ) == (1 << 64) - 1
    assert backend.get_hvm_param(domid, HvmParam.HPET_ENABLED) == 1
    backend.unpause(domid)
    backend.destroy(domid)
    assert backend.physinfo().free_kib == free + 64 * MIB
    assert server.wait_delivered(5)
    assert [type(e).__name__ for e in got] == [  # the build steps raise no events
        "DomainCreated", "DomainUnpaused", "DomainDying", "DomainGone"]


def test_domain_build_errors_cross_the_wire_by_name(server: HypervisorServer,
                                                    backend: SimBackend) -> None:
    hvm = backend.create(DomainSpec(hvm=True, memory_kib=64 * MIB))
    pv = backend.create(DomainSpec(memory_kib=64 * MIB))
    with pytest.raises(OutOfMemory, match="cannot grow the shadow pool") as oom:
        backend.shadow_allocation(hvm, 4096)
    assert oom.value.errno == 12
    with pytest.raises(InvalidArgument, match="PV domain") as inval:
        backend.set_hvm_param(pv, HvmParam.TIMER_MODE, 1)
    assert inval.value.errno == 22
    with pytest.raises(InvalidArgument, match="deprecates HVM_PARAM_NESTEDHVM"):
        backend.get_hvm_param(hvm, HvmParam.NESTEDHVM)
    backend.set_hvm_param(hvm, HvmParam.VIRIDIAN, 1)
    with pytest.raises(HypervisorError, match="sets it once") as exists:
        backend.set_hvm_param(hvm, HvmParam.VIRIDIAN, 3)
    assert type(exists.value) is HypervisorError and exists.value.errno == 17
    backend.unpause(pv)
    with pytest.raises(InvalidArgument, match="it has run"):
        backend.max_vcpus(pv, 2)
    with pytest.raises(InvalidArgument, match="domain 0 refused"):
        backend.shadow_allocation(0, 1)
    # malformed arguments sent by hand are an InvalidArgument reply, not a dropped connection
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(server.socket_path)
        for req_id, op, args in (
            (1, "set_hvm_param", {"domid": hvm, "param": "x", "value": 0}),
            (2, "get_hvm_param", {"domid": hvm}),
            (3, "shadow_allocation", {"domid": hvm, "mib": -1}),
            (4, "max_vcpus", {"domid": hvm, "vcpus": 0}),
        ):
            sock.sendall(pack([1, "req", req_id, op, args]))
            answer = msgpack.unpackb(sock.recv(65536)[4:])
            assert answer[:4] == [1, "err", req_id, "InvalidArgument"], answer
    assert backend.getinfo(hvm).nr_online_vcpus == 1


def test_a_subscriber_that_raises_does_not_stop_delivery(server: HypervisorServer,
                                                         backend: SimBackend) -> None:
    got: list[HypervisorEvent] = []

    def bad(event: HypervisorEvent) -> None:
        raise RuntimeError("subscriber bug")

    server.subscribe(bad)
    server.subscribe(got.append)
    backend.create(DomainSpec())
    backend.create(DomainSpec())
    assert server.wait_delivered(5)
    assert len(got) == 2


def test_getinfolist_pages_beyond_one_frame(server: HypervisorServer,
                                            backend: SimBackend) -> None:
    for _ in range(1500):
        server.apply(lambda m: m.create(DomainSpec())[1])
    infos = backend.getinfolist(0, 5000)
    assert len(infos) == 1501 and [i.domid for i in infos] == list(range(1501))
    assert len(backend.getinfolist(100, 1200)) == 1200


def test_bad_frames_drop_only_that_connection(server: HypervisorServer,
                                              backend: SimBackend) -> None:
    assert raw_call(server.socket_path, struct.pack(">I", 1 << 30)) == b""
    reply = raw_call(server.socket_path, pack([7, "req", 3, "version", {}]))
    assert b"protocol version mismatch" in reply and b"Unavailable" in reply
    # a good request before the garbage in the same write is still answered
    reply = raw_call(server.socket_path, pack([1, "req", 1, "version", {}]) + b"\0\0\0\1\xc1")
    assert msgpack.unpackb(reply[4:])[:3] == [1, "ok", 1]
    # bad arguments are an error reply, not a dropped connection
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(server.socket_path)
        sock.sendall(pack([1, "req", 9, "pause", {"domid": "x"}]))
        answer = msgpack.unpackb(sock.recv(65536)[4:])
        assert answer[:4] == [1, "err", 9, "InvalidArgument"]
        sock.sendall(pack([1, "req", 10, "reboot_host", {}]))
        assert msgpack.unpackb(sock.recv(65536)[4:])[4] == "unknown operation 'reboot_host'"
    assert backend.version().major == 4


def test_missing_socket_and_stale_socket_are_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="does not exist"):
        SimBackend(tmp_path / "nope.sock").version()
    stale = tmp_path / "stale.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(stale))
    sock.close()
    with pytest.raises(Unavailable, match="nobody listens"):
        SimBackend(stale).version()


def test_server_going_away_then_coming_back(tmp_path: Path) -> None:
    path = tmp_path / "hv.sock"
    first = HypervisorServer(path)
    first.start()
    client = SimBackend(path, timeout=5.0)
    assert client.version().major == 4
    first.close()
    with pytest.raises(Unavailable, match=r"went away|does not exist"):
        client.version()
    with HypervisorServer(path):
        assert client.version().major == 4  # reconnects on the next request
    client.close()
    with pytest.raises(Unavailable, match="closed"):
        client.version()


def test_silent_server_times_out(tmp_path: Path) -> None:
    path = str(tmp_path / "mute.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)
    try:
        client = SimBackend(path, timeout=0.3)
        with pytest.raises(HypervisorTimeout, match=r"no answer .* within 0\.3 s"):
            client.pause(3)
        client.close()
    finally:
        listener.close()


def test_garbage_from_the_server_is_unavailable(tmp_path: Path) -> None:
    path = str(tmp_path / "liar.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)

    def lie() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(pack([1, "ok", 99, None]))  # answers a request never sent

    liar = threading.Thread(target=lie)
    liar.start()
    try:
        with pytest.raises(Unavailable, match="broke the protocol"):
            SimBackend(path, timeout=5).version()
    finally:
        liar.join(5)
        listener.close()


def test_second_server_on_a_live_socket_is_refused(server: HypervisorServer) -> None:
    other = HypervisorServer(server.socket_path)
    with pytest.raises(OSError, match="already listens"):
        other.start()
    other.close()


def test_open_backend_by_name(server: HypervisorServer) -> None:
    hv = open_backend("sim", socket_path=server.socket_path)
    assert hv.name == "sim" and hv.getinfo(0).domid == 0
    hv.close()
    with pytest.raises(ValueError, match="unknown hypervisor backend"):
        open_backend("kvm")
    with pytest.raises(ValueError, match="socket path"):
        open_backend("sim")


def test_command_line_serves_until_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "cli.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "xen.sim.hypervisor", "--socket", str(path), "--memory-mib",
         "1024"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(path.exists, timeout=20)
        with SimBackend(path) as client:
            assert client.physinfo().total_kib == 1024 * MIB
            assert client.getinfo(0).tot_kib == 256 * MIB
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert f"hypervisor listening on {path}" in err
        assert not os.path.exists(path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)


def test_close_is_bounded_and_idempotent(tmp_path: Path) -> None:
    srv = HypervisorServer(tmp_path / "hv.sock")
    srv.start()
    srv.subscribe(lambda e: None)
    srv.apply(lambda m: m.create(DomainSpec())[1])
    srv.close(timeout=5)
    srv.close()
    assert not (tmp_path / "hv.sock").exists()
    with pytest.raises(RuntimeError, match="closed"):
        srv.crash(1)
    wait_until(lambda: not any(t.name.startswith("sim-hypervisor")
                               for t in threading.enumerate()))
