"""What a VM monitor works with: the hypervisor, xenstore, the plan executor, the builder, the
host actions, and who hears its notifications.

The composition root builds one environment and hands it to every monitor through the
``vms`` supervisor's child template (``vms_spec(env=...)``: the template's start function
carries it, and each VM adds only its msgpack-able :class:`~xen.xenvm._messages.VmStart`), so
there is no registry to look it up in.

* :class:`TreeEnv` (the dom0 tree) resolves the hypervisor and xenstore handles that the tree's
  actors publish (``actors.service``: ``/xen/hypervisor``, ``/xen/xenstore``) at each use, so
  a monitor always talks through the current connections, also after those actors restarted;
  between a crash of one and its restart, a use raises ``actors.NoSuchActor`` or
  ``actors.ServiceUnavailable``.
* :class:`StaticEnv` holds fixed objects (tests, tools).

``builder`` builds, saves and restores domains (``xen.xenops.Builder``: ``SimBuilder`` on the
simulated host, ``XcBuilder`` on real Xen: PV guests through libxenguest). ``notify``
names the actors that hear from every monitor (``RegisterVm``, ``VmNotification``,
``UnregisterVm``; see :mod:`xen.xenvm._messages`): in the tree, the xenvm DBus service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from actors import service
from xen.hypervisor import Hypervisor
from xen.xenops import (
    DEFAULT_TIMEOUTS,
    Builder,
    HostActions,
    PlanExecutor,
    SimBuilder,
    SimHostActions,
    Timeouts,
)
from xen.xenstore import XenstoreClient
from xen.xenvm._messages import XENVM_BUS

__all__ = ["StaticEnv", "TreeEnv", "XenEnv"]


class XenEnv(Protocol):
    """What a monitor needs; the connections are resolved at each use."""

    @property
    def timeouts(self) -> Timeouts: ...

    @property
    def builder(self) -> Builder: ...

    @property
    def state_dir(self) -> Path: ...

    @property
    def notify(self) -> tuple[str, ...]: ...

    @property
    def host_actions(self) -> HostActions: ...

    def hypervisor(self) -> Hypervisor: ...

    def xenstore(self) -> XenstoreClient: ...

    def executor(self) -> PlanExecutor: ...


@dataclass(frozen=True, slots=True)
class StaticEnv:
    """An environment of fixed objects (tests, tools)."""

    hv: Hypervisor
    xs: XenstoreClient
    builder: Builder = field(default_factory=SimBuilder)
    timeouts: Timeouts = DEFAULT_TIMEOUTS
    state_dir: Path = Path("state")
    host: HostActions = field(default_factory=SimHostActions)
    notify: tuple[str, ...] = ()

    def hypervisor(self) -> Hypervisor:
        """The hypervisor backend."""
        return self.hv

    def xenstore(self) -> XenstoreClient:
        """The xenstore client."""
        return self.xs

    def executor(self) -> PlanExecutor:
        """An executor over both."""
        return PlanExecutor(self.hv, self.xs, self.host)

    @property
    def host_actions(self) -> HostActions:
        """Host-side actions (loop devices, processes)."""
        return self.host


@dataclass(frozen=True, slots=True)
class TreeEnv:
    """Resolves the tree's hypervisor and xenstore services at each use."""

    builder: Builder = field(default_factory=SimBuilder)
    timeouts: Timeouts = DEFAULT_TIMEOUTS
    state_dir: Path = Path("state")
    hypervisor_name: str = "/xen/hypervisor"
    xenstore_name: str = "/xen/xenstore"
    host: HostActions = field(default_factory=SimHostActions)
    notify: tuple[str, ...] = (XENVM_BUS,)

    def hypervisor(self) -> Hypervisor:
        """The backend the hypervisor actor publishes now."""
        return service(self.hypervisor_name, Hypervisor)

    def xenstore(self) -> XenstoreClient:
        """The client the xenstore actor publishes now."""
        return service(self.xenstore_name, XenstoreClient)

    def executor(self) -> PlanExecutor:
        """An executor over the current connections."""
        return PlanExecutor(self.hypervisor(), self.xenstore(), self.host)

    @property
    def host_actions(self) -> HostActions:
        """Host-side actions (loop devices, processes)."""
        return self.host
