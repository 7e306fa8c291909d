"""The create plan: what a ``create_vm*`` call writes, decided before anything is written.

:func:`plan_create` is a function of the template, the call's arguments, the existing VMs, a
source of fresh uuids and the policy flag. It returns the subtree to inject at ``/vm/<uuid>``
with the uuid, slot, name and seamless id it chose, or raises :class:`CreateError`. Given its
inputs nothing it returns can collide with an existing VM; the caller keeps that true by
planning and writing under one lock (the original's creation lock; here, one actor's
mailbox).

The steps, in order (the original's, with the deviations marked *here*):

1. **Policy**: ``create_disallowed`` (db ``/vm-create-disallowed``; the caller passes false for
   the ``unrestricted_*`` methods) -> 220.
2. **JSON**: for ``..._and_json`` the client's object is deep-merged over the template (a blank
   text changes nothing; a malformed one is refused naming the problem).
3. **uuid**: the explicit one (``..._and_uuid``) > the merged tree's ``uuid`` > a fresh one
   from ``fresh_uuid``. Explicit and tree uuids must be uuids (either case, stored in lower
   case); *here* one that is already a VM's, dom0's nil uuid, or in ``reserved`` (the service
   VMs' fixed uuids) unless the template itself carries it, is refused (the original overwrote
   the existing VM). Fresh uuids already taken are drawn again, up to
   :data:`MAX_FRESH_ATTEMPTS` times.
4. **slot**: a merged tree without a ``slot`` (or with ``""``) gets the smallest slot in 1..9
   that no VM holds, none free -> 205 (*here* every VM's slot counts, not only guest VMs', so
   no two VMs share a slot). A given slot must be an integer; a slot >= 0 held by a VM is
   refused (*here*; the original wrote it twice); a negative slot means "no switcher slot" and
   may repeat.
5. **name**: the merged tree's name if not blank (a template or JSON name wins over the
   ``create_vm_with_ui`` name), else the UI name if not blank, else ``name-<uuid>``; leading
   and trailing blanks are dropped; control characters are refused; at most
   :data:`MAX_NAME_CHARS` characters (before any suffix). *Here* a name another VM has gets
   `` (2)``, `` (3)``... appended (the original allowed duplicates).
6. **tree**: the export of the merged tree (``uuid`` set), ``seamless-id`` = uuid, the name,
   the slot, and for ``create_vm_with_ui`` its description and image path (control characters
   other than newline and tab refused).

:func:`plan_create_child` plans ``create_child_service_vm``: the child is created from the
``child-<tag>`` template without its ``parent-override``, whose strings get ``${UUID}`` (the
child) and ``${PARENT_UUID}`` substituted and which is deep-merged into the parent's subtree.

Failure: :class:`CreateError` (code 205 or 220, or a plain message naming the bad value).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from xen.xenmgr._jsontree import (
    TreeError,
    TreeView,
    deep_merge,
    get_leaf,
    tree_to_json,
    with_leaf,
)
from xen.xenmgr._planerror import POLICY_SUPPRESSED, TOO_MANY_VMS, CreateError
from xen.xenmgr._templates import (
    Template,
    TemplateError,
    export_tree,
    instantiate_child,
    merge_json,
)
from xen.xenmgr._uuids import NIL_UUID, canonical_uuid, vm_object_path

__all__ = [
    "GUEST_SLOTS",
    "MAX_FRESH_ATTEMPTS",
    "MAX_NAME_CHARS",
    "ChildPlan",
    "CreatePlan",
    "CreateRequest",
    "ExistingVm",
    "UiFields",
    "choose_slot",
    "plan_create",
    "plan_create_child",
    "unique_name",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: The slots a new VM may be given when its template names none.
GUEST_SLOTS = range(1, 10)
MAX_FRESH_ATTEMPTS = 16
MAX_NAME_CHARS = 128

_SLOT = re.compile(r"-?[0-9]{1,9}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ExistingVm:
    """What the plans need to know of a VM already in the db."""

    uuid: str
    name: str = ""
    slot: int | None = None

    @staticmethod
    def from_tree(uuid: str, tree: TreeView) -> ExistingVm:
        """Read from a VM's db subtree, leniently: a slot that is not an integer is no slot
        (stored data is never refused here). The VM's type is not needed: every VM's slot
        counts (module docstring)."""
        slot = get_leaf(tree, "slot") or ""
        return ExistingVm(uuid=uuid.lower(), name=get_leaf(tree, "name") or "",
                          slot=int(slot) if _SLOT.fullmatch(slot) else None)


@dataclass(frozen=True, slots=True)
class UiFields:
    """The arguments of ``create_vm_with_ui`` besides the template."""

    name: str
    description: str
    image_path: str


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """One create call: the resolved template and the arguments of its variant."""

    template: Template
    uuid: str | None = None
    json: str = ""
    ui: UiFields | None = None
    create_disallowed: bool = False


@dataclass(frozen=True, slots=True)
class CreatePlan:
    """What to write for a new VM: ``tree`` at ``/vm/<uuid>``."""

    uuid: str
    slot: int
    name: str
    seamless_id: str
    tree: TreeView = field(hash=False)

    @property
    def db_path(self) -> str:
        return f"/vm/{self.uuid}"

    @property
    def object_path(self) -> str:
        return vm_object_path(self.uuid)

    def inject_json(self) -> str:
        """The JSON text for the db's ``inject`` at :attr:`db_path`."""
        return tree_to_json(self.tree)


