"""How a VM's config picks its device model, and the stub domain made from it (pure)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from xen.xenops import SimBuilder, UnsupportedBuilder
from xen.xenvm import parse_config
from xen.xenvm._config_values import ConfigError
from xen.xenvm._stubdom import check_device_model, dm_devices, dm_mode, stub_config

UUID = "8d0b1a9e-6c2f-4f61-a0a4-3b4f7c1d2e90"
STUB = "5e1f0c0e-3b8a-4c1d-9a57-0d7f8f2b1c11"
BASE = ("memory = 256\nhvm = true\ndisk = /srv/a.img:file:hda:w:disk:none\n"
        "disk = /srv/cd.iso:file:hdc:r:cdrom:none\nnic = id=0,bridge=xenbr0\n")


@pytest.mark.parametrize(("extra", "mode"), [
    ("", None), ("qemu-dm-path = /q\n", "direct"), ("dm-mode = dm-agent\n", "dm-agent"),
    (f"stubdom = {STUB}\n", "stubdom"), (f"stubdom = {STUB}\ndm-mode = dm-agent\n", "stubdom"),
])
def test_dm_mode(extra: str, mode: str | None) -> None:
    assert dm_mode(parse_config(BASE + extra)) == mode


def test_pv_guests_have_no_device_model_and_bad_modes_are_named() -> None:
    assert dm_mode(parse_config("memory = 64\nkernel = /k\ndm-mode = dm-agent\n")) is None
    with pytest.raises(ConfigError, match="dm-mode"):
        dm_mode(parse_config(BASE + "dm-mode = sideways\n"))
    with pytest.raises(ConfigError, match=r"dm-mode.*dm-agent"):
        dm_mode(parse_config(BASE + f"stubdom = {STUB}\ndm-mode = direct\n"))


def test_the_stub_domain_config() -> None:
    cfg = parse_config(BASE + f"stubdom = {STUB}\nstubdom-memory = 40\n")
    stub = stub_config(cfg, 7)
    assert (stub.uuid, stub.name, stub.hvm, stub.vcpus, stub.memory) == (
        STUB, "stubdom-7", False, 1, 40)
    assert stub.kernel == cfg.stubdom_kernel and stub.initrd == cfg.stubdom_initrd
    assert stub.cmdline.endswith("guest_agent=dmagent guest_domid=7")
    assert not stub.disks and not stub.nics


def test_devices_in_a_stub_domain_open_its_own_block_devices() -> None:
    cfg = parse_config(BASE)
    in_stub = {d.name: dict(d.keys) for d in dm_devices(cfg, UUID, in_stubdom=True)}
    in_dom0 = {d.name: dict(d.keys) for d in dm_devices(cfg, UUID, in_stubdom=False)}
    assert in_stub["drive0"]["file"] == "/dev/hda" and in_dom0["drive0"]["file"] == "/srv/a.img"
    assert in_stub["cdrom1"]["readonly"] == "1" and in_stub["cdrom1"]["media"] == "cdrom"
    assert in_stub["net0"]["bridge"] == "xenbr0" and in_stub["net0"]["model"] == "rtl8139"
    assert {"xenmou", "xen_acpi_pm", "svga"} <= set(in_stub)
    assert not any(name.startswith("xen_pci_pt") for name in in_stub)  # no PCI device
    passthrough = parse_config(BASE + "pci = 0,0000:04:00.0\npci = 1,0000:00:14.0\n")
    pts = [d for d in dm_devices(passthrough, UUID, in_stubdom=True)
           if d.capability == "xen_pci_pt"]
    assert [(d.name, dict(d.keys)) for d in pts] == [
        ("xen_pci_pt0", {"hostaddr": "0000:04:00.0"}),
        ("xen_pci_pt1", {"hostaddr": "0000:00:14.0"})]
    pv = parse_config("memory = 64\nkernel = /k\n")
    assert [d.name for d in dm_devices(pv, UUID, in_stubdom=False)] == ["xenfb", "input"]


def test_stub_images_are_checked_by_the_builder(tmp_path: Path) -> None:
    cfg = parse_config(BASE + f"stubdom = {STUB}\n")
    check_device_model(cfg, SimpleNamespace(builder=SimBuilder()))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"stubdom-kernel.*does not exist"):
        check_device_model(cfg, SimpleNamespace(builder=UnsupportedBuilder()))  # type: ignore[arg-type]
    kernel = tmp_path / "bzImage"
    kernel.write_bytes(b"k")
    mine = parse_config(BASE + f"stubdom = {STUB}\nstubdom-kernel = {kernel}\n"
                        f"stubdom-initrd = {tmp_path}\n")
    with pytest.raises(ConfigError, match=r"stubdom-initrd.*is not a file"):
        check_device_model(mine, SimpleNamespace(builder=SimBuilder()))  # type: ignore[arg-type]
