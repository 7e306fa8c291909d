"""The creation actor: the only place where VMs come into and leave the database.

Its mailbox is xenmgr's creation lock. For :class:`CreateVm` it reads every VM's subtree from
the database, plans the new VM with ``plan_create`` against that set (uuid, slot and name
cannot collide with any VM, under any interleaving of callers: nothing else allocates them),
checks that the VM monitor will accept the VM's config (translation), then injects the whole
subtree in one durable database step before answering. A refusal (policy 220, no free slot
205, a bad uuid, malformed JSON, an unknown template, a config the monitor would refuse) writes
nothing. Since the inject is one step, a crash (even a SIGKILL of the whole process) leaves
either the complete VM or none; the service makes the monitor of every VM it finds.

For :class:`CreateChild` (``create_child_service_vm``) it plans the child against every VM
(``plan_create_child``), checks both the child's and the parent's new config, and writes the
child, then the parent's subtree with the template's ``parent-override``.

For :class:`SetSlot` (the ``slot`` property) it swaps: the VM that held the new slot gets the
old one, so slots >= 0 stay unique (the original swapped under its slot lock).

For :class:`RemoveVm` it plans the delete against every VM (``plan_delete``: policy 220, ``no
vm with uuid X``, 204 while running), removes the VHD files the VM owns (never a shared one
nor one outside the storage directory), then the VM's database nodes.

At start it checks the database's version (``_dbversion``: a fresh database gets ``42``,
another version is refused), then configures the service VMs from their templates
(``select_service_vms``, ``plan_service_vm_exports``), as the original did at each start. It
talks to dbd on its own bus connection, so creations work while the bus service restarts.
"""

from __future__ import annotations

import logging
import os
import uuid as uuidlib
from pathlib import Path
from typing import Any

from actors import Actor, handles
from rpc.dbus import BusConnection
from xen.xenmgr._create import ChildPlan, CreatePlan, ExistingVm, plan_create, plan_create_child
from xen.xenmgr._dbclient import DbClient
from xen.xenmgr._dbversion import DbVersionError, ensure_db_version
from xen.xenmgr._delete import DeletePlan, plan_delete
from xen.xenmgr._errors import XenmgrError
from xen.xenmgr._flows import config_text, internal_state
from xen.xenmgr._jsontree import freeze, parse_db_bool, thaw
from xen.xenmgr._messages import CreateChild, CreateVm, RemoveVm, SetSlot
from xen.xenmgr._planerror import PlanError
from xen.xenmgr._settings import ManagerSettings
from xen.xenmgr._states import is_running
from xen.xenmgr._template_store import TemplateStore, shipped_templates_dir
from xen.xenmgr._templates import (
    NDVM_MODE_PATH,
    USBVM_ENABLE_PATH,
    overwrite_setting_path,
    plan_service_vm_exports,
    select_service_vms,
)
from xen.xenmgr._uuids import NDVM_UUID, UIVM_UUID, USBVM_UUID

__all__ = ["VmCreator", "template_store"]

logger = logging.getLogger("xenmgr")


def template_store(settings: ManagerSettings) -> TemplateStore:
    """The shipped templates of the settings' flavour, then the administrator's."""
    admin = settings.admin_templates
    return TemplateStore(shipped=shipped_templates_dir(settings.flavour),
                         admin=None if admin is None else Path(admin))


def _flag(db: DbClient, path: str, default: bool) -> bool:
    text = db.read(path)
    if not text:
        return default
    try:
        return parse_db_bool(text, what=path)
    except Exception:
        return default


