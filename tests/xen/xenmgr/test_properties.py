"""Every property of every xenmgr interface file is bound once; reads give defaults for missing
keys; sets validate, plan the original's writes, and round-trip."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.idl import load_package
from xen.xenmgr import (
    BINDINGS,
    Binding,
    Codec,
    Computed,
    DbView,
    Derived,
    Effect,
    Fixed,
    Kind,
    NeedsService,
    Remove,
    Scope,
    SetPlan,
    Stored,
    Target,
    Unsupported,
    Write,
    XenmgrError,
    binding,
    default_mac,
    find_key,
    plan_set,
    portica_enabled,
    read_property,
    seamless_traffic,
)
from xen.xenmgr._dbview import segments

FILES = ("xenmgr", "xenmgr_vm", "xenmgr_host", "vm_disk", "vm_nic")
UUID = "00000000-0000-0000-0000-0000000000aa"
VM = "com.citrix.xenclient.xenmgr.vm"
UNRESTRICTED = "com.citrix.xenclient.xenmgr.vm.unrestricted"
CONFIG = "com.citrix.xenclient.xenmgr.config"
UI = "com.citrix.xenclient.xenmgr.config.ui"
DISK = "com.citrix.xenclient.vmdisk"
NIC = "com.citrix.xenclient.vmnic"
TARGET = Target(UUID, disk=0, nic=0)


def declared() -> dict[tuple[str, str], Any]:
    out = {}
    for name in FILES:
        for iface in load_package()[name].interfaces:
            for prop in iface.properties:
                out[(iface.name, prop.name)] = prop
    return out


def test_every_declared_property_has_exactly_one_binding() -> None:
    props = declared()
    assert len(props) == 386
    assert set(BINDINGS) == set(props)  # nothing missing, nothing extra
    for key, prop in props.items():
        b = BINDINGS[key]
        assert (b.interface, b.name) == key
        assert b.signature == prop.type, key
        assert b.settable == (prop.access.value != "read"), key
        assert isinstance(b.source, Stored | Derived | Computed | Fixed | Unsupported)


def test_the_vm_interfaces_share_their_sources_and_only_vm_is_guarded() -> None:
    for (iface, name), b in BINDINGS.items():
        if iface != VM:
            assert not b.guarded
            continue
        twin = BINDINGS[(UNRESTRICTED, name)]
        assert twin.source == b.source and twin.effects == b.effects
        assert b.guarded == (b.settable and name not in ("wired-network", "wireless-network"))


def _schema_kinds(codec: Codec) -> set[Kind]:
    return {"bool": {Kind.BOOL}, "not-bool": {Kind.BOOL}, "int": {Kind.INT},
            "joined": {Kind.LIST}, "enum": {Kind.ENUM, Kind.STRING},
            "string": {Kind.STRING}, "network": {Kind.STRING}}[codec.kind]


def _stored(b: Binding) -> Stored | None:
    source = b.source
    if isinstance(source, Computed):
        return source.writes
    return source if isinstance(source, Stored) else None


@pytest.mark.parametrize("b", [b for b in BINDINGS.values() if b.scope is not Scope.HOST
                               and _stored(b) is not None], ids=lambda b: f"{b.interface}.{b.name}")
def test_vm_keys_of_bindings_are_keys_of_the_layout(b: Binding) -> None:
    stored = _stored(b)
    assert stored is not None
    prefix = {Scope.VM: "", Scope.DISK: "config/disk/0/", Scope.NIC: "config/nic/0/"}[b.scope]
    key = find_key(prefix + stored.key)
    assert key is not None, stored.key
    assert key.kind in _schema_kinds(stored.codec)
    if key.default is not None and key.kind is not Kind.LIST and not stored.fallback:
        expected = (not key.default) if stored.codec.kind == "not-bool" else key.default
        assert stored.default == expected, (b.name, stored.default, key.default)


# ------------------------------------------------------------------------- fixtures


def vm_tree(**vm: Any) -> dict[str, Any]:
    node = {"config": {"disk": {"0": {}}, "nic": {"0": {}}}}
    node.update(vm)
    return {"vm": {UUID: node}}


def apply(tree: dict[str, Any], plan: SetPlan) -> dict[str, Any]:
    out = copy.deepcopy(tree)
    for op in plan.ops:
        parts = segments(op.path)
        node = out
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                if isinstance(op, Remove):
                    break
                node[part] = {}
            node = node[part]
        else:
            if isinstance(op, Write):
                node[parts[-1]] = op.value
            else:
                node.pop(parts[-1], None)
    return out


SIG_TYPES = {"b": bool, "i": int, "x": int, "s": str, "as": list, "ao": list, "a{ss}": dict}


@pytest.mark.parametrize("b", [b for b in BINDINGS.values()
                               if not isinstance(b.source, Computed | Unsupported)],
                         ids=lambda b: f"{b.interface}.{b.name}")
def test_reading_missing_keys_gives_the_default_never_an_error(b: Binding) -> None:
    value = read_property(b, DbView(vm_tree()), TARGET)
    assert isinstance(value, SIG_TYPES[b.signature])
    if b.signature == "i":
        assert -(1 << 31) <= value < (1 << 31)
    if isinstance(b.source, Stored):
        assert value == b.source.default
    if isinstance(b.source, Fixed):
        assert value == b.source.value


def test_derived_defaults() -> None:
    db = DbView(vm_tree())

    def read(iface: str, name: str) -> object:
        return read_property(binding(iface, name), db, TARGET)

    assert read(VM, "mac") == default_mac(0, UUID) == read(NIC, "mac-actual")
    assert read(VM, "wired-network") == "/wired/0/bridged"
    assert read(VM, "wireless-network") == ""
    assert read(VM, "cd") == ""
    assert read(VM, "stubdom") is False
    assert read(VM, "uuid") == UUID
    assert read(VM, "autostart-pending") is False
    assert read(NIC, "mac") == "auto" and read(NIC, "model") == "e1000"
    assert read(DISK, "snapshot") == "none"


# ---------------------------------------------------------------------- round trips

UUID_VALUE = "12345678-1234-1234-1234-123456789abc"


def sample(b: Binding) -> object:
    """A valid value for ``b`` that differs from its default and does not remove the key."""
    stored = _stored(b)
    assert stored is not None
    codec = stored.codec
    if codec.kind in ("bool", "not-bool"):
        return not stored.default
    if codec.kind == "int":
        return 700
    if codec.kind == "ms":
        return 1500
    if codec.kind == "joined":
        return "a=1;b"
    if codec.kind == "network":
        return "/wired/1/bridged"
    if codec.kind == "enum":
        return next(v for v in codec.allowed if v != stored.default and v not in
                    stored.remove_on and v != codec.lenient)
    if codec.pattern is not None:
        return {True: UUID_VALUE}.get("0-9a-fA-F]{8}" in codec.pattern,
                                      "ndvm" if b.name == "type" else "02:00:00:00:00:01")
    return "some value"


SETTABLE_STORED = [b for b in BINDINGS.values() if b.settable and _stored(b) is not None]


@pytest.mark.parametrize("b", SETTABLE_STORED, ids=lambda b: f"{b.interface}.{b.name}")
def test_set_then_read_round_trips(b: Binding) -> None:
    tree = vm_tree()
    value = sample(b)
    plan = plan_set(b, value, DbView(tree), TARGET)
    assert plan.changed and plan.effects == b.effects
    tree = apply(tree, plan)
    stored = _stored(b)
    assert stored is not None
    if isinstance(b.source, Computed):  # the read is the service's; check the stored text
        assert DbView(tree).read(f"/vm/{UUID}/{stored.key}") == "true"
        return
    assert read_property(b, DbView(tree), TARGET) == value
    if b.guarded and b.name == "policy-modify-vm-settings":  # it now forbids itself
        with pytest.raises(XenmgrError, match=r"^202:"):
            plan_set(b, value, DbView(tree), TARGET)
        return
    again = plan_set(b, value, DbView(tree), TARGET)
    writes_always = b.scope is Scope.HOST or stored.always_write
    assert again.changed == writes_always


@pytest.mark.parametrize("b", [b for b in SETTABLE_STORED if isinstance(b.source, Stored)
                               and b.source.remove_on], ids=lambda b: f"{b.interface}.{b.name}")
def test_values_that_remove_the_key(b: Binding) -> None:
    assert isinstance(b.source, Stored)
    tree = apply(vm_tree(), plan_set(b, sample(b), DbView(vm_tree()), TARGET))
    plan = plan_set(b, b.source.remove_on[0], DbView(tree), TARGET)
    assert [type(op) for op in plan.ops] == [Remove]
    tree = apply(tree, plan)
    assert read_property(b, DbView(tree), TARGET) == b.source.default
    assert not plan_set(b, b.source.remove_on[0], DbView(tree), TARGET).changed


INT_PROPS = [b for b in SETTABLE_STORED if b.signature == "i" and b.interface == UNRESTRICTED
             and isinstance(b.source, Stored) and not b.source.remove_nonpositive]
BOOL_PROPS = [b for b in SETTABLE_STORED if b.signature == "b" and b.interface != VM
              and isinstance(b.source, Stored)]


@given(st.sampled_from(INT_PROPS), st.integers(min_value=-(1 << 31), max_value=(1 << 31) - 1))
def test_int_properties_round_trip(b: Binding, value: int) -> None:
    tree = apply(vm_tree(), plan_set(b, value, DbView(vm_tree()), TARGET))
    assert read_property(b, DbView(tree), TARGET) == value


@given(st.sampled_from(BOOL_PROPS), st.booleans(), st.sampled_from(["true", "yes", "1",
                                                                    "false", "no", "0"]))
def test_bool_properties_accept_every_stored_spelling(b: Binding, value: bool, old: str) -> None:
    assert isinstance(b.source, Stored)
    base = {Scope.VM: f"/vm/{UUID}/", Scope.DISK: f"/vm/{UUID}/config/disk/0/",
            Scope.NIC: f"/vm/{UUID}/config/nic/0/", Scope.HOST: ""}[b.scope]
    tree = apply(vm_tree(), SetPlan((Write(base + b.source.key, old),)))
    shown = read_property(b, DbView(tree), TARGET)
    expected = (old in ("true", "yes", "1")) != (b.source.codec.kind == "not-bool")
    assert shown is expected
    tree = apply(tree, plan_set(b, value, DbView(tree), TARGET))
    assert read_property(b, DbView(tree), TARGET) is value


_ITEM = st.text(alphabet="abc=-_ .0123456789", min_size=1, max_size=6).map(str.strip).filter(
    bool)


@given(st.lists(_ITEM, max_size=5))
def test_extra_hvm_is_a_list_shown_joined(items: list[str]) -> None:
    b = binding(VM, "extra-hvm")
    tree = apply(vm_tree(), plan_set(b, " ; ".join(items) + ";;", DbView(vm_tree()), TARGET))
    children = tree["vm"][UUID]["config"].get("extra-hvm", {})
    assert list(children.values()) == items and list(children) == [str(i) for i in
                                                                    range(len(items))]
    assert read_property(b, DbView(tree), TARGET) == ";".join(items)


# ------------------------------------------------------------------- validation, errors


@pytest.mark.parametrize(("iface", "name", "value", "reason"), [
    (VM, "virt-type", "xen", "is not one of"),
    (VM, "os", "beos", "is not one of"),
    (VM, "s3-mode", "", "is not one of"),
    (VM, "memory", "512", "is not an integer"),
    (VM, "memory", True, "is not an integer"),
    (VM, "memory", 1 << 31, "is out of range"),
    (VM, "acpi", 1, "is not a boolean"),
    (VM, "name", 5, "is not a string"),
    (VM, "name", "a\0b", "NUL"),
    (VM, "timer-mode", "fast", "is not one of"),
    (VM, "hdtype", "scsi", "is not one of"),
    (VM, "type", "bad type", "is malformed"),
    (NIC, "mac", "00:11", "is malformed"),
    (NIC, "mac", "", "is malformed"),  # "auto" removes it; "" would make the nic unreadable
    (VM, "type", "", "is malformed"),
    (NIC, "backend-uuid", "nope", "is malformed"),
    (DISK, "mode", "rw", "is not one of"),
    (DISK, "snapshot", "forever", "is not one of"),
    (CONFIG, "measure-fail-action", "explode", "is not one of"),
])
def test_bad_values_are_named(iface: str, name: str, value: object, reason: str) -> None:
    with pytest.raises(XenmgrError) as info:
        plan_set(binding(iface, name), value, DbView(vm_tree()), TARGET)
    assert info.value.code is None
    assert f"property {name}: {value!r}" in info.value.message and reason in info.value.message


def test_read_only_properties_refuse_a_set() -> None:
    with pytest.raises(XenmgrError) as info:
        plan_set(binding(VM, "hibernated"), True, DbView(vm_tree()), TARGET)
    assert info.value.message == "214:Property is read-only"


def test_the_modify_policy_guards_the_restricted_interface_only() -> None:
    tree = vm_tree(policies={"modify-vm-settings": "false"}, config={"nic": {"0": {}}})
    db = DbView(tree)
    with pytest.raises(XenmgrError) as info:
        plan_set(binding(VM, "memory"), 1024, db, TARGET)
    assert info.value.code == 202
    assert plan_set(binding(UNRESTRICTED, "memory"), 1024, db, TARGET).changed
    assert plan_set(binding(VM, "wired-network"), "/wired/1/bridged", db, TARGET).changed


def test_a_vm_that_does_not_exist_is_not_written() -> None:
    assert plan_set(binding(VM, "memory"), 1024, DbView({}), TARGET) == SetPlan()
    with pytest.raises(XenmgrError):  # but the value is still checked
        plan_set(binding(VM, "memory"), "x", DbView({}), TARGET)


def test_missing_disks_and_nics() -> None:
    db = DbView(vm_tree())
    with pytest.raises(XenmgrError) as info:
        read_property(binding(DISK, "mode"), db, Target(UUID, disk=9))
    assert info.value.message == "206:No such disk"
    with pytest.raises(XenmgrError) as info:
        plan_set(binding(NIC, "model"), "x", db, Target(UUID, nic=9))
    assert info.value.message == "222:No such NIC"


def test_computed_fixed_and_unimplemented() -> None:
    db = DbView(vm_tree())
    with pytest.raises(NeedsService, match="domid"):
        read_property(binding(VM, "domid"), db, TARGET)
    with pytest.raises(NeedsService):
        plan_set(binding(UI, "language"), "de-de", db, TARGET)
    assert read_property(binding(CONFIG, "use-networking-domain"), db, TARGET) is True
    assert plan_set(binding(UI, "idle-time-threshold"), 5, db, TARGET) == SetPlan(
        (), (Effect.CONFIG_CHANGED,))
    assert read_property(binding(DISK, "backend-uuid"), db, TARGET) == ""
    with pytest.raises(XenmgrError, match=r"^not implemented$"):
        plan_set(binding(DISK, "backend-uuid"), UUID_VALUE, db, TARGET)
    with pytest.raises(KeyError, match="no-such"):
        binding(VM, "no-such")
    with pytest.raises(ValueError, match="uuid"):
        read_property(binding(VM, "memory"), db, Target("../x/y"))


# ---------------------------------------------------------------- the original's rules


def read(iface: str, name: str, tree: dict[str, Any], target: Target = TARGET) -> object:
    return read_property(binding(iface, name), DbView(tree), target)


def set_(iface: str, name: str, value: object, tree: dict[str, Any],
         target: Target = TARGET) -> tuple[dict[str, Any], SetPlan]:
    plan = plan_set(binding(iface, name), value, DbView(tree), target)
    return apply(tree, plan), plan


def test_renamed_keys() -> None:
    tree = vm_tree()
    for name, key, value in [("start-on-boot", "start_on_boot", True),
                             ("start-on-boot-priority", "start_on_boot_priority", 3),
                             ("image-path", "image_path", "x.png"),
                             ("hidden-in-switcher", "hidden", True),
                             ("pv-addons", "pv-addons-installed", True),
                             ("cmd-line", "config/cmdline", "quiet")]:
        tree, plan = set_(VM, name, value, tree)
        assert plan.ops == (Write(f"/vm/{UUID}/{key}", str(value).lower()
                                  if isinstance(value, bool) else str(value)),)


def test_native_experience_forces_some_flags() -> None:
    tree = vm_tree(start_on_boot="false", **{"show-switcher": "true"})
    assert read(VM, "start-on-boot", tree) is False and read(VM, "show-switcher", tree) is True
    tree["vm"][UUID]["native-experience"] = "true"
    assert read(VM, "start-on-boot", tree) is True
    assert read(VM, "show-switcher", tree) is False
    assert read(VM, "wireless-control", tree) is True
    assert read(VM, "usb-grab-devices", tree) is True
    assert read(VM, "control-platform-power-state", tree) is True
    assert binding(VM, "native-experience").effects == (Effect.NATIVE_EXCLUSIVE,)


def test_memory_limits_fall_back_to_memory_and_nonpositive_removes() -> None:
    tree = vm_tree(config={"memory": "1024"})
    assert read(VM, "memory-static-max", tree) == 1024 == read(VM, "memory-min", tree)
    tree, _ = set_(VM, "memory-static-max", 2048, tree)
    assert read(VM, "memory-static-max", tree) == 2048
    tree, plan = set_(VM, "memory-static-max", 0, tree)
    assert plan.ops == (Remove(f"/vm/{UUID}/config/memory-static-max"),)
    assert read(VM, "memory-static-max", tree) == 1024
    tree["vm"][UUID]["config"]["memory-min"] = "-5"
    assert read(VM, "memory-min", tree) == 1024


def test_negated_policies() -> None:
    tree = vm_tree()
    assert read(VM, "policy-print-screen", tree) is True
    tree, plan = set_(VM, "policy-print-screen", False, tree)
    assert plan.ops == (Write(f"/vm/{UUID}/policies/print-screen-disallowed", "true"),)
    tree, plan = set_(VM, "policy-print-screen", True, tree)
    assert plan.ops == (Remove(f"/vm/{UUID}/policies/print-screen-disallowed"),)
    host: dict[str, Any] = {}
    assert read(CONFIG, "vm-creation-allowed", host) is True
    host, plan = set_(CONFIG, "vm-creation-allowed", False, host)
    assert plan.ops == (Write("/vm-create-disallowed", "true"),)
    assert read(CONFIG, "vm-creation-allowed", host) is False
    assert read(UI, "switcher-self-switch-enabled", {}) is False  # disabled unless written
    host, plan = set_(UI, "switcher-self-switch-enabled", True, {})
    assert plan.ops == (Write("/switcher/self-switch-disabled", "false"),)


def test_host_config_defaults_and_writes() -> None:
    assert read(CONFIG, "iso-path", {}) == "/storage/isos"
    assert read(CONFIG, "xc-diag-timeout", {}) == 180
    assert read(CONFIG, "dom0-mem-target-mib", {}) == 256
    assert read(CONFIG, "measure-fail-action", {}) == "forced-shutdown"
    assert read(CONFIG, "measure-fail-action", {"xenmgr": {"measure-fail-action": "?"}}) == (
        "nothing")
    assert read(UI, "wallpaper", {}) == "images/wallpapers/s9.png"
    assert read(UI, "switcher-resistance", {}) == 10
    _, plan = set_(UI, "pointer-trail-timeout", 250, {})
    assert plan.ops == (Write("/xenmgr/pointerTrailTimeout", "0.25"),)
    assert read(UI, "pointer-trail-timeout", {"xenmgr": {"pointerTrailTimeout": "1.5"}}) == 1500
    _, plan = set_(CONFIG, "autostart", True, {"xenmgr": {"autostart": "true"}})
    assert plan.changed and plan.effects == (Effect.CONFIG_CHANGED,)  # always written


def test_cd_points_every_cd_disk_at_the_iso_directory() -> None:
    disks = {"0": {"path": "/isos/tools.iso", "device": "hdc", "devtype": "cdrom"},
             "1": {"path": "/d.vhd", "device": "hda"}}
    tree = vm_tree(config={"disk": disks})
    assert read(VM, "cd", tree) == "tools.iso"
    tree["xenmgr"] = {"isos": "/storage/isos"}
    tree, plan = set_(VM, "cd", "win.iso", tree)
    assert plan.ops == (Write(f"/vm/{UUID}/config/disk/0/path", "/storage/isos/win.iso"),)
    assert plan.effects == (Effect.CD_HOTSWAP,)
    assert read(VM, "cd", tree) == "win.iso"
    tree, _ = set_(VM, "cd", "", tree)
    assert tree["vm"][UUID]["config"]["disk"]["0"]["path"] == "/storage/isos/null.iso"
    assert read(VM, "cd", tree) == ""


def test_networks_of_the_first_wired_and_wireless_nics() -> None:
    nics = {"0": {"id": "4", "network": "brwireless", "wireless-driver": "true"},
            "1": {"id": "2"}, "2": {"id": "1", "network": "/wired/9/bridged"}}
    tree = vm_tree(config={"nic": nics})
    assert read(VM, "wired-network", tree) == "/wired/9/bridged"
    assert read(VM, "wireless-network", tree) == "/wifi/0/shared"
    tree, plan = set_(VM, "wired-network", "brshared", tree)
    assert plan.ops == (Write(f"/vm/{UUID}/config/nic/2/network", "/wired/0/shared"),)
    assert read(VM, "mac", tree) == default_mac(1, UUID)  # the nic with the lowest id
    assert read(NIC, "mac-actual", tree, Target(UUID, nic=4)) == default_mac(4, UUID)
    assert not set_(VM, "wireless-network", "/wifi/0/shared", tree)[1].changed
    empty = vm_tree(config={})
    assert not set_(VM, "wireless-network", "/wifi/0/shared", empty)[1].changed


def test_nic_values() -> None:
    tree = vm_tree()
    target = Target(UUID, nic=0)
    tree, plan = set_(NIC, "network", "brinternal", tree, target)
    assert plan.ops == (Write(f"/vm/{UUID}/config/nic/0/network", "/internal"),)
    tree["vm"][UUID]["config"]["nic"]["0"]["backend-name"] = "Network"
    assert read(NIC, "backend-name", tree, target) == "Network"  # no quotes added
    tree, plan = set_(NIC, "wireless-driver", True, tree, target)
    tree, plan = set_(NIC, "wireless-driver", False, tree, target)
    assert plan.ops == (Remove(f"/vm/{UUID}/config/nic/0/wireless-driver"),)


def test_type_os_stubdom_name_hdtype() -> None:
    _, plan = set_(VM, "type", "pvm", vm_tree())
    assert plan.ops == (Write(f"/vm/{UUID}/type", "svm"),)
    assert read(VM, "type", vm_tree(type="pvm")) == "svm"
    assert read(VM, "os", vm_tree(os="beos")) == "unknown"
    hvm = vm_tree(stubdom="true", config={"virt-type": "hvm"})
    assert read(VM, "stubdom", hvm) is True
    assert read(VM, "stubdom", vm_tree(stubdom="true")) is False  # only for HVM
    _, plan = set_(VM, "stubdom", True, vm_tree())
    assert plan.ops == (Write(f"/vm/{UUID}/stubdom", "true"),)
    _, plan = set_(VM, "name", "  spaced  ", vm_tree())
    assert plan.ops == (Write(f"/vm/{UUID}/name", "spaced"),)
    assert plan.effects == (Effect.NAME_CHANGED, Effect.SWITCHER_INFO)
    assert read(VM, "hdtype", vm_tree(config={"hdtype": "odd"})) == "odd"  # stored free text


def test_autostart_pending_and_download_progress() -> None:
    tree = vm_tree(xenmgr=None)
    tree["xenmgr"] = {"autostart-pending-vms": {"0": "other", "1": UUID}}
    assert read(VM, "autostart-pending", tree) is True
    tree, plan = set_(VM, "download-progress", 0, tree)
    assert plan.changed and plan.effects == (Effect.TRANSFER_CHANGED,)


def test_stored_values_that_do_not_decode_are_errors_naming_the_key() -> None:
    from xen.xenmgr import SchemaError
    with pytest.raises(SchemaError, match=r"/config/memory.*'lots'"):
        read(VM, "memory", vm_tree(config={"memory": "lots"}))
    with pytest.raises(SchemaError, match="out of range"):
        read(VM, "memory", vm_tree(config={"memory": str(1 << 40)}))


def test_service_helpers() -> None:
    assert seamless_traffic("svm", None, True) is True
    assert seamless_traffic("svm", False, True) is False
    assert seamless_traffic("ndvm", True, True) is False
    assert [portica_enabled(i, e, s) for i, e, s in [
        (False, True, True), (True, True, True), (True, False, True), (True, True, False)]] == [
        0, 1, 2, 2]
