"""xenmgr under load and faults: 50 concurrent clients; hooks that fail or hang; the service
actor killed mid-call; a SIGKILL of the whole supervisor during create_vm.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpc.dbus import DBusError, RemoteObject
from supervision.control._client import ControlClient
from tests.helpers import wait_until
from tests.integration.xenmgr_fixtures import VM, XENMGR, Xenmgr, xenmgr_dom0
from tests.integration.xenmgr_signals import SignalRecorder

pytestmark = pytest.mark.integration

DB = "com.citrix.xenclient.db"
CLIENTS = 50


@pytest.fixture(scope="module")
def dom0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xenmgr]:
    with xenmgr_dom0(tmp_path_factory.mktemp("xenmgr-load")) as d:
        yield d


@pytest.fixture(autouse=True)
def _close(dom0: Xenmgr) -> Iterator[None]:
    yield
    dom0.close_connections()


def uuid_of(path: str) -> str:
    return path.rsplit("/", 1)[1].replace("_", "-")


def test_fifty_clients_create_start_stop_delete(dom0: Xenmgr) -> None:
    errors: list[str] = []
    made: dict[int, str] = {}
    slots: dict[str, int] = {}
    lock = threading.Lock()
    with SignalRecorder(dom0.address) as rec:
        def client(n: int) -> None:
            conn = dom0.connection()
            root = RemoteObject(conn, XENMGR, "/", timeout=60)
            try:
                # slots 1..9 bound guest VMs; the others take slot -1 (no slot) by JSON
                small = {"config": {"memory": "64"}}
                extra = json.dumps(small if n < 5 else {**small, "slot": "-1"})
                path = str(root.call(XENMGR, "create_vm_with_template_and_json", "ss",
                                     "new-vm-empty", extra)[0])
                vm = RemoteObject(conn, XENMGR, path, timeout=60)
                with lock:
                    made[n] = path
                    slots[path] = vm.get(VM, "slot")
                vm.call(VM, "start")
                assert vm.get(VM, "state") == "running"
                vm.call(VM, "destroy")
                vm.call(VM, "delete")
            except Exception as exc:
                with lock:
                    errors.append(f"client {n}: {exc}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(50)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        paths = list(made.values())
        assert len(set(paths)) == CLIENTS  # no uuid collision
        real_slots = [s for s in slots.values() if s >= 0]
        assert len(real_slots) == len(set(real_slots))
        for path in paths:
            uuid = uuid_of(path)
            rec.wait_for("vm_deleted", uuid)
            states = [args[2] for args in rec.of("vm_state_changed", uuid)]
            # in the order the monitor went: creating..., running, then stopped
            assert states[-1] == "stopped" and "running" in states, states
            assert states.index("running") < len(states) - 1
            order = [m for m, args in rec.signals if args and args[0] == uuid
                     and m in ("vm_created", "vm_deleted")]
            assert order == ["vm_created", "vm_deleted"]
    listed = dom0.root().call(XENMGR, "list_vms")[0]
    assert not set(paths) & set(listed)
    for path in listed:  # every object path listed is a valid object
        dom0.obj(path).get(VM, "name")


def test_hooks_fail_hang_and_run(dom0: Xenmgr, tmp_path: Path) -> None:
    marker = tmp_path / "hook.log"
    good = tmp_path / "good.sh"
    good.write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\n")
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    hang = tmp_path / "hang.sh"
    hang.write_text("#!/bin/sh\nsleep 30\n")
    for script in (good, bad, hang):
        script.chmod(0o755)
    root = dom0.root()
    path = str(root.call(XENMGR, "create_vm_with_template", "s", "new-vm-empty")[0])
    vm = dom0.obj(path)
    uuid = uuid_of(path)
    vm.set(VM, "run-pre-boot", "s", str(bad))
    with pytest.raises(DBusError) as info:
        vm.call(VM, "start")
    assert "exit status 3: broken" in info.value.message
    assert vm.get(VM, "state") == "stopped"  # nothing started
    vm.set(VM, "run-pre-boot", "s", str(hang))
    t0 = time.monotonic()
    with pytest.raises(DBusError) as info:
        vm.call(VM, "start")
    assert "timed out after 2 s" in info.value.message and time.monotonic() - t0 < 10
    vm.set(VM, "run-pre-boot", "s", "")
    vm.set(VM, "run-on-state-change", "s", str(good))
    vm.call(VM, "start")
    wait_until(lambda: marker.exists() and f"{uuid} running" in marker.read_text(), timeout=10)
    vm.call(VM, "destroy")
    wait_until(lambda: f"{uuid} stopped" in marker.read_text(), timeout=10)
    vm.set(VM, "run-pre-delete", "s", str(bad))
    with pytest.raises(DBusError):
        vm.call(VM, "delete")
    assert dom0.obj(path).get(VM, "name")  # still there
    vm.set(VM, "run-pre-delete", "s", "")
    vm.set(VM, "run-insteadof-start", "s", str(good))
    vm.call(VM, "start")
    assert vm.get(VM, "state") == "stopped"  # the hook replaced the start
    assert marker.read_text().splitlines()[-1] == uuid
    vm.call(VM, "delete")


def _kill_service(dom0: Xenmgr) -> None:
    with ControlClient(dom0.info["control"], timeout=10) as ctl:
        ctl.call("crash", path="/manager/service")


def test_service_killed_mid_call_answers_and_rebuilds(dom0: Xenmgr) -> None:
    root = dom0.root()
    path = str(root.call(XENMGR, "create_vm_with_template", "s", "new-vm-empty")[0])
    vm = dom0.obj(path)
    vm.set(VM, "run-pre-boot", "s", "/bin/sleep 1.5")
    outcome: list[object] = []

    def slow_start() -> None:
        try:
            vm.call(VM, "start")
            outcome.append("ok")
        except DBusError as exc:
            outcome.append(exc)

    owner = _owner(dom0)
    caller = threading.Thread(target=slow_start)
    caller.start()
    time.sleep(0.3)  # the call is in the hook by now
    _kill_service(dom0)
    caller.join(30)
    assert not caller.is_alive() and outcome, "the caller hung"
    assert isinstance(outcome[0], DBusError)  # an error, never a fake success
    wait_until(lambda: _owner(dom0) not in (None, owner) and _answers(dom0, path), timeout=20)
    assert path in dom0.root().call(XENMGR, "list_vms")[0]
    fresh = dom0.obj(path)
    if fresh.get(VM, "state") == "running":
        fresh.call(VM, "destroy")
    fresh.set(VM, "run-pre-boot", "s", "")
    fresh.call(VM, "delete")


def _owner(dom0: Xenmgr) -> str | None:
    try:
        return str(dom0.connection().bus_call("GetNameOwner", "s", (XENMGR,))[0])
    except DBusError:
        return None


def _answers(dom0: Xenmgr, path: str) -> bool:
    try:
        dom0.obj(path).get(VM, "name")
        return True
    except DBusError:
        return False


def test_sigkill_during_create_leaves_a_complete_vm_or_none(tmp_path: Path) -> None:
    with xenmgr_dom0(tmp_path / "d") as d:
        created: list[str] = []
        stop = threading.Event()

        def creator() -> None:
            root = RemoteObject(d.connection(), XENMGR, "/", timeout=10)
            while not stop.is_set():
                try:
                    created.append(str(root.call(XENMGR, "create_vm_with_template_and_json",
                                                 "ss", "new-vm-empty",
                                                 json.dumps({"slot": "-1"}))[0]))
                except Exception:
                    return

        worker = threading.Thread(target=creator)
        worker.start()
        wait_until(lambda: len(created) >= 3, timeout=20)
        assert d.proc is not None
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait(20)
        stop.set()
        worker.join(20)
        d.close_connections()
        d.start()  # the same state directory: the database log is replayed
        root = d.root()
        listed = set(root.call(XENMGR, "list_vms")[0])
        assert set(created) <= listed  # every acknowledged create survived
        db = RemoteObject(d.connection(), DB, "/")
        for path in listed:
            uuid = uuid_of(path)
            vm = d.obj(path)
            assert vm.get(VM, "uuid") == uuid  # complete: it has its whole subtree
            assert db.call(DB, "read", "s", f"/vm/{uuid}/config/memory")[0]
            assert vm.get(VM, "state") == "stopped"  # and a monitor
        assert len({uuid_of(p) for p in listed}) == len(listed)
        _ = uuidlib  # the uuids are the service's own


def test_autostart_starts_start_on_boot_vms_at_start(tmp_path: Path) -> None:
    with xenmgr_dom0(tmp_path / "a") as d:
        db = RemoteObject(d.connection(), DB, "/")
        for tag, uuid in (("uivm", "00000000-0000-0000-0000-000000000001"),
                          ("ndvm", "00000000-0000-0000-0000-000000000002")):
            db.call(DB, "write", "ss", f"/xenmgr/overwrite-{tag}-settings", "false")
            db.call(DB, "write", "ss", f"/vm/{uuid}/start_on_boot", "false")
        paths = []
        for priority in ("10", "50"):
            paths.append(str(d.root().call(
                XENMGR, "create_vm_with_template_and_json", "ss", "new-vm-ndvm-pv",
                json.dumps({"start_on_boot": "true", "start_on_boot_priority": priority,
                            "slot": "-1", "config": {"memory": "64"}}))[0]))
        stopped = str(d.root().call(XENMGR, "create_vm_with_template_and_json", "ss",
                                    "new-vm-ndvm-pv", json.dumps({"config": {"memory": "64"}}))[0])
        d.stop()
        d.config.write_text(d.config.read_text().replace("autostart = false",
                                                         "autostart = true"))
        d.start()
        for path in paths:
            wait_until(lambda p=path: d.obj(p).get(VM, "state") == "running", timeout=30)
            # the autostart drops the VM from its pending list when the monitor's start task
            # has answered, a moment after the state reads running: wait for it, bounded
            wait_until(lambda p=path: d.obj(p).get(VM, "autostart-pending") is False,
                       timeout=10)
        assert d.obj(stopped).get(VM, "state") == "stopped"
        for path in paths:
            d.obj(path).call(VM, "destroy")
