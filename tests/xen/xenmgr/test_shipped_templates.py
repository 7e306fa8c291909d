"""The shipped default templates: all load, and each has the settings it is documented with."""

from __future__ import annotations

import configparser
import fnmatch
import json
from pathlib import Path

import pytest

from xen.xenmgr._jsontree import TreeView, get_leaf, get_node, leaves, thaw
from xen.xenmgr._template_store import TemplateStore, shipped_templates_dir
from xen.xenmgr._templates import (
    TemplateSet,
    list_templates,
    list_ui_templates,
    select_service_vms,
)

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = shipped_templates_dir()
EXPECTED = {"new-vm", "new-vm-empty", "new-vm-linux", "new-vm-windows8", "new-vm-xp",
            "new-vm-ndvm-hvm", "new-vm-ndvm-pv", "new-vm-sync", "service-uivm",
            "service-ndvm-hvm", "service-ndvm-pv", "service-usbvm", "child-vpnvm"}


@pytest.fixture(scope="module")
def shipped() -> TemplateSet:
    return TemplateStore(admin=None).load()


def leaf(tree: TreeView, path: str) -> str | None:
    return get_leaf(tree, path)


def test_the_default_set_is_shipped_and_loads_without_problems(shipped: TemplateSet) -> None:
    assert set(shipped.templates) == EXPECTED
    assert dict(shipped.problems) == {}
    assert {p.stem for p in SHIPPED.glob("*.json")} == EXPECTED


def test_package_data_installs_the_template_files() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    patterns = [p.strip() for p in cfg["options.package_data"]["xen.xenmgr"].split(",")]
    package = ROOT / "xen" / "xenmgr"
    for path in SHIPPED.glob("*.json"):
        rel = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel


def test_files_are_formatted_json_of_strings() -> None:
    for path in SHIPPED.glob("*.json"):
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=2) + "\n", path.name


def test_lists(shipped: TemplateSet) -> None:
    assert list_templates(shipped) == sorted(n for n in EXPECTED if not n.startswith("service-"))
    assert list_ui_templates(shipped) == [
        {"template": "new-vm", "description": "Windows 7"},
        {"template": "new-vm-linux", "description": "Linux"},
        {"template": "new-vm-windows8", "description": "Windows 8"},
        {"template": "new-vm-xp", "description": "Windows XP"}]


def test_new_vm_is_windows_7_hvm_with_stubdom_2048_mib_tools_cd_and_ahci(
        shipped: TemplateSet) -> None:
    t = shipped.get("new-vm").tree
    assert (leaf(t, "type"), leaf(t, "os"), leaf(t, "stubdom")) == ("svm", "windows", "true")
    assert (leaf(t, "config/virt-type"), leaf(t, "config/memory"), leaf(t, "config/hdtype")) \
        == ("hvm", "2048", "ahci")
    cd = get_node(t, "config/disk/0")
    assert cd is not None
    assert thaw(cd) == {"path": "/storage/isos/xc-tools.iso", "type": "file", "mode": "r",
                        "device": "hdc", "devtype": "cdrom", "shared": "true"}
    assert list(get_node(t, "config/disk") or {}) == ["0"]
    assert "slot" not in t and "uuid" not in t and "name" not in t


def test_new_vm_empty_is_hvm_1024_mib_without_disks_or_ui_selectable(
        shipped: TemplateSet) -> None:
    t = shipped.get("new-vm-empty")
    assert (leaf(t.tree, "config/virt-type"), leaf(t.tree, "config/memory")) == ("hvm", "1024")
    assert get_node(t.tree, "config/disk") is None
    assert "ui-selectable" not in t.tree and not t.ui_selectable


@pytest.mark.parametrize(("name", "os", "memory"), [
    ("new-vm-linux", "linux", "1024"), ("new-vm-windows8", "windows8", "2048"),
    ("new-vm-xp", "windows", "1024")])
def test_ui_guests(shipped: TemplateSet, name: str, os: str, memory: str) -> None:
    t = shipped.get(name)
    assert t.ui_selectable
    assert (leaf(t.tree, "type"), leaf(t.tree, "os"), leaf(t.tree, "config/memory"),
            leaf(t.tree, "config/virt-type"), leaf(t.tree, "stubdom")) == \
        ("svm", os, memory, "hvm", "true")
    assert leaf(t.tree, "config/disk/0/devtype") == "cdrom"


