"""Plans: contents, ordering rules and error policies, with no backend at all."""

from __future__ import annotations

import dataclasses
import uuid as uuidlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import xen.xenops as xenops
from xen.hypervisor import DomainSpec as HvDomainSpec
from xen.hypervisor import HvmParam, ShutdownReason
from xen.xenops._atomics import (
    Appears,
    Atomic,
    Becomes,
    Cleared,
    Disappears,
    IfAllSucceed,
    Introduce,
    Mkdir,
    Plan,
    Rm,
    Transaction,
    WaitDomain,
    WaitFor,
    WaitFreeMemory,
    Write,
    WriteIfEquals,
)
from xen.xenops._calls import (
    CreateDomain,
    DestroyDomain,
    InputDetachVkbd,
    KillProcess,
    LoopDetach,
    PciAdd,
    PciBind,
    PciFlr,
    PciRelease,
    SetHvmParam,
    SetMaxMem,
    SetMaxVcpus,
    ShadowAllocation,
    ShutdownDomain,
    SurfmanSetPvDisplay,
)
from xen.xenops._checks import PlanError
from xen.xenops._devid import XenbusState
from xen.xenops._devspec import PciDev, PciSpec, PvDeviceSpec, VbdSpec, VifSpec
from xen.xenops._layout import Device, Endpoint, Kind, Perms, PhysType
from xen.xenops._memory import build_memory
from xen.xenops._plan import (
    BuildResult,
    DomainSpec,
    Timeouts,
    domain_create_call,
    domain_create_flags,
    order_devices,
    plan_build_post,
    plan_build_pre,
    plan_device_add,
    plan_domain_create,
    plan_hard_shutdown,
    plan_set_memory_target,
    plan_shutdown_request,
    plan_vcpus,
)
from xen.xenops._teardown import (
    ObservedDevice,
    ObservedDomain,
    plan_device_remove,
    plan_domain_destroy,
    stuck_handle,
)

UUID = "11111111-2222-3333-4444-555555555555"


def writes(plan: Plan) -> dict[str, str]:
    return {a.path: a.value for a in plan.walk() if isinstance(a, Write)}


def index(plan: Plan, pred: Callable[[Atomic], bool]) -> int:
    for i, atomic in enumerate(plan.walk()):
        if pred(atomic):
            return i
    raise AssertionError("no such step")


# ------------------------------------------------------------------- domain create/build


def test_create_flags() -> None:
    assert domain_create_flags(DomainSpec(UUID)) == ()
    assert domain_create_flags(DomainSpec(UUID, hvm=True)) == ("hvm", "hap")
    assert domain_create_flags(DomainSpec(UUID, hvm=True, hap=False)) == ("hvm",)
    off = DomainSpec(UUID, hvm=True, platform=(("hap", "false"),))
    assert domain_create_flags(off) == ("hvm",)
    on = DomainSpec(UUID, hvm=True, hap=False, platform=(("hap", "true"),))
    assert domain_create_flags(on) == ("hvm", "hap")


def test_domain_create_call_carries_everything_a_create_needs() -> None:
    call = domain_create_call(DomainSpec(UUID, hvm=True, ssidref=7), vcpus=2,
                              memory_kib=65536, max_memory_kib=66560)
    assert call == CreateDomain(HvDomainSpec(
        handle=uuidlib.UUID(UUID), hvm=True, hap=True, ssidref=7, max_vcpus=2,
        memory_kib=65536, max_memory_kib=66560))
    pv = domain_create_call(DomainSpec(UUID), vcpus=1, memory_kib=1024)
    assert not pv.spec.hvm and pv.spec.max_memory_kib is None and pv.spec.max_pages == 256
    no_hap = domain_create_call(DomainSpec(UUID, hvm=True, platform=(("hap", "false"),)),
                                vcpus=1, memory_kib=1024)
    assert no_hap.spec.hvm and not no_hap.spec.hap


@pytest.mark.parametrize(("uuid", "vcpus", "memory_kib", "named"), [
    ("not-a-uuid", 1, 1024, "DomainSpec.uuid"),
    (UUID, 0, 1024, "max_vcpus"),
    (UUID, 1, -1, "memory_kib"),
])
def test_domain_create_call_rejects_bad_values_at_planning(
        uuid: str, vcpus: int, memory_kib: int, named: str) -> None:
    with pytest.raises(PlanError, match=named):
        domain_create_call(DomainSpec(uuid), vcpus=vcpus, memory_kib=memory_kib)


