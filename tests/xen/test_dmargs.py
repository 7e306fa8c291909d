"""Device-model command lines: the original's order, with its argv bugs fixed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xen.xenops._atomics import Write
from xen.xenops._dmargs import (
    DmArgsError,
    DmInfo,
    DmNic,
    Vnc,
    dm_prepare_writes,
    qemu_args,
    qemu_argv,
    stubdom_dm_args,
    stubdom_mac,
    wants_vnc_port,
)


def full_info() -> DmInfo:
    return DmInfo(
        hvm=True, memory_mib=1024, vcpus=2, videoram_mib=16, boot="dc", serial="pty",
        display=Vnc(use_unused_port=True, keymap="de"), sound="es1370",
        usb=("tablet",),
        nics=(DmNic(0, "00:16:3e:00:00:01", "xenbr0"),
              DmNic(3, "00:16:3e:00:00:02", "xenbr1", "e1000")),
        acpi=True, pci_emulations=("a",), extras=(("cdrom-pt", "/dev/sr0"), ("std-vga", None),
                                                   ("gfx_passthru", "1")),
        restore=True,
    )


def test_full_hvm_command_line_in_order() -> None:
    assert qemu_args(full_info(), 9) == [
        "-d", "9",
        "-m", "1024", "-videoram", "16", "-vcpus", "2",
        "-boot", "dc",
        "-serial", "pty",
        "-M", "xenfv",
        "-vncunused", "-k", "de",
        "-soundhw", "es1370",
        "-usb", "-usbdevice", "tablet",
        "-net", "nic,vlan=0,macaddr=00:16:3e:00:00:01,model=rtl8139",
        "-net", "tap,vlan=0,bridge=xenbr0,ifname=tap9.0",
        "-net", "nic,vlan=1,macaddr=00:16:3e:00:00:02,model=e1000",
        "-net", "tap,vlan=1,bridge=xenbr1,ifname=tap9.3",
        "-acpi",
        "-loadvm", "/tmp/xen.qemu-dm.9",
        "-pciemulation", "a",
        "-cdrom-pt", "/dev/sr0", "-std-vga", "-gfx_passthru", "1",
        "-smp", "2",
    ]


def test_minimal_pv_command_line_has_net_none_as_two_elements() -> None:
    info = DmInfo(hvm=False, memory_mib=256, display=None)
    assert qemu_args(info, 3) == ["-d", "3", "-videoram", "0", "-M", "xenpv", "-net", "none"]
    assert "-net none" not in qemu_args(info, 3)
    assert not wants_vnc_port(info)


def test_fixed_vnc_port() -> None:
    args = qemu_args(DmInfo(hvm=True, memory_mib=64, display=Vnc(port=5)), 1)
    i = args.index("-vnc")
    assert args[i:i + 4] == ["-vnc", ":5", "-k", "en-us"]
    assert "-smp" not in args


def test_argv_prefix_and_errors() -> None:
    info = DmInfo(hvm=True, memory_mib=64)
    assert qemu_argv("/usr/lib/xen/bin/qemu-dm", info, 4)[:3] == [
        "/usr/lib/xen/bin/qemu-dm", "4", "/tmp/qemu.4"]
    with pytest.raises(DmArgsError):
        qemu_argv("", info, 4)
    with pytest.raises(DmArgsError):
        DmInfo(hvm=True, memory_mib=64, vcpus=0)
    with pytest.raises(DmArgsError):
        DmInfo(hvm=True, memory_mib=64, extras=(("-bad", None),))


@given(st.lists(st.tuples(st.text("abcdefgh-_", min_size=1, max_size=8).filter(
    lambda k: not k.startswith("-")), st.one_of(st.none(), st.text("xyz", max_size=4))),
    max_size=6))
def test_extras_keep_config_order(extras: list[tuple[str, str | None]]) -> None:
    args = qemu_args(DmInfo(hvm=True, memory_mib=64, display=None, extras=tuple(extras)), 1)
    tail = args[args.index("none") + 1:]
    expected: list[str] = []
    for key, value in extras:
        expected.append("-" + key)
        if value is not None:
            expected.append(value)
    assert tail == expected


def test_stubdom_helpers() -> None:
    args = qemu_args(DmInfo(hvm=True, memory_mib=64, display=None), 2)
    assert "-M" not in stubdom_dm_args(args) and "xenfv" not in stubdom_dm_args(args)
    assert stubdom_mac("00:16:3e:01:02:03") == "02:16:3e:01:02:03"
    assert stubdom_mac("02:16:3e:01:02:03") == "00:16:3e:01:02:03"
    with pytest.raises(DmArgsError):
        stubdom_mac("zz:00")


def test_prepare_writes() -> None:
    assert dm_prepare_writes(5) == []
    assert dm_prepare_writes(5, power_mgmt=2, oem_features=1, inject_sci=1) == [
        Write("/local/domain/0/device-model/5/oem_features", "1"),
        Write("/local/domain/0/device-model/5/inject-sci", "1"),
    ]
    with_battery = dm_prepare_writes(5, power_mgmt=2, host_has_battery=True)
    assert with_battery == [Write("/local/domain/0/device-model/5/xen_extended_power_mgmt", "2")]