def test_the_two_new_ndvm_templates_differ_only_in_virt_type(shipped: TemplateSet) -> None:
    hvm = dict(leaves(shipped.get("new-vm-ndvm-hvm").tree))
    pv = dict(leaves(shipped.get("new-vm-ndvm-pv").tree))
    assert {k for k in hvm.keys() | pv.keys() if hvm.get(k) != pv.get(k)} == \
        {"config/virt-type"}
    assert (hvm["type"], hvm["config/virt-type"], pv["config/virt-type"]) == \
        ("ndvm", "hvm", "pv")
    assert hvm["config/flask-label"] == "system_u:system_r:ndvm_t"


def test_new_vm_sync_is_a_pvh_syncvm(shipped: TemplateSet) -> None:
    t = shipped.get("new-vm-sync").tree
    assert (leaf(t, "type"), leaf(t, "config/virt-type"), leaf(t, "config/flask-label")) == \
        ("syncvm", "pvh", "system_u:system_r:syncvm_t")


def test_service_uivm(shipped: TemplateSet) -> None:
    t = shipped.get("service-uivm")
    assert t.uuid == "00000000-0000-0000-0000-000000000001"
    assert (leaf(t.tree, "type"), leaf(t.tree, "config/virt-type"), leaf(t.tree, "slot")) == \
        ("uivm", "pvh", "0")
    assert leaf(t.tree, "config/flask-label") == "system_u:system_r:uivm_t"
    rpc = get_node(t.tree, "rpc-firewall-rules") or {}
    argo = get_node(t.tree, "argo-firewall-rules") or {}
    assert rpc and argo
    assert list(rpc) == [str(i) for i in range(len(rpc))]  # a db list: children 0, 1, ...
    assert "allow destination com.citrix.xenclient.xenmgr" in rpc.values()
    assert "myself -> 0:8080" in argo.values()


@pytest.mark.parametrize("name", ["service-ndvm-hvm", "service-ndvm-pv"])
def test_service_ndvm(shipped: TemplateSet, name: str) -> None:
    t = shipped.get(name)
    assert t.uuid == "00000000-0000-0000-0000-000000000002"
    assert (leaf(t.tree, "type"), leaf(t.tree, "name")) == ("ndvm", "Network")
    assert leaf(t.tree, "provides-default-network-backend") == "true"
    assert leaf(t.tree, "provides-network-backend") == "true"
    assert leaf(t.tree, "config/virt-type") == name.rsplit("-", 1)[1]
    pci = get_node(t.tree, "config/pci") or {}
    assert sorted(get_leaf(pci, f"{i}/class") or "" for i in pci) == ["0x0200", "0x0280"]


def test_service_usbvm(shipped: TemplateSet) -> None:
    t = shipped.get("service-usbvm")
    assert t.uuid == "00000000-0000-0000-0000-000000000003"
    assert leaf(t.tree, "type") == "usbvm"
    assert leaf(t.tree, "config/pci/0/class") == "0x0c03"


def test_every_service_template_is_selected_in_some_mode(shipped: TemplateSet) -> None:
    seen = {s.template.name for mode in ("hvm", "pv")
            for s in select_service_vms(shipped, ndvm_mode=mode, usbvm_enable=True)}
    assert seen == {n for n in EXPECTED if n.startswith("service-")}


def test_rpc_rules_lex_as_the_rules_grammar_words(shipped: TemplateSet) -> None:
    import re
    word = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
    for t in shipped.templates.values():
        for rule in (get_node(t.tree, "rpc-firewall-rules") or {}).values():
            assert isinstance(rule, str)
            assert all(word.fullmatch(w) for w in rule.split()), rule
            assert rule.split()[0] in ("allow", "deny")


def test_argo_rules_have_the_rule_shape(shipped: TemplateSet) -> None:
    import re
    end = r"(\*|0|myself|my-stubdom|myself-if-seamless|seamless|[0-9a-f-]{36}|" \
          r"dom-type=[a-z0-9]+|dom-name=[a-z0-9]+)(:([0-9]+|\*))?"
    shape = re.compile(rf"{end} -> {end}")
    for t in shipped.templates.values():
        for rule in (get_node(t.tree, "argo-firewall-rules") or {}).values():
            assert isinstance(rule, str) and shape.fullmatch(rule), rule
