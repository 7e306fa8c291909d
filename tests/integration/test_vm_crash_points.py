"""Kill the VM monitor at every point of an operation and check what the next one makes of it.

For each operation below (start, start paused, the start of an HVM guest with a stub domain,
reboot, the guest's own reboot, shutdown, suspend, restore, a disk, nic or PCI device added or
removed while the VM runs, a CD medium inserted or ejected, the balloon target), run it once per
*crash point*: the monitor's thread stops right after
its k-th hypervisor call, xenstore exchange or snapshot save (outside any uninterruptible
section, as a kill finds it), is killed, and the supervisor starts a new monitor that recovers
from the snapshot. k runs from 1 until the operation completes untouched (a check the domain
watcher asks for in between can shift the count by one: a point may be missed in a run, never
a wrong one tested). After each recovery:

- the state and the world agree: a state with a domain has exactly the one domain it records
  (running <-> unpaused, created or paused <-> paused) and its one stub domain if it has one,
  any other state has none;
- a device the operation adds or removes is plugged only if the config lists it, and one the
  config lists can be removed; no PCI device stays assigned once the domain is destroyed;
- a CD drive never holds a medium its config does not (the config may be ahead: it is saved
  first), and the change done again brings both to the medium asked for;
- the VM is usable: a start and a destroy succeed.

This is how the recovery windows of tests/integration/test_vm_recovery_windows.py were found.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import actors
from actors._shield import current_guard
from supervision import SnapshotStore
from tests.integration.xen_fixtures import (
    XenTree,
    hang_until_killed,
    kill_monitor,
    sim_tree,
    vm_config,
)
from xen.hypervisor import ShutdownReason, SimBackend
from xen.xenops import name_to_devid
from xen.xenstore._connection import Connection
from xen.xenvm import VmHandle, parse_task, vm_path, vm_task

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SETTLED = ("shutdown", "running", "paused", "created", "suspended")
WITH_DOMAIN = ("running", "paused", "created")


class CrashPoint:
    """Stops the VM monitor's thread after its k-th counted call (see the module docstring)."""

    def __init__(self) -> None:
        self.k: int | None = None
        self.count = 0
        self.reached = threading.Event()
        self.what = ""

    def arm(self, k: int) -> None:
        self.k, self.count, self.what = k, 0, ""
        self.reached.clear()

    def disarm(self) -> None:
        self.k = None

    def wrap(self, kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def counted(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            if (self.k is not None and current_guard().depth == 0
                    and threading.current_thread().name.startswith("VmMonitor")):
                self.count += 1
                if self.count == self.k:
                    self.what = kind
                    self.reached.set()
                    hang_until_killed()
            return result
        return counted


@pytest.fixture
def crash(monkeypatch: pytest.MonkeyPatch) -> CrashPoint:
    point = CrashPoint()
    monkeypatch.setattr(SimBackend, "_call", point.wrap("hypervisor", SimBackend._call))
    monkeypatch.setattr(Connection, "request", point.wrap("xenstore", Connection.request))
    monkeypatch.setattr(Connection, "request_many",
                        point.wrap("xenstore", Connection.request_many))
    monkeypatch.setattr(SnapshotStore, "save", point.wrap("save", SnapshotStore.save))
    return point


@dataclass(frozen=True)
class Device:
    """A disk, nic or PCI device the operation adds or removes: ``<kind>-add`` with ``add``,
    ``<kind>-del`` with ``remove``, listed by ``<kind>-list`` as a line whose ``column``-th
    word is ``ident``."""

    kind: str
    ident: str
    add: dict[str, str]
    remove: dict[str, str]
    column: int = 0

    @property
    def backend(self) -> str:
        return {"disk": "vbd", "nic": "vif"}.get(self.kind, self.kind)

    def listed(self, vm: str) -> bool:
        return any(line.split(" ")[self.column] == self.ident
                   for line in vm_task(vm, f"{self.kind}-list").splitlines())


DISK = Device("disk", "xvdb", {"path": "/dev/null", "device": "xvdb"}, {"device": "xvdb"})
NIC = Device("nic", "3", {"bridge": "xenbr0", "id": "3"}, {"id": "3"})
BDF = {"domain": "0", "bus": "4", "slot": "0", "func": "0"}  # a NIC the simulated host has
PCI = Device("pci", "0000:04:00.0", {"id": "0", **BDF}, BDF, column=1)
XVDC = name_to_devid("xvdc")
FIRST = "/srv/first.iso"
CD = f"disk = {FIRST}:file:xvdc:r:cdrom:none\n"  # a CD drive for the media changes


@dataclass(frozen=True)
class Op:
    """An operation and the state it starts from; ``device``: the one it adds, or (with
    ``plugged``) the one it removes, plugged before it runs."""

    before: str
    task: str | None  # None: the guest reboots itself (on_reboot = restart)
    params: dict[str, str] = field(default_factory=dict)
    device: Device | None = None
    plugged: bool = False
    stubdom: bool = False  # an HVM guest with its device model in a stub domain
    medium: str | None = None  # a media change: the medium it puts in xvdc ("": an eject)
    points: int = 99  # the first so many (fewer: the window that matters, for a slow one)


IMAGE = "vm.img"
STUB = "5f5f5f5f-1111-4222-8333-444444444444"  # the stub domain's uuid
STUBDOM = f"hvm = true\nqemu-dm-timeout = 10\nstubdom-memory = 32\nstubdom = {STUB}\n"
OPS = {
    "start": Op("shutdown", "start"),
    "start-paused": Op("shutdown", "start", {"paused": "true"}),
    # up to just past the stub domain's record (a kill before it left the stub domain behind)
    "start-stubdom": Op("shutdown", "start", stubdom=True, points=20),
    "reboot": Op("running", "reboot"),
    "guest-reboot": Op("running", None),
    "shutdown": Op("running", "shutdown"),
    "suspend": Op("running", "suspend", {"file": IMAGE}),
    "restore": Op("suspended", "restore", {"file": IMAGE}),
    "disk-add": Op("running", "disk-add", DISK.add, DISK),
    "disk-del": Op("running", "disk-del", DISK.remove, DISK, plugged=True),
    "nic-add": Op("running", "nic-add", NIC.add, NIC),
    "nic-del": Op("running", "nic-del", NIC.remove, NIC, plugged=True),
    "pci-add": Op("running", "pci-add", PCI.add, PCI),
    "pci-del": Op("running", "pci-del", PCI.remove, PCI, plugged=True),
    "cd-insert": Op("running", "cd-insert-file", {"virtpath": "xvdc",
                                                  "physpath": "/srv/second.iso"},
                    medium="/srv/second.iso"),
    "cd-eject": Op("running", "cd-eject", {"virtpath": "xvdc"}, medium=""),
    "set-mem-target": Op("running", "set-mem-target", {"mb": "24"}),
}


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[XenTree, Any]]:
    with sim_tree(tmp_path / "host", intensity=10_000, backoff=None) as pair:
        yield pair


def _with_image(params: dict[str, str], image: Path) -> dict[str, str]:
    return {k: str(image) if v == IMAGE else v for k, v in params.items()}


def _prepare(tree: XenTree, vm: str, op: Op, image: Path) -> int:
    if vm_task(vm, "get-status") != "shutdown":
        vm_task(vm, "destroy", timeout=30)
    if op.before != "shutdown":
        vm_task(vm, "start", timeout=30)
    if op.before == "suspended":
        vm_task(vm, "suspend", {"file": str(image)}, timeout=30)
    if op.plugged and op.device is not None:
        vm_task(vm, f"{op.device.kind}-add", op.device.add, timeout=30)
    if op.medium is not None:  # the first medium back in (the last point's check changed it)
        vm_task(vm, "cd-insert-file", {"virtpath": "xvdc", "physpath": FIRST}, timeout=30)
    time.sleep(0.05)  # the domain watcher's news of the preparation reaches the monitor first,
    _settled(vm)  # so that the points counted next are the operation's own (most of the time)
    return int(vm_task(vm, "get-domid"))


def _submit(tree: XenTree, vm: str, op: Op, image: Path, domid: int) -> Future[str]:
    if op.task is not None:
        return actors.service(vm_path(vm), VmHandle).submit(
            parse_task(op.task, _with_image(op.params, image)))
    done: Future[str] = Future()  # the guest reboots: done once a new domain runs

    def rebooted() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not done.done():
            try:
                if (vm_task(vm, "get-status") == "running"
                        and int(vm_task(vm, "get-domid")) != domid):
                    done.set_result("")
                    return
            except Exception:  # the monitor is restarting
                pass
            time.sleep(0.02)

    tree.hypervisor.guest_shutdown(domid, ShutdownReason.REBOOT)
    threading.Thread(target=rebooted, daemon=True).start()
    return done


def _settled(vm: str) -> str:
    """The state once the new monitor is idle: the tasks it queued to itself (a retry, the
    unpause a start missed) have run."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            stats = actors.actor_of(actors.resolve(vm_path(vm))).stats()
            if stats.mailbox_depth == 0 and stats.current_message is None:
                return vm_task(vm, "get-status")
        except Exception:  # the monitor is restarting
            pass
        time.sleep(0.02)
    return vm_task(vm, "get-status")


def _medium(vm: str) -> str:
    """The medium the config has in xvdc."""
    line = next(x for x in vm_task(vm, "disk-list").splitlines() if x.startswith("xvdc "))
    return line.split(" ")[1].split(":", 1)[1]


def _check_medium(tree: XenTree, vm: str, op: Op, live: list[tuple[int, bool]],
                  where: str) -> None:
    """The drive never holds a medium the config does not (the config may be ahead of it:
    saved first); the change done again makes both hold the one asked for."""
    configured = _medium(vm)
    if live:
        domid = live[0][0]
        backend = tree.xs.read(f"/local/domain/{domid}/device/vbd/{XVDC}/backend")
        drive = tree.xs.read(f"{backend}/params")
        assert drive == configured or configured == op.medium, \
            f"{where}: the drive holds {drive!r}, the config {configured!r}"
    assert op.task is not None
    vm_task(vm, op.task, op.params, timeout=30)
    assert _medium(vm) == op.medium, where
    if live:
        assert tree.xs.read(f"{backend}/params") == op.medium, where


@pytest.mark.parametrize("name", list(OPS))
def test_every_crash_point_recovers(host: tuple[XenTree, Any], crash: CrashPoint,
                                    tmp_path: Path, name: str) -> None:
    (tree, sim), op, image = host, OPS[name], tmp_path / "vm.img"
    vm = tree.add_vm(vm_config("points", memory=32 if not op.stubdom else 64,
                               on_reboot="restart") + (STUBDOM if op.stubdom else "")
                     + (CD if op.medium is not None else ""))
    seen: list[str] = []  # what each point stopped after
    for k in range(1, op.points + 1):
        domid = _prepare(tree, vm, op, image)
        seq = tree.events.last_seq
        crash.arm(k)
        done = _submit(tree, vm, op, image, domid)
        deadline = time.monotonic() + 30
        while not crash.reached.wait(0.01) and not done.done():
            assert time.monotonic() < deadline, f"{name}: neither done nor stopped at {k}"
        if not crash.reached.is_set():  # done without reaching point k: all explored
            crash.disarm()
            assert done.exception(5) is None, done.exception()
            break
        crash.disarm()
        seen.append(crash.what)
        kill_monitor(tree, vm, seq)
        state = _settled(vm)
        live = [(i.domid, i.paused) for i in tree.hv.find_by_handle(uuidlib.UUID(vm))
                if not i.dying and not i.shutdown]
        where = f"{name}, stopped after call {k} ({crash.what}): {state}, domains {live}"
        stubs = [i.domid for i in tree.hv.find_by_handle(uuidlib.UUID(STUB)) if not i.dying]
        if state in WITH_DOMAIN:
            assert [d for d, _p in live] == [int(vm_task(vm, "get-domid"))], where
            assert live[0][1] is (state != "running"), where
            assert len(stubs) == op.stubdom, f"{where}: stub domains {stubs}"
        else:
            assert state in SETTLED and live == [] and stubs == [], f"{where}, stubs {stubs}"
        if op.device is not None:
            dev = op.device
            listed = dev.listed(vm)
            plugged = bool(live) and tree.xs.exists(
                f"/local/domain/0/backend/{dev.backend}/{live[0][0]}")
            assert listed or not plugged, f"{where}: {dev.kind} plugged, not in the config"
            if listed:  # and then it can be removed
                try:
                    vm_task(vm, f"{dev.kind}-del", dev.remove, timeout=30)
                except Exception as exc:
                    pytest.fail(f"{where}: {dev.kind}-del failed: {exc}")
        if op.medium is not None:
            _check_medium(tree, vm, op, live, where)
        if state in WITH_DOMAIN:
            vm_task(vm, "destroy", timeout=30)
        vm_task(vm, "start", timeout=30)
        vm_task(vm, "destroy", timeout=30)
        held = {bdf: d["assigned"] for bdf, d in sim.pci_state()["devices"].items()
                if d["assigned"] is not None}
        assert held == {}, f"{where}: PCI devices still assigned after a destroy: {held}"
    else:
        if op.points == Op.points:
            pytest.fail(f"{name}: more than {op.points} crash points")
    # every kind of point was reached (the wrappers count what they should)
    assert "xenstore" in seen, seen  # the wrappers count