def test_domain_create_layout() -> None:
    plan = plan_domain_create(DomainSpec(UUID, platform=(("acpi", "1"),)), 12)
    first = plan.steps[0]
    assert isinstance(first, Transaction)
    mkdirs = {op.path: op.perms for op in first.ops if isinstance(op, Mkdir)}
    ro, rw = Perms(0, "n", ((12, "r"),)), Perms(12)
    assert mkdirs["/local/domain/12"] == ro
    assert mkdirs[f"/vm/{UUID}"] == ro
    assert mkdirs[f"/vss/{UUID}"] == rw
    assert mkdirs["/local/domain/12/cpu"] == ro and mkdirs["/local/domain/12/memory"] == ro
    for sub in ("device", "error", "drivers", "control", "attr", "data", "messages"):
        assert mkdirs[f"/local/domain/12/{sub}"] == rw
    # each tree is cleared before it is made
    ops = first.ops
    assert ops.index(Rm("/local/domain/12")) < ops.index(Mkdir("/local/domain/12", ro))
    w = writes(plan)
    assert w["/local/domain/12/name"] == "Domain-12"
    assert w["/local/domain/12/vm"] == f"/vm/{UUID}"
    assert w[f"/vm/{UUID}/uuid"] == UUID
    assert w["/local/domain/12/platform/acpi"] == "1"
    assert w["/local/domain/12/control/platform-feature-multiprocessor-suspend"] == "1"
    assert not plan.best_effort


def test_build_pre_and_post() -> None:
    mem = build_memory(hvm=True, vcpus=2, static_max_kib=1024 * 1024, target_kib=1024 * 1024)
    pre = plan_build_pre(3, mem, timer_mode=1)
    assert pre.steps[0] == WaitFreeMemory(1036 * 1024, Timeouts().free_memory)
    assert pre.steps[1:] == (
        SetHvmParam(3, HvmParam.TIMER_MODE, 1, ignore_errors=True),
        SetMaxVcpus(3, 2),
        SetMaxMem(3, 1025 * 1024),
        ShadowAllocation(3, 10),
    )
    # a VM start's create set maxmem already: its build-pre leaves it out, nothing else
    assert plan_build_pre(3, mem, timer_mode=1, maxmem=False).steps == tuple(
        step for step in pre.steps if not isinstance(step, SetMaxMem))
    every = plan_build_pre(3, mem, timer_mode=0, hpet=1, vpt_align=1)
    params = [(a.param, a.value) for a in every.steps if isinstance(a, SetHvmParam)]
    assert params == [(HvmParam.TIMER_MODE, 0), (HvmParam.HPET_ENABLED, 1),
                      (HvmParam.VPT_ALIGN, 1)]
    assert all(a.ignore_errors for a in every.steps if isinstance(a, SetHvmParam))

    post = plan_build_post(3, UUID, mem, BuildResult(1001, 7, 1002, 8), timeoffset="3600")
    w = writes(post)
    assert w["/local/domain/3/memory/static-max"] == str(1024 * 1024)
    assert w["/local/domain/3/memory/target"] == str(1024 * 1024)
    assert w["/local/domain/3/store/ring-ref"] == "1001"
    assert w["/local/domain/3/store/port"] == "7"
    assert w["/local/domain/3/console/limit"] == "65536"
    assert w["/local/domain/3/hvmloader/bios"] == "seabios"
    assert w[f"/vm/{UUID}/rtc/timeoffset"] == "3600"
    assert post.steps[-1] == Introduce(3, 1001, 7)
    assert w["/local/domain/3/console/type"] == "xenconsoled"
    # every vcpu online in the same transaction as the store keys, before INTRODUCE (libxl)
    assert {k: v for k, v in w.items() if "/cpu/" in k} == {
        "/local/domain/3/cpu/0/availability": "online",
        "/local/domain/3/cpu/1/availability": "online"}
    assert all(isinstance(step, Transaction) for step in post.steps[:-1])
    assert any("/local/domain/3/cpu/1/availability" == op.path and isinstance(op, Write)
               for op in post.steps[0].ops)
    pv = build_memory(hvm=False, vcpus=1, static_max_kib=65536, target_kib=65536)
    # a PV guest gets no shadow pool (only log-dirty uses it; Xen without shadow paging
    # refuses it for PV)
    assert not [a for a in plan_build_pre(3, pv).steps if isinstance(a, ShadowAllocation)]
    pv_writes = writes(plan_build_post(3, UUID, pv, BuildResult(1, 2, 3, 4)))
    assert "/local/domain/3/hvmloader/bios" not in pv_writes
    assert f"/vm/{UUID}/rtc/timeoffset" not in pv_writes


