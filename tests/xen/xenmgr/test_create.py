"""The create plan: policy, uuid, slot and name choice, the tree written, child VMs."""

from __future__ import annotations

import itertools
import json
import uuid as uuidlib
from collections.abc import Callable, Iterator

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from xen.xenmgr._create import (
    GUEST_SLOTS,
    MAX_FRESH_ATTEMPTS,
    MAX_NAME_CHARS,
    CreatePlan,
    CreateRequest,
    ExistingVm,
    UiFields,
    choose_slot,
    plan_create,
    plan_create_child,
    unique_name,
)
from xen.xenmgr._jsontree import TreeView, freeze, get_leaf, thaw
from xen.xenmgr._planerror import CreateError
from xen.xenmgr._template_store import TemplateStore
from xen.xenmgr._templates import Template, parse_template, resolve_template

U1 = "00000000-0000-0000-0000-000000000001"
U2 = "00000000-0000-0000-0000-000000000002"
A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"
C = "cccccccc-0000-4000-8000-000000000003"
SERVICE_UUIDS = ("00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002",
                 "00000000-0000-0000-0000-000000000003")


def tpl(body: dict[str, object], name: str = "t") -> Template:
    return parse_template(name, json.dumps(body), source=f"/t/{name}.json")


def fresh(*uuids: str) -> Callable[[], str]:
    """A uuid source giving ``uuids`` in order, then failing the test if asked again."""
    it: Iterator[str] = iter(uuids)

    def draw() -> str:
        try:
            return next(it)
        except StopIteration:
            raise AssertionError("the plan asked for more fresh uuids than expected") from None
    return draw


def plan(body: dict[str, object] | Template, existing: list[ExistingVm] | None = None,
         source: Callable[[], str] | None = None, **kw: object) -> CreatePlan:
    template = body if isinstance(body, Template) else tpl(body)
    request = CreateRequest(template, **kw)  # type: ignore[arg-type]
    return plan_create(request, existing or [], source or fresh(C), reserved=SERVICE_UUIDS)


def error(body: dict[str, object], existing: list[ExistingVm] | None = None,
          source: Callable[[], str] | None = None, **kw: object) -> CreateError:
    with pytest.raises(CreateError) as caught:
        plan(body, existing, source, **kw)
    return caught.value


# ------------------------------------------------------------------ policy and json


def test_policy_refuses_first_with_220() -> None:
    e = error({"uuid": A}, [ExistingVm(A)], json="{broken", create_disallowed=True)
    assert (e.code, str(e)) == (220, "220:Action suppressed by active policy settings")


def test_json_is_merged_over_the_template() -> None:
    p = plan({"config": {"memory": "1024", "vcpus": "1"}, "type": "svm"},
             json='{"config": {"memory": 4096}, "description": "d"}')
    assert get_leaf(p.tree, "config/memory") == "4096"
    assert get_leaf(p.tree, "config/vcpus") == "1"
    assert get_leaf(p.tree, "description") == "d"


def test_malformed_json_is_a_clear_error() -> None:
    e = error({}, json='{"config": ')
    assert e.code is None
    assert str(e).startswith("invalid json argument: json: is not valid JSON")
    e = error({}, json='{"config": {"disk": {"0": {"path": null}}}}')
    assert "key 'config/disk/0/path'" in str(e)


# ------------------------------------------------------------------ uuid


def test_uuid_precedence_explicit_then_template_then_fresh() -> None:
    assert plan({"uuid": A}, uuid=B.upper()).uuid == B
    assert plan({"uuid": A}).uuid == A
    assert plan({}, json=json.dumps({"uuid": A.upper()})).uuid == A
    assert plan({}).uuid == C


def test_a_fresh_uuid_already_taken_is_drawn_again() -> None:
    existing = [ExistingVm(A), ExistingVm(B)]
    assert plan({}, existing, fresh(A, U1, B, "00000000-0000-0000-0000-000000000000", C)).uuid \
        == C
    e = error({}, existing, fresh(*[A] * MAX_FRESH_ATTEMPTS))
    assert "no unused uuid" in str(e)
    e = error({}, [], fresh("not-a-uuid"))
    assert "the fresh uuid source gave 'not-a-uuid' is not a uuid" in str(e)


