"""Template rules: parsing and checks, the lists, service VMs, export, child templates, JSON."""

from __future__ import annotations

import json

import pytest

from xen.xenmgr._jsontree import EMPTY_TREE, TreeError, freeze, get_leaf, thaw
from xen.xenmgr._templates import (
    ServiceVm,
    Template,
    TemplateError,
    TemplateProblem,
    TemplateSet,
    check_template_name,
    export_tree,
    instantiate_child,
    list_child_service_vm_templates,
    list_templates,
    list_ui_templates,
    merge_json,
    overwrite_setting_path,
    parse_template,
    plan_service_vm_exports,
    resolve_template,
    select_service_vms,
)

U1 = "00000000-0000-0000-0000-000000000001"
U2 = "00000000-0000-0000-0000-000000000002"
U3 = "00000000-0000-0000-0000-000000000003"


def tpl(name: str, body: dict[str, object]) -> Template:
    return parse_template(name, json.dumps(body), source=f"/t/{name}.json")


# ------------------------------------------------------------------ one template


def test_a_template_parses_and_knows_its_uuid_description_and_selectability() -> None:
    t = tpl("new-x", {"description": "X", "ui-selectable": "yes", "config": {"memory": "64"}})
    assert (t.name, t.source, t.uuid, t.description, t.ui_selectable) == \
        ("new-x", "/t/new-x.json", None, "X", True)
    bare = tpl("bare", {})
    assert (bare.uuid, bare.description, bare.ui_selectable) == (None, "", False)


@pytest.mark.parametrize(("name", "body", "key", "reason"), [
    ("t", {"uuid": "nope"}, "uuid", "not a canonical lower-case uuid"),
    ("t", {"uuid": U1.upper()[:-1] + "A"}, "uuid", "not a canonical lower-case uuid"),
    ("service-x", {"name": "x"}, "uuid", "must carry the service VM's fixed uuid"),
    ("t", {"slot": "one"}, "slot", "is not an integer"),
    ("t", {"slot": {"a": "1"}}, "slot", "must be a string, not an object"),
    ("t", {"ui-selectable": "maybe"}, "ui-selectable", "not a boolean"),
    ("t", {"config": {"virt-type": "kvm"}}, "config/virt-type", "not one of hvm, pvh, pv"),
    ("t", {"config": {"memory": "0"}}, "config/memory", "not a positive number"),
    ("t", {"config": {"memory": "1G"}}, "config/memory", "not a positive number"),
    ("t", {"config": "x"}, "config", "must be an object"),
    ("t", {"config": {"disk": "x"}}, "config/disk", "must be an object"),
    ("t", {"argo-firewall-rules": "x"}, "argo-firewall-rules", "must be an object"),
    ("t", {"parent-override": {}}, "parent-override", "only child-<tag> templates"),
    ("child-x", {"parent-override": "x"}, "parent-override", "must be an object"),
])
def test_template_rules_name_the_file_and_key(name: str, body: dict[str, object], key: str,
                                              reason: str) -> None:
    with pytest.raises(TemplateError) as caught:
        tpl(name, body)
    text = str(caught.value)
    assert f"template {name!r} (/t/{name}.json): key {key!r}: " in text
    assert reason in text


def test_a_malformed_file_names_the_template_file_and_key() -> None:
    with pytest.raises(TemplateError, match=r"template 'x': /t/x.json: key 'config/memory': "
                                            r"must be a string or an object, not a number"):
        parse_template("x", '{"config": {"memory": 1024}}', source="/t/x.json")
    with pytest.raises(TemplateError, match=r"template 'x': /t/x.json: is not valid JSON"):
        parse_template("x", b"{", source="/t/x.json")


@pytest.mark.parametrize("name", ["new-vm", "a", "A1.b_c+d-e", "x" * 100])
def test_good_template_names(name: str) -> None:
    assert check_template_name(name) == name


@pytest.mark.parametrize("name", ["", ".hidden", "../etc/passwd", "a/b", "a..b", "x" * 101,
                                  "-x", "a b", "caf\u00e9", "a\n"])
def test_names_that_could_leave_the_directory_or_are_odd_are_refused(name: str) -> None:
    with pytest.raises(TemplateError, match="is not a template name"):
        check_template_name(name)
    with pytest.raises(TemplateError, match="is not a template name"):
        TemplateSet().get(name)


# ------------------------------------------------------------------ sets and lists