def test_build_post_with_the_tree_is_one_transaction_before_introduce() -> None:
    spec = DomainSpec(UUID, name="guest", platform=(("acpi", "1"),))
    mem = build_memory(hvm=True, vcpus=1, static_max_kib=65536, target_kib=65536)
    built = BuildResult(1001, 7, 1002, 8)
    post = plan_build_post(3, UUID, mem, built, tree=spec, timeoffset="60")
    assert len(post.steps) == 2 and post.steps[1] == Introduce(3, 1001, 7)
    tx = post.steps[0]
    assert isinstance(tx, Transaction)
    # the tree first (cleared, then made), then the build's keys: plan_domain_create's
    # requests and plan_build_post's, in that order, in one transaction
    tree_ops = plan_domain_create(spec, 3).steps[0].ops
    keys = [op for step in plan_build_post(3, UUID, mem, built, timeoffset="60").steps
            if isinstance(step, Transaction) for op in step.ops]
    assert tx.ops == (*tree_ops, *keys)
    assert writes(post)[f"/vm/{UUID}/rtc/timeoffset"] == "60"
    with pytest.raises(PlanError, match="uuid"):
        plan_build_post(3, UUID, mem, built, tree=DomainSpec(str(uuidlib.uuid4())))


def test_vcpus_and_memory_target() -> None:
    assert writes(plan_vcpus(2, 3, online=2)) == {
        "/local/domain/2/cpu/0/availability": "online",
        "/local/domain/2/cpu/1/availability": "online",
        "/local/domain/2/cpu/2/availability": "offline",
    }
    assert writes(plan_set_memory_target(2, 1027)) == {"/local/domain/2/memory/target": "1024"}


# ------------------------------------------------------------------------ device add


def test_device_add_is_one_transaction_then_hotplug_wait() -> None:
    spec = VbdSpec(5, "xvda", "/dev/sda", PhysType.PHY, backend_domid=1)
    plan = plan_device_add(spec, Timeouts(hotplug=2.5))
    tx = plan.steps[0]
    assert isinstance(tx, Transaction)
    fe, be = "/local/domain/5/device/vbd/51712", "/local/domain/1/backend/vbd/5/51712"
    assert tx.ops[:6] == (
        Rm(fe), Rm(be),
        Mkdir(fe, Perms(5, "n", ((1, "r"),))),
        Mkdir(be, Perms(1, "n", ((5, "r"),))),
        Rm("/xapi/5/hotplug/vbd/51712"),
        Mkdir("/xapi/5/hotplug/vbd/51712", Perms(1)),
    )
    w = writes(plan)
    assert w[f"{fe}/backend"] == be and w[f"{be}/frontend"] == fe
    wait = plan.steps[1]
    assert wait == WaitFor(Appears("/xapi/5/hotplug/vbd/51712/hotplug"), 2.5,
                           "hotplug add of vbd/51712 of domain 5")
    assert len(plan.steps) == 2


def test_dom0_vbd_waits_for_frontend_or_tapdisk_error() -> None:
    plan = plan_device_add(VbdSpec(0, "xvdb", "/img.vhd", PhysType.VHD))
    last = plan.steps[-1]
    assert isinstance(last, WaitFor)
    assert last.predicate == Appears("/xapi/0/frontend/vbd/51728/hotplug")
    assert last.error == Appears("/local/domain/0/backend/tap/0/51728/tapdisk-error")


def test_pv_file_vbd_records_loop_device_before_the_add() -> None:
    spec = VbdSpec(5, "xvda", "/a.img", PhysType.FILE, loop_device="/dev/loop0",
                   physical_device=(7, 0))
    plan = plan_device_add(spec)
    assert plan.steps[0] == Write("/xapi/5/hotplug-extra/vbd/51712/loop-device", "/dev/loop0")