@pytest.mark.parametrize(("kw", "message"), [
    ({"uuid": "x"}, "uuid 'x' is not a uuid"),
    ({"uuid": ""}, "uuid '' is not a uuid"),
    ({"uuid": f" {A}"}, "is not a uuid"),
    ({"json": '{"uuid": "nope"}'}, "the template's uuid 'nope' is not a uuid"),
    ({"uuid": A}, f"a VM with uuid {A} already exists"),
    ({"uuid": A.upper()}, f"a VM with uuid {A} already exists"),
    ({"uuid": U2}, f"uuid {U2} is reserved"),
    ({"json": json.dumps({"uuid": U2})}, f"uuid {U2} is reserved"),
    ({"uuid": "00000000-0000-0000-0000-000000000000"}, "is reserved"),
])
def test_bad_or_taken_uuids_are_refused(kw: dict[str, object], message: str) -> None:
    e = error({}, [ExistingVm(A)], **kw)
    assert e.code is None and message in str(e)


def test_a_template_may_carry_a_reserved_uuid_of_its_own() -> None:
    assert plan({"uuid": U1, "slot": "0"}).uuid == U1
    e = error({"uuid": U1, "slot": "0"}, [ExistingVm(U1, "uivm", 0)])
    assert f"a VM with uuid {U1} already exists" in str(e)


# ------------------------------------------------------------------ slot


def test_choose_slot() -> None:
    assert choose_slot([]) == 1
    assert choose_slot([0, 1, 2, 4, None, -1]) == 3
    assert choose_slot(range(1, 10)) is None
    assert choose_slot([*range(1, 10), 10]) is None


def test_the_smallest_free_slot_is_given() -> None:
    existing = [ExistingVm(A, slot=1), ExistingVm(B, slot=3), ExistingVm(U1, slot=0)]
    p = plan({}, existing)
    assert p.slot == 2 and get_leaf(p.tree, "slot") == "2"
    assert plan({"slot": ""}, existing).slot == 2


def test_no_free_slot_is_205() -> None:
    existing = [ExistingVm(str(uuidlib.UUID(int=i + 100)), slot=i) for i in GUEST_SLOTS]
    e = error({}, existing)
    assert (e.code, str(e)) == (205, "205:Too many VMS")
    # a template with its own slot does not need one of them
    assert plan({"slot": "-1"}, existing).slot == -1


def test_every_vms_slot_counts_not_only_guests() -> None:
    ndvm = ExistingVm.from_tree(A, freeze({"type": "ndvm", "slot": "1"}))
    assert plan({}, [ndvm]).slot == 2


def test_a_given_slot_is_kept_if_free_and_refused_if_held() -> None:
    assert plan({"slot": "7"}, [ExistingVm(A, slot=1)]).slot == 7
    assert plan({}, json='{"slot": 5}').slot == 5
    e = error({"slot": "1"}, [ExistingVm(A, slot=1)])
    assert str(e) == f"slot 1 is already used by VM {A}"
    assert plan({"slot": "-1"}, [ExistingVm(A, slot=-1)]).slot == -1  # no slot: may repeat


@pytest.mark.parametrize("json_text", ['{"slot": "x"}', '{"slot": "1.5"}', '{"slot": {}}',
                                       '{"slot": "1234567890"}'])
def test_a_slot_that_is_not_an_integer_is_refused(json_text: str) -> None:
    assert "slot" in str(error({}, json=json_text))


# ------------------------------------------------------------------ name


def test_name_rules() -> None:
    ui = UiFields("From UI", "a description", "images/x.png")
    assert plan({}).name == f"name-{C}"
    assert plan({}, ui=ui).name == "From UI"
    assert plan({"name": "Tpl"}, ui=ui).name == "Tpl"  # the template's name wins
    assert plan({"name": "  "}, ui=ui).name == "From UI"
    assert plan({"name": ""}, ui=UiFields("  ", "", "")).name == f"name-{C}"
    assert plan({}, json='{"name": "  spaced  "}').name == "spaced"


def test_a_name_another_vm_has_gets_a_number() -> None:
    existing = [ExistingVm(A, "Work", 1), ExistingVm(B, "Work (2)", 2)]
    assert plan({"name": "Work"}, existing).name == "Work (3)"
    assert plan({"name": "work"}, existing).name == "work"
    assert unique_name("x", {"x", "x (2)", "x (4)"}) == "x (3)"
    assert unique_name("y", set()) == "y"


@pytest.mark.parametrize(("kw", "message"), [
    ({"json": '{"name": "a\\nb"}'}, "name 'a\\nb' contains control characters"),
    ({"ui": UiFields("a\x00b", "", "")}, "contains control characters"),
    ({"json": json.dumps({"name": "x" * (MAX_NAME_CHARS + 1)})}, "more than the 128 allowed"),
    ({"json": '{"name": {"x": "y"}}'}, "name must be a string"),
    ({"ui": UiFields("n", "d\x07", "")}, "description 'd\\x07' contains control characters"),
    ({"ui": UiFields("n", "", "a\nb")}, "image path"),
])
def test_bad_names_and_ui_fields_are_refused(kw: dict[str, object], message: str) -> None:
    assert message in str(error({}, **kw))


