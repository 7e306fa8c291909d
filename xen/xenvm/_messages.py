"""What goes between a VM monitor and the rest of the tree: its start argument, its messages,
and the names it is found under.

* :class:`VmStart` is the start argument of a monitor (the dynamic child's arguments of the
  ``/vms`` supervisor: ``StartChild(uuid, (VmStart(uuid, config),))``). It is a registered
  wire type: the supervisor persists it with the child and decodes it after a restart of the
  process, so it holds only msgpack-able values (the config as file text or as the dict of
  ``config_to_dict``).
* :class:`RunTask` asks the monitor to run an operation (normally through
  :meth:`VmHandle.submit <xen.xenvm._monitor.VmHandle.submit>`); :class:`CheckState` tells it
  that its domain may have changed.
* The actors the environment lists as ``notify`` hear from every monitor:
  :class:`RegisterVm` when it starts, :class:`VmNotification` for each notification
  (``vm:state:<state>``, ``error:crashed``), :class:`UnregisterVm` when it stops. Delivery is
  best effort (a listener that is not running misses them) and in order per monitor.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

from actors import wire_type
from xen.xenvm._tasks import TaskCall, TaskError

__all__ = ["VMS", "XENVM_BUS", "CheckState", "RegisterVm", "RunTask", "UnregisterVm",
           "VmNotification", "VmStart", "vm_path"]

VMS = "/vms"
"""The supervisor of the VM monitors."""

XENVM_BUS = "/xenvm-bus"
"""Where the xenvm DBus service runs in the tree (if it runs)."""


def vm_path(uuid: str) -> str:
    """The tree name of a VM's monitor."""
    return f"{VMS}/{uuid}"


@wire_type("xenvm.start")
@dataclass(frozen=True, slots=True)
class VmStart:
    """A monitor's start argument: the VM's uuid and its config (file text or config dict)."""

    uuid: str
    config: str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RunTask:
    """Run an operation; its answer (or error) goes to ``reply``; a monitor that ends before
    running it fails ``reply`` with a ``TaskError`` (``actors.Undeliverable``)."""

    call: TaskCall
    reply: Future[str]

    def undelivered(self, reason: str) -> None:
        """The monitor ended first: the caller is told, not left waiting."""
        try:
            self.reply.set_exception(TaskError(
                f"{self.call.name} was not run: {reason}; the VM's next monitor takes new tasks"))
        except InvalidStateError:  # answered already
            pass


@dataclass(frozen=True, slots=True)
class CheckState:
    """The domain may have changed: look again."""


@dataclass(frozen=True, slots=True)
class RegisterVm:
    """To the listeners: the monitor of VM ``uuid`` runs (the bus service takes its name)."""

    uuid: str


@dataclass(frozen=True, slots=True)
class UnregisterVm:
    """To the listeners: the monitor of VM ``uuid`` stopped."""

    uuid: str


@dataclass(frozen=True, slots=True)
class VmNotification:
    """To the listeners: a notification of VM ``uuid`` (``vm:state:running``, ...)."""

    uuid: str
    text: str
