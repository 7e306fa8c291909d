"""The xenvm config: parser, defaults, errors, round trips, get/set and the specs it yields."""

from __future__ import annotations

import hashlib
import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.xen.config_strategies import config_texts
from xen.xenops._dmargs import qemu_args
from xen.xenops._layout import Kind, PhysType
from xen.xenvm import (
    MAX_LINE_BYTES,
    Action,
    ConfigError,
    DiskConfig,
    NicConfig,
    PciConfig,
    Startup,
    VmConfig,
    add_entry,
    config_build_memory,
    config_from_dict,
    config_to_dict,
    dm_info,
    domain_spec,
    format_config,
    get_field,
    parse_config,
    pci_specs,
    platform_data,
    pv_device_specs,
    required_to_boot_kib,
    resolve_macs,
    sanitise_nics,
    set_field,
    vbd_spec,
    vif_specs,
    vm_mac,
)
from xen.xenvm._config_keys import LIST_KEYS, SCALAR_KEYS

UUID = "0e2f3a5c-1b2d-4c3e-8f90-a1b2c3d4e5f6"


# -------------------------------------------------------------------- parser, defaults


def test_defaults_are_the_originals() -> None:
    cfg = parse_config("")
    assert cfg == VmConfig()
    assert cfg.startup == Startup("start")
    assert cfg.memory is None and cfg.vcpus == 1 and cfg.hap and cfg.usb and cfg.qemu_pv
    assert (cfg.on_poweroff, cfg.on_reboot, cfg.on_crash) == (
        Action.DESTROY, Action.RESTART, Action.DESTROY)
    assert cfg.stubdom_memory == 128 and cfg.qemu_dm_timeout == 30 and cfg.boot == "cd"
    assert cfg.stubdom_cmdline == "init=/init xen_blkfront.max=8"
    assert cfg.display.kind == "vnc" and cfg.display.keymap == "en-us"
    assert cfg.pci_msitranslate == 1 and cfg.pci_power_management == 1
    assert format_config(cfg) == ""


def test_syntax_comments_blanks_and_repeats() -> None:
    cfg = parse_config(
        "# comment\n\n  \tmemory\t=  512  \nmemory = 1024\n"
        "disk = /a:phy:xvda:w:disk:none\ndisk = /b:phy:xvdb:r:disk:none\n"
        "name = has = equals\n"
    )
    assert cfg.memory == 1024  # last one wins
    assert [d.virtpath for d in cfg.disks] == ["xvda", "xvdb"]
    assert cfg.name == "has = equals"


@pytest.mark.parametrize("text", ["1", "y", "YES", "True", "tRuE"])
def test_true_spellings(text: str) -> None:
    assert parse_config(f"hvm = {text}").hvm is True
    assert parse_config(f"debug = {text}").debug is True


@pytest.mark.parametrize("text", ["0", "n", "No", "FALSE"])
def test_false_spellings(text: str) -> None:
    assert parse_config(f"hap = {text}").hap is False


def test_actions_and_their_aliases() -> None:
    cfg = parse_config("on_halt = preserve\non_restart = reboot\non_crash = restart")
    assert cfg.on_poweroff is Action.PRESERVE
    assert cfg.on_reboot is Action.RESTART
    assert cfg.on_crash is Action.RESTART
    assert parse_config("on_reboot = destroy\non_poweroff = restart").on_reboot is Action.DESTROY
    assert get_field(cfg, "on_halt") == "preserve"
    assert "on_poweroff = preserve" in format_config(cfg)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("started", Startup("start")), ("paused", Startup("paused")),
     ("poweroff", Startup("shutdown")), ("restore /tmp/x", Startup("restore", "/tmp/x")),
     ("restore-del /tmp/x", Startup("restore", "/tmp/x", True))],
)
def test_startup(text: str, expected: Startup) -> None:
    assert parse_config(f"startup = {text}").startup == expected


def test_display_and_notify() -> None:
    cfg = parse_config("display = vnc:use-port-unused,keymap=fr,port=3\nnotify = tcp,1.2.3.4:99")
    assert (cfg.display.use_unused_port, cfg.display.keymap, cfg.display.port) == (True, "fr", 3)
    assert cfg.notify is not None and (cfg.notify.host, cfg.notify.port) == ("1.2.3.4", 99)
    assert parse_config("display = sdl:0.0").display.option == "0.0"
    assert parse_config("notify = dbus").notify is not None
    assert parse_config("notify = unix,/run/x").notify.path == "/run/x"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- devices


