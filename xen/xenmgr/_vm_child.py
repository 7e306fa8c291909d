"""``create_child_service_vm``: a service VM that belongs to one VM.

``create_child_service_vm(template)`` on ``/vm/<u_>`` creates a VM from the ``child-<tag>``
template (``template`` is the tag as ``list_child_service_vm_templates`` lists it, or the full
``child-<tag>`` name) and deep-merges the template's ``parent-override`` into this VM (with
``${UUID}``, the child's uuid, and ``${PARENT_UUID}``, this VM's, substituted): the creation
actor plans and writes both (``CreateChild``). Then, as for any new VM: its monitor, its
objects, ``run-post-create`` hooks and ``vm_created``; this VM's objects follow its new subtree
and ``vm_config_changed`` is queued for it. The answer is the child's object path. A template
that is not a child one, ``/vm-create-disallowed`` (220) and the creation's own refusals are
errors; nothing is written then.

Shipped: ``child-vpnvm``, a PV network VM of the guest: the guest's first nic is served by it
(``backend-uuid`` = the child) and the guest gets ``track-dependencies``, so starting the guest
starts its network VM first (``_vm_deps``); the child's own nic goes to the default network VM.
"""

from __future__ import annotations

from rpc.dbus import Call, dbus_method
from xen.xenmgr._creator import template_store
from xen.xenmgr._errors import plain
from xen.xenmgr._messages import CreateChild
from xen.xenmgr._root import db_flag, finish_create
from xen.xenmgr._templates import CHILD_PREFIX, TemplateError
from xen.xenmgr._vm_mixin import VmMixin

__all__ = ["ChildVmMethods"]

VM = "com.citrix.xenclient.xenmgr.vm"


class ChildVmMethods(VmMixin):
    """``create_child_service_vm`` (module docstring); mixed into the VM object."""

    @dbus_method(VM, "create_child_service_vm")
    def create_child_service_vm(self, call: Call, template: str) -> str:
        name = template if template.startswith(CHILD_PREFIX) else CHILD_PREFIX + template
        try:
            resolved = template_store(self.ctx.settings).load().get(name)
        except TemplateError as exc:
            raise plain(f"no child service VM template {template!r}: {exc}") from None
        self.tree()  # this VM exists
        disallowed = db_flag(self.ctx, "/vm-create-disallowed")
        plan = self.ctx.ask_creator(CreateChild(resolved, self.uuid, disallowed))
        self.ctx.sync_devices(self.uuid, self.tree())
        self.changed()
        return finish_create(self.ctx, plan.child)
