"""The simulated Xen host: xenstored, the hypervisor, PV backends, guests and (optionally) the
private dbus-daemon, wired together as on a real dom0, all state under one directory.

`SimHost(state_dir)` owns, under ``state_dir``:

- ``xenstored/socket``: a `XenstoredServer` (per-domain sockets ``socket.dom<domid>``), seeded
  as ``xen-init-dom0`` leaves a real host: ``/local/domain/0/{domid,name,vm}`` (Domain-0) and
  ``/vm/<dom0 uuid>/{uuid,name}``, plus the sim-only control area ``/sim`` (see `_control`);
- ``hypervisor/socket``: a `HypervisorServer` (``xen.hypervisor.SimBackend`` talks to it);
- ``dbus/`` with ``with_dbus``: a private ``dbus-daemon``, its address in ``dbus/address``;
- ``argo/``: the Argo stand-in (`ArgoStandIn`): guests connect to ``argo/socket`` as their
  domain, listeners bind ``argo/listen/<domid>.<port>`` and get each stream with its peer's
  domid, as the Argo kernel gives it (``rpc.proxy``'s ``argo:`` channel with ``argo_dir``);
- ``simhost.json``: the pid, socket paths and bus address, written last, once everything
  accepts connections (its presence means "ready"), removed by `close`.

Wiring, as real Xen and xenstored: the toolstack INTRODUCEs domains itself (nothing here does),
which fires ``@introduceDomain``; a domain that shuts down, crashes or starts dying raises
VIRQ_DOM_EXC, so xenstored fires ``@releaseDomain``; a domain that is gone is released (its
xenstore connection closed, ``@releaseDomain`` fired) if it was introduced, else only the watch
fires. Each domain gets a `SimGuest` when first unpaused; pausing and unpausing pause it; it
stops when its domain shuts down, dies or goes. `SimBackends` serves dom0's backends and a
running domain's netback (a network VM); a `DmAgentThread` answers dom0's dm-agent protocol (a
stub domain's guest runs its own agent; `xen.sim._dmagent`). The PCI bus (``pci_devices``)
is the hypervisor model's; ``/sim/pci`` mirrors it; behaviours (crash, hang, stop states,
backend failures...) are read from ``/sim/behaviour`` (`_control`).

Guarantees and failure behaviour: `start` brings everything up or, on any failure, closes what
it started and raises. `close` (idempotent) stops the backends, the guests, the servers and the
bus in that order, joining every thread it started, each wait bounded by ``timeout``; it raises
TimeoutError naming what did not stop, after stopping everything else. A hypervisor event whose
xenstore side fails is logged and does not stop the host.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from xen.hypervisor import NoSuchDomain
from xen.sim._argo import ArgoStandIn
from xen.sim._backends import SimBackends
from xen.sim._control import (
    BEHAVIOUR_ROOT,
    STATUS_ROOT,
    Behaviour,
    behaviour_dirs,
    resolve_behaviour,
    seed_entries,
    status_path,
)
from xen.sim._dmagent import DmAgentThread
from xen.sim._guests import SimGuest
from xen.sim._pcimirror import write_pci_mirror
from xen.sim.hypervisor import (
    DEFAULT_PCI_DEVICES,
    DomainDying,
    DomainGone,
    DomainPaused,
    DomainShutdown,
    DomainUnpaused,
    HypervisorEvent,
    HypervisorServer,
    PciChanged,
    SimHypervisor,
    SimPciDevice,
    Subscription,
)
from xen.sim.xenstored import XenstoredServer
from xen.xenstore import (
    NoSuchNode,
    XenstoreClient,
    XenstoreConnectionError,
    XenstoreError,
    XenstoreTimeout,
)

if TYPE_CHECKING:
    from types import TracebackType

    from xen.xenstore import Transaction, WatchFired

__all__ = ["DOM0_UUID", "SimHost"]

log = logging.getLogger(__name__)

DOM0_UUID = "00000000-0000-0000-0000-000000000000"
_XS_ERRORS = (XenstoreError, XenstoreConnectionError, XenstoreTimeout, RuntimeError, TimeoutError)


class SimHost:
    """The simulated Xen host; see the module docstring."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        memory_mib: int = 8192,
        dom0_mib: int | None = None,
        cpus: int = 4,
        with_dbus: bool = False,
        behaviour: Mapping[str, object] | None = None,
        timeout: float = 5.0,
        pci_devices: Iterable[SimPciDevice] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.memory_mib = memory_mib
        self._seed = seed_entries(behaviour or {})  # BehaviourError now, not half-way up
        self._model = SimHypervisor(memory_mib * 1024,
                                    dom0_kib=None if dom0_mib is None else dom0_mib * 1024,
                                    nr_cpus=cpus,
                                    pci_devices=DEFAULT_PCI_DEVICES if pci_devices is None
                                    else pci_devices)
        self._with_dbus = with_dbus
        self._timeout = timeout
        self.xenstored = XenstoredServer(self.state_dir / "xenstored" / "socket", seed_dom0=True)
        self.hypervisor = HypervisorServer(self.state_dir / "hypervisor" / "socket", self._model)
        self.argo = ArgoStandIn(self.state_dir / "argo", self._domain_exists)
        self._client: XenstoreClient | None = None
        self._backends: SimBackends | None = None
        self._dm_agent: DmAgentThread | None = None
        self._subscription: Subscription | None = None
        self._bus: subprocess.Popen[bytes] | None = None
        self.dbus_address: str | None = None
        self._lock = threading.Lock()           # guests, retired, closing
        self._status_lock = threading.Lock()    # status writes vs. their removal
        self._guests: dict[int, SimGuest] = {}
        self._retired: list[SimGuest] = []
        self._reported_errors: set[str] = set()
        self._started = False
        self._closing = False
        self._wrote_info = False

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def xenstore_path(self) -> str:
        return self.xenstored.socket_path

    @property
    def hypervisor_path(self) -> str:
        return self.hypervisor.socket_path

    @property
    def argo_dir(self) -> str:
        """The Argo stand-in's directory (``argo:`` channels on this host)."""
        return str(self.argo.directory)

    def _domain_exists(self, domid: int) -> bool:
        return domid == 0 or self.hypervisor.inspect(lambda model: domid in model.domids())

    @property
    def info_path(self) -> Path:
        return self.state_dir / "simhost.json"

    @property
    def xenstore(self) -> XenstoreClient:
        """The host's own dom0 xenstore client (thread-safe; tests may use it)."""
        if self._client is None:
            raise RuntimeError("the simulated host is not started")
        return self._client

    def start(self) -> SimHost:
        """Bring everything up; on failure close what was started and re-raise."""
        if self._started:
            raise RuntimeError("a SimHost can be started once")
        self._started = True
        try:
            self._start()
        except BaseException:
            with contextlib.suppress(Exception):
                self.close()
            raise
        log.info("simulated host up in %s", self.state_dir)
        return self

    def _start(self) -> None:
        for sub in ("xenstored", "hypervisor"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self.xenstored.start()
        self.hypervisor.start()
        self._subscription = self.hypervisor.subscribe(self._on_event)
        client = XenstoreClient(self.xenstore_path, timeout=self._timeout, name="simhost-xs")
        self._client = client.connect()
        self._seed_xenstore(client)
        client.watch("@introduceDomain", "sim-introduce", self._on_introduce)
        client.watch(BEHAVIOUR_ROOT, "sim-behaviour", self._on_behaviour)
        self._backends = SimBackends(client, self.hypervisor, self.behaviour).start()
        write_pci_mirror(client, self.pci_state())
        self._dm_agent = DmAgentThread(client).start()
        self.argo.start()
        if self._with_dbus:
            self._start_bus()
        self._write_info()

    def _seed_xenstore(self, client: XenstoreClient) -> None:
        dom0_vm = f"/vm/{DOM0_UUID}"
        entries = [("/local/domain/0/vm", dom0_vm), (f"{dom0_vm}/uuid", DOM0_UUID),
                   (f"{dom0_vm}/name", "Domain-0"), *self._seed]

        def seed(t: Transaction) -> None:
            for path, value in entries:
                t.write(path, value)
            t.mkdir(BEHAVIOUR_ROOT)
            t.mkdir(STATUS_ROOT)

        client.transaction(seed)

    def _start_bus(self) -> None:
        from rpc.dbus import start_bus  # only with the bus: keeps the actor runtime optional

        directory = self.state_dir / "dbus"
        _reap_stale_bus(self.info_path, directory / "bus.conf")
        self._bus, self.dbus_address = start_bus(directory)
        tmp = directory / "address.tmp"
        tmp.write_text(self.dbus_address + "\n")
        os.replace(tmp, directory / "address")

    def _write_info(self) -> None:
        info = {
            "pid": os.getpid(), "state_dir": str(self.state_dir),
            "xenstored_socket": self.xenstore_path, "hypervisor_socket": self.hypervisor_path,
            "argo_dir": self.argo_dir, "dbus_address": self.dbus_address,
            "dbus_pid": self._bus.pid if self._bus is not None else None,
            "behaviour_root": BEHAVIOUR_ROOT, "status_root": STATUS_ROOT,
            "memory_mib": self.memory_mib,
        }
        tmp = self.info_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(tmp, self.info_path)
        self._wrote_info = True

    def close(self, timeout: float = 5.0) -> None:
        """Stop everything, joining every thread (each wait bounded by ``timeout``)."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            guests = [*self._guests.values(), *self._retired]
            self._guests.clear()
            self._retired.clear()
        stuck: list[str] = []
        if self._wrote_info:  # never another host's (a second host failing to start)
            with contextlib.suppress(FileNotFoundError):
                self.info_path.unlink()
        if self._subscription is not None:
            self._subscription.cancel()
        backends = self._backends
        if backends is not None:
            self._collect(stuck, "sim-backends", lambda: backends.close(timeout))
        agent = self._dm_agent
        if agent is not None:
            self._collect(stuck, "sim-dm-agent", lambda: agent.close(timeout))
        for guest in guests:
            guest.stop()
        stuck += [f"sim-guest-{g.domid}" for g in guests if not g.join(timeout)]
        if self._client is not None:
            client = self._client
            self._collect(stuck, "simhost-xs", lambda: client.close(timeout))
        self._collect(stuck, "sim-argo", lambda: self.argo.close(timeout))
        self._collect(stuck, "hypervisor", lambda: self.hypervisor.close(timeout))
        self._collect(stuck, "xenstored", lambda: self.xenstored.close(timeout))
        self._stop_bus(timeout)
        if stuck:
            raise TimeoutError(f"the simulated host could not stop: {', '.join(stuck)}")
        log.info("simulated host in %s stopped", self.state_dir)

    @staticmethod
    def _collect(stuck: list[str], what: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except TimeoutError as exc:
            log.error("%s did not stop: %s", what, exc)
            stuck.append(what)
        except Exception:
            log.exception("stopping %s failed", what)

    def _stop_bus(self, timeout: float) -> None:
        proc, self._bus = self._bus, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc.stderr is not None:
            proc.stderr.close()
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / "dbus" / "address").unlink()

    def __enter__(self) -> SimHost:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- behaviours and status -----------------------------------------------------------------

    def behaviour(self, domid: int) -> Behaviour:
        """The behaviour that applies to ``domid`` now (read from the control area)."""
        client = self.xenstore
        name = client.try_read(f"/local/domain/{domid}/name")
        try:
            handle = self.hypervisor.inspect(lambda m: m.getinfo(domid)).uuid
            uuid: str | None = str(handle) if handle.int else None
        except NoSuchDomain:
            uuid = None
        layers: list[dict[str, str]] = []
        for directory in behaviour_dirs(domid, name, uuid):
            try:
                keys = client.directory(directory)
            except NoSuchNode:
                continue
            layer = {k: client.try_read(f"{directory}/{k}") for k in keys}
            layers.append({k: v for k, v in layer.items() if v is not None})
        behaviour, errors = resolve_behaviour(layers)
        for error in errors:
            if str(error) not in self._reported_errors:
                self._reported_errors.add(str(error))
                log.warning("behaviour of domain %d: %s (key ignored)", domid, error)
        return behaviour

    def set_behaviour(self, key: str, value: str | float | bool, *, domid: int | None = None,
                      name: str | None = None, uuid: str | None = None) -> None:
        """Write one behaviour key (default scope unless domid, name or uuid is given)."""
        self.xenstore.write(f"{self._scope(domid, name, uuid)}/{key}",
                            ("1" if value else "0") if isinstance(value, bool) else str(value))

    def clear_behaviour(self, key: str | None = None, *, domid: int | None = None,
                        name: str | None = None, uuid: str | None = None) -> None:
        """Remove one key, or a whole scope."""
        scope = self._scope(domid, name, uuid)
        self.xenstore.rm(scope if key is None else f"{scope}/{key}")

    @staticmethod
    def _scope(domid: int | None, name: str | None, uuid: str | None) -> str:
        if domid is not None:
            return f"{BEHAVIOUR_ROOT}/domain/{domid}"
        if uuid is not None:
            return f"{BEHAVIOUR_ROOT}/uuid/{uuid}"
        if name is not None:
            return f"{BEHAVIOUR_ROOT}/name/{name}"
        return f"{BEHAVIOUR_ROOT}/default"

    def pci_state(self) -> dict[str, object]:
        """The PCI bus (drivers, pciback slots, resets, assignments, grants; `SimPciBus`)."""
        return self.hypervisor.inspect(lambda m: m.pci.state())

    def guest_status(self, domid: int) -> str | None:
        """The status of the guest of ``domid`` (None: it has none, or it stopped)."""
        with self._lock:
            guest = self._guests.get(domid)
        return None if guest is None or guest.stopping else guest.status or "starting"

    def guests(self) -> list[int]:
        """Domains with a live simulated guest."""
        with self._lock:
            return sorted(d for d, g in self._guests.items() if not g.stopping)

    def backends_connected(self, domid: int | None = None) -> list[tuple[str, int, int]]:
        """(kind, frontend domid, devid) of every connected backend (in domain ``domid``)."""
        b = self._backends
        return [] if b is None else b.connected() if domid is None else b.connected_in(domid)

    def _report(self, domid: int, status: str) -> None:
        with self._status_lock:
            with self._lock:
                guest = self._guests.get(domid)
                if self._closing or guest is None or guest.stopping:
                    return
            try:
                self.xenstore.write(status_path(domid), status)
            except _XS_ERRORS as exc:
                log.info("status of guest %d not written: %s", domid, exc)

    # --- events --------------------------------------------------------------------------------

    def _on_introduce(self, event: WatchFired) -> None:
        with self._lock:
            guests = list(self._guests.values())
        for guest in guests:
            guest.nudge()

    def _on_behaviour(self, event: WatchFired) -> None:
        with self._lock:
            guests = list(self._guests.values())
        for guest in guests:
            guest.behaviour_changed()
        if self._backends is not None:
            self._backends.behaviour_changed()

    def _on_event(self, event: HypervisorEvent) -> None:
        """Hypervisor events, in model order (the hypervisor's event thread)."""
        if self._closing:
            return
        if isinstance(event, DomainUnpaused) and event.pause_count == 0:
            self._guest_runs(event.domid)
        elif isinstance(event, DomainPaused):
            with self._lock:
                guest = self._guests.get(event.domid)
            if guest is not None:
                guest.set_running(False)
        elif isinstance(event, DomainShutdown | DomainDying):
            self._stop_guest(event.domid)
            self._xenstore_side(lambda: self.xenstored.fire_special_watch("@releaseDomain"))
        elif isinstance(event, DomainGone):
            self._stop_guest(event.domid, forget=True)
            self._xenstore_side(lambda: self._release(event.domid))
            backends = self._backends  # a network VM's netback goes with it
            if backends is not None:
                self._xenstore_side(lambda: backends.unserve(event.domid))
        elif isinstance(event, PciChanged):
            self._xenstore_side(lambda: write_pci_mirror(self.xenstore, self.pci_state()))

    def _guest_runs(self, domid: int) -> None:
        with self._lock:
            if self._closing:
                return
            guest = self._guests.get(domid)
            if guest is not None:
                guest.set_running(True)
                return
            alive = [g for g in self._retired if g.alive]
            self._retired[:] = alive
            guest = SimGuest(domid, socket_path=self.xenstored.domain_socket_path(domid),
                             hypervisor=self.hypervisor, lookup=self.behaviour,
                             report=self._report, timeout=min(self._timeout, 2.0))
            self._guests[domid] = guest
            guest.start()
        backends = self._backends  # any guest may serve nics (a network VM)
        if backends is not None:
            self._xenstore_side(lambda: backends.serve(domid))
        log.info("domain %d runs: simulated guest started", domid)

    def _stop_guest(self, domid: int, *, forget: bool = False) -> None:
        with self._status_lock:
            with self._lock:
                guest = self._guests.pop(domid, None) if forget else self._guests.get(domid)
                stopped_now = guest is not None and not guest.stopping
                if stopped_now and guest is not None:
                    guest.stop()
                if forget and guest is not None:
                    self._retired.append(guest)
            if forget:
                self._xenstore_side(lambda: self.xenstore.rm(f"{STATUS_ROOT}/{domid}"))
            elif stopped_now:
                self._xenstore_side(lambda: self.xenstore.write(status_path(domid), "stopped"))

    def _release(self, domid: int) -> None:
        try:
            self.xenstored.release_domain(domid)
        except XenstoreError:  # never introduced: only the watch fires
            self.xenstored.fire_special_watch("@releaseDomain")

    def _xenstore_side(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except _XS_ERRORS as exc:
            log.warning("simulated host: xenstore side of a domain event failed: %s", exc)


def _reap_stale_bus(info_path: Path, conf: Path) -> None:
    """A host killed with SIGKILL leaves its dbus-daemon (own session) running: stop it, if
    the stale ``simhost.json`` names one that still runs on this directory's config."""
    try:
        old = json.loads(info_path.read_text())
        pid = old.get("dbus_pid") if isinstance(old, dict) else None
        if not isinstance(pid, int):
            return
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if f"--config-file={conf}".encode() in cmdline:
        log.warning("stopping the dbus-daemon %d left by a previous simulated host", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 2.0  # it unlinks its socket when it exits: wait for it
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.02)


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
