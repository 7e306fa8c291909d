"""The plan executor's dispatch: each step type to one member, with recording fakes (no
backend, no xenstore, no host)."""

from __future__ import annotations

import logging
import typing
import uuid
from typing import Any

import pytest

from xen.hypervisor import DomainSpec, HvmParam, ShutdownReason, Unsupported
from xen.xenops import (
    AssignDevice,
    Atomic,
    CreateDomain,
    DeassignDevice,
    DestroyDomain,
    HostAction,
    HostActions,
    HypervisorCall,
    InputAttachVkbd,
    InputDetachVkbd,
    IomemPermission,
    IoportPermission,
    IrqPermission,
    KillProcess,
    LoopDetach,
    MapPirq,
    PauseDomain,
    PciAdd,
    PciBar,
    PciBind,
    PciFlr,
    PciHostDevice,
    PciPermissive,
    PciRelease,
    Plan,
    PlanExecutor,
    PlanFailed,
    SetDomainHandle,
    SetHvmParam,
    SetMaxMem,
    SetMaxVcpus,
    SetTarget,
    ShadowAllocation,
    ShutdownDomain,
    SurfmanSetPvDisplay,
    UnmapPirq,
    UnpauseDomain,
    Write,
)
from xen.xenops._executor import describe

HANDLE = uuid.UUID("11111111-2222-3333-4444-555555555555")
SPEC = DomainSpec(handle=HANDLE, hvm=True, max_vcpus=2, memory_kib=65536)
BDF = "0000:03:00.0"


class Recorder:
    """Records every member called on it, with its arguments; answers from ``returns``."""

    def __init__(self, **returns: object) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.returns = returns

    def __getattr__(self, name: str) -> Any:
        def member(*args: object) -> object:
            self.calls.append((name, args))
            return self.returns.get(name)
        return member


def executor(**returns: object) -> tuple[PlanExecutor, Recorder, Recorder, Recorder]:
    hv, xs, host = Recorder(**returns), Recorder(), Recorder()
    return PlanExecutor(hv, xs, host), hv, xs, host  # type: ignore[arg-type]


#: Each call, and the hypervisor member it must reach with these arguments.
HYPERCALLS: list[tuple[HypervisorCall, str, tuple[object, ...]]] = [
    (DestroyDomain(3), "destroy", (3,)),
    (ShutdownDomain(3, ShutdownReason.HALT), "shutdown", (3, ShutdownReason.WATCHDOG)),
    (PauseDomain(3), "pause", (3,)),
    (UnpauseDomain(3), "unpause", (3,)),
    (SetDomainHandle(3, HANDLE), "set_handle", (3, HANDLE)),
    (SetTarget(4, 3), "set_target", (4, 3)),
    (SetMaxVcpus(3, 2), "max_vcpus", (3, 2)),
    (SetMaxMem(3, 1024), "setmaxmem", (3, 1024)),
    (ShadowAllocation(3, 10), "shadow_allocation", (3, 10)),
    (SetHvmParam(3, HvmParam.TIMER_MODE, 1), "set_hvm_param", (3, HvmParam.TIMER_MODE, 1)),
    (IoportPermission(3, 0x3F8, 8, allow=True), "ioport_permission", (3, 0x3F8, 8, True)),
    (IomemPermission(3, 0xFEBF0, 1, allow=False), "iomem_permission", (3, 0xFEBF0, 1, False)),
    (AssignDevice(3, BDF), "assign_device", (3, BDF)),
    (DeassignDevice(3, BDF), "deassign_device", (3, BDF)),
    (IrqPermission(3, 16, allow=True), "irq_permission", (3, 16, True)),
    (MapPirq(3, 16), "map_pirq", (3, 16)),
    (UnmapPirq(3, 16), "unmap_pirq", (3, 16)),
]