def choose_slot(taken: Iterable[int | None]) -> int | None:
    """The smallest of :data:`GUEST_SLOTS` not in ``taken``, or None if all are."""
    used = set(taken)
    return next((s for s in GUEST_SLOTS if s not in used), None)


def unique_name(name: str, taken: Collection[str]) -> str:
    """``name``, or ``name (n)`` with the smallest n >= 2 that no VM has."""
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"


def _text(value: str, what: str, pattern: re.Pattern[str]) -> str:
    if pattern.search(value):
        raise CreateError(None, f"{what} {value!r} contains control characters")
    return value


def _choose_uuid(request: CreateRequest, tree: TreeView, existing: dict[str, ExistingVm],
                 fresh_uuid: Callable[[], str], reserved: Collection[str]) -> str:
    own = request.template.uuid
    given, what = (request.uuid, "uuid") if request.uuid is not None \
        else (get_leaf(tree, "uuid") or None, "the template's uuid")
    if given is not None:
        try:
            uuid = canonical_uuid(given, what=what)
        except ValueError as e:
            raise CreateError(None, str(e)) from None
        if uuid in existing:
            raise CreateError(None, f"a VM with uuid {uuid} already exists")
        if uuid == NIL_UUID or (uuid in reserved and uuid != own):
            raise CreateError(None, f"uuid {uuid} is reserved (dom0 or a service VM)")
        return uuid
    for _ in range(MAX_FRESH_ATTEMPTS):
        drawn = fresh_uuid()
        try:
            uuid = canonical_uuid(drawn, what="the fresh uuid source gave")
        except ValueError as e:
            raise CreateError(None, str(e)) from None
        if uuid not in existing and uuid != NIL_UUID and uuid not in reserved:
            return uuid
    raise CreateError(None, f"no unused uuid after {MAX_FRESH_ATTEMPTS} fresh ones")


def _choose_slot(tree: TreeView, existing: Iterable[ExistingVm]) -> int:
    if "slot" in tree and get_leaf(tree, "slot") is None:
        raise CreateError(None, "slot must be a string, not an object")
    given = (get_leaf(tree, "slot") or "").strip()
    vms = list(existing)
    if not given:
        slot = choose_slot(vm.slot for vm in vms)
        if slot is None:
            raise CreateError(TOO_MANY_VMS)
        return slot
    if not _SLOT.fullmatch(given):
        raise CreateError(None, f"slot {given!r} is not an integer")
    slot = int(given)
    holder = next((vm.uuid for vm in vms if slot >= 0 and vm.slot == slot), None)
    if holder is not None:
        raise CreateError(None, f"slot {slot} is already used by VM {holder}")
    return slot


