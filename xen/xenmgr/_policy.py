"""``com.citrix.xenclient.policy`` on ``/``: a VM's policies, or the host's, as one JSON
document (a mixin of the root object).

* ``retrieve(uuid)``: for a VM, its policies as a JSON object of booleans, every key present
  (the default when the db has none): ``cd-access``, ``cd-rec``, ``audio-access``,
  ``audio-rec``, ``wired-networking``, ``wireless-networking``, ``modify-vm-settings`` (db
  ``/vm/<uuid>/policies/<key>``, default true) and ``print-screen-disallowed`` (default false).
  For ``""`` the host's: ``vm-create-disallowed``, ``vm-delete-disallowed``,
  ``ota-upgrades-disallowed`` (db ``/<key>``, default false).
* ``enforce(uuid, value)``: ``value`` is such a JSON object (a subset of the keys is fine);
  every key and value is checked before anything is written (an unknown key, a value that is
  not a boolean, malformed JSON or an unknown VM: a clear error, nothing written); values that
  change are written, then ``vm_config_changed`` for a VM.

The policies themselves act where they always did: creation and deletion refused with 220,
the ``policy-*`` properties of the VM.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rpc.dbus import Call, dbus_method
from xen.xenmgr._errors import no_vm_with_uuid, plain
from xen.xenmgr._jsontree import parse_db_bool
from xen.xenmgr._messages import ConfigChanged

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["HOST_POLICIES", "VM_POLICIES", "PolicyMethods"]

POLICY = "com.citrix.xenclient.policy"
#: VM policy key -> default
VM_POLICIES = {"cd-access": True, "cd-rec": True, "audio-access": True, "audio-rec": True,
               "wired-networking": True, "wireless-networking": True,
               "modify-vm-settings": True, "print-screen-disallowed": False}
#: host policy key -> default
HOST_POLICIES = {"vm-create-disallowed": False, "vm-delete-disallowed": False,
                 "ota-upgrades-disallowed": False}


def _value(text: object, default: bool) -> bool:
    if not isinstance(text, str) or not text:
        return default
    try:
        return parse_db_bool(text, what="policy")
    except ValueError:
        return default


class PolicyMethods:
    """See the module docstring (mixed into the root object)."""

    ctx: ServiceContext

    def _scope(self, uuid: str) -> tuple[dict[str, bool], str]:
        """(the keys and defaults, the db prefix) of ``uuid``'s policies."""
        if not uuid:
            return HOST_POLICIES, ""
        if not self.ctx.known(uuid):
            raise no_vm_with_uuid(uuid)
        return VM_POLICIES, f"/vm/{uuid}/policies"

    @dbus_method(POLICY, "retrieve")
    def retrieve(self, call: Call, uuid: str) -> str:
        keys, prefix = self._scope(uuid)
        stored: Any
        if prefix:
            stored = self.ctx.db.tree(prefix)
        else:  # host keys sit at the top of the database: read them one by one
            stored = {k: self.ctx.db.read(f"/{k}") for k in keys}
        stored = stored if isinstance(stored, dict) else {}
        return json.dumps({k: _value(stored.get(k), d) for k, d in keys.items()},
                          sort_keys=True)

    @dbus_method(POLICY, "enforce")
    def enforce(self, call: Call, uuid: str, value: str) -> None:
        keys, prefix = self._scope(uuid)
        try:
            wanted = json.loads(value)
        except ValueError as exc:
            raise plain(f"enforce: the policy is not JSON: {exc}") from None
        if not isinstance(wanted, dict):
            raise plain("enforce: the policy is not a JSON object")
        for key, flag in wanted.items():
            if key not in keys:
                raise plain(f"enforce: unknown policy {key!r} (known: {', '.join(keys)})")
            if not isinstance(flag, bool):
                raise plain(f"enforce: policy {key!r} must be true or false, not {flag!r}")
        current = json.loads(self.retrieve(call, uuid))
        changed = False
        for key, flag in wanted.items():
            if current[key] != flag:
                self.ctx.db.write(f"{prefix}/{key}", "true" if flag else "false")
                changed = True
        if changed and uuid:
            self.ctx.tell_queue(ConfigChanged(uuid))
