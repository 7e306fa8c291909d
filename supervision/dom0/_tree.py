"""The dom0 supervision tree: what the configuration turns into, and how it runs.

The tree (children in start order; each can be disabled in the configuration)::

    /  (one_for_one)
    ├── bus          the private dbus-daemon (bus = "private" only)
    ├── identity     caller identity on the bus (org.openxt.toolstack.identity)
    ├── persistence  dbd: store, flusher, service (rest_for_one)
    ├── xen          hypervisor, xenstore, watcher (rest_for_one)
    ├── vms          one VM monitor per VM (simple_one_for_one, resume)
    ├── xenvm-bus    the monitors on DBus (org.xen.vm.uuid_*)
    ├── manager      xenmgr: com.citrix.xenclient.xenmgr (docs/xenmgr.md)
    ├── proxies      one rpc-proxy instance per [[proxy]] entry (docs/rpc-proxy.md)
    └── control      the control socket for oxt-shell

Services on the bus crash when the bus goes away and come back (with backoff) when it is
back, so the root can be ``one_for_one``. Each ``[[proxy]]`` entry is an rpc-proxy instance
(``proxies/proxy<n>``: policy, clients, listener) forwarding to the tree's bus and registering
its clients' identities in the registry dbd and the identity service share. The root's
escalation ends the process with status 1 (a service manager restarts it; the next start
resumes every VM monitor from its snapshot and adopts its domain).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import TYPE_CHECKING, Any

from supervision import Backoff, ChildSpec, ProcessLedger, SupFlags, start_actor
from supervision.control import ControlActor, OpContext, Operation, OpError
from supervision.dom0._config import Dom0Config

if TYPE_CHECKING:
    from xen.xenvm import TreeEnv

__all__ = [
    "build_specs",
    "bus_address",
    "make_env",
    "manager_spec",
    "sim_sockets",
    "vm_operations",
]

logger = logging.getLogger("oxt-supervisor")

#: How long a worker whose ``on_start`` connects to the bus may take (OTP's 5 s default for a
#: worker was overrun by the identity service's connect, authenticate and Hello on an emulated
#: dom0 at load 8-9, failing the whole tree's start).
BUS_WORKER_START_TIMEOUT = 30.0


def bus_address(cfg: Dom0Config) -> str:
    """The address the tree's services use."""
    if cfg.bus == "private":
        return f"unix:path={(cfg.state_dir / 'dbus' / 'system_bus_socket').resolve()}"
    from rpc.dbus import SYSTEM_BUS, resolve_address
    if cfg.bus == "system":
        return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS
    return resolve_address(cfg.bus)


def sim_sockets(cfg: Dom0Config) -> tuple[str | None, str | None]:
    """(xenstore socket, hypervisor socket) for the configured backend."""
    if cfg.backend == "sim":
        sim = cfg.under_state(cfg.sim_state_dir).resolve()
        return (cfg.xenstore_socket or str(sim / "xenstored" / "socket"),
                cfg.hypervisor_socket or str(sim / "hypervisor" / "socket"))
    return (cfg.xenstore_socket or os.environ.get("XENSTORED_PATH"), None)


def make_env(cfg: Dom0Config) -> TreeEnv:
    """The Xen environment VM monitors use (sim builder and host actions, or dom0's); their
    notifications go to the xenvm bus service and, with xenmgr, to its notification queue."""
    from xen.xenops import DEFAULT_TIMEOUTS, Dom0HostActions, SimBuilder, SimHostActions, XcBuilder
    from xen.xenvm import XENVM_BUS, TreeEnv
    timeouts = dataclasses.replace(DEFAULT_TIMEOUTS, hotplug=cfg.vms_hotplug_timeout)
    ledger = ProcessLedger.of_state(cfg.state_dir)  # device models are recorded there
    notify = (XENVM_BUS, *(("/manager/queue",) if cfg.xenmgr and cfg.persistence else ()))
    if cfg.backend == "sim":
        xs, hv = sim_sockets(cfg)
        return TreeEnv(builder=SimBuilder(),
                       host=SimHostActions(xenstore_path=xs, ledger=ledger, hypervisor_path=hv),
                       state_dir=cfg.state_dir, notify=notify, timeouts=timeouts)
    return TreeEnv(builder=XcBuilder(), host=Dom0HostActions(ledger=ledger),
                   state_dir=cfg.state_dir, notify=notify, timeouts=timeouts)