def test_disk_six_fields_five_fields_and_options() -> None:
    six = DiskConfig.parse("/img/a.vhd:vhd:hda:w:disk:temporary:key-file=/k:key-size=512")
    assert six.snapshot == "temporary" and six.key_file == "/k" and six.key_size == 512
    assert six.cipher == "aes-xts-plain" and six.backend_domid == 0
    five = DiskConfig.parse("/dev/sdb:phy:xvdb:r:cdrom")
    assert five.snapshot == "none" and five.mode == "r" and five.devtype == "cdrom"
    five_kv = DiskConfig.parse("/dev/sdb:phy:xvdb:w:disk:backend-domid=2")
    assert five_kv.snapshot == "none" and five_kv.backend_domid == 2
    assert DiskConfig.parse(five_kv.format()) == five_kv


def test_a_guest_device_has_one_disk() -> None:
    one = "disk = /dev/a:phy:xvdb:w:disk:none\n"
    with pytest.raises(ConfigError, match="guest device xvdb is taken by another disk"):
        parse_config(one + "disk = /dev/b:phy:xvdb:r:disk:none\n")
    with pytest.raises(ConfigError, match="guest device xvdb"):
        add_entry(parse_config(one), "disk", "/dev/c:phy:xvdb:w:disk")
    assert len(parse_config(one + "disk = /dev/b:phy:xvdc:w:disk:none\n").disks) == 2


def test_only_a_cd_drive_may_be_empty() -> None:
    """An eject leaves a cdrom without a path in the config: it must read back (a snapshot
    with an ejected drive was once ignored by the next monitor); a disk needs its path."""
    empty = DiskConfig.parse(":file:xvdc:r:cdrom:none")
    assert empty.physpath == "" and DiskConfig.parse(empty.format()) == empty
    with pytest.raises(ValueError, match="empty disk path"):
        DiskConfig.parse(":phy:xvdb:w:disk:none")


def test_nic_ids_are_assigned_like_the_original() -> None:
    cfg = parse_config("nic = bridge=a\nnic = id=0,bridge=b\nvif = bridge=c\nnic = bridge=d")
    by_bridge = {n.bridge: n.nic_id for n in cfg.nics}
    # id 0 is taken; the id-less nics are numbered from the last one backwards
    assert by_bridge == {"b": 0, "d": 1, "c": 2, "a": 3}
    assert [n.nic_id for n in cfg.nics] == [0, 1, 2, 3]


def test_sanitise_nics_limits() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        sanitise_nics((NicConfig(nic_id=1), NicConfig(nic_id=1)))
    with pytest.raises(ValueError, match="more than 32"):
        sanitise_nics(tuple(NicConfig() for _ in range(33)))
    with pytest.raises(ConfigError):
        parse_config("nic = id=32")


def test_vm_mac_formula() -> None:
    digest = hashlib.md5(f"3 e1000 {UUID}".encode()).hexdigest()
    pairs = [digest[i] + digest[i + 12] for i in (0, 2, 1, 7, 6, 4)]
    first = int(pairs[0], 16) & 0xFE | 0x02
    assert vm_mac(3, "e1000", UUID) == ":".join([f"{first:02x}", *pairs[1:]])
    no_model = hashlib.md5(f"0 {UUID}".encode()).hexdigest()
    assert vm_mac(0, "", UUID)[3:5] == no_model[2] + no_model[14]


@given(st.integers(0, 31), st.sampled_from(["", "e1000", "rtl8139"]), st.uuids())
def test_vm_macs_are_local_unicast_and_stable(nic_id: int, model: str, uuid: object) -> None:
    mac = vm_mac(nic_id, model, str(uuid))
    first = int(mac[:2], 16)
    assert first & 0x02 and not first & 0x01
    assert mac == vm_mac(nic_id, model, str(uuid))
    assert NicConfig(nic_id=nic_id, model=model, mac="vm").effective_mac(str(uuid)) == mac


