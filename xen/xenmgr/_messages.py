"""The messages between the actors of the manager branch (frozen values).

* to the creation actor: :class:`CreateVm` (answers a ``CreatePlan`` once the VM is in the
  database, or raises ``CreateError``/``XenmgrError``), :class:`RemoveVm` (answers the
  ``DeletePlan`` carried out);
* :class:`SetSlot` (a VM's slot set: the VM holding the new slot gets the old one);
* to the notification queue: :class:`Emit` (a signal to send, in order), :class:`ConfigChanged`
  (a VM's settings changed: ``vm_config_changed`` after a quiet time), :class:`ServiceUp` (the
  bus service is (back) on the bus: send what waited);
* to a VM's event handler: :class:`VmEvent` (one monitor notification of that VM, in order),
  :class:`MonitorUp` (the VM's monitor (re)started with a domain);
* from the monitors the queue gets ``xen.xenvm``'s ``VmNotification``, ``RegisterVm`` and
  ``UnregisterVm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xen.xenmgr._create import CreateRequest
from xen.xenmgr._templates import Template

__all__ = ["ConfigChanged", "CreateChild", "CreateVm", "Emit", "FlushConfigChanged",
           "MonitorUp", "RemoveVm", "ServiceUp", "SetSlot", "VmEvent"]


@dataclass(frozen=True, slots=True)
class CreateVm:
    """Plan and write one new VM (the creation actor alone allocates uuid, slot and name)."""

    request: CreateRequest


@dataclass(frozen=True, slots=True)
class CreateChild:
    """Plan and write a child service VM of ``parent`` from ``template`` (a ``child-<tag>``
    one), and the parent's subtree with the template's override."""

    template: Template
    parent: str
    create_disallowed: bool = False


@dataclass(frozen=True, slots=True)
class RemoveVm:
    """Delete VM ``uuid`` from the database and its own disk files (after its hooks ran).
    ``unrestricted``: skip the ``/vm-delete-disallowed`` policy."""

    uuid: str
    unrestricted: bool = False


@dataclass(frozen=True, slots=True)
class SetSlot:
    """Give VM ``uuid`` slot ``slot``; a VM holding it (slots >= 0) gets ``uuid``'s old slot.
    Answers the uuids whose slot changed."""

    uuid: str
    slot: int


@dataclass(frozen=True, slots=True)
class Emit:
    """A signal: ``member`` of ``interface`` at ``path`` with ``args``. ``uuid``: the VM it is
    about (signals of one VM keep their order), or None."""

    path: str
    interface: str
    member: str
    args: tuple[Any, ...] = ()
    uuid: str | None = None


@dataclass(frozen=True, slots=True)
class ConfigChanged:
    """VM ``uuid``'s stored settings changed (debounced into ``vm_config_changed``)."""

    uuid: str


@dataclass(frozen=True, slots=True)
class FlushConfigChanged:
    """The queue's own timer: send ``vm_config_changed`` of ``uuid`` if ``generation`` is the
    latest change."""

    uuid: str
    generation: int


@dataclass(frozen=True, slots=True)
class ServiceUp:
    """The bus service is on the bus: send the signals that waited for it."""


@dataclass(frozen=True, slots=True)
class VmEvent:
    """A monitor notification of the handler's VM (``vm:state:running``, ``error:crashed``)."""

    uuid: str
    text: str


@dataclass(frozen=True, slots=True)
class MonitorUp:
    """VM ``uuid``'s monitor (re)started and found the VM with a domain (its event handler
    checks that the monitor's config names the temporary disk snapshots the guest runs on)."""

    uuid: str
