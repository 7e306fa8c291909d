"""What a VM monitor works with: the hypervisor, xenstore, the plan executor and the builder.

Monitors are started with only msgpack-able arguments (their start arguments are persisted for
resume mode), so they find their environment by name in a small registry: :func:`register_env`
and :func:`get_env`. The dom0 supervisor registers a :class:`TreeEnv` under ``"default"``: it
resolves the hypervisor and xenstore actors of the tree (``/xen/hypervisor``,
``/xen/xenstore``) at each use, so a monitor always talks through the current connections even
after those actors were restarted. Tests register a :class:`StaticEnv` with objects they own.

The **builder** turns a created domain into a bootable one (kernel, memory, store and console
rings). On the simulated host the domain's memory is allocated at create time and
:class:`SimBuilder` only hands out ring numbers; on real Xen this needs libxenguest, which the
``xc`` backend does not bind yet: :class:`UnsupportedBuilder` says so clearly (VMs started by
``xl`` can still be adopted and managed).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from actors import service
from xen.hypervisor import Hypervisor, Unsupported
from xen.xenops import (
    DEFAULT_TIMEOUTS,
    BuildResult,
    HostActions,
    PlanExecutor,
    SimHostActions,
    Timeouts,
)
from xen.xenstore import XenstoreClient

if TYPE_CHECKING:
    from xen.xenops import BuildMemory
    from xen.xenvm._config import VmConfig

__all__ = ["Builder", "SimBuilder", "StaticEnv", "TreeEnv", "UnsupportedBuilder", "XenEnv",
           "get_env", "register_env", "unregister_env"]


class Builder(Protocol):
    """Builds a created domain (see the module docstring)."""

    def build(self, domid: int, cfg: VmConfig, memory: BuildMemory) -> BuildResult: ...


class SimBuilder:
    """The simulated host's builder: rings get stable numbers derived from the domid."""

    def build(self, domid: int, cfg: VmConfig, memory: BuildMemory) -> BuildResult:
        """Hand out the store and console rings of ``domid``."""
        base = 0x10000 + domid * 16
        return BuildResult(store_mfn=base + 1, store_port=1, console_mfn=base + 2,
                           console_port=2)


class UnsupportedBuilder:
    """Real Xen: building needs libxenguest, not bound yet."""

    def build(self, domid: int, cfg: VmConfig, memory: BuildMemory) -> BuildResult:
        """Refuse clearly."""
        raise Unsupported("not implemented: building a domain on the xc backend needs "
                          "libxenguest; start the VM with xl and let the monitor adopt it")


class XenEnv(Protocol):
    """What a monitor needs; resolved at each use."""

    @property
    def timeouts(self) -> Timeouts: ...

    @property
    def builder(self) -> Builder: ...

    @property
    def state_dir(self) -> Path: ...

    def hypervisor(self) -> Hypervisor: ...

    def xenstore(self) -> XenstoreClient: ...

    def executor(self) -> PlanExecutor: ...

    @property
    def host_actions(self) -> HostActions: ...


@dataclass(frozen=True, slots=True)
class StaticEnv:
    """An environment of fixed objects (tests, tools)."""

    hv: Hypervisor
    xs: XenstoreClient
    builder: Builder = field(default_factory=SimBuilder)
    timeouts: Timeouts = DEFAULT_TIMEOUTS
    state_dir: Path = Path("state")
    host: HostActions = field(default_factory=SimHostActions)

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
    """Resolves the tree's hypervisor and xenstore actors at each use."""

    builder: Builder = field(default_factory=SimBuilder)
    timeouts: Timeouts = DEFAULT_TIMEOUTS
    state_dir: Path = Path("state")
    hypervisor_name: str = "/xen/hypervisor"
    xenstore_name: str = "/xen/xenstore"
    host: HostActions = field(default_factory=SimHostActions)

    def hypervisor(self) -> Hypervisor:
        """The current backend of the hypervisor actor."""
        return service(self.hypervisor_name, Hypervisor)

    def xenstore(self) -> XenstoreClient:
        """The current client of the xenstore actor."""
        return service(self.xenstore_name, XenstoreClient)

    def executor(self) -> PlanExecutor:
        """An executor over the current connections."""
        return PlanExecutor(self.hypervisor(), self.xenstore(), self.host)

    @property
    def host_actions(self) -> HostActions:
        """Host-side actions (loop devices, processes)."""
        return self.host


_lock = threading.Lock()
_envs: dict[str, XenEnv] = {}


def register_env(name: str, env: XenEnv) -> None:
    """Make ``env`` available to monitors started with ``env=name``."""
    with _lock:
        _envs[name] = env


def unregister_env(name: str) -> None:
    """Forget an environment."""
    with _lock:
        _envs.pop(name, None)


def get_env(name: str) -> XenEnv:
    """The environment registered as ``name``; KeyError naming it if none."""
    with _lock:
        env = _envs.get(name)
    if env is None:
        raise KeyError(f"no Xen environment registered as {name!r}")
    return env