class VmCreator(Actor):
    """See the module docstring."""

    def __init__(self, settings: ManagerSettings) -> None:
        super().__init__()
        self.settings = settings
        self.conn: BusConnection | None = None
        self.db: DbClient | None = None

    def on_start(self) -> None:
        """Connect to the bus, check the database's version (``_dbversion``: a version this
        xenmgr does not read fails the start, naming it), then configure the service VMs."""
        self.conn = BusConnection(self.settings.address, label=self.name)
        self.db = DbClient(self.conn, timeout=self.settings.db_timeout)
        try:
            ensure_db_version(self.db)
        except DbVersionError as exc:
            logger.error("refusing the database: %s", exc)
            self.conn.close()
            raise
        try:
            self._configure_service_vms(self.db)
        except Exception as exc:  # a broken template must not keep xenmgr down
            logger.error("configuring the service VMs failed: %s", exc)

    def on_stop(self) -> None:
        """Close the connection."""
        if self.conn is not None:
            self.conn.close()

    def on_failure(self, *_exc: Any) -> None:
        """Close the connection (after a kill too)."""
        self.on_stop()

    on_killed = on_failure

    def _configure_service_vms(self, db: DbClient) -> None:
        templates = template_store(self.settings).load()
        selected = select_service_vms(
            templates, ndvm_mode=db.read(NDVM_MODE_PATH) or "hvm",
            usbvm_enable=_flag(db, USBVM_ENABLE_PATH, False))
        existing = {u: freeze(t) for u, t in db.vms().items()}
        overwrite = {s.overwrite_tag: _flag(db, overwrite_setting_path(s.overwrite_tag), True)
                     for s in selected}
        for export in plan_service_vm_exports(selected, existing=existing,
                                              overwrite=overwrite):
            tree = thaw(export.tree)
            config_text(export.uuid, tree)  # the monitor must accept it
            db.inject(f"/vm/{export.uuid}", tree)
            logger.info("service VM %s (%s) written from its template", export.tag,
                        export.uuid)

    # ------------------------------------------------------------------ create

    @handles(CreateVm)
    def _create(self, msg: CreateVm) -> CreatePlan:
        assert self.db is not None
        vms = self.db.vms()
        existing = [ExistingVm.from_tree(u, freeze(t)) for u, t in vms.items()]
        try:
            plan = plan_create(msg.request, existing, lambda: str(uuidlib.uuid4()),
                               reserved=(UIVM_UUID, NDVM_UUID, USBVM_UUID))
        except PlanError as exc:
            raise XenmgrError(exc.code, exc.text) from None
        tree = thaw(plan.tree)
        config_text(plan.uuid, tree)  # refuses, before anything is written
        self.db.inject(plan.db_path, tree)
        logger.info("VM %s created (%s, slot %d)", plan.uuid, plan.name, plan.slot)
        return plan

    @handles(CreateChild)
    def _create_child(self, msg: CreateChild) -> ChildPlan:
        """A child service VM (``plan_create_child``): the child's subtree, then the
        parent's with the template's override, each checked by the translation first."""
        assert self.db is not None
        vms = self.db.vms()
        existing = [ExistingVm.from_tree(u, freeze(t)) for u, t in vms.items()]
        try:
            plan = plan_create_child(
                msg.template, msg.parent, freeze(vms.get(msg.parent.lower(), {})), existing,
                lambda: str(uuidlib.uuid4()), create_disallowed=msg.create_disallowed,
                reserved=(UIVM_UUID, NDVM_UUID, USBVM_UUID))
        except PlanError as exc:
            raise XenmgrError(exc.code, exc.text) from None
        child, parent = thaw(plan.child.tree), thaw(plan.parent_tree)
        config_text(plan.child.uuid, child)
        config_text(plan.parent_uuid, parent)
        self.db.inject(plan.child.db_path, child)
        self.db.inject(f"/vm/{plan.parent_uuid}", parent)
        logger.info("child service VM %s (%s) of %s created", plan.child.uuid,
                    msg.template.name, plan.parent_uuid)
        return plan

    # ------------------------------------------------------------------ slots

    @handles(SetSlot)
    def _set_slot(self, msg: SetSlot) -> list[str]:
        assert self.db is not None
        vms = self.db.vms()
        if msg.uuid not in vms:
            return []
        old = str(vms[msg.uuid].get("slot", "-1"))
        if old.strip() == str(msg.slot):
            return []
        changed = []
        if msg.slot >= 0:
            for other, tree in sorted(vms.items()):
                if other != msg.uuid and str(tree.get("slot", "")).strip() == str(msg.slot):
                    self.db.write(f"/vm/{other}/slot", old)
                    changed.append(other)
        self.db.write(f"/vm/{msg.uuid}/slot", str(msg.slot))
        changed.append(msg.uuid)
        return changed

    # ------------------------------------------------------------------ delete

    @handles(RemoveVm)
    def _remove(self, msg: RemoveVm) -> DeletePlan:
        assert self.db is not None
        disallowed = not msg.unrestricted and _flag(self.db, "/vm-delete-disallowed", False)
        vms = {u: freeze(t) for u, t in self.db.vms().items()}
        try:
            plan = plan_delete(msg.uuid, vms, running=is_running(internal_state(msg.uuid)),
                               delete_disallowed=disallowed,
                               disk_dirs=(self.settings.storage_dir,))
        except PlanError as exc:
            raise XenmgrError(exc.code, exc.text) from None
        for path in plan.files:
            try:
                os.unlink(path)
                logger.info("VM %s: deleted %s", plan.uuid, path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("VM %s: cannot delete %s: %s", plan.uuid, path, exc)
        for kept in plan.kept:
            logger.info("VM %s: kept %s (%s)", plan.uuid, kept.path, kept.reason)
        for path in plan.db_paths:
            self.db.rm(path)
        return plan