def sample_set() -> TemplateSet:
    return TemplateSet.of(
        [tpl("new-vm", {"description": "Win", "ui-selectable": "true"}),
         tpl("new-vm-empty", {"description": "Empty"}),
         tpl("new-vm-linux", {"ui-selectable": "1"}),
         tpl("new-vm-off", {"description": "Off", "ui-selectable": "false"}),
         tpl("child-vpn", {"type": "vpnvm"}),
         tpl("child-", {}),
         tpl("service-uivm", {"uuid": U1, "ui-selectable": "true"}),
         tpl("service-ndvm-hvm", {"uuid": U2, "config": {"virt-type": "hvm"}}),
         tpl("service-ndvm-pv", {"uuid": U2, "config": {"virt-type": "pv"}}),
         tpl("service-usbvm", {"uuid": U3})],
        [TemplateProblem("new-vm-broken", "/t/new-vm-broken.json", "is not valid JSON"),
         TemplateProblem("service-bad", "/t/service-bad.json", "bad")])


def test_list_templates_is_every_non_service_name_sorted_broken_ones_included() -> None:
    assert list_templates(sample_set()) == ["child-", "child-vpn", "new-vm", "new-vm-broken",
                                            "new-vm-empty", "new-vm-linux", "new-vm-off"]


def test_list_ui_templates_is_the_selectable_ones_with_descriptions() -> None:
    assert list_ui_templates(sample_set()) == [
        {"template": "new-vm", "description": "Win"},
        {"template": "new-vm-linux", "description": ""}]


def test_child_service_vm_templates_are_the_child_tags() -> None:
    assert list_child_service_vm_templates(sample_set()) == ["vpn"]


def test_get_and_resolve() -> None:
    ts = sample_set()
    assert ts.get("new-vm").description == "Win"
    with pytest.raises(TemplateError, match="no template named 'nope'"):
        ts.get("nope")
    with pytest.raises(TemplateError, match="'new-vm-broken' cannot be used: is not valid JSON"):
        ts.get("new-vm-broken")
    blank = resolve_template(ts, "  ")
    assert blank.tree == {} and blank.uuid is None
    assert resolve_template(ts, "") == blank
    assert resolve_template(ts, "new-vm") is ts.get("new-vm")


def test_an_upper_layer_replaces_names_good_or_broken() -> None:
    lower = TemplateSet.of([tpl("a", {"description": "lower a"}), tpl("b", {})],
                           [TemplateProblem("c", "/lower/c.json", "broken below")])
    upper = TemplateSet.of([tpl("c", {"description": "fixed c"}), tpl("d", {})],
                           [TemplateProblem("a", "/upper/a.json", "broken above")])
    merged = lower.overlay(upper)
    assert merged.names() == ["a", "b", "c", "d"]
    with pytest.raises(TemplateError, match="broken above"):
        merged.get("a")  # a broken override is reported, never replaced by the lower one
    assert merged.get("c").description == "fixed c"
    assert set(merged.templates) == {"b", "c", "d"}
    assert set(merged.problems) == {"a"}


def test_a_name_both_good_and_broken_in_one_layer_is_a_bug() -> None:
    with pytest.raises(ValueError, match="both loaded and broken"):
        TemplateSet.of([tpl("a", {})], [TemplateProblem("a", "s", "m")])


# ------------------------------------------------------------------ service VMs


@pytest.mark.parametrize(("mode", "usb", "tags"), [
    ("hvm", False, ["ndvm-hvm", "uivm"]),
    ("pv", False, ["ndvm-pv", "uivm"]),
    ("pv", True, ["ndvm-pv", "uivm", "usbvm"]),
    ("pvh", True, ["uivm", "usbvm"]),  # no template for that mode: no network VM
])
def test_service_vm_selection(mode: str, usb: bool, tags: list[str]) -> None:
    chosen = select_service_vms(sample_set(), ndvm_mode=mode, usbvm_enable=usb)
    assert [s.tag for s in chosen] == tags
    assert {s.tag: s.overwrite_tag for s in chosen} == \
        {t: "ndvm" if t.startswith("ndvm-") else t for t in tags}
    assert "service-bad" in sample_set().problems  # broken ones are skipped, still reported


def test_service_vm_defaults_are_hvm_and_no_usb_vm() -> None:
    assert [s.tag for s in select_service_vms(sample_set())] == ["ndvm-hvm", "uivm"]


def test_two_selected_service_templates_with_one_uuid_are_an_error() -> None:
    ts = TemplateSet.of([tpl("service-uivm", {"uuid": U1}), tpl("service-other", {"uuid": U1})])
    with pytest.raises(TemplateError, match="both carry uuid " + U1):
        select_service_vms(ts)


def test_overwrite_setting_paths() -> None:
    assert overwrite_setting_path("ndvm") == "/xenmgr/overwrite-ndvm-settings"