def test_vif_add_writes_bridge_and_connected_after_hotplug() -> None:
    plan = plan_device_add(VifSpec(5, 0, "00:16:3e:aa:bb:cc", network="/net/br0"))
    kinds = [type(a).__name__ for a in plan.steps]
    assert kinds == ["Transaction", "WaitFor", "Write", "Write"]
    assert plan.steps[2] == Write("/local/domain/0/backend/vif/5/0/bridge", "/net/br0")
    assert plan.steps[3] == Write("/local/domain/0/backend/vif/5/0/hotplug-status", "connected")


def test_pci_add_binds_and_assigns_before_the_backend() -> None:
    spec = PciSpec(5, 0, (PciDev(0, 3, 0, 0),), bind=True, flr=True)
    plan = plan_device_add(spec)
    assert plan.steps[0] == PciBind("0000:03:00.0")
    assert plan.steps[1] == PciAdd(5, "0000:03:00.0", assign=True, permissive=False, flr=True,
                                   hvm=True, pvpci=True)
    assert isinstance(plan.steps[2], Transaction)
    assert not any(isinstance(a, WaitFor) for a in plan.walk())


def test_vfb_add_tells_surfman() -> None:
    plan = plan_device_add(PvDeviceSpec(Kind.VFB, 5))
    assert plan.steps[-1] == SurfmanSetPvDisplay(5)


def test_order_devices_rw_disks_before_ro_then_vifs_then_pci() -> None:
    ro = VbdSpec(1, "hdc", "/iso", PhysType.FILE, mode="r", hvm=True)
    rw1 = VbdSpec(1, "hda", "/a", PhysType.PHY)
    rw2 = VbdSpec(1, "hdb", "/b", PhysType.PHY)
    vif = VifSpec(1, 0, "00:16:3e:00:00:00")
    pci = PciSpec(1, 0, (PciDev(0, 1, 0, 0),))
    vfb = PvDeviceSpec(Kind.VFB, 1)
    ordered = order_devices([vfb, pci, ro, vif, rw1, rw2])
    assert ordered == (rw1, rw2, ro, vif, pci, vfb)


# --------------------------------------------------------------------- device remove


def vbd_device(fe: int = 5) -> Device:
    return Device(Endpoint(fe, Kind.VBD, 51712), Endpoint(0, Kind.VBD, 51712))


def vif_device() -> Device:
    return Device(Endpoint(5, Kind.VIF, 0), Endpoint(0, Kind.VIF, 0))


def test_clean_vbd_remove_requests_closing_and_waits_for_closed() -> None:
    plan = plan_device_remove(ObservedDevice(vbd_device()), "clean", release=False)
    be = "/local/domain/0/backend/vbd/5/51712"
    assert plan.steps[0] == Transaction((
        Write(f"{be}/online", "0"), WriteIfEquals(f"{be}/state", "4", "5")))
    wait = plan.steps[1]
    assert isinstance(wait, WaitFor)
    assert wait.predicate == Becomes(f"{be}/state", "6")
    assert wait.error == Appears("/local/domain/5/error/device/vbd/51712/error")
    assert wait.remove_error_node
    assert plan.steps[2:] == (Rm("/local/domain/5/device/vbd/51712"), Rm(be),
                              Rm("/local/domain/5/error/device/vbd/51712"))
    assert not plan.best_effort


def test_clean_vbd_remove_not_connected_does_not_wait() -> None:
    obs = ObservedDevice(vbd_device(), backend_state=XenbusState.INIT_WAIT)
    plan = plan_device_remove(obs, "clean", release=False)
    assert not any(isinstance(a, WaitFor) for a in plan.walk())
    gone = plan_device_remove(ObservedDevice(vbd_device(), backend_state=None), "clean",
                              release=False)
    assert all(isinstance(a, Rm) for a in gone.steps)


def test_clean_vif_remove_without_a_connected_frontend_takes_the_backend_away() -> None:
    """A vif whose frontend never connected (a guest without netfront, a plug cut short by a
    kill): asking it to close changes nothing and netback's hotplug script would never remove
    it, so nic-del waited out its timeout, every time. The backend goes as in a hard remove;
    the plan still fails on a timeout (not best effort). A connected one is asked to close."""
    obs = ObservedDevice(vif_device(), backend_state=XenbusState.INIT_WAIT)
    plan = plan_device_remove(obs, "clean", release=False)
    assert plan.steps == plan_device_remove(obs, "hard", release=False).steps
    assert not plan.best_effort
    connected = plan_device_remove(ObservedDevice(vif_device()), "clean", release=False)
    be = "/local/domain/0/backend/vif/5/0"
    assert connected.steps[0] == Transaction((
        Write(f"{be}/online", "0"), WriteIfEquals(f"{be}/state", "4", "5")))


