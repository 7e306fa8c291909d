"""The objects ``/`` and ``/host``, and the create and delete flows.

``/`` serves the interfaces of ``xenmgr.xml`` in its order. Real: ``list_vms`` (from the
registry, no database round trip), the template lists, every ``create_vm*`` variant and
``unrestricted_*``, ``find_vm_by_uuid``/``_by_domid``, ``list_domids``, ``create_vhd``, and
every property of ``config`` and ``config.ui``. Members without a handler answer
``NotSupported`` "not implemented: <interface>.<member>" (docs/xenmgr-coverage.md).

**Create**: the template is resolved (an unknown one fails, naming it), the creation actor
plans and writes the VM (uuid, slot, name; policy 220, 205, malformed JSON, a bad uuid: nothing
written), then here: the VM's monitor is started with the translated config, its objects are
exported, the ``run-post-create`` hooks run (a failure fails the call, and the VM stays, as
the original), and ``vm_created`` is queued; the answer is the VM's object path.

**Delete**: 220 by policy (not for ``unrestricted_delete_vm``), ``no vm with uuid X``, 204 while
running, then the ``run-pre-delete`` hooks (a failure stops the delete: nothing removed), then
the creation actor removes the files the VM owns and its database nodes, its monitor is
stopped, its objects go, and ``vm_deleted`` is queued.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from actors import ask
from rpc.dbus import Call, dbus_method
from supervision import TerminateChild
from xen.xenmgr._create import CreatePlan, CreateRequest, UiFields
from xen.xenmgr._creator import template_store
from xen.xenmgr._diag import DiagMethods
from xen.xenmgr._errors import error, no_vm_with_domid, no_vm_with_uuid, plain
from xen.xenmgr._flows import config_text, internal_state
from xen.xenmgr._guestreq import GuestRequestMethods
from xen.xenmgr._host_cd import HostCdMethods
from xen.xenmgr._host_extras import HostExtraMethods
from xen.xenmgr._host_gpus import HostGpuMethods
from xen.xenmgr._host_methods import HostMethods
from xen.xenmgr._host_sound import HostSoundMethods
from xen.xenmgr._jsontree import parse_db_bool, thaw
from xen.xenmgr._messages import CreateVm, Emit, RemoveVm
from xen.xenmgr._monitors import ensure_monitor, monitor_view, stop_monitor
from xen.xenmgr._policy import PolicyMethods
from xen.xenmgr._props import PropertyObject
from xen.xenmgr._queue import XENMGR
from xen.xenmgr._states import is_running
from xen.xenmgr._templates import (
    TemplateError,
    list_child_service_vm_templates,
    list_templates,
    list_ui_templates,
    resolve_template,
)
from xen.xenmgr._testing import TestingMethods
from xen.xenmgr._unsupported import not_supported
from xen.xenmgr._uuids import canonical_uuid, vm_object_path
from xen.xenmgr._vhd import create_vhd

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["HostObject", "RootObject", "create", "db_flag", "delete_vm", "finish_create"]

logger = logging.getLogger("xenmgr")
UNRESTRICTED = "com.citrix.xenclient.xenmgr.unrestricted"


def db_flag(ctx: ServiceContext, path: str) -> bool:
    """The db boolean at ``path`` (unset or not a boolean: false)."""
    text = ctx.db.read(path)
    try:
        return bool(text) and parse_db_bool(text, what=path)
    except ValueError:
        return False


def create(ctx: ServiceContext, template: str, *, uuid: str | None = None, json: str = "",
           ui: UiFields | None = None, unrestricted: bool = False) -> str:
    """The create flow (module docstring); the new VM's object path."""
    try:
        resolved = resolve_template(template_store(ctx.settings).load(), template)
    except TemplateError as exc:
        raise plain(str(exc)) from None
    disallowed = not unrestricted and db_flag(ctx, "/vm-create-disallowed")
    request = CreateRequest(resolved, uuid, json, ui, disallowed)
    return finish_create(ctx, ctx.ask_creator(CreateVm(request)))


def finish_create(ctx: ServiceContext, plan: CreatePlan) -> str:
    """After the creator wrote VM ``plan.uuid``: its monitor, its objects, the
    ``run-post-create`` hooks, ``vm_created``; its object path."""
    tree = thaw(plan.tree)
    ensure_monitor(ctx.settings, plan.uuid, config_text(plan.uuid, tree))
    ctx.export_vm(plan.uuid, tree)
    ctx.flows.hooks("run-post-create", tree.get("run-post-create"), [plan.uuid], fatal=True)
    ctx.tell_queue(Emit("/", XENMGR, "vm_created", (plan.uuid, plan.object_path), plan.uuid))
    return plan.object_path


