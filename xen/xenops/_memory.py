"""Memory arithmetic of a Xen domain: the pure model behind build, boot checks and ballooning.

Everything is in MiB unless a name says KiB. A page is 4 KiB, so a MiB holds 256 pages and
1024 KiB. Converting KiB (or pages) to MiB rounds **up** (memory "used"); the balloon target
rounds **down** to a page.

The model, per guest type (HVM: extra_internal 1 MiB, extra_external 1 MiB; PV Linux: 0 and 1):

- build_max   = static_max - video
- build_start = target - video
- xen_max     = static_max + extra_internal            (the setmaxmem value)
- shadow      = max(1, floor(ceil((256*vcpus + 2*static_max) / 256) * multiplier))
  (one page per MiB of guest for the p2m map and one for resident shadow pages)
- overhead    = extra_internal + extra_external + shadow
- footprint   = target + overhead                      (host free memory needed)

required_to_boot_kib adds a stubdomain's footprint (PV, 1 vcpu, target = max = its memory)
when the guest has one; the video reservation is 0, as in the original.

Guarantees: functions are total on valid input and exact (integers; the shadow multiplier is
the only float). Failure: a negative size, vcpus < 1, a multiplier <= 0 or a target above the
static maximum raise MemoryModelError (a ValueError) naming the bad value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "HVM_MODEL",
    "KIB_PER_MIB",
    "KIB_PER_PAGE",
    "PAGES_PER_MIB",
    "PV_MODEL",
    "BuildMemory",
    "MemoryModel",
    "MemoryModelError",
    "balloon_target_kib",
    "build_max_mib",
    "build_memory",
    "build_start_mib",
    "footprint_mib",
    "kib_of_mib",
    "mib_of_kib_used",
    "mib_of_pages_used",
    "overhead_mib",
    "required_to_boot_kib",
    "shadow_mib",
    "xen_max_mib",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

KIB_PER_PAGE = 4
KIB_PER_MIB = 1024
PAGES_PER_MIB = KIB_PER_MIB // KIB_PER_PAGE  # 256


class MemoryModelError(ValueError):
    """A memory quantity that the model cannot accept (negative, target > max, ...)."""


@dataclass(frozen=True, slots=True)
class MemoryModel:
    """Per guest-type constants: MiB Xen keeps inside (internal) and outside the guest."""

    name: str
    extra_internal_mib: int
    extra_external_mib: int


HVM_MODEL = MemoryModel("hvm", extra_internal_mib=1, extra_external_mib=1)
PV_MODEL = MemoryModel("pv", extra_internal_mib=0, extra_external_mib=1)


def _check_size(what: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MemoryModelError(f"{what} must be an integer, got {value!r}")
    if value < 0:
        raise MemoryModelError(f"{what} must not be negative, got {value}")


def _check_vcpus(vcpus: int) -> None:
    if isinstance(vcpus, bool) or not isinstance(vcpus, int) or vcpus < 1:
        raise MemoryModelError(f"vcpus must be an integer >= 1, got {vcpus!r}")


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def kib_of_mib(mib: int) -> int:
    """MiB -> KiB (exact)."""
    _check_size("mib", mib)
    return mib * KIB_PER_MIB


def mib_of_kib_used(kib: int) -> int:
    """KiB -> MiB, rounding up (a partial MiB counts as used)."""
    _check_size("kib", kib)
    return _ceil_div(kib, KIB_PER_MIB)


def mib_of_pages_used(pages: int) -> int:
    """Pages -> MiB, rounding up."""
    _check_size("pages", pages)
    return _ceil_div(pages, PAGES_PER_MIB)


def balloon_target_kib(kib: int) -> int:
    """A balloon target (`memory/target`) in KiB, rounded down to a whole page."""
    _check_size("target kib", kib)
    return kib - kib % KIB_PER_PAGE


def build_max_mib(static_max_mib: int, video_mib: int = 0) -> int:
    """Memory the domain builder may map: static_max - video."""
    _check_size("static_max_mib", static_max_mib)
    _check_size("video_mib", video_mib)
    if video_mib > static_max_mib:
        raise MemoryModelError(f"video {video_mib} MiB exceeds static max {static_max_mib} MiB")
    return static_max_mib - video_mib


def build_start_mib(target_mib: int, video_mib: int = 0) -> int:
    """Memory the builder populates at start: target - video."""
    _check_size("target_mib", target_mib)
    _check_size("video_mib", video_mib)
    if video_mib > target_mib:
        raise MemoryModelError(f"video {video_mib} MiB exceeds target {target_mib} MiB")
    return target_mib - video_mib


def xen_max_mib(model: MemoryModel, static_max_mib: int) -> int:
    """The setmaxmem value: static_max + extra_internal."""
    _check_size("static_max_mib", static_max_mib)
    return static_max_mib + model.extra_internal_mib


def shadow_mib(static_max_mib: int, vcpus: int, multiplier: float = 1.0) -> int:
    """Shadow allocation: max(1, floor(ceil((256*vcpus + 2*static_max)/256) * multiplier))."""
    _check_size("static_max_mib", static_max_mib)
    _check_vcpus(vcpus)
    if not multiplier > 0 or math.isinf(multiplier):
        raise MemoryModelError(f"shadow multiplier must be a finite number > 0, got {multiplier}")
    pages = PAGES_PER_MIB * vcpus + 2 * static_max_mib
    total = mib_of_pages_used(pages)
    return max(1, math.floor(total * multiplier))


def overhead_mib(
    model: MemoryModel, static_max_mib: int, vcpus: int, multiplier: float = 1.0
) -> int:
    """Host memory used beyond the guest's target: extras + shadow."""
    return (
        model.extra_internal_mib
        + model.extra_external_mib
        + shadow_mib(static_max_mib, vcpus, multiplier)
    )


