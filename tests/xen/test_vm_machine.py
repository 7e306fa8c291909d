"""The VM machine's pieces without a host: the task handler tables, the builders, device
changes from config edits, the start argument, and operations refused or done on a recording
backend; and the structure rules of the monitor layer (no string dispatch, no global
registries, no reaching into actors)."""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path

import pytest

from actors import decode, encode
from tests.xen.recording import UUID, RecordingHypervisor, RecordingXenstore, config, env
from xen.hypervisor import InvalidArgument, Unsupported
from xen.xenops import (
    BootImage,
    Kind,
    SimBuilder,
    UnsupportedBuilder,
    XcBuilder,
    build_memory,
)
from xen.xenvm import TASKS, TaskError, VmStart, config_to_dict
from xen.xenvm._handlers import OPERATIONS, QUERIES
from xen.xenvm._hotplug import added, removed
from xen.xenvm._lifecycle import State
from xen.xenvm._machine import VmMachine
from xen.xenvm._monitor import _start_arg
from xen.xenvm._snapshot import VmView

ROOT = Path(__file__).resolve().parents[2]
MEMORY = build_memory(hvm=False, vcpus=1, static_max_kib=65536, target_kib=65536)


# ------------------------------------------------------------------ dispatch by table


def test_every_task_has_exactly_one_handler_of_its_kind() -> None:
    assert set(OPERATIONS).isdisjoint(QUERIES)
    assert set(OPERATIONS) | set(QUERIES) == set(TASKS)
    assert {name for name, spec in TASKS.items() if spec.kind == "op"} == set(OPERATIONS)
    assert all(callable(handler) for handler in (*OPERATIONS.values(), *QUERIES.values()))


