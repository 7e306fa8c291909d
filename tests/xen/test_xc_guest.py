"""The guest image the xc backend builds from: its checks, and the PVH layout's constants.

The build itself needs Xen (tests/xenlab/test_dom0_build.py runs it in the lab); what is
checked here holds on any host: a malformed `GuestImage` is refused before anything is loaded,
and the PVH MMIO hole starts where libxl starts it."""

from __future__ import annotations

import pytest

from xen.hypervisor import InvalidArgument
from xen.xc import GuestImage
from xen.xc._guest import _PVH_MMIO_START


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kernel": ""}, "needs a kernel"),
    ({"memory_mib": 0}, "memory must be >= 1 MiB"),
    ({"memory_mib": True}, "memory must be >= 1 MiB"),
    ({"vcpus": 0}, "vcpus must be >= 1"),
])
def test_a_malformed_image_is_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"kernel": "/boot/vmlinuz", "ramdisk": None, "cmdline": "",
                               "memory_mib": 128, "vcpus": 1}
    with pytest.raises(InvalidArgument, match=message):
        GuestImage(**(args | kwargs))  # type: ignore[arg-type]


def test_a_sound_image_defaults_to_pv_with_dom0_backends() -> None:
    image = GuestImage("/boot/vmlinuz", "/boot/initrd", "console=hvc0", 128, 2)
    assert (image.pvh, image.store_domid, image.console_domid) == (False, 0, 0)


def test_the_pvh_mmio_hole_starts_below_the_lapic_and_special_pages() -> None:
    # libxl: min(special pages 0xfeff8000, LAPIC 0xfee00000, hvmloader's ACPI 0xfc000000)
    assert _PVH_MMIO_START == 0xFC000000