def test_service_exports_follow_the_overwrite_settings() -> None:
    chosen = select_service_vms(sample_set(), ndvm_mode="hvm", usbvm_enable=True)
    existing = {U1: freeze({"name": "old uivm"}), U2: freeze({"name": "old ndvm"})}
    everything = plan_service_vm_exports(chosen, existing=existing, overwrite={})
    assert [(e.tag, e.uuid) for e in everything] == [("ndvm-hvm", U2), ("uivm", U1),
                                                     ("usbvm", U3)]
    kept = plan_service_vm_exports(chosen, existing=existing,
                                   overwrite={"ndvm": False, "uivm": False, "usbvm": False})
    assert [e.tag for e in kept] == ["usbvm"]  # missing VMs are always written
    ndvm = plan_service_vm_exports(chosen, existing=existing, overwrite={"uivm": False})
    assert [e.tag for e in ndvm] == ["ndvm-hvm", "usbvm"]
    assert get_leaf(ndvm[0].tree, "uuid") == U2
    assert get_leaf(ndvm[0].tree, "config/virt-type") == "hvm"


def test_a_service_vm_without_uuid_cannot_be_built_by_hand_silently() -> None:
    service = ServiceVm("x", "x", Template("service-x", EMPTY_TREE))
    with pytest.raises(TemplateError, match="has no uuid"):
        _ = service.uuid


# ------------------------------------------------------------------ export


def test_export_sets_the_uuid_and_keeps_existing_disk_hashes() -> None:
    tree = freeze({"uuid": "00000000-0000-0000-0000-00000000000f", "config": {"disk": {
        "0": {"path": "/a.vhd", "sha1sum": "template-hash"},
        "1": {"path": "/b.vhd"}}}})
    existing = freeze({"config": {"disk": {
        "0": {"path": "/old-a.vhd", "sha1sum": "aaaa"},
        "1": {"sha1sum": "bbbb"},
        "2": {"sha1sum": "cccc"}}}})
    out = export_tree(tree, U1, existing)
    assert thaw(out) == {"uuid": U1, "config": {"disk": {
        "0": {"path": "/a.vhd", "sha1sum": "aaaa"},
        "1": {"path": "/b.vhd", "sha1sum": "bbbb"}}}}  # no disk 2: the template has none
    assert thaw(export_tree(tree, U1, None))["config"] == thaw(tree)["config"]
    assert thaw(export_tree(freeze({"a": "b"}), U1, existing)) == {"a": "b", "uuid": U1}
    odd = freeze({"config": {"disk": {"0": "not a disk"}}})  # never turned into an object
    assert thaw(export_tree(odd, U1, existing)) == {"config": {"disk": {"0": "not a disk"}},
                                                    "uuid": U1}


# ------------------------------------------------------------------ child templates


def test_a_child_template_substitutes_in_the_parent_override_only() -> None:
    child = tpl("child-vpn", {
        "type": "vpnvm", "description": "for ${PARENT_UUID}",
        "parent-override": {"config": {"nic": {"0": {"backend-uuid": "${UUID}"}}},
                            "note": "${UUID} of ${PARENT_UUID} ${OTHER}"}})
    parts = instantiate_child(child, uuid="c", parent_uuid="p")
    assert thaw(parts.tree) == {"type": "vpnvm", "description": "for ${PARENT_UUID}"}
    assert thaw(parts.parent_override) == {"config": {"nic": {"0": {"backend-uuid": "c"}}},
                                           "note": "c of p ${OTHER}"}
    plain = instantiate_child(tpl("child-x", {"a": "b"}), uuid="c", parent_uuid="p")
    assert plain.parent_override == {}
    with pytest.raises(TemplateError, match="not a child-<tag> template"):
        instantiate_child(tpl("new-vm", {}), uuid="c", parent_uuid="p")


# ------------------------------------------------------------------ the _and_json merge


def test_merge_json() -> None:
    base = tpl("t", {"name": "", "config": {"memory": "1024", "vcpus": "1"}}).tree
    assert merge_json(base, "") is base
    assert merge_json(base, " \n\t") is base
    merged = merge_json(base, '{"name": "n", "config": {"memory": 4096, "acpi": true}}')
    assert thaw(merged) == {"name": "n", "config": {"memory": "4096", "vcpus": "1",
                                                    "acpi": "true"}}
    with pytest.raises(TreeError, match=r"^json: is not valid JSON"):
        merge_json(base, "{name: 1}")
    with pytest.raises(TreeError, match=r"^json: key 'config/memory': .*not a fractional"):
        merge_json(base, '{"config": {"memory": 1.5}}')
    with pytest.raises(TreeError, match="top level"):
        merge_json(base, "[]")