def _task_name_comparisons(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                if isinstance(operand, ast.Constant) and operand.value in TASKS:
                    found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_dispatches_on_task_names() -> None:
    """The old ``if name == "start": ... elif ...`` chain is gone: one lookup in a table."""
    dispatchers = ("_monitor", "_dbus", "_handlers", "_machine", "_domain", "_reconcile")
    assert [hit for name in dispatchers
            for hit in _task_name_comparisons(ROOT / "xen" / "xenvm" / f"{name}.py")] == []
    assert _task_name_comparisons_planted() == ["planted.py:2: name == 'start'"]


def _task_name_comparisons_planted() -> list[str]:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        planted = Path(tmp) / "planted.py"
        planted.write_text("def f(name):\n    if name == 'start':\n        pass\n")
        return _task_name_comparisons(planted)


def _sources(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize(("pattern", "where"), [
    (r"\bactor_of\(", ("xen", "supervision/dom0")),
    (r"isinstance\([^)]*Builder\)", ("actors", "supervision", "xen", "rpc", "persistence")),
    (r"\b(register_env|get_env|unregister_env|add_listener|remove_listener)\b",
     ("xen", "supervision")),
    (r"^(_envs|_listeners)\b", ("xen/xenvm",)),
])
def test_the_monitor_layer_has_no_registry_and_reaches_into_no_actor(
        pattern: str, where: tuple[str, ...]) -> None:
    regex = re.compile(pattern)
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in _sources(*where)
            for n, line in enumerate(p.read_text().splitlines(), 1) if regex.search(line)]
    assert hits == []


# ------------------------------------------------------------------ builders


def test_the_sim_builder_suspends_once_and_saves_an_empty_section() -> None:
    calls: list[str] = []
    out = io.BytesIO()
    SimBuilder().save(5, out, lambda: calls.append("suspend"))
    assert calls == ["suspend"] and out.getvalue() == b""
    built = SimBuilder().build(5, BootImage("/boot/vmlinuz"), MEMORY)
    assert SimBuilder().restore(5, io.BytesIO(b""), MEMORY) == built
    with pytest.raises(ValueError, match="memory section"):
        SimBuilder().restore(5, io.BytesIO(b"x"), MEMORY)


def test_the_unsupported_builder_refuses_before_touching_the_guest() -> None:
    calls: list[str] = []
    builder = UnsupportedBuilder()
    with pytest.raises(Unsupported, match=r"saving a domain .* needs libxenguest"):
        builder.save(5, io.BytesIO(), lambda: calls.append("suspend"))
    assert calls == []
    with pytest.raises(Unsupported, match=r"restoring a domain .* needs libxenguest"):
        builder.restore(5, io.BytesIO(), MEMORY)
    with pytest.raises(Unsupported, match=r"building a domain .* needs libxenguest"):
        builder.build(5, BootImage("/boot/vmlinuz"), MEMORY)


def test_the_xc_builder_refuses_what_it_cannot_do_before_opening_xen() -> None:
    opened: list[str] = []

    def never() -> None:
        opened.append("xc")
        raise AssertionError("the xc builder opened Xen for a refused operation")

    builder = XcBuilder(never)
    calls: list[str] = []
    with pytest.raises(Unsupported, match=r"saving a domain on the xc backend"):
        builder.save(5, io.BytesIO(), lambda: calls.append("suspend"))
    with pytest.raises(Unsupported, match=r"restoring a domain on the xc backend"):
        builder.restore(5, io.BytesIO(), MEMORY)
    hvm = build_memory(hvm=True, vcpus=1, static_max_kib=262144, target_kib=262144)
    with pytest.raises(Unsupported, match=r"HVM guest on the xc backend .* PV and PVH guests"):
        builder.build(5, BootImage("/usr/lib/xen/boot/hvmloader"), hvm)
    with pytest.raises(InvalidArgument, match=r"PVH guest is built into an HVM domain"):
        builder.build(5, BootImage("/boot/vmlinuz", pvh=True), MEMORY)
    assert calls == [] and opened == []
    builder.close()  # nothing opened: nothing to close


def test_the_sim_builder_refuses_a_pvh_image_for_a_pv_domain() -> None:
    with pytest.raises(InvalidArgument, match=r"PVH guest is built into an HVM domain"):
        SimBuilder().build(5, BootImage("/boot/vmlinuz", pvh=True), MEMORY)
    hvm = build_memory(hvm=True, vcpus=1, static_max_kib=262144, target_kib=262144)
    assert SimBuilder().build(5, BootImage("/boot/vmlinuz", pvh=True), hvm).store_port > 0


# ------------------------------------------------------------------ the machine, recording


def _running(hv: RecordingHypervisor, xs: RecordingXenstore, notes: list[str] | None = None,
             **kw: object) -> VmMachine:
    """A machine that adopted running domain 5."""
    hv.add(5)
    vm = VmMachine(UUID, config(), env(hv, xs, **kw),
                   notify=notes.append if notes is not None else lambda _t: None)
    vm.check_state()
    assert (vm.state, vm.domid) == (State.RUNNING, 5)
    return vm


def test_suspend_that_the_builder_cannot_do_changes_nothing(tmp_path: Path) -> None:
    hv, xs = RecordingHypervisor(), RecordingXenstore()
    notes: list[str] = []
    vm = _running(hv, xs, notes, builder=UnsupportedBuilder())
    notes.clear()
    with pytest.raises(TaskError, match=r"^suspend: not implemented: saving a domain"):
        vm.suspend(str(tmp_path / "x.img"))
    assert (vm.state, vm.domid, vm.op) == (State.RUNNING, 5, None)
    assert notes == [] and hv.calls == [] and xs.calls == []
    assert list(tmp_path.iterdir()) == []  # not even a temporary file


def test_suspend_into_a_missing_directory_is_refused(tmp_path: Path) -> None:
    hv, xs = RecordingHypervisor(), RecordingXenstore()
    vm = _running(hv, xs)
    with pytest.raises(TaskError, match=r"directory .*missing does not exist"):
        vm.suspend(str(tmp_path / "missing" / "x.img"))
    assert vm.state is State.RUNNING and hv.calls == []


def test_restore_of_a_file_that_is_not_an_image_touches_nothing(tmp_path: Path) -> None:
    hv, xs = RecordingHypervisor(), RecordingXenstore()
    vm = VmMachine(UUID, config(), env(hv, xs))
    bad = tmp_path / "bad.img"
    bad.write_bytes(b"nonsense")
    with pytest.raises(TaskError, match="not a saved domain image"):
        vm.restore(str(bad))
    with pytest.raises(TaskError, match="cannot read"):
        vm.restore(str(tmp_path / "none.img"))
    assert (vm.state, vm.op, hv.calls, xs.calls) == (State.SHUTDOWN, None, [], [])


def test_a_created_vm_stays_created_and_follows_an_outside_unpause() -> None:
    """A paused start ends in created (as the original's): the domain is paused because it has
    not run, which the next look at the hypervisor must not take for a pause from outside."""
    hv, xs = RecordingHypervisor(), RecordingXenstore()
    hv.add(5, paused=True)
    vm = VmMachine(UUID, config(), env(hv, xs))
    vm.resume(VmView(UUID, State.CREATED, 5, -1, vm.config, None, None, None))
    vm.check_state()
    assert (vm.state, vm.domid) == (State.CREATED, 5)
    hv.add(5)  # unpaused from outside (xl unpause): it runs
    vm.check_state()
    assert vm.state is State.RUNNING
    hv.add(5, paused=True)  # then paused from outside
    vm.check_state()
    assert vm.state is State.PAUSED
    assert hv.calls == []


def test_config_changes_are_pending_while_a_domain_exists() -> None:
    hv, xs = RecordingHypervisor(), RecordingXenstore()
    stopped = VmMachine(UUID, config(), env(hv, xs))
    stopped.set_config("memory", "96")
    assert stopped.config.memory == 96 and stopped.next_config is None
    vm = _running(hv, xs)
    vm.set_config("memory", "128")
    assert (vm.config.memory, vm.view().current_config.memory) == (64, 128)
    with pytest.raises(TaskError, match=r"^set: "):
        vm.set_config("memory", "lots")
    assert hv.calls == []


def test_a_vm_keeps_its_uuid() -> None:
    vm = VmMachine(UUID, config(), env(RecordingHypervisor(), RecordingXenstore()))
    other = "11111111-2222-4333-8444-555555555555"
    with pytest.raises(TaskError, match=rf"^set: the config is VM {other}'s"):
        vm.set_config("uuid", other)
    with pytest.raises(TaskError, match=rf"^set-config: the config is VM {other}'s"):
        vm.replace_config(f"uuid = {other}\nmemory = 64\n")
    assert vm.config.uuid is None and vm.next_config is None
    vm.set_config("uuid", UUID.upper())  # its own, in any case
    assert vm.config.uuid == UUID


def test_device_edits_without_a_domain_only_change_the_config() -> None:
    hv, xs = RecordingHypervisor(), RecordingXenstore()
    vm = VmMachine(UUID, config(), env(hv, xs))
    vm.add_device("disk", "/dev/vg/d:phy:xvdb:w:disk:none")
    vm.add_device("nic", "bridge=br0")
    assert [d.virtpath for d in vm.config.disks] == ["xvdb"]
    assert [n.nic_id for n in vm.config.nics] == [0]
    vm.remove_device("disk", "xvdb")
    vm.remove_device("nic", "0")
    assert vm.config.disks == () and vm.config.nics == ()
    assert hv.calls == [] and xs.calls == []


# ------------------------------------------------------------------ device changes (pure)


def test_added_names_the_new_device() -> None:
    cfg = config()
    disk = added(cfg, "disk", "/dev/vg/d:phy:xvdb:w:disk:none")
    assert disk.device == disk.config.disks[-1] and disk.device.virtpath == "xvdb"
    one = added(cfg, "nic", "id=3,bridge=br0").config
    two = added(one, "nic", "bridge=br1")
    assert two.device.nic_id == 0 and {n.nic_id for n in two.config.nics} == {0, 3}
    with pytest.raises(TaskError, match=r"^nic-add: .*duplicate nic id 3"):
        added(one, "nic", "id=3")
    with pytest.raises(TaskError, match=r"^disk-add: "):
        added(cfg, "disk", "nonsense")


def test_removed_names_the_frontend() -> None:
    cfg = added(added(config(), "disk", "/dev/vg/d:phy:xvdb:w:disk:none").config, "nic",
                "id=2").config
    disk = removed(cfg, "disk", "xvdb")
    assert (disk.kind, disk.devid, disk.config.disks) == (Kind.VBD, 51728, ())
    nic = removed(cfg, "nic", "2")
    assert (nic.kind, nic.devid, nic.config.nics) == (Kind.VIF, 2, ())
    with pytest.raises(TaskError, match="disk-del: no disk 'xvdz'"):
        removed(cfg, "disk", "xvdz")
    with pytest.raises(TaskError, match="nic-del: no nic '7'"):
        removed(cfg, "nic", "7")


# ------------------------------------------------------------------ the start argument


def test_the_start_argument_survives_the_snapshot_store() -> None:
    for cfg in ("name = a\nmemory = 64\n", config_to_dict(config())):
        start = VmStart(UUID, cfg)
        (back,) = decode(encode([start]))  # as the supervisor persists a child's arguments
        assert isinstance(back, VmStart) and back.uuid == UUID
        assert _start_arg(back, ()) is back


def test_a_child_persisted_by_the_previous_version_still_starts() -> None:
    assert _start_arg(UUID, ("name = a\n", "default")) == VmStart(UUID, "name = a\n")
    with pytest.raises(TypeError, match="takes a VmStart"):
        _start_arg(UUID, ())