def _choose_name(tree: TreeView, ui: UiFields | None, uuid: str,
                 existing: Iterable[ExistingVm]) -> str:
    if "name" in tree and get_leaf(tree, "name") is None:
        raise CreateError(None, "name must be a string, not an object")
    name = (get_leaf(tree, "name") or "").strip()
    if not name and ui is not None:
        name = ui.name.strip()
    name = name or f"name-{uuid}"
    _text(name, "name", _CONTROL)
    if len(name) > MAX_NAME_CHARS:
        raise CreateError(None, f"name is {len(name)} characters, more than the "
                                f"{MAX_NAME_CHARS} allowed")
    return unique_name(name, {vm.name for vm in existing})


def plan_create(request: CreateRequest, existing: Iterable[ExistingVm],
                fresh_uuid: Callable[[], str], *,
                reserved: Collection[str] = ()) -> CreatePlan:
    """Plan one create call (module docstring); CreateError if it is refused."""
    if request.create_disallowed:
        raise CreateError(POLICY_SUPPRESSED)
    vms = {vm.uuid.lower(): vm for vm in existing}
    try:
        tree = merge_json(request.template.tree, request.json)
    except TreeError as e:
        raise CreateError(None, f"invalid json argument: {e}") from None
    reserved = {u.lower() for u in reserved}
    uuid = _choose_uuid(request, tree, vms, fresh_uuid, reserved)
    slot = _choose_slot(tree, vms.values())
    name = _choose_name(tree, request.ui, uuid, vms.values())
    out = export_tree(tree, uuid)
    out = with_leaf(out, "seamless-id", uuid)
    out = with_leaf(out, "name", name)
    out = with_leaf(out, "slot", str(slot))
    if request.ui is not None:
        out = with_leaf(out, "description",
                        _text(request.ui.description, "description", _CONTROL_BUT_LAYOUT))
        out = with_leaf(out, "image_path",
                        _text(request.ui.image_path, "image path", _CONTROL))
    return CreatePlan(uuid=uuid, slot=slot, name=name, seamless_id=uuid, tree=out)


@dataclass(frozen=True, slots=True)
class ChildPlan:
    """A child service VM to create and its parent's subtree after the override."""

    child: CreatePlan
    parent_uuid: str
    parent_tree: TreeView = field(hash=False)


def plan_create_child(template: Template, parent_uuid: str, parent_tree: TreeView,
                      existing: Iterable[ExistingVm], fresh_uuid: Callable[[], str], *,
                      create_disallowed: bool = False,
                      reserved: Collection[str] = ()) -> ChildPlan:
    """Plan ``create_child_service_vm`` on VM ``parent_uuid`` from a ``child-<tag>``
    template; the parent's new subtree replaces ``/vm/<parent_uuid>``."""
    if create_disallowed:
        raise CreateError(POLICY_SUPPRESSED)
    try:
        parent = canonical_uuid(parent_uuid, what="parent uuid")
        own = instantiate_child(template, uuid="", parent_uuid="").tree
    except (ValueError, TemplateError) as e:
        raise CreateError(None, str(e)) from None
    vms = list(existing)
    if parent not in {vm.uuid.lower() for vm in vms}:
        raise CreateError(None, f"no vm with uuid {parent}")
    child = plan_create(CreateRequest(Template(template.name, own, template.source)), vms,
                        fresh_uuid, reserved=reserved)
    parts = instantiate_child(template, uuid=child.uuid, parent_uuid=parent)
    return ChildPlan(child, parent, deep_merge(parent_tree, parts.parent_override))
