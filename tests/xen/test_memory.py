"""Memory arithmetic: the formulas of the fact sheet, its worked example, and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xen.xenops._memory import (
    HVM_MODEL,
    PV_MODEL,
    MemoryModelError,
    balloon_target_kib,
    build_max_mib,
    build_memory,
    build_start_mib,
    footprint_mib,
    kib_of_mib,
    mib_of_kib_used,
    mib_of_pages_used,
    overhead_mib,
    required_to_boot_kib,
    shadow_mib,
    xen_max_mib,
)

mib = st.integers(min_value=0, max_value=1 << 22)
vcpus_st = st.integers(min_value=1, max_value=512)


def test_conversions_round_up_to_mib() -> None:
    assert mib_of_kib_used(0) == 0
    assert mib_of_kib_used(1) == 1
    assert mib_of_kib_used(1024) == 1
    assert mib_of_kib_used(1025) == 2
    assert mib_of_pages_used(256) == 1
    assert mib_of_pages_used(257) == 2
    assert kib_of_mib(3) == 3072


def test_worked_example_hvm_1024_mib_2_vcpus() -> None:
    # shadow = ceil((256*2 + 2*1024) / 256) = ceil(2560/256) = 10
    assert shadow_mib(1024, 2) == 10
    assert overhead_mib(HVM_MODEL, 1024, 2) == 12
    assert footprint_mib(HVM_MODEL, 1024, 1024, 2) == 1036


def test_worked_example_stubdom_128_mib() -> None:
    # shadow = ceil((256 + 256) / 256) = 2; PV extras 0 + 1
    assert shadow_mib(128, 1) == 2
    assert footprint_mib(PV_MODEL, 128, 128, 1) == 131


def test_worked_example_total_required_to_boot() -> None:
    kib = required_to_boot_kib(hvm=True, vcpus=2, memory_mib=1024, stubdom_memory_mib=128)
    assert kib == 1167 * 1024
    assert required_to_boot_kib(hvm=True, vcpus=2, memory_mib=1024) == 1036 * 1024


def test_memory_max_drives_shadow_but_not_target() -> None:
    # static max 2048: shadow = ceil((256 + 4096)/256) = 17; footprint = 1024 + 1 + 1 + 17
    kib = required_to_boot_kib(hvm=True, vcpus=1, memory_mib=1024, memory_max_mib=2048)
    assert kib == (1024 + 2 + 17) * 1024


def test_pv_model_constants() -> None:
    assert xen_max_mib(PV_MODEL, 512) == 512
    assert xen_max_mib(HVM_MODEL, 512) == 513
    assert overhead_mib(PV_MODEL, 0, 1) == 0 + 1 + 1


def test_shadow_has_a_floor_of_one_and_floors_the_multiplier() -> None:
    assert shadow_mib(0, 1, 0.01) == 1
    assert shadow_mib(1024, 2, 1.5) == 15
    assert shadow_mib(1024, 2, 0.55) == 5  # floor(10 * 0.55) = floor(5.5)


def test_build_max_and_start_subtract_video() -> None:
    assert build_max_mib(1024, 16) == 1008
    assert build_start_mib(512, 16) == 496
    with pytest.raises(MemoryModelError):
        build_start_mib(8, 16)


def test_balloon_target_rounds_down_to_a_page() -> None:
    assert balloon_target_kib(1024) == 1024
    assert balloon_target_kib(1027) == 1024
    assert balloon_target_kib(3) == 0


def test_build_memory_from_kib_rounds_up() -> None:
    mem = build_memory(hvm=True, vcpus=2, static_max_kib=1024 * 1024, target_kib=1024 * 1024 - 1)
    assert mem.static_max_mib == 1024
    assert mem.target_mib == 1024
    assert mem.xen_max_kib == 1025 * 1024
    assert mem.shadow_mib == 10
    assert mem.required_host_free_mib == 1036
    assert mem.build_max_mib == 1024 and mem.build_start_mib == 1024


def test_build_memory_rejects_target_above_max() -> None:
    with pytest.raises(MemoryModelError, match="exceeds static max"):
        build_memory(hvm=False, vcpus=1, static_max_kib=1024, target_kib=4096)


@pytest.mark.parametrize(
    "call",
    [
        lambda: shadow_mib(-1, 1),
        lambda: shadow_mib(1, 0),
        lambda: shadow_mib(1, 1, 0.0),
        lambda: shadow_mib(1, 1, float("nan")),
        lambda: mib_of_kib_used(-5),
        lambda: footprint_mib(HVM_MODEL, -1, 1, 1),
        lambda: shadow_mib(True, 1),
    ],
)
def test_bad_inputs_raise_named_error(call: object) -> None:
    with pytest.raises(MemoryModelError):
        call()  # type: ignore[operator]


@given(mib, vcpus_st)
def test_shadow_matches_formula(static_max: int, vcpus: int) -> None:
    expected = max(1, math.ceil((256 * vcpus + 2 * static_max) / 256))
    assert shadow_mib(static_max, vcpus) == expected


@given(mib, mib, vcpus_st, st.booleans())
def test_footprint_is_monotonic_in_memory(a: int, b: int, vcpus: int, hvm: bool) -> None:
    lo, hi = sorted((a, b))
    assert required_to_boot_kib(hvm=hvm, vcpus=vcpus, memory_mib=lo) <= required_to_boot_kib(
        hvm=hvm, vcpus=vcpus, memory_mib=hi
    )


@given(mib, vcpus_st, vcpus_st, st.booleans())
def test_footprint_is_monotonic_in_vcpus(memory: int, a: int, b: int, hvm: bool) -> None:
    lo, hi = sorted((a, b))
    assert required_to_boot_kib(hvm=hvm, vcpus=lo, memory_mib=memory) <= required_to_boot_kib(
        hvm=hvm, vcpus=hi, memory_mib=memory
    )


@given(mib, vcpus_st)
def test_hvm_needs_exactly_one_mib_more_than_pv(memory: int, vcpus: int) -> None:
    hvm = required_to_boot_kib(hvm=True, vcpus=vcpus, memory_mib=memory)
    pv = required_to_boot_kib(hvm=False, vcpus=vcpus, memory_mib=memory)
    assert hvm - pv == 1024


@given(mib, vcpus_st, st.integers(min_value=1, max_value=4096))
def test_stubdom_adds_its_own_footprint(memory: int, vcpus: int, stub: int) -> None:
    without = required_to_boot_kib(hvm=True, vcpus=vcpus, memory_mib=memory)
    with_stub = required_to_boot_kib(
        hvm=True, vcpus=vcpus, memory_mib=memory, stubdom_memory_mib=stub
    )
    assert with_stub - without == kib_of_mib(footprint_mib(PV_MODEL, stub, stub, 1))
    assert with_stub - without > stub * 1024


@given(mib, vcpus_st)
def test_footprint_exceeds_target_and_is_whole_mib(memory: int, vcpus: int) -> None:
    kib = required_to_boot_kib(hvm=True, vcpus=vcpus, memory_mib=memory)
    assert kib % 1024 == 0
    assert kib > memory * 1024


@given(st.integers(min_value=0, max_value=1 << 40))
def test_balloon_target_is_page_aligned_and_close(kib: int) -> None:
    target = balloon_target_kib(kib)
    assert target % 4 == 0
    assert 0 <= kib - target < 4


@given(st.integers(min_value=0, max_value=1 << 40))
def test_kib_to_mib_is_the_smallest_covering_mib(kib: int) -> None:
    m = mib_of_kib_used(kib)
    assert m * 1024 >= kib
    assert m == 0 or (m - 1) * 1024 < kib