def test_random_and_literal_macs() -> None:
    nic = NicConfig(nic_id=0, mac="random")
    mac = nic.effective_mac(UUID, random.Random(1))
    assert mac.startswith("00:16:3e:") and int(mac[9:11], 16) < 0x80
    assert NicConfig(nic_id=0, mac="AA:BB:CC:DD:EE:FF").effective_mac(UUID) == "aa:bb:cc:dd:ee:ff"
    with pytest.raises(ConfigError, match="bad MAC"):
        parse_config("nic = mac=00:11")


def test_pci_cpuid_and_pairs() -> None:
    pci = PciConfig.parse("2,bind,0:1f:3.7,msitranslate=0,guest_slot=0x5")
    assert (pci.group, pci.bind, pci.bdf, pci.msitranslate, pci.guest_slot) == (
        2, True, "0000:1f:03.7", 0, 5)
    assert PciConfig.parse(pci.format()) == pci
    cfg = parse_config(
        "cpuid = 0x80000001+2:ecx=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx0,edx=" + "k" * 32 + "\n"
        "extra-hvm = std-vga\nextra-hvm = serial=pty\nplatform = vga\n"
        "cpus-affinity = 1:0,2\npassthrough-io = 0x3f8-0x3ff\n"
        "passthrough-mmio = 0xfed40000-0xfed44fff\n"
        "extra-local-watch = power-state\n"
    )
    assert cfg.cpuid[0].leaf == 0x80000001 and cfg.cpuid[0].subleaf == 2
    assert cfg.extra_hvm == (("std-vga", None), ("serial", "pty"))
    assert cfg.platform == (("vga", ""),)
    assert cfg.cpus_affinity == ((1, (0, 2)),)
    assert cfg.passthrough_io == ((0x3F8, 0x3FF),)
    assert cfg.passthrough_mmio == ((0xFED40000, 0xFED44FFF),)  # the end is the end
    assert parse_config(format_config(cfg)) == cfg


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("memory = lots", "memory"), ("memory = 0", "memory"), ("vcpus = -1", "vcpus"),
        ("hvm = maybe", "hvm"), ("on_crash = explode", "on_crash"),
        ("startup = restore", "startup"), ("startup = sideways", "startup"),
        ("display = vnc:colour=blue", "display"), ("display = rdp", "display"),
        ("notify = tcp6,::1:4", "notify"), ("notify = tcp,example.org:1", "notify"),
        ("uuid = not-a-uuid", "uuid"), ("disk = /a:phy:xvda:w", "disk"),
        ("disk = /a:phy:vdz:w:disk", "disk"), ("disk = /a:phy:xvda:x:disk", "disk"),
        ("disk = /a:phy:xvda:w:floppy", "disk"), ("disk = /a:phy:xvda:w:disk:sometimes", "disk"),
        ("disk = /a:vdi:xvda:w:disk", "disk"), ("disk = /a:phy:xvda:w:disk:none:junk", "disk"),
        ("disk = /a:phy:xvda:w:disk:none:key-size=big", "disk"),
        ("nic = id", "nic"), ("vif = wireless=perhaps", "vif"), ("pci = 0", "pci"),
        ("pci = 0,0000:00:20.0", "pci"), ("cpuid = 1:eax=0101", "cpuid"),
        ("cpuid = 1:eax=0x1", "cpuid"), ("cpuid = 1:fax=" + "x" * 32, "cpuid"),
        ("cpus-affinity = 1", "cpus-affinity"), ("passthrough-io = 5", "passthrough-io"),
        ("passthrough-io = 0x10-0x1", "passthrough-io"),
        ("passthrough-io = 0-0x10000", "passthrough-io"), ("extra-hvm = =v", "extra-hvm"),
    ],
)
def test_bad_values_name_key_value_and_line(line: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"# first\n{line}\n", source="vm.cfg")
    err = info.value
    assert err.key == key and err.line == 2
    assert err.value == line.split("=", 1)[1].strip()
    assert str(err).startswith("vm.cfg:2: ") and repr(key) in str(err)


def test_cross_field_errors() -> None:
    with pytest.raises(ConfigError, match="below memory"):
        parse_config("memory = 512\nmemory-max = 256")
    with pytest.raises(ConfigError, match="duplicate nic id 4"):
        parse_config("nic = id=4\nvif = id=4")