def test_ui_description_and_image_path_are_saved() -> None:
    p = plan({"description": "template's"}, ui=UiFields("n", "line 1\nline\t2", "img.png"))
    assert get_leaf(p.tree, "description") == "line 1\nline\t2"
    assert get_leaf(p.tree, "image_path") == "img.png"
    assert get_leaf(plan({"description": "template's"}).tree, "description") == "template's"


# ------------------------------------------------------------------ the tree


def test_the_tree_is_the_template_with_the_chosen_values() -> None:
    p = plan({"type": "svm", "config": {"memory": "64"}}, [ExistingVm(A, slot=1)])
    assert thaw(p.tree) == {"type": "svm", "config": {"memory": "64"}, "uuid": C,
                            "seamless-id": C, "name": f"name-{C}", "slot": "2"}
    assert (p.seamless_id, p.db_path, p.object_path) == \
        (C, f"/vm/{C}", "/vm/" + C.replace("-", "_"))
    assert json.loads(p.inject_json()) == thaw(p.tree)


def test_the_shipped_new_vm_creates_a_windows_guest() -> None:
    ts = TemplateStore(admin=None).load()
    p = plan_create(CreateRequest(resolve_template(ts, "new-vm")),
                    [ExistingVm(U1, "uivm", 0), ExistingVm(U2, "Network", -1)],
                    fresh(C), reserved=SERVICE_UUIDS)
    assert (p.uuid, p.slot, p.name) == (C, 1, f"name-{C}")
    assert get_leaf(p.tree, "config/memory") == "2048"
    blank = plan_create(CreateRequest(resolve_template(ts, ""), json='{"type": "svm"}'), [],
                        fresh(C))
    assert thaw(blank.tree) == {"type": "svm", "uuid": C, "seamless-id": C,
                                "name": f"name-{C}", "slot": "1"}


def test_existing_vms_read_from_db_trees() -> None:
    vm = ExistingVm.from_tree(A.upper(), freeze({"name": "n", "slot": "3", "type": "ndvm"}))
    assert vm == ExistingVm(A, "n", 3)
    assert ExistingVm.from_tree(A, freeze({"slot": "x"})) == ExistingVm(A, "", None)
    assert ExistingVm.from_tree(A, freeze({"slot": {"a": "1"}, "name": {}})) == ExistingVm(A)


# ------------------------------------------------------------------ child service VMs


def test_a_child_service_vm_plan() -> None:
    child = tpl({"type": "vpnvm", "slot": "-1", "name": "vpn",
                 "parent-override": {"config": {"nic": {"0": {"backend-uuid": "${UUID}"}}},
                                     "note": "${PARENT_UUID}"}}, name="child-vpn")
    parent_tree = freeze({"name": "p", "config": {"nic": {"0": {"network": "/wired/0"}}}})
    result = plan_create_child(child, A.upper(), parent_tree, [ExistingVm(A, "p", 1)], fresh(C))
    assert result.parent_uuid == A
    assert result.child.uuid == C
    assert "parent-override" not in result.child.tree
    assert get_leaf(result.child.tree, "type") == "vpnvm"
    assert thaw(result.parent_tree) == {
        "name": "p", "config": {"nic": {"0": {"network": "/wired/0", "backend-uuid": C}}},
        "note": A}


@pytest.mark.parametrize(("args", "message"), [
    (("child-x", A, [], False), f"no vm with uuid {A}"),
    (("child-x", "p", [ExistingVm(A)], False), "parent uuid 'p' is not a uuid"),
    (("new-vm", A, [ExistingVm(A)], False), "not a child-<tag> template"),
    (("child-x", A, [ExistingVm(A)], True), "220:"),
])
def test_child_plan_refusals(args: tuple[str, str, list[ExistingVm], bool],
                             message: str) -> None:
    name, parent, existing, disallowed = args
    with pytest.raises(CreateError, match=message):
        plan_create_child(tpl({}, name=name), parent, freeze({}), existing, fresh(C),
                          create_disallowed=disallowed)


# ------------------------------------------------------------------ properties