#: Each host action, and the HostActions method it must reach with these arguments.
ACTIONS: list[tuple[HostAction, str, tuple[object, ...]]] = [
    (PciBind(BDF), "pci_bind", (BDF,)),
    (PciFlr(BDF), "pci_flr", (BDF,)),
    (PciPermissive(BDF), "pci_permissive", (BDF,)),
    (PciPermissive(BDF, allow=False), "pci_restrictive", (BDF,)),
    (LoopDetach("/dev/loop3"), "loop_detach", ("/dev/loop3",)),
    (KillProcess(4242, 2.5), "kill_process", (4242, 2.5)),
    (SurfmanSetPvDisplay(3), "surfman_set_pv_display", (3,)),
    (InputAttachVkbd(3), "input_attach_vkbd", (3,)),
    (InputDetachVkbd(3), "input_detach_vkbd", (3,)),
]

#: The composite PCI steps (the host describes the device; see test_pci_* below).
COMPOSITE: list[HypervisorCall] = [
    PciAdd(3, BDF, assign=True, permissive=False, flr=False, hvm=True, pvpci=True),
    PciRelease(3, BDF, hvm=True),
]
DEVICE = PciHostDevice(BDF, 0x0C0330, 0x8086, 0xA12F, 16,
                       (PciBar("mem", 0xF7F00000, 0x10000), PciBar("io", 0xE000, 0x20)))


def test_every_call_and_action_is_covered_here() -> None:
    covered = {type(c) for c, _, _ in HYPERCALLS + ACTIONS} | {type(c) for c in COMPOSITE}
    covered.add(CreateDomain)
    assert covered == set(typing.get_args(HypervisorCall)) | set(typing.get_args(HostAction))


@pytest.mark.parametrize(("call", "member", "args"), HYPERCALLS,
                         ids=[type(c).__name__ for c, _, _ in HYPERCALLS])
def test_each_hypervisor_call_reaches_its_member_once(
        call: HypervisorCall, member: str, args: tuple[object, ...]) -> None:
    ex, hv, xs, host = executor(shadow_allocation=10)
    result = ex.run(Plan("p", (call,)))
    assert hv.calls == [(member, args)] and xs.calls == [] and host.calls == []
    assert result.ok and result.domid is None  # shadow_allocation's answer is not a domid


@pytest.mark.parametrize(("action", "method", "args"), ACTIONS,
                         ids=[type(a).__name__ for a, _, _ in ACTIONS])
def test_each_host_action_reaches_its_method_once(
        action: HostAction, method: str, args: tuple[object, ...]) -> None:
    ex, hv, xs, host = executor()
    assert ex.run(Plan("p", (action,))).ok
    assert host.calls == [(method, args)] and hv.calls == [] and xs.calls == []


def test_create_domain_gives_the_plan_its_domid() -> None:
    ex, hv, _, _ = executor(create=9)
    result = ex.run(Plan("domain-create", (CreateDomain(SPEC),)))
    assert hv.calls == [("create", (SPEC,))]
    assert result.domid == 9


def _pci_executor(hv: Any) -> tuple[PlanExecutor, Recorder]:
    host = Recorder(pci_device=DEVICE)
    return PlanExecutor(hv, Recorder(), host), host  # type: ignore[arg-type]


def test_pci_add_asks_the_host_then_assigns_and_grants_in_order() -> None:
    hv = Recorder(map_pirq=16)
    ex, host = _pci_executor(hv)
    add = PciAdd(3, BDF, assign=True, permissive=False, flr=True, hvm=True, pvpci=False)
    assert ex.run(Plan("p", (add,))).ok
    assert host.calls == [("pci_device", (BDF,)), ("pci_flr", (BDF,))]
    assert hv.calls == [("assign_device", (3, BDF)),
                        ("iomem_permission", (3, 0xF7F00, 16, True)),
                        ("ioport_permission", (3, 0xE000, 0x20, True)),
                        ("map_pirq", (3, 16)), ("irq_permission", (3, 16, True))]


class FailingAt(Recorder):
    """A recorder whose member ``bad`` raises."""

    def __init__(self, bad: str) -> None:
        super().__init__()
        self.bad = bad

    def __getattr__(self, name: str) -> Any:
        member = super().__getattr__(name)
        if name != self.bad:
            return member

        def failing(*args: object) -> object:
            member(*args)
            raise Unsupported(f"{name} refused")
        return failing


