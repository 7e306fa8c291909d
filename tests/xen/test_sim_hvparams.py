"""Xen 4.17's HVM parameter rules in the simulated hypervisor (_params, through the
model), and the HvmParam numbers and argument checks of xen.hypervisor._interface."""

from __future__ import annotations

import errno

import pytest

from xen.hypervisor import (
    DomainSpec,
    HvmParam,
    HypervisorError,
    InvalidArgument,
    check_hvm_param,
    check_range,
)
from xen.sim.hypervisor._model import SimHypervisor
from xen.sim.hypervisor._params import DEPRECATED

MIB = 1024


def hvm_domain() -> tuple[SimHypervisor, int]:
    hv = SimHypervisor(1024 * MIB)
    domid, _ = hv.create(DomainSpec(hvm=True, memory_kib=16 * MIB))
    return hv, domid


def test_hvm_param_numbers_are_xen_4_17s() -> None:
    # public/hvm/params.h of Xen 4.17 (the gcc test in test_xc_layout checks the header itself)
    assert {p.name: p.value for p in HvmParam} == {
        "CALLBACK_IRQ": 0, "STORE_EVTCHN": 2, "PAE_ENABLED": 4, "VIRIDIAN": 9,
        "TIMER_MODE": 10, "HPET_ENABLED": 11, "ACPI_S_STATE": 14, "VPT_ALIGN": 16,
        "CONSOLE_EVTCHN": 18, "NESTEDHVM": 24}


@pytest.mark.parametrize(
    ("param", "value", "match"),
    [
        (HvmParam.TIMER_MODE, 4, "timer mode 4 is not 0..3"),
        (HvmParam.ACPI_S_STATE, 1, "S-state 1 is not 0"),
        (HvmParam.ACPI_S_STATE, 4, "S-state 4"),
        (HvmParam.VIRIDIAN, 0, "including base_freq"),
        (HvmParam.VIRIDIAN, 0b10, "including base_freq"),
        (HvmParam.VIRIDIAN, 1 | 1 << 13, "0x2001 is not HVMPV_"),
        (HvmParam.TIMER_MODE, 1 << 64, "bad value"),
        (HvmParam.PAE_ENABLED, 1, "deprecates HVM_PARAM_PAE_ENABLED"),
        (HvmParam.NESTEDHVM, 0, "deprecates HVM_PARAM_NESTEDHVM"),
    ],
)
def test_values_xen_refuses_are_invalid_and_change_nothing(
    param: HvmParam, value: int, match: str
) -> None:
    hv, domid = hvm_domain()
    before = hv.get_hvm_param(domid, param) if param not in DEPRECATED else None
    with pytest.raises(InvalidArgument, match=match) as err:
        hv.set_hvm_param(domid, param, value)
    assert err.value.errno == errno.EINVAL
    assert f"of domain {domid}" in str(err.value)
    if before is not None:
        assert hv.get_hvm_param(domid, param) == before


@pytest.mark.parametrize(("param", "values"), [
    (HvmParam.TIMER_MODE, (0, 1, 2, 3)),
    (HvmParam.ACPI_S_STATE, (3, 0)),
    (HvmParam.VIRIDIAN, (1 | 1 << 12,)),
    (HvmParam.HPET_ENABLED, (0, 1, 5)),
    (HvmParam.STORE_EVTCHN, (1, (1 << 64) - 1)),
])
def test_values_xen_accepts_read_back(param: HvmParam, values: tuple[int, ...]) -> None:
    hv, domid = hvm_domain()
    for value in values:
        hv.set_hvm_param(domid, param, value)
        assert hv.get_hvm_param(domid, param) == value


def test_deprecated_params_cannot_be_read_either() -> None:
    hv, domid = hvm_domain()
    for param in (HvmParam.PAE_ENABLED, HvmParam.NESTEDHVM):
        with pytest.raises(InvalidArgument, match="deprecates"):
            hv.get_hvm_param(domid, param)


def test_viridian_is_set_once() -> None:
    hv, domid = hvm_domain()
    hv.set_hvm_param(domid, HvmParam.VIRIDIAN, 0b111)
    hv.set_hvm_param(domid, HvmParam.VIRIDIAN, 0b111)  # the same value again is fine
    with pytest.raises(HypervisorError, match="already 0x7") as err:
        hv.set_hvm_param(domid, HvmParam.VIRIDIAN, 0b1)
    assert err.value.errno == errno.EEXIST
    assert hv.get_hvm_param(domid, HvmParam.VIRIDIAN) == 0b111


def test_argument_checks_name_what_was_wrong() -> None:
    assert check_hvm_param("x", 10) is HvmParam.TIMER_MODE
    assert check_hvm_param("x", HvmParam.VPT_ALIGN) is HvmParam.VPT_ALIGN
    for bad in (3, True, "TIMER_MODE", None, 10.0):
        with pytest.raises(InvalidArgument, match=r"set_hvm_param of domain 4: unknown HVM param"):
            check_hvm_param("set_hvm_param of domain 4", bad)
    assert check_range("op", "n", 5, 1, 5) == 5
    with pytest.raises(InvalidArgument, match=r"op: bad n 6 \(expected an integer 1\.\.5\)"):
        check_range("op", "n", 6, 1, 5)
    with pytest.raises(InvalidArgument, match="bad n True"):
        check_range("op", "n", True, 0, 5)
