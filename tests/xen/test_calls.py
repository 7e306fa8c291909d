"""The typed hypervisor calls and host actions of plans: each field checked when built."""

from __future__ import annotations

import dataclasses
import typing
import uuid
from collections.abc import Callable

import pytest

from xen.hypervisor import MAX_SHADOW_MIB, DomainSpec, HvmParam, ShutdownReason
from xen.xenops import Atomic, PlanError
from xen.xenops._calls import (
    AssignDevice,
    CreateDomain,
    DeassignDevice,
    DestroyDomain,
    HostAction,
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
    PciBind,
    PciFlr,
    PciPermissive,
    PciRelease,
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
)

BDF = "0000:03:00.0"
HANDLE = uuid.UUID("11111111-2222-3333-4444-555555555555")

#: One well-formed value of every call and action.
GOOD: list[HypervisorCall | HostAction] = [
    CreateDomain(DomainSpec(handle=HANDLE, max_vcpus=2, memory_kib=65536)),
    DestroyDomain(0x7FEF),
    ShutdownDomain(3, ShutdownReason.HALT),
    PauseDomain(0),
    UnpauseDomain(3),
    SetDomainHandle(3, HANDLE),
    SetTarget(4, 3),
    SetMaxVcpus(3, 1),
    SetMaxMem(3, 0),
    ShadowAllocation(3, MAX_SHADOW_MIB),
    SetHvmParam(3, HvmParam.VPT_ALIGN, (1 << 64) - 1),
    PciAdd(3, BDF, assign=True, permissive=False, flr=True, hvm=True, pvpci=False),
    PciRelease(3, "0000:FF:1f.7", hvm=False),
    IoportPermission(3, 0xFFF0, 16, allow=True),
    IomemPermission(3, 0xFEBF0, 1, allow=False),
    AssignDevice(3, BDF),
    DeassignDevice(3, BDF),
    IrqPermission(3, 16, allow=True),
    MapPirq(3, 16),
    UnmapPirq(3, (1 << 31) - 1),
    PciBind(BDF),
    PciFlr(BDF),
    PciPermissive(BDF),
    LoopDetach("/dev/loop0"),
    KillProcess(4242, 0.5),
    SurfmanSetPvDisplay(3),
    InputAttachVkbd(3),
    InputDetachVkbd(3),
]


def test_every_call_and_action_has_a_sample_and_is_an_atomic() -> None:
    kinds = set(typing.get_args(HypervisorCall)) | set(typing.get_args(HostAction))
    assert {type(v) for v in GOOD} == kinds
    assert kinds <= set(typing.get_args(Atomic))


@pytest.mark.parametrize("value", GOOD, ids=lambda v: type(v).__name__)
def test_calls_are_frozen_hashable_values_that_ignore_no_error_by_default(
        value: HypervisorCall | HostAction) -> None:
    assert not value.ignore_errors
    assert value == dataclasses.replace(value) and hash(value) == hash(dataclasses.replace(value))
    assert dataclasses.replace(value, ignore_errors=True).ignore_errors
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.ignore_errors = True  # type: ignore[misc]