def footprint_mib(
    model: MemoryModel, target_mib: int, static_max_mib: int, vcpus: int, multiplier: float = 1.0
) -> int:
    """Host free memory needed to build the domain: target + overhead."""
    _check_size("target_mib", target_mib)
    return target_mib + overhead_mib(model, static_max_mib, vcpus, multiplier)


def required_to_boot_kib(
    *,
    hvm: bool,
    vcpus: int,
    memory_mib: int,
    memory_max_mib: int | None = None,
    stubdom_memory_mib: int | None = None,
) -> int:
    """KiB of free host memory a VM needs to boot (xenvm's `required-to-boot-kib`).

    Guest footprint with target = memory and static max = memory_max (default memory), plus,
    when stubdom_memory_mib is given, a PV stubdomain with 1 vcpu and target = max = its memory.
    """
    static_max = memory_mib if memory_max_mib is None else memory_max_mib
    model = HVM_MODEL if hvm else PV_MODEL
    total = footprint_mib(model, memory_mib, static_max, vcpus)
    if stubdom_memory_mib is not None:
        total += footprint_mib(PV_MODEL, stubdom_memory_mib, stubdom_memory_mib, 1)
    return kib_of_mib(total)


@dataclass(frozen=True, slots=True)
class BuildMemory:
    """Every memory number the build step needs, computed once from the config."""

    hvm: bool
    vcpus: int
    static_max_mib: int
    target_mib: int
    video_mib: int
    build_max_mib: int
    build_start_mib: int
    xen_max_mib: int
    shadow_mib: int
    required_host_free_mib: int

    @property
    def xen_max_kib(self) -> int:
        return kib_of_mib(self.xen_max_mib)

    @property
    def static_max_kib(self) -> int:
        return kib_of_mib(self.static_max_mib)

    @property
    def target_kib(self) -> int:
        return kib_of_mib(self.target_mib)


def build_memory(
    *,
    hvm: bool,
    vcpus: int,
    static_max_kib: int,
    target_kib: int,
    video_mib: int = 0,
    shadow_multiplier: float = 1.0,
) -> BuildMemory:
    """The build-time numbers from KiB inputs (the builder's own units), as the original did.

    Raises MemoryModelError if target > static max (the original asserted this).
    """
    static_max = mib_of_kib_used(static_max_kib)
    target = mib_of_kib_used(target_kib)
    if target > static_max:
        raise MemoryModelError(f"target {target} MiB exceeds static max {static_max} MiB")
    model = HVM_MODEL if hvm else PV_MODEL
    return BuildMemory(
        hvm=hvm,
        vcpus=vcpus,
        static_max_mib=static_max,
        target_mib=target,
        video_mib=video_mib,
        build_max_mib=build_max_mib(static_max, video_mib),
        build_start_mib=build_start_mib(target, video_mib),
        xen_max_mib=xen_max_mib(model, static_max),
        shadow_mib=shadow_mib(static_max, vcpus, shadow_multiplier),
        required_host_free_mib=footprint_mib(model, target, static_max, vcpus, shadow_multiplier),
    )