def test_a_pci_add_that_fails_half_way_releases_what_it_asked_for() -> None:
    hv = FailingAt("ioport_permission")
    ex, _ = _pci_executor(hv)
    add = PciAdd(3, BDF, assign=True, permissive=False, flr=False, hvm=True, pvpci=True)
    with pytest.raises(PlanFailed) as failed:
        ex.run(Plan("p", (add,)))
    assert "ioport_permission refused" in str(failed.value)
    names = [name for name, _ in hv.calls]
    assert names[:3] == ["assign_device", "iomem_permission", "ioport_permission"]
    assert names[3:] == ["deassign_device", "unmap_pirq", "irq_permission",
                         "iomem_permission", "ioport_permission"]  # the rollback, in order


def test_pci_release_runs_every_step_and_reports_the_failures() -> None:
    hv = FailingAt("deassign_device")
    ex, _ = _pci_executor(hv)
    with pytest.raises(PlanFailed, match="deassign_device refused"):
        ex.run(Plan("p", (PciRelease(3, BDF, hvm=True),)))
    assert [name for name, _ in hv.calls] == [
        "deassign_device", "unmap_pirq", "irq_permission", "iomem_permission",
        "ioport_permission"]
    assert ("irq_permission", (3, 16, False)) in hv.calls


def test_a_value_that_is_not_a_step_is_a_type_error_even_in_a_best_effort_plan() -> None:
    ex, hv, xs, _ = executor()
    junk: Any = ("domain_destroy", 3)
    with pytest.raises(TypeError, match="not a plan step"):
        ex.run(Plan("p", (Write("/a", "1"), junk, PauseDomain(3)), best_effort=True))
    assert xs.calls == [("write", ("/a", "1"))] and hv.calls == []


def test_the_base_host_actions_refuse_each_action_by_name() -> None:
    ex = PlanExecutor(Recorder(), Recorder(), HostActions())  # type: ignore[arg-type]
    with pytest.raises(Unsupported, match="host action pci_device on HostActions"):
        HostActions().pci_device(BDF)
    for action, method, _ in ACTIONS:
        with pytest.raises(PlanFailed) as failed:
            ex.run(Plan("p", (action,)))
        assert isinstance(failed.value.cause, Unsupported)
        assert f"not implemented: host action {method} on HostActions" in str(failed.value)


def test_describe_is_one_line_per_call_with_its_arguments() -> None:
    assert describe(SetMaxMem(3, 1024)) == "SetMaxMem(domid=3, kib=1024)"
    assert describe(SetHvmParam(3, HvmParam.HPET_ENABLED, 1, ignore_errors=True)) == (
        "SetHvmParam(domid=3, param=HPET_ENABLED, value=1) (errors ignored)")
    assert describe(KillProcess(4242, 10.0)) == "KillProcess(pid=4242, timeout=10)"
    assert describe(CreateDomain(SPEC)) == (
        f"CreateDomain(handle={HANDLE}, hvm=True, hap=True, ssidref=0, max_vcpus=2, "
        f"memory_kib=65536, max_memory_kib=None)")
    every: list[Atomic] = [c for c, _, _ in HYPERCALLS + ACTIONS] + COMPOSITE
    assert all("\n" not in describe(step) for step in every)


def test_each_step_is_logged_as_one_line(caplog: pytest.LogCaptureFixture) -> None:
    ex, _, _, _ = executor()
    with caplog.at_level(logging.DEBUG, logger="xenops"):
        ex.run(Plan("build-pre", (SetMaxVcpus(3, 2), ShadowAllocation(3, 10))))
    assert [r.getMessage() for r in caplog.records] == [
        "build-pre (2 steps)",
        "build-pre: SetMaxVcpus(domid=3, vcpus=2)",
        "build-pre: ShadowAllocation(domid=3, mib=10)",
    ]