BAD: list[tuple[Callable[[], object], str]] = [
    (lambda: CreateDomain("spec"), "CreateDomain.spec must be a DomainSpec"),  # type: ignore[arg-type]
    (lambda: DestroyDomain(-1), "DestroyDomain.domid must be an integer in 0..32751, got -1"),
    (lambda: DestroyDomain(0x7FF0), "DestroyDomain.domid"),  # DOMID_SELF and up
    (lambda: PauseDomain(True), "PauseDomain.domid"),
    (lambda: UnpauseDomain("3"), "UnpauseDomain.domid"),  # type: ignore[arg-type]
    (lambda: ShutdownDomain(3, 0), "ShutdownDomain.reason must be a ShutdownReason"),  # type: ignore[arg-type]
    (lambda: SetDomainHandle(3, str(HANDLE)), "SetDomainHandle.handle must be a UUID"),  # type: ignore[arg-type]
    (lambda: SetMaxVcpus(3, 0), "SetMaxVcpus.vcpus"),
    (lambda: SetTarget(4, 0x7FF0), "SetTarget.target"),
    (lambda: PciPermissive(BDF, allow=0), "PciPermissive.allow must be a bool"),  # type: ignore[arg-type]
    (lambda: SetMaxMem(3, -1), "SetMaxMem.kib must be an integer >= 0, got -1"),
    (lambda: SetMaxMem(3, 1.5), "SetMaxMem.kib"),  # type: ignore[arg-type]
    (lambda: ShadowAllocation(3, MAX_SHADOW_MIB + 1), "ShadowAllocation.mib"),
    (lambda: SetHvmParam(3, 10, 1), "SetHvmParam.param must be a HvmParam"),  # type: ignore[arg-type]
    (lambda: SetHvmParam(3, HvmParam.HPET_ENABLED, -1), "SetHvmParam.value"),
    (lambda: SetHvmParam(3, HvmParam.HPET_ENABLED, 1 << 64), "SetHvmParam.value"),
    (lambda: PciAdd(3, "03:00.0", assign=True, permissive=False, flr=False, hvm=True,
                    pvpci=True), "PciAdd.bdf must be a PCI address"),
    (lambda: PciAdd(3, BDF, assign=1, permissive=False, flr=False, hvm=True,  # type: ignore[arg-type]
                    pvpci=True), "PciAdd.assign must be a bool"),
    (lambda: PciRelease(3, "0000:03:20.0", hvm=True), "PciRelease.bdf"),  # slot > 0x1f
    (lambda: PciRelease(3, BDF + "@02", hvm=True), "PciRelease.bdf"),
    (lambda: IoportPermission(3, 0x10000, 1, allow=True), "IoportPermission.first"),
    (lambda: IoportPermission(3, 0xFFFF, 2, allow=True), "IoportPermission.count"),
    (lambda: IomemPermission(3, -1, 1, allow=True), "IomemPermission.first_pfn"),
    (lambda: IomemPermission(3, 0, 0, allow=True), "IomemPermission.count"),
    (lambda: AssignDevice(3, "0000:03:00"), "AssignDevice.bdf"),
    (lambda: DeassignDevice(-1, BDF), "DeassignDevice.domid"),
    (lambda: IrqPermission(3, -1, allow=True), "IrqPermission.pirq"),
    (lambda: IrqPermission(3, 16, allow=1), "IrqPermission.allow"),  # type: ignore[arg-type]
    (lambda: MapPirq(3, 1 << 31), "MapPirq.gsi"),
    (lambda: UnmapPirq(3, True), "UnmapPirq.pirq"),
    (lambda: PciBind("0000:03:00.8"), "PciBind.bdf"),
    (lambda: PciFlr(""), "PciFlr.bdf"),
    (lambda: LoopDetach(""), "LoopDetach.device"),
    (lambda: KillProcess(0, 5.0), "KillProcess.pid"),  # 0 would signal the process group
    (lambda: KillProcess(1, 5.0), "KillProcess.pid"),  # init
    (lambda: KillProcess(4242, 0), "timeout"),
    (lambda: KillProcess(4242, float("inf")), "timeout"),
    (lambda: SurfmanSetPvDisplay(-3), "SurfmanSetPvDisplay.domid"),
    (lambda: InputAttachVkbd(70000), "InputAttachVkbd.domid"),
    (lambda: InputDetachVkbd(None), "InputDetachVkbd.domid"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("make", "message"), BAD, ids=[m for _, m in BAD])
def test_a_bad_field_is_named_when_the_call_is_built(make: Callable[[], object],
                                                      message: str) -> None:
    with pytest.raises(PlanError, match=message.replace(".", r"\.")):
        make()


def test_pci_flags_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        PciAdd(3, BDF, True, False, True, True, False)  # type: ignore[misc]
    with pytest.raises(TypeError):
        IoportPermission(3, 0, 1, True)  # type: ignore[misc]
