"""``pvh = true`` in a VM config: what it builds (pure)."""

from __future__ import annotations

import pytest

from xen.xenvm import parse_config
from xen.xenvm._config import format_config, required_to_boot_kib
from xen.xenvm._config_values import ConfigError
from xen.xenvm._specs import boot_image, config_build_memory, domain_spec, vbd_spec
from xen.xenvm._stubdom import dm_mode

UUID = "8d0b1a9e-6c2f-4f61-a0a4-3b4f7c1d2e90"
PV = ("memory = 128\nkernel = /boot/vmlinuz\ninitrd = /boot/initrd\n"
      "disk = /dev/sdb:phy:xvda:w:disk:none\n")
PVH = PV + "pvh = true\n"


def test_a_pvh_guest_is_an_hvm_container_built_from_its_kernel() -> None:
    pvh, pv = parse_config(PVH), parse_config(PV)
    assert (pvh.pvh, pvh.hvm, pvh.hvm_container) == (True, False, True)
    assert domain_spec(pvh, UUID).hvm and not domain_spec(pv, UUID).hvm
    image = boot_image(pvh)
    assert (image.kernel, image.ramdisk, image.pvh) == ("/boot/vmlinuz", "/boot/initrd", True)
    assert boot_image(pv).pvh is False
    # sized as HVM (its paging pool), and the host must hold that much more to boot it
    assert config_build_memory(pvh).hvm and not config_build_memory(pv).hvm
    assert required_to_boot_kib(pvh) > required_to_boot_kib(pv)


def test_a_pvh_guest_has_pv_devices_and_no_device_model() -> None:
    pvh = parse_config(PVH)
    assert dm_mode(pvh) is None
    spec = vbd_spec(pvh, pvh.disks[0], 7)
    assert spec.hvm is False  # a PV disk: no emulated copy for a device model


def test_pvh_round_trips_and_contradictions_are_named() -> None:
    assert parse_config(format_config(parse_config(PVH))).pvh is True
    assert "pvh" not in format_config(parse_config(PV))
    with pytest.raises(ConfigError, match=r"pvh.*HVM or PVH, not both"):
        parse_config(PVH + "hvm = true\n")
    with pytest.raises(ConfigError, match=r"stubdom.*PVH guest has no device model"):
        parse_config(PVH + "stubdom = 5e1f0c0e-3b8a-4c1d-9a57-0d7f8f2b1c11\n")
