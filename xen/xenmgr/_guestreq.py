"""``com.citrix.xenclient.xenmgr.guestreq``: what a guest may ask of the manager (a mixin of
the root object).

``request_attention``: a guest (reaching the bus through rpc-proxy) asks for the user's
attention; xenmgr sends ``requested_attention(uuid, vm object path)`` for the calling VM, for
the UI to act on. The caller is identified by the bus's caller-identity service
(``org.openxt.toolstack.identity``, registered by rpc-proxy for every guest connection): dom0
is refused (the request is a guest's), a caller that cannot be identified is refused, and a
guest whose VM xenmgr does not know (by uuid, else by domid) is refused naming the domain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rpc.dbus import (
    IDENTITY_INTERFACE,
    IDENTITY_NAME,
    IDENTITY_PATH,
    Call,
    DBusError,
    RemoteObject,
    dbus_method,
)
from xen.xenmgr._errors import plain
from xen.xenmgr._messages import Emit
from xen.xenmgr._monitors import monitor_view
from xen.xenmgr._uuids import vm_object_path

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["GuestRequestMethods"]

GUESTREQ = "com.citrix.xenclient.xenmgr.guestreq"


class GuestRequestMethods:
    """See the module docstring (mixed into the root object)."""

    ctx: ServiceContext

    def _calling_vm(self, call: Call) -> str:
        ident = RemoteObject(self.ctx.conn, IDENTITY_NAME, IDENTITY_PATH,
                             timeout=self.ctx.settings.db_timeout)
        try:
            domid, uuid = ident.call(IDENTITY_INTERFACE, "get_identity", "s", call.sender)
        except DBusError as exc:
            raise plain(f"cannot identify the caller {call.sender}: "
                        f"{exc.message or exc.name}") from None
        if int(domid) == 0:
            raise plain("request_attention is a guest's request: the caller is dom0")
        if uuid and self.ctx.known(str(uuid)):
            return str(uuid)
        for known in self.ctx.vm_uuids():
            view = monitor_view(known)
            if view is not None and view.domid == int(domid):
                return known
        raise plain(f"no VM runs in domain {int(domid)}")

    @dbus_method(GUESTREQ, "request_attention")
    def request_attention(self, call: Call) -> None:
        uuid = self._calling_vm(call)
        self.ctx.tell_queue(Emit("/", GUESTREQ, "requested_attention",
                                 (uuid, vm_object_path(uuid)), uuid))