def delete_vm(ctx: ServiceContext, uuid: str, *, unrestricted: bool) -> None:
    """The delete flow (module docstring)."""
    if not unrestricted and db_flag(ctx, "/vm-delete-disallowed"):
        raise error(220)
    try:
        uuid = canonical_uuid(uuid)
    except ValueError as exc:
        raise plain(str(exc)) from None
    tree = ctx.db.vm_tree(uuid)
    if not tree:
        raise no_vm_with_uuid(uuid)
    if is_running(internal_state(uuid)):
        raise error(204)
    ctx.flows.hooks("run-pre-delete", tree.get("run-pre-delete"), [uuid], fatal=True)
    ctx.ask_creator(RemoveVm(uuid, unrestricted))
    stop_monitor(ctx.settings, uuid)
    ctx.unexport_vm(uuid)
    try:  # its event handler goes too (a late event of the VM finds it gone and ends)
        ask(ctx.settings.vm_events, TerminateChild(uuid), timeout=ctx.settings.task_timeout)
    except Exception as exc:
        logger.debug("VM %s: event handler: %s", uuid, exc)
    ctx.tell_queue(Emit("/", XENMGR, "vm_deleted", (uuid, vm_object_path(uuid)), uuid))


class RootObject(TestingMethods, GuestRequestMethods, DiagMethods, PolicyMethods,
                 PropertyObject):
    """``/`` (see the module docstring)."""

    list_extension_packs = not_supported(
        XENMGR, "list_extension_packs", "extension packs (OpenXT's installable add-on "
        "bundles) are neither built nor installed by this toolstack")

    @dbus_method(XENMGR, "list_vms")
    def list_vms(self, call: Call) -> list[str]:
        return [vm_object_path(u) for u in self.ctx.vm_uuids()]

    @dbus_method(XENMGR, "list_templates")
    def list_templates(self, call: Call) -> list[str]:
        return list_templates(template_store(self.ctx.settings).load())

    @dbus_method(XENMGR, "list_ui_templates")
    def list_ui_templates(self, call: Call) -> list[dict[str, str]]:
        return list_ui_templates(template_store(self.ctx.settings).load())

    @dbus_method(XENMGR, "list_child_service_vm_templates")
    def list_child_templates(self, call: Call) -> list[str]:
        return list_child_service_vm_templates(template_store(self.ctx.settings).load())

    @dbus_method(XENMGR, "create_vm")
    def create_vm(self, call: Call) -> str:
        return create(self.ctx, "new-vm")

    @dbus_method(XENMGR, "create_vm_with_template")
    def create_vm_with_template(self, call: Call, template: str) -> str:
        return create(self.ctx, template)

    @dbus_method(XENMGR, "create_vm_with_template_and_uuid")
    def create_vm_with_template_and_uuid(self, call: Call, template: str, uuid: str) -> str:
        return create(self.ctx, template, uuid=uuid)

    @dbus_method(XENMGR, "create_vm_with_template_and_json")
    def create_vm_with_template_and_json(self, call: Call, template: str, json: str) -> str:
        return create(self.ctx, template, json=json)

    @dbus_method(XENMGR, "create_vm_with_ui")
    def create_vm_with_ui(self, call: Call, template: str, name: str, description: str,
                          image_path: str) -> str:
        return create(self.ctx, template, ui=UiFields(name, description, image_path))

    @dbus_method(UNRESTRICTED, "unrestricted_create_vm")
    def unrestricted_create_vm(self, call: Call) -> str:
        return create(self.ctx, "new-vm", unrestricted=True)

    @dbus_method(UNRESTRICTED, "unrestricted_create_vm_with_template_and_json")
    def unrestricted_create_vm_with_template_and_json(self, call: Call, template: str,
                                                       json: str) -> str:
        return create(self.ctx, template, json=json, unrestricted=True)

    @dbus_method(UNRESTRICTED, "unrestricted_delete_vm")
    def unrestricted_delete_vm(self, call: Call, uuid: str) -> None:
        delete_vm(self.ctx, uuid, unrestricted=True)

    @dbus_method(XENMGR, "find_vm_by_uuid")
    def find_vm_by_uuid(self, call: Call, uuid: str) -> str:
        try:
            uuid = canonical_uuid(uuid.strip().lower())
        except ValueError:
            raise no_vm_with_uuid(uuid) from None
        if self.ctx.known(uuid) or self.ctx.db.exists(f"/vm/{uuid}"):
            return vm_object_path(uuid)
        raise no_vm_with_uuid(uuid)

    @dbus_method(XENMGR, "find_vm_by_domid")
    def find_vm_by_domid(self, call: Call, domid: int) -> str:
        for uuid in self.ctx.vm_uuids():
            view = monitor_view(uuid)
            if view is not None and domid >= 0 and view.domid == domid:
                return vm_object_path(uuid)
        raise no_vm_with_domid(domid)

    @dbus_method(XENMGR, "list_domids")
    def list_domids(self, call: Call) -> list[int]:
        out = []
        for uuid in self.ctx.vm_uuids():
            view = monitor_view(uuid)
            if view is not None and view.domid >= 0:
                out.append(view.domid)
        return sorted(out)

    @dbus_method(XENMGR, "create_vhd")
    def create_vhd(self, call: Call, size_mb: int) -> str:
        return create_vhd(self.ctx.settings.storage_dir, size_mb)


class HostObject(HostCdMethods, HostGpuMethods, HostSoundMethods, HostExtraMethods, HostMethods,
                 PropertyObject):
    """``/host``: the properties of ``host``, ``installer`` and ``powersettings``, and the
    methods of :mod:`xen.xenmgr._host_methods` and the other ``_host_*`` mixins."""
