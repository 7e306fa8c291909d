"""VM monitors on DBus, as the original xenvm: ``org.xen.vm.uuid_<uuid with _>``.

One service actor (:class:`XenvmBus`) owns the bus name of every running monitor on one
connection (the original ran one process, and connection, per VM). Semantics, as the original:

* A call to ``org.xen.vm.uuid_<u>`` (any object path, any interface) whose member is a task name
  with ``-`` written ``_`` runs that task. The one argument is ``a{ss}`` (``a{sv}`` with string
  variants is accepted too). The answer is an empty method return, or one string when the task
  answers one; a failure is ``org.freedesktop.DBus.Error.Failed`` with the error text; an
  unknown member is ``org.freedesktop.DBus.Error.ServiceUnknown`` "no rpc".
* ``org.freedesktop.DBus.Introspectable.Introspect`` lists every task as a method taking
  ``params a{ss}`` and returning ``rval s``, under interface ``org.xen.vm.uuid_<u>``, plus the
  notify signal.
* Notifications are broadcast as the ``notify`` signal of interface ``xenvm.signal.notify`` at
  ``/org/xen/vm/<u_>``: (``uuid``, code, fields), code 0xf000 for ``vm:state:<state>`` and
  0x0002 for ``error:...`` (the original sent them only with ``notify = dbus``; we always do).

The service is a listener of the monitors (the environment's ``notify`` names it): monitors
tell it ``RegisterVm`` when they start and ``UnregisterVm`` when they stop, and each
notification as a ``VmNotification``, which it sends as the ``notify`` signal from its own
thread, in the order each monitor sent them. At its own start it takes the names of every
monitor the ``/vms`` supervisor lists as running (after a restart of the bus or of the
service). Calls reach a monitor through the handle it publishes
(``actors.service(vm_path(uuid), VmHandle)``): queries are answered at once from its view;
operations run in its mailbox and the reply is sent when the operation's future completes, so
no thread waits for it.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any

from jeepney.low_level import HeaderFields, Message

from actors import NoSuchActor, ServiceUnavailable, handles, service
from rpc.dbus import (
    DO_NOT_QUEUE,
    FAILED,
    PRIMARY_OWNER,
    SERVICE_UNKNOWN,
    BusService,
    error_reply,
    method_return,
    no_reply_expected,
    signal,
)
from rpc.idl import Arg, Direction, Interface, Method, render_introspection
from supervision import Supervisor
from xen.xenvm._messages import VMS, RegisterVm, UnregisterVm, VmNotification, vm_path
from xen.xenvm._monitor import VmHandle
from xen.xenvm._tasks import TASKS, TaskError, member_to_task, parse_task

__all__ = ["NOTIFY_ERROR", "NOTIFY_VMSTATE", "XenvmBus", "bus_name"]

logger = logging.getLogger("xenvm")

NOTIFY_INTERFACE = "xenvm.signal.notify"
NOTIFY_VMSTATE = 0xF000
NOTIFY_ERROR = 0x0002
_PREFIX = "org.xen.vm.uuid_"


def bus_name(uuid: str) -> str:
    """``org.xen.vm.uuid_<uuid with _>``."""
    return _PREFIX + uuid.replace("-", "_")


def _object_path(uuid: str) -> str:
    return "/org/xen/vm/" + uuid.replace("-", "_")


def _interface(uuid: str) -> Interface:
    methods = tuple(
        Method(spec.name.replace("-", "_"),
               (Arg("params", "a{ss}", Direction.IN), Arg("rval", "s", Direction.OUT)))
        for spec in TASKS.values())
    return Interface(bus_name(uuid), methods)


class XenvmBus(BusService):
    """Owns ``org.xen.vm.uuid_*`` names and runs tasks (see the module docstring)."""

    def __init__(self, address: str) -> None:
        super().__init__(address, names=())
        self.owned: set[str] = set()

    def setup(self) -> None:
        """Route calls ourselves; take the names of monitors already running."""
        self.bus.on_call = self._on_call
        try:
            children = service(VMS, Supervisor).children()
        except (NoSuchActor, ServiceUnavailable):
            children = ()  # no VM monitors in this tree (or /vms is restarting)
        for child in children:
            if child.status == "running":
                self._register(RegisterVm(child.id))

    @handles(RegisterVm)
    def _register(self, msg: RegisterVm) -> None:
        if msg.uuid in self.owned:
            return
        code = self.bus.request_name(bus_name(msg.uuid), DO_NOT_QUEUE)
        if code != PRIMARY_OWNER:
            logger.error("%s: bus name %s is taken", msg.uuid, bus_name(msg.uuid))
            return
        self.owned.add(msg.uuid)

    @handles(UnregisterVm)
    def _unregister(self, msg: UnregisterVm) -> None:
        if msg.uuid in self.owned:
            self.owned.discard(msg.uuid)
            self.bus.bus_call("ReleaseName", "s", (bus_name(msg.uuid),))

    @handles(VmNotification)
    def _notify(self, msg: VmNotification) -> None:
        code = NOTIFY_ERROR if msg.text.startswith("error:") else NOTIFY_VMSTATE
        try:
            self.bus.send(signal(_object_path(msg.uuid), NOTIFY_INTERFACE, "notify", "sis",
                                 (msg.uuid, code, msg.text)))
        except Exception:
            logger.debug("notify for %s not sent", msg.uuid, exc_info=True)

    # ------------------------------------------------------------------ calls (reader thread)

    def _on_call(self, msg: Message) -> None:
        fields = msg.header.fields
        dest = str(fields.get(HeaderFields.destination, ""))
        member = str(fields.get(HeaderFields.member, ""))
        if not dest.startswith(_PREFIX):
            self._send(error_reply(msg, SERVICE_UNKNOWN, "no rpc"), msg)
            return
        uuid = self._uuid_of(dest)
        if member == "Introspect":
            xml = render_introspection([_interface(uuid)], standard=(
                "org.freedesktop.DBus.Introspectable",))
            self._send(method_return(msg, "s", (xml,)), msg)
            return
        task = member_to_task(member)
        if task not in TASKS:
            self._send(error_reply(msg, SERVICE_UNKNOWN, "no rpc"), msg)
            return
        try:
            params = self._params(msg)
            call = parse_task(task, params)
            monitor = service(vm_path(uuid), VmHandle)
            if call.spec.kind == "query":
                self._answer(msg, monitor.query(call))
                return
            monitor.submit(call).add_done_callback(lambda f: self._finished(msg, f))
        except (TaskError, ValueError) as exc:
            self._send(error_reply(msg, FAILED, str(exc)), msg)
        except Exception as exc:  # the monitor is gone or restarting
            self._send(error_reply(msg, FAILED, f"exception: {exc}"), msg)

    def _uuid_of(self, dest: str) -> str:
        raw = dest[len(_PREFIX):]
        for uuid in self.owned:
            if uuid.replace("-", "_") == raw:
                return uuid
        return raw.replace("_", "-")

    @staticmethod
    def _params(msg: Message) -> dict[str, str]:
        sig = str(msg.header.fields.get(HeaderFields.signature, ""))
        if sig == "":
            return {}
        if sig not in ("a{ss}", "a{sv}"):
            raise ValueError(f"expected one a{{ss}} argument, got signature '{sig}'")
        out: dict[str, str] = {}
        for key, value in msg.body[0].items():
            if isinstance(value, tuple):  # a variant: (signature, value)
                if value[0] != "s":
                    raise ValueError(f"argument {key} must be a string")
                value = value[1]
            out[str(key)] = str(value)
        return out

    def _finished(self, msg: Message, future: Future[str]) -> None:
        exc = future.exception()
        if exc is not None:
            self._send(error_reply(msg, FAILED, str(exc)), msg)
        else:
            self._answer(msg, future.result())

    def _answer(self, msg: Message, text: str) -> None:
        if text:
            self._send(method_return(msg, "s", (text,)), msg)
        else:
            self._send(method_return(msg), msg)

    def _send(self, reply: Message, call: Message) -> None:
        if no_reply_expected(call):
            return
        try:
            self.bus.send(reply)
        except Exception:
            logger.debug("reply not sent", exc_info=True)

    def snapshot(self) -> dict[str, Any]:
        """The names owned, for inspection."""
        return {"vms": sorted(self.owned)}
