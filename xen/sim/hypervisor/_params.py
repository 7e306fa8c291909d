"""Xen 4.17's rules for HVM parameters, as the simulated hypervisor applies them. Pure.

`check_set(what, param, value, current)` raises what HVMOP_set_param would for ``value`` on a
parameter now holding ``current``: `InvalidArgument` (EINVAL) for a deprecated parameter
(PAE_ENABLED, NESTEDHVM: EINVAL both ways in 4.17), a TIMER_MODE above 3
(HVMPTM_one_missed_tick_pending), an ACPI_S_STATE other than 0 or 3, or a VIRIDIAN value with
bits outside HVMPV_feature_mask or without HVMPV_base_freq; `HypervisorError` with EEXIST for
a VIRIDIAN value that changes a nonzero one (Xen sets it once). Other parameters take any
64-bit value. `check_get` refuses the deprecated ones. `DEFAULTS` is what a new HVM domain
holds (hpet_init sets HPET_ENABLED to 1; everything else starts at 0).
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Mapping

from xen.hypervisor import HvmParam, HypervisorError, InvalidArgument, check_range

__all__ = ["DEFAULTS", "DEPRECATED", "check_get", "check_set"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

DEFAULTS: Mapping[HvmParam, int] = {HvmParam.HPET_ENABLED: 1}
DEPRECATED = frozenset({HvmParam.PAE_ENABLED, HvmParam.NESTEDHVM})

_U64_MAX = (1 << 64) - 1
_HVMPTM_MAX = 3  # HVMPTM_one_missed_tick_pending
_HVMPV_BASE_FREQ = 1 << 0
_HVMPV_FEATURE_MASK = (1 << 13) - 1  # HVMPV_base_freq .. HVMPV_cpu_hotplug


def check_get(what: str, param: HvmParam) -> None:
    """Raise `InvalidArgument` for a parameter Xen 4.17 no longer reads or writes."""
    if param in DEPRECATED:
        raise InvalidArgument(f"{what}: Xen 4.17 deprecates HVM_PARAM_{param.name}")


def check_set(what: str, param: HvmParam, value: int, current: int) -> None:
    """Raise what Xen 4.17 raises for setting ``param`` from ``current`` to ``value``."""
    check_get(what, param)
    check_range(what, "value", value, 0, _U64_MAX)
    if param is HvmParam.VIRIDIAN and current and value != current:
        raise HypervisorError(f"{what}: already {current:#x}; Xen sets it once",
                              errno=_errno.EEXIST)
    if param is HvmParam.TIMER_MODE and value > _HVMPTM_MAX:
        raise InvalidArgument(f"{what}: timer mode {value} is not 0..{_HVMPTM_MAX} (HVMPTM_*)")
    if param is HvmParam.ACPI_S_STATE and value not in (0, 3):
        raise InvalidArgument(f"{what}: ACPI S-state {value} is not 0 (S0) or 3 (S3)")
    if param is HvmParam.VIRIDIAN and (value & ~_HVMPV_FEATURE_MASK
                                       or not value & _HVMPV_BASE_FREQ):
        raise InvalidArgument(
            f"{what}: {value:#x} is not HVMPV_* feature bits including base_freq (bit 0)")