def test_unknown_keys_strict_and_lenient() -> None:
    text = "memory = 64\nfrobnicate = yes\njunk line\n"
    with pytest.raises(ConfigError, match="unknown config key") as info:
        parse_config(text, strict=True)
    assert info.value.line == 2
    cfg = parse_config(text)
    assert cfg.unknown == (("frobnicate", "yes"),)
    assert "frobnicate = yes" in format_config(cfg)
    with pytest.raises(ConfigError, match="not a `key = value` line"):
        parse_config("memory = 64\njunk line\n", strict=True)


def test_a_text_parsed_again_warns_again_and_fails_again() -> None:
    """Parses are remembered (a monitor parses its config at every restart): the same text
    gives an equal config and tells ``warn`` the same things each time; a bad text fails
    each time."""
    text = "memory = 64\nfrobnicate-again = yes\njunk line again\n"
    rounds: list[list[str]] = []
    for _ in range(3):
        notes: list[str] = []
        cfg = parse_config(text, source="t", warn=notes.append)
        assert cfg.memory == 64 and cfg.unknown == (("frobnicate-again", "yes"),)
        rounds.append(notes)
    assert len(rounds[0]) == 2 and rounds[0] == rounds[1] == rounds[2]
    assert "unknown config key 'frobnicate-again'" in rounds[0][0]
    assert parse_config(text, source="other") == cfg  # another label: parsed, equal
    for _ in range(2):
        with pytest.raises(ConfigError, match="unknown config key"):
            parse_config(text, strict=True, source="t")
        with pytest.raises(ConfigError):
            parse_config("memory = lots\n")


def test_bounds() -> None:
    with pytest.raises(ConfigError, match="longer than"):
        parse_config("name = " + "x" * MAX_LINE_BYTES)
    with pytest.raises(ConfigError, match="larger than"):
        parse_config("# " + "x" * 8000 + "\n" * 200 + ("#" * 8000 + "\n") * 140)


# ------------------------------------------------------------------------- get / set


def test_get_and_set_memory_in_mib_and_kib() -> None:
    cfg = parse_config("memory = 1024\nhvm = true\nvcpus = 2")
    assert get_field(cfg, "memory") == "1024"
    assert get_field(cfg, "memory-kib") == str(1024 * 1024)
    assert get_field(cfg, "memory-max") == "" and get_field(cfg, "memory-max-kib") == ""
    assert set_field(cfg, "memory", "2048").memory == 2048
    assert set_field(cfg, "memory-kib", "524288").memory == 512
    with pytest.raises(ConfigError, match="multiple of 1024"):
        set_field(cfg, "memory-kib", "1000")
    assert get_field(cfg, "required-to-boot-kib") == str(1036 * 1024)
    with pytest.raises(ConfigError, match="read-only"):
        set_field(cfg, "required-to-boot-kib", "1")


def test_required_to_boot_with_stubdom_matches_the_worked_example() -> None:
    cfg = parse_config(f"memory = 1024\nhvm = 1\nvcpus = 2\nstubdom = {UUID}")
    assert required_to_boot_kib(cfg) == 1167 * 1024
    with pytest.raises(ConfigError, match="not set"):
        required_to_boot_kib(VmConfig())


def test_set_validates_and_reports() -> None:
    cfg = VmConfig()
    assert set_field(cfg, "on_restart", "preserve").on_reboot is Action.PRESERVE
    assert set_field(cfg, "initrd", "").initrd is None
    assert set_field(cfg, "display", "none").display.kind == "none"
    for name, value in [("vcpus", "many"), ("nosuch", "1"), ("disk", "/a:phy:xvda:w:disk"),
                        ("hvm", "2")]:
        with pytest.raises(ConfigError) as info:
            set_field(cfg, name, value)
        assert info.value.key == name
    with pytest.raises(ConfigError):
        get_field(cfg, "nosuch")


def test_add_entry_renumbers_nics() -> None:
    cfg = parse_config("nic = id=0")
    cfg = add_entry(cfg, "nic", "model=e1000")
    assert [n.nic_id for n in cfg.nics] == [0, 1]
    cfg = add_entry(cfg, "disk", "/a:phy:xvda:w:disk")
    assert get_field(cfg, "disk") == "/a:phy:xvda:w:disk:none"
    with pytest.raises(ConfigError):
        add_entry(cfg, "memory", "3")
    with pytest.raises(ConfigError):
        add_entry(cfg, "nic", "id=0")