def test_hard_vif_remove_order() -> None:
    plan = plan_device_remove(ObservedDevice(vif_device()), "hard", release=False)
    be = "/local/domain/0/backend/vif/5/0"
    assert plan.steps[0] == Write(f"{be}/online", "0")
    assert plan.steps[1:3] == (Rm("/local/domain/5/device/vif/0"), Rm(be))
    assert isinstance(plan.steps[3], WaitFor)  # the backend's removal makes netback let go
    assert plan.steps[4:] == (Rm("/xapi/5/hotplug/vif/0"),)
    assert plan.best_effort


def test_hard_vbd_remove_takes_the_backend_away_before_waiting() -> None:
    plan = plan_device_remove(ObservedDevice(vbd_device()), "hard", release=False)
    be = "/local/domain/0/backend/vbd/5/51712"
    wait = next(i for i, a in enumerate(plan.steps) if isinstance(a, WaitFor))
    assert plan.steps.index(Rm("/local/domain/5/device/vbd/51712")) < plan.steps.index(Rm(be))
    assert plan.steps.index(Rm(be)) < wait


def test_release_waits_then_frees_loop_device_then_private_dirs() -> None:
    obs = ObservedDevice(vbd_device(), backend_state=None, loop_device="/dev/loop3")
    plan = plan_device_remove(obs, "hard")
    steps = plan.steps
    wait = next(i for i, a in enumerate(steps) if isinstance(a, WaitFor))
    loop = steps.index(LoopDetach("/dev/loop3"))
    assert wait < loop < steps.index(Rm("/xapi/5/hotplug/vbd/51712"))


@pytest.mark.parametrize("mode", ["clean", "hard"])
def test_vkbd_remove_tells_the_input_daemon(mode: str) -> None:
    vkbd = Device(Endpoint(5, Kind.VKBD, 0), Endpoint(0, Kind.VKBD, 0))
    plan = plan_device_remove(ObservedDevice(vkbd), mode, release=False)  # type: ignore[arg-type]
    assert plan.steps == (InputDetachVkbd(5),)


def test_remove_mode_is_checked() -> None:
    with pytest.raises(PlanError):
        plan_device_remove(ObservedDevice(vif_device()), "soft")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ shutdown


@pytest.mark.parametrize(
    ("pv", "s_state", "button", "expected"),
    [
        (False, 3, True, "hypercall"),   # sleeping without PV driver
        (False, 0, False, "hypercall"),  # no ACPI power button
        (True, 0, False, "hypercall"),
        (False, 0, True, "hvm-shutdown"),
        (True, 0, True, "pv-driver"),
        (True, 3, True, "pv-driver"),
    ],
)
def test_hvm_shutdown_matrix(pv: bool, s_state: int, button: bool, expected: str) -> None:
    plan = plan_shutdown_request(4, ShutdownReason.POWEROFF, hvm=True, has_pv_driver=pv,
                                 acpi_s_state=s_state, powerbutton_enabled=button)
    assert plan.steps[0] == Write("/local/domain/4/control/shutdown", "poweroff")
    rest = plan.steps[1:]
    if expected == "hypercall":
        assert rest == (ShutdownDomain(4, ShutdownReason.POWEROFF),)
    elif expected == "hvm-shutdown":
        assert rest == (Write("/local/domain/4/control/hvm-shutdown", "poweroff"),)
    else:
        assert rest == ()


def test_pv_shutdown_waits_for_ack() -> None:
    plan = plan_shutdown_request(4, ShutdownReason.REBOOT, hvm=False, timeouts=Timeouts(
        shutdown_ack=3))
    assert plan.steps[1] == WaitFor(Cleared("/local/domain/4/control/shutdown"), 3,
                                    "domain 4 to acknowledge reboot")
    assert plan.name == "shutdown-request reboot"
    assert len(plan_shutdown_request(4, ShutdownReason.SUSPEND, hvm=False, wait_ack=False)) == 1


