"""A recording backend for VM machine tests: a small fake hypervisor and xenstore that keep
domains and nodes in dicts and record every call that changes something (no simulated host,
no sockets, no threads)."""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path
from typing import Any

from xen.hypervisor import (
    SHUTDOWN_CODE_NONE,
    DomainInfo,
    NoSuchDomain,
    ShutdownReason,
    UnimplementedHypervisor,
)
from xen.xenops import Timeouts
from xen.xenvm import StaticEnv, VmConfig, parse_config

FAST = Timeouts(hotplug=0.5, device_close=0.5, shutdown_ack=0.5, domain_gone=0.5,
                domain_gone_poll=0.01, free_memory=0.5)
UUID = "00000000-0000-4000-8000-00000000abcd"


class RecordingHypervisor(UnimplementedHypervisor):
    """Domains in a dict; ``calls`` lists (operation, domid) of every change asked for."""

    name = "recording"

    def __init__(self) -> None:
        self.domains: dict[int, DomainInfo] = {}
        self.calls: list[tuple[str, int]] = []

    def add(self, domid: int, uuid: str = UUID, *, reason: ShutdownReason | None = None,
            paused: bool = False) -> None:
        """A domain: running, or shut down for ``reason``."""
        self.domains[domid] = DomainInfo(
            domid=domid, handle=uuidlib.UUID(uuid), paused=paused, running=reason is None,
            shutdown=reason is not None,
            shutdown_code=SHUTDOWN_CODE_NONE if reason is None else int(reason))

    def getinfo(self, domid: int) -> DomainInfo:
        try:
            return self.domains[domid]
        except KeyError:
            raise NoSuchDomain(f"no domain {domid}") from None

    def find_by_handle(self, handle: uuidlib.UUID) -> list[DomainInfo]:
        return [i for _d, i in sorted(self.domains.items()) if i.handle == handle]

    def destroy(self, domid: int) -> None:
        self.calls.append(("destroy", domid))
        if self.domains.pop(domid, None) is None:
            raise NoSuchDomain(f"no domain {domid}")

    def pause(self, domid: int) -> None:
        self.calls.append(("pause", domid))

    def unpause(self, domid: int) -> None:
        self.calls.append(("unpause", domid))

    def shutdown(self, domid: int, reason: ShutdownReason) -> None:
        self.calls.append(("shutdown", domid))

    @property
    def destroyed(self) -> list[int]:
        return [d for op, d in self.calls if op == "destroy"]


class RecordingXenstore:
    """Nodes in a dict; ``calls`` lists (operation, path) of every change."""

    def __init__(self) -> None:
        self.nodes: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []

    def try_read(self, path: str) -> str | None:
        return self.nodes.get(path)

    def exists(self, path: str) -> bool:
        return path in self.nodes or any(p.startswith(path + "/") for p in self.nodes)

    def directory(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return sorted({p[len(prefix):].split("/")[0] for p in self.nodes if p.startswith(prefix)})

    def write(self, path: str, value: str | bytes) -> None:
        self.calls.append(("write", path))
        self.nodes[path] = value.decode() if isinstance(value, bytes) else value

    def mkdir(self, path: str) -> None:
        self.calls.append(("mkdir", path))
        self.nodes.setdefault(path, "")

    def rm(self, path: str) -> None:
        self.calls.append(("rm", path))
        for p in [p for p in self.nodes if p == path or p.startswith(path + "/")]:
            del self.nodes[p]


def config(**extra: str) -> VmConfig:
    """A small PV config."""
    text = "name = rec\nmemory = 64\nvcpus = 1\nkernel = /boot/vmlinuz\n"
    return parse_config(text + "".join(f"{k} = {v}\n" for k, v in extra.items()))


def env(hv: RecordingHypervisor, xs: RecordingXenstore, **kw: Any) -> StaticEnv:
    """A static environment over the recording backend (short timeouts)."""
    return StaticEnv(hv, xs, timeouts=FAST, state_dir=Path("/nonexistent"), **kw)
