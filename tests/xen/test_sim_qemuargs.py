"""The simulated device model's argument checker: everything our builder makes is accepted
and read back (a property over random DmInfo), and each malformed form is refused by name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xen.sim._qemuargs import (
    KNOWN_EXTRAS,
    QemuArgsError,
    parse_qemu_args,
    parse_wrapper_argv,
)
from xen.xenops._dmargs import DmInfo, DmNic, Vnc, qemu_args, qemu_argv

macs = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(
    lambda b: ":".join(f"{x:02x}" for x in b))
nics = st.lists(st.builds(DmNic, st.integers(0, 31), macs, st.sampled_from(["xenbr0", "br-1"]),
                          st.sampled_from(["", "e1000", "rtl8139"])), max_size=3)
displays = st.one_of(st.none(), st.builds(Vnc, st.booleans(), st.sampled_from(["", "0.0.0.0"]),
                                          st.integers(0, 99), st.sampled_from(["en-us", "de"])))
extras = st.lists(st.sampled_from(sorted(KNOWN_EXTRAS)), unique=True, max_size=3).flatmap(
    lambda keys: st.tuples(*[st.tuples(st.just(k), st.one_of(st.none(), st.just("1")))
                             for k in keys]))


@given(hvm=st.booleans(), memory=st.integers(1, 4096), vcpus=st.integers(1, 8),
       videoram=st.integers(0, 64), boot=st.sampled_from(["", "c", "dc", "cdn"]),
       serial=st.sampled_from(["", "pty", "/dev/ttyS0"]), display=displays,
       sound=st.sampled_from([None, "es1370"]), usb=st.lists(st.just("tablet"), max_size=2),
       nic_list=nics, acpi=st.booleans(), restore=st.booleans(), extra=extras,
       domid=st.integers(1, 500))
def test_every_builder_command_line_is_accepted(
        hvm: bool, memory: int, vcpus: int, videoram: int, boot: str, serial: str,
        display: Vnc | None, sound: str | None, usb: list[str], nic_list: list[DmNic],
        acpi: bool, restore: bool, extra: tuple[tuple[str, str | None], ...],
        domid: int) -> None:
    nic_list = list({n.nic_id: n for n in reversed(nic_list)}.values())[::-1]  # unique ids
    info = DmInfo(hvm=hvm, memory_mib=memory, vcpus=vcpus, videoram_mib=videoram, boot=boot,
                  serial=serial, display=display, sound=sound, usb=tuple(usb),
                  nics=tuple(nic_list), acpi=acpi, extras=extra, restore=restore)
    got_domid, logfile, cfg = parse_wrapper_argv(qemu_argv("/usr/bin/qemu-dm", info, domid)[1:])
    assert (got_domid, logfile) == (domid, f"/tmp/qemu.{domid}")
    assert cfg.domid == domid and cfg.hvm == hvm and cfg.videoram_mib == videoram
    assert cfg.memory_mib == (memory if hvm else None)
    assert cfg.vcpus == vcpus
    assert (cfg.boot, cfg.serial, cfg.acpi, cfg.usb) == (boot, serial, acpi, tuple(usb))
    assert cfg.wants_vnc == (display is not None)
    assert [(n.mac, n.bridge) for n in cfg.nics] == [(n.mac, n.bridge) for n in nic_list]
    assert [n.ifname for n in cfg.nics] == [f"tap{domid}.{n.nic_id}" for n in nic_list]
    assert cfg.extras == extra
    assert bool(cfg.loadvm) == restore


BASE = qemu_args(DmInfo(hvm=True, memory_mib=64, display=Vnc(port=1),
                        nics=(DmNic(0, "00:16:3e:00:00:01", "xenbr0"),)), 3)


def _without(option: str, arity: int = 1) -> list[str]:
    i = BASE.index(option)
    return BASE[:i] + BASE[i + 1 + arity:]


def _replace(old: str, new: str) -> list[str]:
    return [new if a == old else a for a in BASE]


@pytest.mark.parametrize(("args", "message"), [
    ([], "first option must be -d"),
    ([*BASE[2:], "-d", "3"], "first option must be -d"),
    ([*BASE, "-bogus"], "unknown option -bogus"),
    ([*BASE, "stray"], "unexpected argument 'stray'"),
    ([*BASE, "-acpi", "-acpi"], "-acpi given twice"),
    ([*BASE, "-std-vga", "-std-vga"], "-std-vga given twice"),
    ([*BASE, "-serial"], "-serial needs a value, got nothing"),
    (_replace("xenfv", "pc"), "-M must be xenfv or xenpv"),
    (_without("-M"), "-M must be xenfv or xenpv"),
    (_without("-m"), "needs -m and -vcpus"),
    (_replace("xenfv", "xenpv"), "-m and -vcpus are for HVM"),
    (_without("-videoram"), "no -videoram"),
    (_replace("64", "64k"), "-m needs a decimal integer >= 1"),
    (_replace("64", "0"), "-m needs a decimal integer >= 1"),
    ([*BASE, "-smp", "4"], "-smp 4 differs from -vcpus 1"),
    ([*BASE, "-boot", "x"], "-boot 'x'"),
    (_replace(":1", "1"), "expected <address>:<display>"),
    ([*BASE, "-vncunused"], "-vnc and -vncunused together"),
    (_without("-k"), "a VNC display without -k"),
    ([*_without("-vnc"), "-usbdevice", "tablet"], "-usbdevice before -usb"),
    (_without("-net", 1), "vlan 0 has a nic without a tap"),
    ([a for a in BASE if not a.startswith(("nic,", "tap,")) and a != "-net"],
     "no -net option"),
    ([*BASE, "-net", "none"], "-net none together"),
    ([*BASE, "-net", "nic,vlan=0,macaddr=00:16:3e:00:00:02,model=e1000"],
     "two -net nic options for vlan 0"),
    (_replace("nic,vlan=0,macaddr=00:16:3e:00:00:01,model=rtl8139",
              "nic,vlan=0,model=rtl8139,macaddr=00:16:3e:00:00:01"), "expected nic,vlan="),
    (_replace("nic,vlan=0,macaddr=00:16:3e:00:00:01,model=rtl8139",
              "nic,vlan=0,macaddr=00:16:3e:00:00,model=rtl8139"), "bad macaddr"),
    (_replace("tap,vlan=0,bridge=xenbr0,ifname=tap3.0",
              "tap,vlan=0,bridge=xenbr0,ifname=tap4.0"), "ifname must be tap3."),
    ([*BASE, "-net", "user"], "expected none, nic,... or tap,..."),
])
def test_malformed_command_lines_are_refused_by_name(args: list[str], message: str) -> None:
    with pytest.raises(QemuArgsError) as err:
        parse_qemu_args(args, 3)
    assert message in str(err.value)


def test_wrapper_argv() -> None:
    assert parse_wrapper_argv(["3", *BASE])[:2] == (3, "")
    with pytest.raises(QemuArgsError, match="not the wrapper's domid 4"):
        parse_wrapper_argv(["4", *BASE])
    with pytest.raises(QemuArgsError, match="must be the domid"):
        parse_wrapper_argv(["x", *BASE])
    with pytest.raises(QemuArgsError, match="missing <domid>"):
        parse_wrapper_argv([])
