"""A simulated Xen host plus the xen and vms supervisors, in process, for VM monitor tests."""

from __future__ import annotations

import threading
import uuid as uuidlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pykka

import actors
from supervision import EventLog, StartChild, Supervisor, SupFlags
from xen.hypervisor import Hypervisor
from xen.sim.hypervisor import HypervisorServer
from xen.sim.xenstored import XenstoredServer
from xen.tree import vms_spec, xen_spec
from xen.xenops import SimHostActions, Timeouts
from xen.xenstore import XenstoreClient
from xen.xenvm import TreeEnv, VmStart, vm_path, vm_task

FAST = Timeouts(hotplug=3.0, device_close=2.0, shutdown_ack=2.0, domain_gone=3.0,
                domain_gone_poll=0.05, free_memory=2.0, dm_agent_stop=2.0, stubdom_death=2.0)


def vm_config(name: str = "vm", memory: int = 64, **extra: str) -> str:
    """A small PV VM config without devices."""
    lines = [f"name = {name}", f"memory = {memory}", "vcpus = 1", "kernel = /boot/vmlinuz"]
    lines += [f"{k.replace('_', '-') if k not in ('on_poweroff', 'on_reboot', 'on_crash') else k}"
              f" = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


@dataclass
class XenTree:
    """The running pieces of a test host and tree."""

    state: Path
    xenstored: XenstoredServer
    hypervisor: HypervisorServer
    root: pykka.ActorRef[Supervisor]
    events: EventLog

    @property
    def hv(self) -> Any:
        return actors.service("/xen/hypervisor", Hypervisor)

    @property
    def xs(self) -> Any:
        return actors.service("/xen/xenstore", XenstoreClient)

    def add_vm(self, config: str, uuid: str | None = None) -> str:
        vm = uuid or str(uuidlib.uuid4())
        actors.ask("/vms", StartChild(vm, (VmStart(vm, config),)), timeout=30)
        return vm

    def task(self, vm: str, name: str, *, wait: float = 30.0, **params: str) -> str:
        return vm_task(vm, name, params, timeout=wait)

    def stop_tree(self) -> None:
        if self.root.is_alive():
            self.root.stop(block=True, timeout=30)


@contextmanager
def xen_tree(state: Path, *, memory_mib: int = 4096, start_tree: bool = True,
             **vms: Any) -> Iterator[XenTree]:
    """A simulated host (xenstored + hypervisor, no guests) and the xen/vms supervisors."""
    (state / "xs").mkdir(parents=True, exist_ok=True)
    (state / "hv").mkdir(parents=True, exist_ok=True)
    xenstored = XenstoredServer(str(state / "xs" / "socket"), seed_dom0=True)
    xenstored.start()
    hypervisor = HypervisorServer(str(state / "hv" / "socket"), memory_mib=memory_mib)
    hypervisor.start()
    sub = hypervisor.subscribe(lambda ev: _forward(xenstored, ev))
    events = EventLog()
    root = start(state, events, **vms) if start_tree else None
    tree = XenTree(state, xenstored, hypervisor, root, events)  # type: ignore[arg-type]
    try:
        yield tree
    finally:
        if tree.root is not None:
            tree.stop_tree()
        sub.cancel()
        hypervisor.close()
        xenstored.close()


@contextmanager
def sim_tree(state: Path, *, memory_mib: int = 4096, behaviour: dict[str, Any] | None = None,
             **vms: Any) -> Iterator[tuple[XenTree, Any]]:
    """A full simulated host (guests and backends too) and the xen/vms supervisors."""
    from xen.sim import SimHost

    host = SimHost(state / "host", memory_mib=memory_mib, with_dbus=False,
                   behaviour=behaviour or {})
    host.start()
    env = TreeEnv(timeouts=FAST, state_dir=state,
                  host=SimHostActions(xenstore_path=host.xenstore_path))
    events = EventLog()
    try:
        root = Supervisor.start_root(
            SupFlags(intensity=10, period=10),
            [xen_spec(backend="sim", hypervisor_socket=str(host.hypervisor_path),
                      xenstore_socket=str(host.xenstore_path)),
             vms_spec(env=env, **vms)],
            events=events, snapshot_dir=state / "snapshots")
        tree = XenTree(state, None, host.hypervisor, root, events)  # type: ignore[arg-type]
        try:
            yield tree, host
        finally:
            tree.stop_tree()
    finally:
        host.close()


def start(state: Path, events: EventLog, **vms: Any) -> pykka.ActorRef[Supervisor]:
    """Start the xen and vms supervisors over the sim host's sockets (``vms``: vms_spec args;
    the monitors' environment defaults to a TreeEnv with short timeouts)."""
    env = vms.pop("env", None) or TreeEnv(timeouts=FAST, state_dir=state)
    return Supervisor.start_root(
        SupFlags(intensity=10, period=10),
        [xen_spec(backend="sim", hypervisor_socket=str(state / "hv" / "socket"),
                  xenstore_socket=str(state / "xs" / "socket")),
         vms_spec(env=env, **vms)],
        events=events, snapshot_dir=state / "snapshots")


def _forward(xenstored: XenstoredServer, event: Any) -> None:
    """What real Xen does: a domain that shuts down, dies or goes fires @releaseDomain."""
    if getattr(event, "dom_exc", False):
        xenstored.fire_special_watch("@releaseDomain")


def hang_until_killed() -> NoReturn:
    """Block the calling (actor) thread until a kill interrupts it, as a crash point does."""
    while True:
        threading.Event().wait(0.01)


def first_call_hangs(original: Callable[..., Any], *, after: bool = False
                     ) -> tuple[Callable[..., Any], threading.Event, list[tuple[Any, ...]]]:
    """``original`` (a method) wrapped so that its first call blocks until a kill, before the
    call, or after it with ``after``; later calls go through. Returns the wrapper, an event set
    when the first call blocks, and that call's arguments (once it came)."""
    reached, first = threading.Event(), []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if first:
            return original(*args, **kwargs)
        first.append(args)
        if after:
            original(*args, **kwargs)
        reached.set()
        hang_until_killed()

    return wrapper, reached, first


def kill_monitor(tree: XenTree, vm: str, since: int) -> None:
    """Kill VM ``vm``'s monitor and wait for its supervisor to start the next one."""
    actors.actor_of(actors.resolve(vm_path(vm))).kill()
    assert tree.events.wait_for(lambda e: e.kind == "restarted" and e.path == vm_path(vm),
                                10, since=since)