HEX = "0123456789abcdef"
UUIDS = st.sampled_from([A, B, C, U1, U2, *(f"{c * 8}-0000-4000-8000-{c * 12}" for c in HEX)])
NAMES = st.sampled_from(["", "Work", "Work (2)", "Home", "name-x", "a"])
EXISTING = st.lists(
    st.builds(ExistingVm, UUIDS, NAMES, st.one_of(st.none(), st.integers(-2, 11))),
    max_size=14, unique_by=lambda vm: vm.uuid)


@settings(max_examples=400, deadline=None)
@given(existing=EXISTING,
       slot=st.one_of(st.none(), st.integers(-2, 11).map(str)),
       name=st.one_of(st.none(), NAMES),
       ui_name=st.one_of(st.none(), NAMES),
       template_uuid=st.one_of(st.none(), UUIDS),
       explicit_uuid=st.one_of(st.none(), UUIDS),
       draws=st.lists(UUIDS, min_size=1, max_size=MAX_FRESH_ATTEMPTS))
def test_a_plan_never_collides_with_an_existing_vm(
        existing: list[ExistingVm], slot: str | None, name: str | None, ui_name: str | None,
        template_uuid: str | None, explicit_uuid: str | None, draws: list[str]) -> None:
    body: dict[str, object] = {}
    if slot is not None:
        body["slot"] = slot
    if name is not None:
        body["name"] = name
    if template_uuid is not None:
        body["uuid"] = template_uuid
    ui = None if ui_name is None else UiFields(ui_name, "", "")
    source = itertools.cycle(draws)
    try:
        p = plan_create(CreateRequest(tpl(body), uuid=explicit_uuid, ui=ui), existing,
                        lambda: next(source), reserved=SERVICE_UUIDS)
    except CreateError as e:
        event("refused")
        # a refusal is only ever one of the documented ones
        assert e.code == 205 or any(s in e.text for s in (
            "already exists", "is reserved", "already used by VM", "no unused uuid"))
        if e.code == 205:
            assert {vm.slot for vm in existing} >= set(GUEST_SLOTS)
        return
    event("planned")
    assert p.uuid not in {vm.uuid for vm in existing}
    assert p.uuid != "00000000-0000-0000-0000-000000000000"
    assert p.uuid not in SERVICE_UUIDS or p.uuid == template_uuid
    assert p.name not in {vm.name for vm in existing}
    assert p.name.strip() == p.name and p.name
    if p.slot >= 0:
        assert p.slot not in {vm.slot for vm in existing}
    if not slot:
        assert p.slot == min(set(GUEST_SLOTS) - {vm.slot for vm in existing})
    expected_uuid = explicit_uuid or template_uuid
    if expected_uuid is not None:
        assert p.uuid == expected_uuid
    assert get_leaf(p.tree, "uuid") == get_leaf(p.tree, "seamless-id") == p.uuid
    assert get_leaf(p.tree, "name") == p.name
    assert get_leaf(p.tree, "slot") == str(p.slot)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3, 12), max_size=12))
def test_slot_allocation_is_the_smallest_free(taken: list[int]) -> None:
    got = choose_slot(taken)
    free = sorted(set(GUEST_SLOTS) - set(taken))
    assert got == (free[0] if free else None)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 12))
def test_creating_one_by_one_fills_slots_1_to_9_then_205(count: int) -> None:
    existing: list[ExistingVm] = []
    source = (str(uuidlib.UUID(int=i + 1)) for i in itertools.count())
    slots = []
    for _ in range(count):
        try:
            p = plan_create(CreateRequest(tpl({"name": "same"})), existing,
                            lambda: next(source))
        except CreateError as e:
            assert e.code == 205 and len(existing) == 9
            break
        slots.append(p.slot)
        existing.append(ExistingVm(p.uuid, p.name, p.slot))
    assert slots == list(range(1, min(count, 9) + 1))
    assert len({vm.name for vm in existing}) == len(existing)


# valid values only: NUL and lone surrogates are refused (test_jsontree checks the refusal)
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
               max_size=3)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "config", "description"]),
                       st.one_of(TEXT, st.dictionaries(st.sampled_from(["x", "y"]), TEXT,
                                                       max_size=2)),
                       max_size=3))
def test_json_values_are_in_the_plan(over: dict[str, object]) -> None:
    base: TreeView = freeze({"a": "1", "config": {"x": "2"}})
    p = plan(Template("t", base), json=json.dumps(over))
    for key, value in over.items():
        if isinstance(value, str):
            assert get_leaf(p.tree, key) == value
        else:
            assert isinstance(value, dict)
            for inner, text in value.items():
                assert get_leaf(p.tree, f"{key}/{inner}") == text
