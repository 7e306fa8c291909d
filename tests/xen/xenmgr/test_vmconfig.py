"""From a VM's db subtree to our VM monitor's config: every db key is covered by the table,
the output parses strictly, and what the monitor cannot hold is refused or noted, named."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xen.xenmgr import (
    TRANSLATION,
    VM_KEYS,
    DbView,
    HostFacts,
    How,
    Translation,
    VmConfigError,
    default_mac,
    stubdom_uuid,
    translate,
)
from xen.xenvm import Action, VmConfig, parse_config

UUID = "5d2c1f0e-0000-4000-8000-00000000beef"

HVM: dict[str, Any] = {
    "uuid": UUID, "name": "Windows", "type": "svm", "os": "windows", "stubdom": "true",
    "policies": {"audio-rec": "false"}, "restrict-display-res": "true", "time-offset": "-3600",
    "oem-acpi-features": "true", "usb-enabled": "false", "cpuid": "0x1:ecx=" + "x" * 31 + "0; ",
    "config": {
        "notify": "dbus", "virt-type": "hvm", "pae": "true", "acpi": "yes", "apic": "1",
        "viridian": "true", "hap": "false", "nx": "true", "argo": "true", "sound": "ac97",
        "memory": "2048", "memory-static-max": "3072", "vcpus": "4", "cores-per-socket": "2",
        "display": "none", "boot": "dc", "flask-label": "system_u:system_r:hvm_guest_t",
        "timer-mode": "one_missed_tick_pending", "hpet": "false", "nestedhvm": "true",
        "qemu-dm-path": "/usr/sbin/qemu-wrapper", "qemu-dm-timeout": "45", "stubdom-memory": "128",
        "stubdom-cmdline": "-net none", "vglass-enabled": "true", "acpi-table": "true",
        "passthrough-io": "0x3f8-0x3ff",
        "disk": {
            "0": {"path": "/storage/isos/tools.iso", "type": "file", "mode": "r",
                  "device": "hdc", "devtype": "cdrom"},
            "1": {"path": "/storage/disks/w.vhd", "type": "vhd", "mode": "w", "device": "hda",
                  "devtype": "disk"},
            "2": {"path": "/dev/sdb", "type": "phy", "mode": "w", "device": "hdb",
                  "devtype": "disk", "enable": "false"},
            "3": {"path": "/storage/disks/r.img", "type": "raw", "mode": "r", "device": "hdd",
                  "devtype": "disk"},
        },
        "nic": {"0": {"id": "0", "network": "brbridged"},
                "1": {"id": "1", "network": "/wifi/0/shared", "wireless-driver": "true",
                      "mac": "00:16:3E:AA:BB:CC", "model": "rtl8139"}},
        "pci": {"0": {"bdf": "0000:00:19.0@5"}, "1": {"class": "0x0200", "force-slot": "true"}},
        "extra-hvm": {"0": "std-vga", "1": "usbdevice=tablet"},
        "extra-xenvm": {"0": "smbios-pt=true"},
    },
}
FACTS = HostFacts(bridges={"/wired/0/bridged": "brbridged"},
                  wireless_networks=frozenset({"/wifi/0/shared"}), nic_backends={1: 3},
                  pci_matches={1: ("0000:02:00.0", "0000:00:19.0")}, key_dirs=("/k1", "/k2"))


def run(tree: dict[str, Any], facts: HostFacts = FACTS, uuid: str = UUID) -> Translation:
    return translate(DbView(tree), uuid, facts)


def parsed(result: Translation) -> VmConfig:
    return parse_config(result.text, strict=True)


def tree(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(HVM)
    for path, value in changes.items():
        node = out
        parts = path.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part.replace("_", "-"), {})
        if value is None:
            node.pop(parts[-1].replace("_", "-"), None)
        else:
            node[parts[-1].replace("_", "-")] = value
    return out


def test_every_db_key_is_covered_by_the_table() -> None:
    assert set(TRANSLATION) == {key.path for key in VM_KEYS}
    assert {rule.how for rule in TRANSLATION.values()} == set(How)
    assert all(rule.detail for rule in TRANSLATION.values())


def test_an_hvm_guest() -> None:
    result = run(HVM)
    cfg = parsed(result)
    assert (cfg.uuid, cfg.name, cfg.hvm, cfg.memory, cfg.memory_max) == (
        UUID, "Windows", True, 2048, 3072)
    assert (cfg.vcpus, cfg.cores_per_socket) == (4, 2)
    assert cfg.startup.mode == "shutdown"
    assert (cfg.on_poweroff, cfg.on_reboot, cfg.on_crash) == (
        Action.DESTROY, Action.RESTART, Action.DESTROY)
    assert (cfg.pae, cfg.acpi, cfg.apic, cfg.viridian, cfg.hap, cfg.nx, cfg.nested) == (
        True, True, True, True, False, True, True)
    assert (cfg.hpet, cfg.timer_mode, cfg.videoram, cfg.acpi_pt) == (0, 3, 16, True)
    assert (cfg.v4v, cfg.vkbd, cfg.usb, cfg.oem_features) == (True, True, False, 1)
    assert (cfg.boot, cfg.sound, cfg.time_offset) == ("dc", "ac97", "-3600")
    assert cfg.flask_label == "system_u:system_r:hvm_guest_t"
    assert cfg.notify is not None and cfg.notify.kind == "dbus"
    assert (cfg.qemu_dm_path, cfg.qemu_dm_timeout) == ("/usr/sbin/qemu-wrapper", 45)
    assert cfg.display.kind == "none"
    assert cfg.platform == (("restrictdisplayres", "1"),)
    assert cfg.passthrough_io == ((0x3F8, 0x3FF),)
    assert cfg.smbios_pt is True  # from extra-xenvm
    assert [c.leaf for c in cfg.cpuid] == [1]
    assert cfg.stubdom == stubdom_uuid(UUID)
    assert (cfg.stubdom_memory, cfg.stubdom_cmdline) == (128, "-net none")
    assert cfg.extra_hvm == (("disable-audio-rec", None), ("std-vga", None),
                             ("usbdevice", "tablet"))
    assert cfg.kernel == "" and cfg.cmdline == ""


def test_disks() -> None:
    result = run(HVM)
    disks = parsed(result).disks
    assert [(d.physpath, d.phystype.value, d.virtpath, d.mode, d.devtype) for d in disks] == [
        ("/storage/isos/tools.iso", "file", "hdc", "r", "cdrom"),
        ("/storage/disks/w.vhd", "vhd", "hda", "w", "disk"),
        ("/storage/disks/r.img", "file", "hdd", "r", "disk"),  # raw is a plain file
    ]
    assert disks[1].key_dir == "/k1,/k2" and disks[0].key_dir is None
    assert "config/disk/2: disabled, left out" in result.notes
    sources = [line.source for line in result.lines if line.key == "disk"]
    assert sources == ["config/disk/0", "config/disk/1", "config/disk/3"]


def test_temporary_snapshots_are_made_by_xenmgr() -> None:
    snap = tree(config__disk__1__snapshot="temporary")
    result = run(snap)
    assert parsed(result).disks[1].snapshot == "temporary"
    assert any("config/disk/1/snapshot" in note for note in result.notes)
    facts = HostFacts(pci_matches=FACTS.pci_matches, disk_paths={1: "/storage/disks/snap.vhd"})
    result = run(snap, facts)
    assert parsed(result).disks[1].physpath == "/storage/disks/snap.vhd"
    assert not any("snapshot" in note for note in result.notes)


def test_nics_get_the_default_mac_the_network_and_the_backend() -> None:
    nics = parsed(run(HVM)).nics
    assert [(n.nic_id, n.network, n.bridge, n.mac, n.model, n.wireless, n.backend_domid)
            for n in nics] == [
        (0, "/wired/0/bridged", "brbridged", default_mac(0, UUID), "e1000", False, 0),
        (1, "/wifi/0/shared", "", "00:16:3e:aa:bb:cc", "rtl8139", True, 3),
    ]


def test_nic_policies_and_linux_wireless() -> None:
    no_wifi = tree(policies__wireless_networking="false")
    result = run(no_wifi)
    assert [n.nic_id for n in parsed(result).nics] == [0]
    assert "config/nic/1: left out, policies/wireless-networking is false" in result.notes
    no_wired = tree(policies__wired_networking="false")
    assert [n.nic_id for n in parsed(run(no_wired)).nics] == [1]
    linux = tree(os="linux")
    assert [n.wireless for n in parsed(run(linux)).nics] == [False, False]
    disabled = tree(config__nic__0__enable="false")
    assert [n.nic_id for n in parsed(run(disabled)).nics] == [1]


def test_pci_devices() -> None:
    pcis = parsed(run(tree(gpu="0000:01:00.0", **{"amt-pt": "true"}), HostFacts(
        pci_matches=FACTS.pci_matches, amt_devices=("0000:00:03.0",)))).pcis
    assert [(p.bdf, p.guest_slot, p.bind) for p in pcis] == [
        ("0000:01:00.0", None, True),   # the gpu
        ("0000:00:03.0", None, True),   # AMT
        ("0000:00:19.0", 5, True),      # bdf rule with @slot (also matched by rule 1: once)
        ("0000:02:00.0", 0, True),      # class rule with force-slot: the host's slot
    ]


def test_a_pv_guest() -> None:
    pv = {"name": "pv", "config": {"virt-type": "pv", "memory": "256", "cmdline": "root=/dev/xvda",
                                   "initrd": "/boot/initrd", "nic": {"0": {}},
                                   "qemu-dm-path": "/x"}}
    result = run(pv, HostFacts())
    cfg = parsed(result)
    assert (cfg.hvm, cfg.kernel, cfg.cmdline, cfg.initrd) == (
        False, f"/tmp/kernel-{UUID}", "root=/dev/xvda", "/boot/initrd")
    assert (cfg.qemu_dm_path, cfg.videoram, cfg.timer_mode, cfg.vcpus) == ("", 0, None, 1)
    assert cfg.nics[0].model == ""
    pv["config"]["kernel"] = "/boot/vmlinuz"
    assert parsed(run(pv, HostFacts())).kernel == "/boot/vmlinuz"


def test_pvh_is_our_monitors_pvh() -> None:
    result = run({"config": {"virt-type": "pvh", "memory": "64"}}, HostFacts())
    cfg = parsed(result)
    assert (cfg.hvm, cfg.pvh, cfg.hvm_container) == (False, True, True)
    assert not any("pvh" in note for note in result.notes)
    assert parsed(run({"config": {"virt-type": "pv", "memory": "64"}}, HostFacts())).pvh is False


def test_what_only_applies_to_some_guests_is_noted() -> None:
    result = run({"stubdom": "true", "config": {"memory": "64"}}, HostFacts())
    assert parsed(result).stubdom is None
    assert "stubdom = true: ignored, stub domains serve HVM guests only" in result.notes
    result = run(tree(config__kernel="/k"))
    assert "config/kernel = '/k': ignored for an HVM guest" in result.notes
    assert parsed(result).kernel == ""


def test_platform_flags_are_written_only_when_set() -> None:
    result = run({"config": {"memory": "64", "virt-type": "hvm"}}, HostFacts())
    keys = {line.key for line in result.lines}
    assert not keys & {"pae", "acpi", "apic", "viridian", "hap", "nx"}
    cfg = parsed(result)
    assert (cfg.hap, cfg.hpet, cfg.timer_mode) == (VmConfig().hap, 1, 1)
    assert cfg.qemu_dm_path == "/opt/xensource/libexec/qemu-dm-wrapper"


def test_unsupported_settings_and_unknown_keys_are_noted() -> None:
    result = run(tree(config__bios="ovmf", config__secureboot="true", config__hdtype="ahci",
                      config__long_form="Secret", colour="blue", config__display="dh0",
                      policies__cd_access="false"))
    notes = "\n".join(result.notes)
    assert "config/bios = 'ovmf': no effect" in notes
    assert "config/secureboot = 'true': no effect" in notes
    assert "config/hdtype = 'ahci': no effect" in notes
    assert "config/long-form = 'Secret': no effect" in notes
    assert "colour: not a key xenmgr knows, ignored" in notes
    assert "config/display = 'dh0'" in notes
    assert "policies/cd-access = 'false': no effect" in notes
    plain = run({"config": {"memory": "64", "bios": "seabios", "secureboot": "false"}},
                HostFacts())
    assert not any("no effect" in note for note in plain.notes)  # defaults are not news


def test_a_vm_without_memory_is_translated_and_noted() -> None:
    result = run({"config": {"virt-type": "hvm"}}, HostFacts())
    assert parsed(result).memory is None
    assert "config/memory is not set: the VM cannot start" in result.notes


@pytest.mark.parametrize(("changes", "key", "reason"), [
    ({"config__pae": "maybe"}, "config/pae", "is not a boolean"),
    ({"config__memory": "lots"}, "config/memory", "is not a decimal integer"),
    ({"config__memory_static_max": "1024"}, "config/memory-static-max", "is below"),
    ({"config__vcpus": "0"}, "config/vcpus", "is not a number of vcpus"),
    ({"config__timer_mode": "fast"}, "config/timer-mode", "is not a timer mode"),
    ({"config__virt_type": "xen"}, "config/virt-type", "is not one of"),
    ({"config__disk__1__type": "vdi"}, "config/disk/1/type", "no longer supported"),
    ({"config__disk__1__mode": None}, "config/disk/1/mode", "is not set"),
    ({"config__disk__1__path": "/a:b"}, "config/disk/1/path", "contains ':'"),
    ({"config__disk__1__device": "hdz"}, "config/disk/1", "our VM monitor refuses it"),
    ({"config__nic__0__mac": "zz"}, "config/nic/0/mac", "does not match"),
    ({"config__nic__0__network": "a,b"}, "config/nic/0/network", "contains ','"),
    ({"config__pci__0__bdf": "19.0"}, "config/pci/0/bdf", "does not match"),
    ({"config__notify": "tcp6,::1:5"}, "config/notify", "our VM monitor refuses it"),
    ({"config__extra_xenvm": {"0": "no-such-key=1"}}, "config/extra-xenvm/0",
     "our VM monitor refuses it"),
    ({"config__extra_xenvm": {"0": "memory"}}, "config/extra-xenvm/0", "not a key=value"),
    ({"config__extra_xenvm": {"0": "vcpus=0"}}, "config/extra-xenvm/0", "must be in"),
    ({"name": "two\nlines"}, "name", "line break"),
    ({"uuid": "00000000-0000-0000-0000-000000000000"}, "uuid", "differs"),
])
def test_what_cannot_be_translated_is_named(changes: dict[str, Any], key: str,
                                            reason: str) -> None:
    with pytest.raises(VmConfigError) as info:
        run(tree(**changes))
    assert info.value.key == key
    assert reason in info.value.reason
    assert key in str(info.value)


def test_class_rules_need_the_hosts_devices() -> None:
    with pytest.raises(VmConfigError) as info:
        run(HVM, HostFacts())
    assert info.value.key == "config/pci/1" and "pci_matches" in info.value.reason


def test_stubdom_uuids() -> None:
    assert stubdom_uuid(UUID) == stubdom_uuid(UUID.upper())
    assert stubdom_uuid(UUID) != stubdom_uuid("5d2c1f0e-0000-4000-8000-00000000bee0")
    given_uuid = "11111111-1111-1111-1111-111111111111"
    facts = HostFacts(pci_matches=FACTS.pci_matches, stubdom_uuid=given_uuid)
    assert parsed(run(HVM, facts)).stubdom == given_uuid
    with pytest.raises(VmConfigError, match="not a VM uuid"):
        translate(DbView({}), "vm1")


_FLAG = st.sampled_from(["true", "false", "yes", "no", "1", "0"])


@settings(max_examples=60, deadline=None)
@given(
    virt=st.sampled_from(["hvm", "pv", "pvh"]),
    memory=st.integers(min_value=1, max_value=1 << 20),
    extra=st.integers(min_value=0, max_value=1 << 10),
    vcpus=st.integers(min_value=1, max_value=64),
    flags=st.dictionaries(st.sampled_from(["pae", "acpi", "apic", "viridian", "hap", "nx",
                                           "hpet", "nestedhvm", "vsnd", "vkbd", "argo"]),
                          _FLAG),
    nics=st.lists(st.integers(min_value=0, max_value=31), unique=True, max_size=4),
    stub=_FLAG,
)
def test_any_sane_vm_translates_to_a_config_the_monitor_accepts(
        virt: str, memory: int, extra: int, vcpus: int, flags: dict[str, str],
        nics: list[int], stub: str) -> None:
    vm = {"stubdom": stub, "config": {
        "virt-type": virt, "memory": str(memory), "memory-static-max": str(memory + extra),
        "vcpus": str(vcpus), **flags, "nic": {str(n): {"id": str(n)} for n in nics},
        "disk": {"0": {"path": "/d.img", "type": "file", "mode": "w", "device": "hda",
                       "devtype": "disk"}}}}
    cfg = parsed(run(vm, HostFacts()))
    assert (cfg.memory, cfg.static_max, cfg.vcpus, cfg.hvm) == (
        memory, memory + extra, vcpus, virt == "hvm")
    assert [n.nic_id for n in cfg.nics] == sorted(nics)
    assert all(n.mac == default_mac(n.nic_id or 0, UUID) for n in cfg.nics)
    assert (cfg.stubdom is not None) == (virt == "hvm" and stub in ("true", "yes", "1"))