@pytest.mark.parametrize(("reason", "word"), [
    (ShutdownReason.POWEROFF, "poweroff"), (ShutdownReason.REBOOT, "reboot"),
    (ShutdownReason.SUSPEND, "suspend"), (ShutdownReason.CRASH, "crash"),
    (ShutdownReason.HALT, "halt"),
])
def test_shutdown_requests_write_the_original_words(reason: ShutdownReason, word: str) -> None:
    plan = plan_shutdown_request(4, reason, hvm=True)
    assert plan.steps == (Write("/local/domain/4/control/shutdown", word),
                          ShutdownDomain(4, reason))
    assert plan_hard_shutdown(1, reason) == Plan(f"hard-shutdown {word}",
                                                 (ShutdownDomain(1, reason),))


def test_soft_reset_is_never_asked_of_a_guest() -> None:
    with pytest.raises(PlanError, match="SOFT_RESET"):
        plan_shutdown_request(4, ShutdownReason.SOFT_RESET, hvm=False)
    with pytest.raises(PlanError, match="SOFT_RESET"):
        plan_hard_shutdown(1, ShutdownReason.SOFT_RESET)


# -------------------------------------------------------------------------- destroy


def full_domain() -> ObservedDomain:
    pci = ObservedDevice(Device(Endpoint(7, Kind.PCI, 0), Endpoint(0, Kind.PCI, 0)),
                         pci_bdfs=("0000:03:00.0",))
    vbd = ObservedDevice(Device(Endpoint(7, Kind.VBD, 768), Endpoint(0, Kind.VBD, 768)))
    vif = ObservedDevice(Device(Endpoint(7, Kind.VIF, 0), Endpoint(0, Kind.VIF, 0)))
    stub_vbd = ObservedDevice(Device(Endpoint(8, Kind.VBD, 768), Endpoint(0, Kind.VBD, 768)))
    stub_pci = ObservedDevice(Device(Endpoint(8, Kind.PCI, 0), Endpoint(0, Kind.PCI, 0)),
                              pci_bdfs=("0000:03:00.0",))
    stub = ObservedDomain(8, devices=(stub_vbd, stub_pci))
    return ObservedDomain(
        7, hvm=True, devices=(vbd, pci, vif), vm_path=f"/vm/{UUID}", vss_path=f"/vss/{UUID}",
        dm_agents=(0,), stubdom=stub, qemu_pid=4242, dm_helper_pids=(99,),
    )


def is_a(kind: type) -> Callable[[Atomic], bool]:
    return lambda a: isinstance(a, kind)


def test_destroy_order_follows_the_original() -> None:
    plan = plan_domain_destroy(full_domain())
    assert plan.best_effort
    pci_release = index(plan, lambda a: a == PciRelease(7, "0000:03:00.0", hvm=True,
                                                        ignore_errors=True))
    destroy = index(plan, lambda a: a == DestroyDomain(7))
    dm_agent = index(plan, lambda a: isinstance(a, Write) and a.path.endswith("/dms/7/destroy"))
    stub_halt = index(plan, lambda a: a == Write("/local/domain/8/control/shutdown", "halt"))
    stub_dead = index(plan, lambda a: isinstance(a, WaitDomain) and a.domid == 8)
    qemu = index(plan, lambda a: a == KillProcess(4242, Timeouts().device_model_stop))
    vbd_down = index(plan, lambda a: isinstance(a, Transaction) and any(
        op.path == "/local/domain/0/backend/vbd/7/768/state" for op in a.ops))
    flr = index(plan, lambda a: a == PciFlr("0000:03:00.0"))
    release = index(plan, lambda a: isinstance(a, IfAllSucceed) and a.then == (Rm("/xapi/7"),))
    rm_dom = index(plan, lambda a: a == Rm("/local/domain/7"))
    gone = index(plan, lambda a: isinstance(a, WaitDomain) and a.until == "gone")
    assert (pci_release < destroy < dm_agent < stub_halt < stub_dead < qemu < vbd_down < flr
            < release < rm_dom < gone)
    assert gone == len(list(plan.walk())) - 1


def test_destroy_device_model_before_passthrough_reset() -> None:
    # PCI is released before the domain dies, and FLR comes only after qemu has stopped.
    plan = plan_domain_destroy(full_domain())
    assert index(plan, is_a(KillProcess)) < index(plan, is_a(PciFlr))


