"""The VM db layout as data, the string codecs, the default MAC and the id rules."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xen.xenmgr import (
    CD_DEVICE,
    DEFAULT_NETWORK,
    VM_KEYS,
    Kind,
    SchemaError,
    default_mac,
    find_key,
    network_path,
    next_id,
    next_virtual_device,
    vm_key,
)
from xen.xenmgr._codecs import (
    decode_bool,
    decode_int,
    encode_bool,
    encode_int,
    list_writes,
)
from xen.xenmgr._schema import decode, encode, map_ids

# ------------------------------------------------------------------------------ codecs


@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("yes", True), ("1", True), ("false", False), ("no", False), ("0", False)])
def test_the_six_boolean_spellings(text: str, value: bool) -> None:
    assert decode_bool("config/pae", text) is value


@given(st.text(max_size=8).filter(lambda t: t not in ("true", "yes", "1", "false", "no", "0")))
def test_any_other_boolean_text_is_an_error_naming_key_and_value(text: str) -> None:
    with pytest.raises(SchemaError) as info:
        decode_bool("config/pae", text)
    assert info.value.key == "config/pae" and info.value.value == text
    assert "config/pae" in str(info.value) and repr(text) in str(info.value)


@given(st.booleans())
def test_booleans_are_written_true_false(value: bool) -> None:
    assert encode_bool("k", value) == ("true" if value else "false")
    assert decode_bool("k", encode_bool("k", value)) is value


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_integers_round_trip_in_decimal(value: int) -> None:
    text = encode_int("config/memory", value)
    assert text == str(value)
    assert decode_int("config/memory", text) == value
    assert decode_int("config/memory", f" {text}\n") == value


@pytest.mark.parametrize("text", ["", "1.5", "+1", "0x10", "1e3", "--1", "1 2", "9" * 20])
def test_malformed_integers_are_errors(text: str) -> None:
    with pytest.raises(SchemaError, match="config/memory"):
        decode_int("config/memory", text)


def test_encoders_check_types() -> None:
    with pytest.raises(SchemaError):
        encode_bool("k", 1)
    with pytest.raises(SchemaError):
        encode_int("k", True)
    with pytest.raises(SchemaError):
        encode_int("k", 1 << 63)


@given(st.lists(st.text(max_size=5), max_size=5))
def test_lists_are_children_zero_one_two(items: list[str]) -> None:
    writes = list_writes("config/extra-hvm", items)
    assert [p for p, _ in writes] == [f"config/extra-hvm/{i}" for i in range(len(items))]
    assert [v for _, v in writes] == items


# ------------------------------------------------------------------------------ layout

#: The keys the original's layout documents, each of which must be in VM_KEYS.
DOCUMENTED = """
uuid name description slot type image_path os hidden hidden-in-ui start_on_boot
start_on_boot_priority shutdown-priority keep-alive provides-network-backend
provides-default-network-backend provides-graphics-fallback track-dependencies stubdom measured
hibernated time-offset amt-pt auto-s3-wake seamless-id seamless-traffic seamless-mouse-left
seamless-mouse-right control-platform-power-state oem-acpi-features usb-enabled
usb-auto-passthrough usb-control usb-grab-devices greedy-pciback-bind cpuid xci-cpuid-signature
crypto-user crypto-key-dirs gpu domstore-read-access domstore-write-access show-switcher
wireless-control native-experience s3-mode s4-mode realm sync-uuid icbinn-path
ovf-transport-iso ready restrict-display-depth restrict-display-res preserve-on-reboot
boot-sentinel start-from-suspend-image portica-installed portica-enabled pv-addons-installed
pv-addons-version download-progress run-post-create run-pre-delete run-pre-boot
run-insteadof-start run-on-state-change run-on-acpi-state-change backend ui-selectable
argo-firewall-rules rpc-firewall-rules policies/cd-access policies/cd-rec policies/audio-access
policies/audio-rec policies/wired-networking policies/wireless-networking
policies/modify-vm-settings policies/print-screen-disallowed firewall-rule/*/direction
firewall-rule/*/remote-ip firewall-rule/*/extra productproperty
config/notify config/virt-type config/pae config/acpi config/apic config/viridian config/hap
config/nx config/sound config/memory config/memory-min config/memory-static-max config/display
config/boot config/cmdline config/kernel config/kernel-extract config/initrd
config/initrd-extract config/acpi-table config/vcpus config/cores-per-socket config/videoram
config/passthrough-mmio config/passthrough-io config/flask-label config/init-flask-label
config/stubdom-flask-label config/qemu-dm-path config/qemu-dm-timeout config/stubdom-memory
config/stubdom-cmdline config/vsnd config/vkbd config/argo config/hpet config/timer-mode
config/nestedhvm config/serial config/bios config/secureboot config/authenforce config/hdtype
config/display-handler-strict config/long-form config/short-form config/text-color
config/domain-color config/secondary-domain-color config/border-width config/border-height
config/mosaic-vm-enabled config/vglass-enabled config/mosaic-mode config/windowed-x
config/windowed-y config/windowed-w config/windowed-h config/extra-hvm config/extra-xenvm
config/disk/*/path config/disk/*/type config/disk/*/mode config/disk/*/device
config/disk/*/devtype config/disk/*/snapshot config/disk/*/sha1sum config/disk/*/shared
config/disk/*/managed-disktype config/disk/*/enable
config/nic/*/id config/nic/*/network config/nic/*/backend-uuid config/nic/*/backend-name
config/nic/*/enable config/nic/*/wireless-driver config/nic/*/mac config/nic/*/model
config/pci/*/bdf config/pci/*/class config/pci/*/vendor config/pci/*/device
config/pci/*/force-slot
""".split()


def test_every_documented_key_is_in_the_layout() -> None:
    paths = {key.path for key in VM_KEYS}
    assert set(DOCUMENTED) - paths == set()
    assert len(paths) == len(VM_KEYS)


DEFAULTS = {
    "config/virt-type": "pv", "usb-enabled": True, "usb-auto-passthrough": True,
    "usb-control": False, "config/hpet": True, "config/timer-mode": "no_delay_for_missed_ticks",
    "config/stubdom-memory": 96, "config/hdtype": "ide", "config/disk/*/enable": True,
    "config/nic/*/enable": True, "config/nic/*/network": "/wired/0/bridged",
    "policies/cd-access": True, "policies/modify-vm-settings": True, "os": "unknown",
    "type": "svm", "config/qemu-dm-timeout": 30, "ready": True, "greedy-pciback-bind": True,
}


@pytest.mark.parametrize(("path", "default"), sorted(DEFAULTS.items()))
def test_defaults(path: str, default: object) -> None:
    assert vm_key(path).default == default


def test_allowed_values() -> None:
    assert vm_key("config/virt-type").allowed == ("hvm", "pvh", "pv")
    assert vm_key("os").allowed == ("linux", "windows", "windows8", "unknown")
    assert vm_key("s4-mode").allowed == ("pv", "ignore", "restart", "snapshot")
    assert vm_key("config/disk/*/type").allowed == (
        "file", "phy", "qcow", "vdi", "aio", "vhd", "raw")
    assert vm_key("config/disk/*/mode").allowed == ("r", "w")
    assert vm_key("config/disk/*/devtype").allowed == ("disk", "cdrom")
    assert "" in vm_key("config/disk/*/managed-disktype").allowed


@pytest.mark.parametrize("key", VM_KEYS, ids=lambda k: k.path)
def test_defaults_have_the_keys_type(key: object) -> None:
    from xen.xenmgr import Key
    assert isinstance(key, Key)
    expected = {Kind.BOOL: bool, Kind.INT: int, Kind.STRING: str, Kind.ENUM: str,
                Kind.LIST: tuple}.get(key.kind)
    if key.default is not None and expected is not None:
        assert isinstance(key.default, expected)
        if expected is not tuple:
            assert decode(key, encode(key, key.default)) == key.default
    if key.kind is Kind.ENUM and key.default is not None:
        assert key.default in key.allowed


def test_decode_and_encode_by_key() -> None:
    assert decode(vm_key("config/memory"), "512") == 512
    assert decode(vm_key("os"), "beos") == "unknown"  # lenient, as the original
    with pytest.raises(SchemaError, match=r"config/virt-type.*'xen'"):
        decode(vm_key("config/virt-type"), "xen")
    with pytest.raises(SchemaError, match=r"config/nic/\*/mac"):
        decode(vm_key("config/nic/*/mac"), "00:11:22")
    assert decode(vm_key("config/pci/*/bdf"), "0000:00:19.0@3") == "0000:00:19.0@3"
    with pytest.raises(SchemaError):
        decode(vm_key("config/extra-hvm"), "x")  # a list, not one value
    with pytest.raises(SchemaError):
        encode(vm_key("config/disk/*/mode"), "x")
    with pytest.raises(KeyError, match="config/nothing"):
        vm_key("config/nothing")


@pytest.mark.parametrize(("path", "key"), [
    ("name", "name"),
    ("config/memory", "config/memory"),
    ("config/disk/3/path", "config/disk/*/path"),
    ("config/disk/3", "config/disk"),
    ("config/nic/0/mac", "config/nic/*/mac"),
    ("firewall-rule/12/remote-ip", "firewall-rule/*/remote-ip"),
    ("argo-firewall-rules/4", "argo-firewall-rules"),
    ("config/extra-xenvm/0", "config/extra-xenvm"),
    ("backend/state/operation", "backend"),
    ("productproperty/a/b/c", "productproperty"),
    ("/policies/cd-access/", "policies/cd-access"),
])
def test_find_key(path: str, key: str) -> None:
    found = find_key(path)
    assert found is not None and found.path == key


@pytest.mark.parametrize("path", ["nonsense", "config/disk/3/colour", "name/x", "config",
                                  "config/memory/x", ""])
def test_find_key_of_unknown_paths(path: str) -> None:
    assert find_key(path) is None


# ------------------------------------------------------------------- MAC, ids, devices

# Vectors worked out by hand from the rule. md5 of "0 00000000-0000-0000-0000-000000000001"
# is 4b1c03e9dc65f4c7add884ead20cacf0. Nibbles n0..n31 = 4 b 1 c 0 3 e 9 d c 6 5 f 4 c 7 a d
# d 8 8 4 e a d 2 0 c a c f 0. Bytes (n_i, n_i+12) for i = 0 2 1 7 6 4: (4,f) (1,c) (b,4) (9,8)
# (e,d) (0,a) = 4f 1c b4 98 ed 0a; 0x4f & 0xfe | 0x02 = 0x4e.
# md5 of "1 6f1c3a52-1d7e-4c55-9b0e-2f4b8f1e7a10" is 7541ba512bb193258217162b250dcb74:
# (7,9) (4,2) (5,3) (1,7) (5,1) (b,8) = 79 42 53 17 51 b8; 0x79 -> 0x7a.
# md5 of "2 11111111-2222-3333-4444-555555555555" is 44a4eb46c910b5e0144cbafe7c5de29b:
# (4,b) (a,e) (4,5) (6,c) (4,4) (e,1) = 4b ae 45 6c 44 e1; 0x4b -> 0x4a.
MAC_VECTORS = [
    (0, "00000000-0000-0000-0000-000000000001", "4e:1c:b4:98:ed:0a"),
    (1, "6f1c3a52-1d7e-4c55-9b0e-2f4b8f1e7a10", "7a:42:53:17:51:b8"),
    (2, "11111111-2222-3333-4444-555555555555", "4a:ae:45:6c:44:e1"),
]


@pytest.mark.parametrize(("nic", "uuid", "mac"), MAC_VECTORS)
def test_default_mac_vectors(nic: int, uuid: str, mac: str) -> None:
    assert default_mac(nic, uuid) == mac


@given(st.integers(min_value=0, max_value=10_000), st.uuids())
def test_default_macs_are_local_unicast_lowercase(nic: int, uuid: object) -> None:
    mac = default_mac(nic, str(uuid))
    assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac)
    first = int(mac[:2], 16)
    assert first & 0x02 and not first & 0x01
    assert default_mac(nic + 1, str(uuid)) != mac


def test_default_mac_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="nic id"):
        default_mac(-1, MAC_VECTORS[0][1])
    with pytest.raises(ValueError, match="uuid"):
        default_mac(0, "not-a-uuid")


def test_new_ids_are_max_plus_one() -> None:
    assert next_id([]) == 0
    assert next_id([0, 1, 2]) == 3
    assert next_id([5, 0]) == 6  # not the first free one


def test_new_virtual_devices_are_the_first_free_of_hda_to_hdz() -> None:
    assert next_virtual_device([]) == "hda"
    assert next_virtual_device(["hda", "hdc"]) == "hdb"
    assert next_virtual_device(["hda", "hdb", "hdc"]) == "hdd"
    assert next_virtual_device([f"hd{chr(c)}" for c in range(ord("a"), ord("y") + 1)]) == "hdz"
    with pytest.raises(SchemaError, match="no free device"):
        next_virtual_device([f"hd{chr(c)}" for c in range(ord("a"), ord("z") + 1)])
    assert CD_DEVICE == "hdc"


def test_networks() -> None:
    assert network_path(None) == DEFAULT_NETWORK == "/wired/0/bridged"
    assert network_path("brbridged") == "/wired/0/bridged"
    assert network_path("brshared") == "/wired/0/shared"
    assert network_path("brwireless") == "/wifi/0/shared"
    assert network_path("brinternal") == "/internal"
    assert network_path("/wired/1/bridged") == "/wired/1/bridged"


def test_map_ids() -> None:
    assert map_ids(["0", "10", "2"], "config/disk") == [0, 10, 2]
    with pytest.raises(SchemaError, match="config/disk/x"):
        map_ids(["x"], "config/disk")