# ----------------------------------------------------------------------- round trips

@settings(max_examples=150)
@given(config_texts())
def test_file_and_dict_round_trips(text: str) -> None:
    cfg = parse_config(text)
    assert parse_config(format_config(cfg)) == cfg
    packed = msgpack.packb(config_to_dict(cfg))
    assert config_from_dict(msgpack.unpackb(packed)) == cfg
    for key in SCALAR_KEYS:
        assert set_field(cfg, key.name, get_field(cfg, key.name)) == cfg, key.name


def test_dict_rejects_other_shapes() -> None:
    for bad in [None, {}, {"format": "xenvm-config", "version": 9, "entries": []},
                {"format": "xenvm-config", "version": 1, "entries": [["a"]]},
                {"format": "xenvm-config", "version": 1, "entries": [["memory", "1\nhvm=1"]]}]:
        with pytest.raises(ConfigError):
            config_from_dict(bad)


def test_every_field_has_one_key() -> None:
    names = [k.name for k in SCALAR_KEYS + LIST_KEYS]
    assert len(names) == len(set(names))


# ----------------------------------------------------------------------------- specs


def test_specs_from_a_config() -> None:
    cfg = parse_config(
        "memory = 1024\nhvm = true\nvcpus = 2\nacpi = 1\ntimer-mode = 1\nplatform = hap=false\n"
        "disk = /dev/vg/a:phy:hda:w:disk\nnic = id=1,bridge=br1\nnic = id=0,mac=random\n"
        "nic = id=2,backend-domid=3,network=/net/x\n"
        "pci = 0,0000:00:02.0\npci = 0,bind,0000:00:02.1,msitranslate=0\npci = 1,0000:01:00.0\n"
        "vkbd = 1\nvfb = 1\ncdrom-pt = /dev/sr0\nextra-hvm = std-vga\nserial = none\n"
    )
    data = dict(platform_data(cfg))
    assert data["acpi_s3"] == "1" and data["pae"] == "false" and data["timer-mode"] == "1"
    assert data["vcpu_number"] == "2" and data["hap"] == "false"
    assert domain_spec(cfg, UUID).platform == platform_data(cfg)
    mem = config_build_memory(cfg)
    assert mem.required_host_free_mib == 1036
    disk = vbd_spec(cfg, cfg.disks[0], 5, physical_device=(253, 1))
    assert disk.phystype is PhysType.PHY and disk.devid == 768 and disk.hvm
    with pytest.raises(ConfigError, match="random"):
        vif_specs(cfg, 5, UUID)
    ready = resolve_macs(cfg, UUID, random.Random(7))
    vifs = vif_specs(ready, 5, UUID)
    assert [v.devid for v in vifs] == [0, 1, 2]
    assert vifs[1].mac == vm_mac(1, "", UUID) and vifs[2].network == "/net/x"
    info = dm_info(ready, UUID, host_bridges=("xenbr0",))
    assert [n.nic_id for n in info.nics] == [0, 1]  # the driver-domain nic is not emulated
    assert info.nics[0].mac == vifs[0].mac and info.nics[0].bridge == "xenbr0"
    args = qemu_args(info, 5)
    assert "-serial" not in args
    assert args[args.index("-cdrom-pt"):][:3] == ["-cdrom-pt", "/dev/sr0", "-std-vga"]
    groups = pci_specs(cfg, 5)
    assert [(g.devid, len(g.devs), g.bind) for g in groups] == [(0, 2, True), (1, 1, False)]
    assert [d.msitranslate for d in groups[0].devs] == [1, 0]
    assert [(s.kind, s.devid) for s in pv_device_specs(cfg, 5)] == [
        (Kind.VKBD, 0), (Kind.VKBD, 1), (Kind.VFB, 0)]


def test_every_public_xenvm_class_is_a_frozen_slotted_dataclass() -> None:
    import dataclasses

    import xen.xenvm as xenvm

    for name in xenvm.__all__:
        obj = getattr(xenvm, name)
        if isinstance(obj, type) and dataclasses.is_dataclass(obj):
            assert obj.__dataclass_params__.frozen, name  # type: ignore[attr-defined]
            assert "__slots__" in obj.__dict__, name
