"""VM monitors against the simulated hypervisor and xenstored: lifecycle, on_* actions,
adoption after monitor crashes."""

from __future__ import annotations

import logging
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import actors
from supervision import AddChild, ChildSpec, SnapshotStore, start_actor
from tests.helpers import wait_until
from tests.integration.xen_fixtures import FAST, XenTree, start, vm_config, xen_tree
from xen.hypervisor import ShutdownReason
from xen.xenvm import (
    RegisterVm,
    TaskError,
    TreeEnv,
    UnregisterVm,
    VmHandle,
    VmNotification,
    config_build_memory,
    config_to_dict,
    parse_config,
    parse_task,
    set_field,
    vm_path,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[XenTree]:
    with xen_tree(tmp_path) as t:
        yield t


def domains_of(tree: XenTree, vm: str) -> list[int]:
    return [i.domid for i in tree.hv.find_by_handle(uuidlib.UUID(vm)) if not i.dying]


def status(tree: XenTree, vm: str) -> str:
    return tree.task(vm, "get-status")


def test_start_pause_unpause_destroy(tree: XenTree) -> None:
    vm = tree.add_vm(vm_config("alpha"))
    assert status(tree, vm) == "shutdown"
    tree.task(vm, "start")
    assert status(tree, vm) == "running"
    domid = int(tree.task(vm, "get-domid"))
    assert domains_of(tree, vm) == [domid]
    assert tree.xs.read(f"/local/domain/{domid}/name") == "alpha"
    assert tree.xs.read(f"/vm/{vm}/uuid") == vm
    assert tree.xs.read(f"/local/domain/{domid}/cpu/0/availability") == "online"
    assert tree.xs.is_domain_introduced(domid)
    # maxmem as libxl's build-pre sets it (the create sets it here; build-pre does not)
    assert tree.hv.getinfo(domid).max_kib == config_build_memory(
        parse_config(vm_config("alpha"))).xen_max_kib >= 64 * 1024
    tree.task(vm, "pause")
    assert status(tree, vm) == "paused" and tree.hv.getinfo(domid).paused
    tree.task(vm, "unpause")
    assert status(tree, vm) == "running" and not tree.hv.getinfo(domid).paused
    tree.task(vm, "destroy")
    assert status(tree, vm) == "shutdown" and tree.task(vm, "get-domid") == "-1"
    wait_until(lambda: not domains_of(tree, vm))
    assert not tree.xs.exists(f"/local/domain/{domid}")


def test_operations_not_allowed_in_a_state_touch_nothing(tree: XenTree) -> None:
    vm = tree.add_vm(vm_config())
    for op in ("pause", "unpause", "shutdown", "reboot", "suspend"):
        params = {"file": "/tmp/x"} if op == "suspend" else {}
        with pytest.raises(TaskError, match="not allowed in state shutdown"):
            tree.task(vm, op, **params)
    assert not domains_of(tree, vm)
    tree.task(vm, "start")
    with pytest.raises(TaskError, match="start is not allowed in state running"):
        tree.task(vm, "start")
    assert len(domains_of(tree, vm)) == 1
    with pytest.raises(TaskError, match="unknown task"):
        tree.task(vm, "explode")
    with pytest.raises(TaskError, match="bad value 'maybe' for paused"):
        tree.task(vm, "start", paused="maybe")


def test_the_published_handle_answers_queries_and_takes_operations(tree: XenTree) -> None:
    vm = tree.add_vm(vm_config("handle"))
    handle = actors.service(vm_path(vm), VmHandle)
    assert handle.query(parse_task("get-status", {})) == "shutdown"
    assert handle.submit(parse_task("start", {})).result(30) == ""
    assert handle.view is not None and handle.view.state.value == "running"
    with pytest.raises(TaskError, match="start is an operation, not a query"):
        handle.query(parse_task("start", {}))
    with pytest.raises(TaskError, match="get-status is a query, not an operation"):
        handle.submit(parse_task("get-status", {})).result(5)
    with pytest.raises(actors.NoSuchActor):
        tree.task(str(uuidlib.uuid4()), "get-status")


def test_queries_do_not_wait_behind_a_long_operation(tree: XenTree) -> None:
    """A disk whose backend never comes keeps start waiting for hotplug (3 s here)."""
    cfg = vm_config() + "disk = /dev/null:phy:xvda:w:disk:none\n"
    vm = tree.add_vm(cfg)
    from concurrent.futures import Future

    from xen.xenvm import RunTask
    reply: Future[str] = Future()
    actors.resolve(vm_path(vm)).tell(RunTask(parse_task("start", {}), reply))
    wait_until(lambda: status(tree, vm) == "creating-devices", timeout=5)
    t0 = time.monotonic()
    assert status(tree, vm) == "creating-devices"
    assert int(tree.task(vm, "get-domid")) > 0
    assert time.monotonic() - t0 < 0.1
    with pytest.raises(TaskError, match="start failed"):
        reply.result(15)
    assert status(tree, vm) == "shutdown"
    wait_until(lambda: not domains_of(tree, vm))


def test_forced_shutdown(tree: XenTree) -> None:
    vm = tree.add_vm(vm_config())
    tree.task(vm, "start")
    tree.task(vm, "shutdown", forced="true")
    assert status(tree, vm) == "shutdown"
    wait_until(lambda: not domains_of(tree, vm))


def test_clean_shutdown_without_a_guest_fails_and_leaves_it_running(tree: XenTree) -> None:
    vm = tree.add_vm(vm_config())
    tree.task(vm, "start")
    with pytest.raises(TaskError, match="did not shut down"):
        tree.task(vm, "shutdown", timeout="0.5")
    assert status(tree, vm) == "running"
    tree.task(vm, "shutdown", timeout="0.5", **{"destroy-after": "true"})
    assert status(tree, vm) == "shutdown"


@pytest.mark.parametrize(
    ("on_crash", "expected"),
    [("destroy", "shutdown"), ("restart", "running"), ("preserve", "preserved")],
)
def test_on_crash_actions(tree: XenTree, on_crash: str, expected: str) -> None:
    vm = tree.add_vm(vm_config(on_crash=on_crash))
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    tree.hypervisor.crash(domid)
    wait_until(lambda: status(tree, vm) == expected and tree.task(vm, "get-domid") !=
               str(domid) if on_crash == "restart" else status(tree, vm) == expected,
               timeout=10)
    if on_crash == "restart":
        new = int(tree.task(vm, "get-domid"))
        assert new != domid and domains_of(tree, vm) == [new]
    elif on_crash == "preserve":
        info = tree.hv.getinfo(domid)
        assert info.shutdown and info.shutdown_reason is ShutdownReason.CRASH
        tree.task(vm, "destroy")
        assert status(tree, vm) == "shutdown"
    else:
        wait_until(lambda: not domains_of(tree, vm))


def test_guest_poweroff_and_reboot_by_itself(tree: XenTree) -> None:
    vm = tree.add_vm(vm_config(on_poweroff="destroy", on_reboot="restart"))
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    tree.hypervisor.guest_shutdown(domid, ShutdownReason.REBOOT)
    wait_until(lambda: status(tree, vm) == "running" and
               int(tree.task(vm, "get-domid")) != domid, timeout=10)
    domid = int(tree.task(vm, "get-domid"))
    tree.hypervisor.guest_shutdown(domid, ShutdownReason.POWEROFF)
    wait_until(lambda: status(tree, vm) == "shutdown", timeout=10)
    wait_until(lambda: not domains_of(tree, vm))


def test_external_destroy_is_not_a_crash(tree: XenTree) -> None:
    vm = tree.add_vm(vm_config(on_crash="restart", on_poweroff="restart"))
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    tree.hv.destroy(domid)  # as `xl destroy` would
    wait_until(lambda: status(tree, vm) == "shutdown", timeout=10)
    time.sleep(0.3)  # no restart follows
    assert status(tree, vm) == "shutdown" and not domains_of(tree, vm)


def test_reboot_keeps_runtime_config_changes(tree: XenTree) -> None:
    vm = tree.add_vm(vm_config(memory=64, on_reboot="restart"))
    tree.task(vm, "start")
    tree.task(vm, "set", field="memory", value="96")
    assert tree.task(vm, "get", field="memory") == "96"
    domid = int(tree.task(vm, "get-domid"))
    tree.hypervisor.guest_shutdown(domid, ShutdownReason.REBOOT)
    wait_until(lambda: status(tree, vm) == "running" and
               int(tree.task(vm, "get-domid")) != domid, timeout=10)
    new = int(tree.task(vm, "get-domid"))
    assert tree.hv.getinfo(new).tot_kib == 96 * 1024


def test_monitor_crash_adopts_the_running_domain(tree: XenTree) -> None:
    vm = tree.add_vm(vm_config())
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    seq = tree.events.last_seq
    actors.tell(f"/vms/{vm}", actors.InjectCrash())
    assert tree.events.wait_for(lambda e: e.kind == "restarted" and e.path == f"/vms/{vm}",
                                10, since=seq)
    assert status(tree, vm) == "running"
    assert int(tree.task(vm, "get-domid")) == domid
    assert domains_of(tree, vm) == [domid]
    tree.task(vm, "pause")  # the new monitor manages it
    assert tree.hv.getinfo(domid).paused


def test_monitor_killed_mid_start_rolls_back(tree: XenTree) -> None:
    cfg = vm_config() + "disk = /dev/null:phy:xvda:w:disk:none\n"
    vm = tree.add_vm(cfg)
    from concurrent.futures import Future

    from xen.xenvm import RunTask
    actors.resolve(vm_path(vm)).tell(RunTask(parse_task("start", {}), Future()))
    wait_until(lambda: status(tree, vm) == "creating-devices", timeout=5)
    victim = actors.actor_of(actors.resolve(vm_path(vm)))
    seq = tree.events.last_seq
    victim.kill()  # dies mid-operation, as a crash would leave it
    assert tree.events.wait_for(lambda e: e.kind == "restarted" and e.path == vm_path(vm),
                                10, since=seq)
    # the new instance destroyed the half-built domain and started again (which waits for
    # the backend that never comes, then gives up): never two domains
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        assert len(domains_of(tree, vm)) <= 1
        if status(tree, vm) == "shutdown":
            break
        time.sleep(0.05)
    assert status(tree, vm) == "shutdown"
    wait_until(lambda: not domains_of(tree, vm))


@pytest.mark.parametrize("name", ["/xen/xenstore", "/xen/hypervisor"])
def test_a_killed_xen_client_closes_its_connection_and_the_next_serves(
        tree: XenTree, name: str) -> None:
    vm = tree.add_vm(vm_config())
    old = actors.actor_of(actors.resolve(name))
    client = old.published()
    seq = tree.events.last_seq
    old.kill()
    # rest_for_one: the children after it restart too, the watcher last
    assert tree.events.wait_for(lambda e: e.kind == "restarted" and e.path == "/xen/watcher",
                                10, since=seq)
    wait_until(lambda: not old.thread_alive, timeout=5)
    with pytest.raises(Exception, match="closed"):  # the killed instance's connection
        client.read("/local/domain/0/name") if name == "/xen/xenstore" else client.physinfo()
    tree.task(vm, "start")  # through the next instance
    assert status(tree, vm) == "running"
    tree.task(vm, "destroy")


def test_a_killed_domain_watcher_drops_its_watches(tree: XenTree) -> None:
    old = actors.actor_of(actors.resolve("/xen/watcher"))
    token = old.token
    client = tree.xs
    assert token in client._watches
    seq = tree.events.last_seq
    old.kill()
    assert tree.events.wait_for(lambda e: e.kind == "restarted" and e.path == "/xen/watcher",
                                10, since=seq)
    wait_until(lambda: not old.thread_alive, timeout=5)
    wait_until(lambda: token not in client._watches, timeout=5)  # its watches are dropped


def test_a_crashed_watcher_comes_back_and_keeps_reporting(tree: XenTree) -> None:
    vm = tree.add_vm(vm_config(on_crash="destroy"))
    tree.task(vm, "start")
    for _ in range(2):
        seq = tree.events.last_seq
        actors.tell("/xen/watcher", actors.InjectCrash())
        assert tree.events.wait_for(lambda e: e.kind == "restarted" and e.path == "/xen/watcher",
                                    10, since=seq)
    domid = int(tree.task(vm, "get-domid"))
    tree.hypervisor.crash(domid)  # the new watcher must see it
    wait_until(lambda: status(tree, vm) == "shutdown", timeout=10)


class Listener(actors.Actor):
    """Collects what monitors tell the environment's listeners."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[object] = []

    @actors.handles(RegisterVm, VmNotification, UnregisterVm)
    def _collect(self, msg: object) -> None:
        self.got.append(msg)

    def published(self) -> list[object]:
        return self.got


def test_notifications_go_as_messages_to_the_listeners_of_the_environment(
        tmp_path: Path) -> None:
    env = TreeEnv(timeouts=FAST, state_dir=tmp_path, notify=("/listener", "/nobody"))
    with xen_tree(tmp_path, env=env) as tree:
        actors.ask("/", AddChild(ChildSpec("listener", start_actor(Listener))), timeout=10)
        got = actors.service("/listener", list)
        vm = tree.add_vm(vm_config(on_crash="destroy"))
        tree.task(vm, "start")
        tree.hypervisor.crash(int(tree.task(vm, "get-domid")))
        wait_until(lambda: VmNotification(vm, "vm:state:shutdown") in got, timeout=10)
        tree.task(vm, "quit")
        wait_until(lambda: UnregisterVm(vm) in got, timeout=10)
    assert got[0] == RegisterVm(vm)
    states = [m.text for m in got if isinstance(m, VmNotification)]
    assert states[:4] == ["vm:state:creating-domain", "vm:state:creating-devices",
                          "vm:state:created", "vm:state:running"]
    assert states[4:] == ["error:crashed", "vm:state:shutdown"]
    assert got[-1] == UnregisterVm(vm)


def test_a_snapshot_that_does_not_read_back_is_logged_and_the_domain_adopted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A snapshot the monitor cannot use (here a config line that does not parse) is ignored:
    the new monitor adopts the VM's running domain from the hypervisor, and the log keeps what
    the snapshot held (the next save replaces it)."""
    cfg = vm_config("broken", memory=64)
    with xen_tree(tmp_path) as tree:
        vm = tree.add_vm(cfg)
        tree.task(vm, "start")
        domid = int(tree.task(vm, "get-domid"))
        tree.stop_tree()
        store = SnapshotStore(tmp_path / "snapshots")
        record = store.load(f"/vms/{vm}")
        assert record is not None and record["state"]["domid"] == domid
        config = record["state"]["config"]
        broken = {**config, "entries": [*config["entries"], ["disk", "nonsense-line"]]}
        store.save(f"/vms/{vm}", {**record["state"], "config": broken},
                   args=tuple(record["args"]))
        with caplog.at_level(logging.ERROR, logger="xenvm"):
            tree.root = start(tmp_path, tree.events)
            assert status(tree, vm) == "running"
        assert int(tree.task(vm, "get-domid")) == domid  # adopted, not started again
        assert domains_of(tree, vm) == [domid]
        errors = [r.getMessage() for r in caplog.records
                  if "ignoring the snapshot" in r.getMessage()]
        assert len(errors) == 1 and "'broken'" in errors[0], errors  # the whole snapshot
        tree.task(vm, "destroy")


def test_a_monitor_persisted_by_the_previous_version_resumes(tmp_path: Path) -> None:
    """After an upgrade the supervisor restarts each VM with the arguments and snapshot the
    previous version persisted: (uuid, config, env name) and a version-1 snapshot."""
    cfg = vm_config("old", memory=64)
    with xen_tree(tmp_path) as tree:
        vm = tree.add_vm(cfg)
        tree.task(vm, "start")
        domid = int(tree.task(vm, "get-domid"))
        tree.stop_tree()
        parsed = parse_config(cfg)
        SnapshotStore(tmp_path / "snapshots").save(f"/vms/{vm}", {
            "v": 1, "uuid": vm, "state": "running", "domid": domid, "stubdom_domid": -1,
            "config": config_to_dict(parsed),
            "next_config": config_to_dict(set_field(parsed, "memory", "96")),
            "op": {"name": "start", "paused": False}, "pending_action": None,
        }, args=(vm, cfg, "default"))
        tree.root = start(tmp_path, tree.events)
        assert status(tree, vm) == "running"
        assert int(tree.task(vm, "get-domid")) == domid  # adopted, not started again
        assert domains_of(tree, vm) == [domid]
        assert tree.task(vm, "get", field="memory") == "96"  # the snapshot was read
        tree.task(vm, "pause")
        assert tree.hv.getinfo(domid).paused