def test_destroy_stubdom_without_flr_and_without_gone_wait() -> None:
    plan = plan_domain_destroy(full_domain())
    destroys = [a.domid for a in plan.walk() if isinstance(a, DestroyDomain)]
    assert destroys == [7, 8]
    assert len([a for a in plan.walk() if isinstance(a, PciFlr)]) == 1
    gone = [a for a in plan.walk() if isinstance(a, WaitDomain) and a.until == "gone"]
    assert [g.domid for g in gone] == [7]
    assert gone[0].stuck_handle == stuck_handle(7) == "deadbeef-dead-beef-dead-beef00000007"
    # the stub's copy of the PCI group: released (PV: pciback restrictive) but never deassigned
    releases = [a for a in plan.walk() if isinstance(a, PciRelease)]
    assert [(r.domid, r.hvm, r.assigned) for r in releases] == [(7, True, True), (8, False, False)]


def test_destroy_keeps_xapi_unless_every_release_succeeded() -> None:
    plan = plan_domain_destroy(full_domain())
    guarded = [a for a in plan.steps if isinstance(a, IfAllSucceed)]
    assert [g.then for g in guarded if g.then == (Rm("/xapi/7"),)]
    main = next(g for g in guarded if g.then == (Rm("/xapi/7"),))
    released = {a.path for a in main.body if isinstance(a, Rm)}
    assert "/xapi/7/hotplug/vif/0" in released
    assert Rm("/xapi/7") not in plan.steps


def test_destroy_removes_trees_unless_preserved() -> None:
    rms = {a.path for a in plan_domain_destroy(full_domain()).walk() if isinstance(a, Rm)}
    assert {f"/vm/{UUID}", f"/vss/{UUID}", "/local/domain/7",
            "/local/domain/0/backend/vbd/7", "/local/domain/0/backend/pci/7",
            "/local/domain/0/device-model/7", "/local/domain/7/qemu-pid"} <= rms
    kept = plan_domain_destroy(full_domain(), preserve_vm=True)
    kept_rms = {a.path for a in kept.walk() if isinstance(a, Rm)}
    assert f"/vm/{UUID}" not in kept_rms and "/local/domain/7" in kept_rms


def test_destroy_waits_are_short_by_default() -> None:
    waits = [a for a in plan_domain_destroy(full_domain()).walk()
             if isinstance(a, WaitFor | WaitDomain)]
    assert waits and max(w.timeout for w in waits) <= 10.0


def test_destroy_of_a_bare_domain() -> None:
    plan = plan_domain_destroy(ObservedDomain(3))
    kinds = [type(a).__name__ for a in plan.steps]
    assert kinds == ["DestroyDomain", "Rm", "IfAllSucceed", "Rm", "WaitDomain"]


# ------------------------------------------------------------------ atomics, values


@pytest.mark.parametrize("path", ["", "a/b", "/a//b", "/a/", "/a\0b", "/" + "x" * 4000])
def test_bad_paths_are_rejected_at_planning(path: str) -> None:
    with pytest.raises(PlanError):
        Write(path, "v")


def test_special_watch_paths_are_allowed() -> None:
    assert Appears("@releaseDomain").path == "@releaseDomain"


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan")])
def test_bad_timeouts_are_rejected(timeout: float) -> None:
    with pytest.raises(PlanError):
        WaitFor(Disappears("/a"), timeout, "x")
    with pytest.raises(PlanError):
        Timeouts(hotplug=timeout)


def test_an_empty_transaction_is_rejected() -> None:
    with pytest.raises(PlanError):
        Transaction(())


def test_plans_are_immutable_values() -> None:
    plan = plan_vcpus(1, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.name = "x"  # type: ignore[misc]
    assert plan == plan_vcpus(1, 1) and hash(plan) == hash(plan_vcpus(1, 1))


def test_every_public_class_is_a_frozen_slotted_dataclass() -> None:
    for name in xenops.__all__:
        obj = getattr(xenops, name)
        if isinstance(obj, type) and dataclasses.is_dataclass(obj):
            params = obj.__dataclass_params__  # type: ignore[attr-defined]
            assert params.frozen, name
            assert "__slots__" in obj.__dict__, name


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=6), st.booleans())
def test_walk_visits_every_nested_step_in_order(names: list[str], best_effort: bool) -> None:
    inner: tuple[Atomic, ...] = tuple(Write(f"/{n}", n) for n in names)
    plan = Plan("p", (Transaction(inner[:1]), IfAllSucceed(inner, inner)), best_effort)  # type: ignore[arg-type]
    flat = [a for a in plan.walk() if isinstance(a, Write)]
    assert flat == [inner[0], *inner, *inner]