def manager_spec(cfg: Dom0Config, address: str) -> ChildSpec:
    """xenmgr's branch (``/manager``): after dbd and the VM monitors, on the same bus."""
    from xen.xenmgr import ManagerSettings, manager_supervisor_spec
    settings = ManagerSettings(
        address=address, storage_dir=str(cfg.under_state(cfg.xenmgr_storage).resolve()),
        admin_templates=str(cfg.under_state(cfg.xenmgr_templates).resolve()),
        workers=cfg.xenmgr_workers, hook_timeout=cfg.xenmgr_hook_timeout,
        autostart=cfg.xenmgr_autostart, branch="/manager", vms="/vms",
        argo_table="sim" if cfg.backend == "sim" else "viptables",
        host_power="sim" if cfg.backend == "sim" else "dom0",
        vm_shutdown_timeout=cfg.xenmgr_shutdown_timeout,
        diag_dir=str((cfg.state_dir / "diag").resolve()),
        storage_low_percent=cfg.xenmgr_storage_low_percent,
        storage_check=cfg.xenmgr_storage_check,
        idle_shutdown_cap=cfg.xenmgr_idle_shutdown_cap,
        pci_inventory="sim" if cfg.backend == "sim" else "dom0")
    return manager_supervisor_spec(settings)


def build_specs(cfg: Dom0Config) -> list[ChildSpec]:
    """The root's children for ``cfg`` (see the module docstring)."""
    from persistence import db_supervisor_spec
    from rpc.dbus import BusDaemon, IdentityService
    from xen.tree import vms_spec, xen_spec
    from xen.xenvm import XenvmBus

    address = bus_address(cfg)
    specs: list[ChildSpec] = []
    if cfg.bus == "private":
        specs.append(ChildSpec("bus", start_actor(BusDaemon, str(cfg.state_dir.resolve()))))
    if cfg.identity:
        specs.append(ChildSpec("identity", start_actor(IdentityService, address),
                               start_timeout=BUS_WORKER_START_TIMEOUT))
    if cfg.persistence:
        specs.append(db_supervisor_spec(str(cfg.under_state(cfg.db_root)), address,
                                        cfg.flush_interval))
    if cfg.xen:
        xs, hv = sim_sockets(cfg)
        specs.append(xen_spec(backend=cfg.backend, hypervisor_socket=hv, xenstore_socket=xs))
    if cfg.vms:
        specs.append(vms_spec(env=make_env(cfg), intensity=cfg.vms_intensity,
                              period=cfg.vms_period))
    if cfg.xenvm_bus and cfg.vms:
        specs.append(ChildSpec("xenvm-bus", start_actor(XenvmBus, address),
                               start_timeout=BUS_WORKER_START_TIMEOUT))
    if cfg.xenmgr and cfg.persistence and cfg.vms:
        specs.append(manager_spec(cfg, address))
    if cfg.proxies:
        specs.append(_proxies_spec(cfg, address))
    specs.append(ChildSpec("control", start_actor(
        ControlActor, str(cfg.under_state(cfg.control_socket)), vm_operations())))
    return specs


def _proxies_spec(cfg: Dom0Config, address: str) -> ChildSpec:
    """The ``proxies`` branch: one rpc-proxy instance per ``[[proxy]]`` entry, with the domain
    directory on the tree's xenstore client and, on the simulated host, its Argo stand-in."""
    from actors import service
    from supervision.dom0._proxies import proxy_specs
    from xen.xenstore import XenstoreClient

    def xenstore() -> XenstoreClient:
        return service("/xen/xenstore", XenstoreClient)

    argo_dir = (str(cfg.under_state(cfg.sim_state_dir).resolve() / "argo")
                if cfg.backend == "sim" else None)
    return proxy_specs([p.argv for p in cfg.proxies], address,
                       xenstore=xenstore if cfg.xen else None, argo_dir=argo_dir)


def root_flags(cfg: Dom0Config) -> SupFlags:
    """The root supervisor's flags (with a backoff: a failing restart retries gently)."""
    return SupFlags(intensity=cfg.intensity, period=cfg.period, backoff=Backoff(0.1, 5.0))


# ------------------------------------------------------------------ vm.* control operations

def _op_vm_add(ctx: OpContext, args: dict[str, Any]) -> Any:
    from actors import ask
    from supervision import StartChild, SupervisorError
    from xen.xenvm import VmStart
    vm, config = args["uuid"], args["config"]
    if not isinstance(vm, str) or not isinstance(config, str):
        raise OpError("vm.add takes uuid and config (the config file text)", "bad-request")
    try:
        info = ask("/vms", StartChild(vm, (VmStart(vm, config),)), timeout=30)
    except SupervisorError as exc:
        raise OpError(str(exc), "refused") from None
    return info.to_dict()


def _op_vm_task(ctx: OpContext, args: dict[str, Any]) -> Any:
    from actors import NoSuchActor
    from xen.xenvm import TaskError, vm_task
    params = args.get("params", {})
    timeout = args.get("timeout", 120.0)
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise OpError("vm.task params must be a map of strings", "bad-request")
    try:
        return vm_task(str(args["uuid"]), str(args["task"]), params, timeout=float(timeout))
    except TaskError as exc:
        raise OpError(str(exc), "refused") from None
    except NoSuchActor:
        raise OpError(f"no VM monitor for {args['uuid']}", "not-found") from None
    except TimeoutError:
        raise OpError(f"{args['task']} did not finish within {timeout} s", "timeout") from None


def vm_operations() -> dict[str, Operation]:
    """The ``vm.*`` operations of the control socket."""
    return {"vm.add": _op_vm_add, "vm.task": _op_vm_task}
