"""Simulated dom0 backend drivers (blkback, blktap, netback, console, pciback) and their hotplug
scripts.

`SimBackends` is one thread (``sim-backends``) over a dom0 xenstore client. It watches
``/local/domain/0/backend`` and, for each device directory ``<kind>/<fe>/<devid>`` of the kinds
vbd, tap, vif, console and pci (a PV-PCI backend, one with a ``state``; pciback has no hotplug
script), plays the backend half of the xenbus handshake (`backend_next`). A driver domain's
netback is played too: after :meth:`SimBackends.serve` (the host calls it when a domain first
runs; :meth:`~SimBackends.unserve` when it is gone) the vif directories under
``/local/domain/<domid>/backend/vif`` are served the same way (a network VM serving other
VMs' nics; its hotplug script reports in dom0's ``/xapi`` as dom0's does),
re-evaluating a device whenever its backend or frontend nodes change ("look again"; a change
above the devices, such as a domain's backends removed at its destroy, looks at the devices
under the changed directory, a domain that is gone at those it served, and a change of the
behaviours at every device; the devices looked at after a change above them have their
behaviours looked up again):

- a new device (state Initialising) is probed: InitWait, and its hotplug script runs (vbd, tap,
  vif; after the behaviour's ``hotplug-delay``; never with ``hotplug-fail``): it writes
  ``/xapi/<fe>/hotplug/<kind>/<devid>/hotplug`` = online (a vif also ``.../vif`` = its
  interface name ``vif<fe>.<devid>``) and the backend's ``hotplug-status`` = connected;
- when the frontend is ready and the script has reported, the backend connects: it *holds* the
  frontend domain's pages in the simulated hypervisor (a destroyed domain stays dying until its
  backends let go, as with real blkback/netback) and goes Connected; with ``backend-fail`` it
  writes ``/local/domain/<fe>/error/device/<fe-kind>/<devid>/error`` and goes Closing instead;
- it closes when the frontend closes or goes away, letting go of the pages; a device whose
  backend directory is removed, or that is Closed with ``online`` = 0, or whose frontend is gone
  is unregistered: the hotplug script's remove deletes the ``hotplug`` (and ``vif``) node.
- a frontend in dom0 (qemu's disks) has no simulated guest: this thread plays its frontend too
  and writes ``/xapi/0/frontend/<kind>/<devid>/hotplug`` = online while it is Connected, as the
  block-frontend udev script does.

State writes are guarded (a transaction that checks the state read before) so that the
toolstack's own writes (Connected -> Closing) are never overwritten blindly.

Failure behaviour: a xenstore or hypervisor error while handling one device is logged and the
device is looked at again on its next event; nothing else is affected. `close` stops the thread
within its timeout (TimeoutError otherwise) without touching xenstore or the hypervisor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xen.hypervisor import HypervisorError
from xen.sim._control import (
    BackendEffect,
    BackendView,
    Behaviour,
    backend_next,
    frontend_next,
    frontend_ring_keys,
)
from xen.xenops import XenbusState
from xen.xenstore import (
    NoSuchNode,
    XenstoreConnectionError,
    XenstoreError,
    XenstoreTimeout,
)

if TYPE_CHECKING:
    from xen.sim.hypervisor import HypervisorServer
    from xen.xenstore import Transaction, WatchFired, XenstoreClient

__all__ = ["BACKEND_KINDS", "SimBackends"]

log = logging.getLogger(__name__)

BACKEND_KINDS = ("vbd", "tap", "vif", "console", "pci")
_HOTPLUG_KINDS = ("vbd", "tap", "vif")
_BACKEND_ROOT = "/local/domain/0/backend"
_S = XenbusState
_CONNECT_KEYS = {
    "vbd": (("sectors", "2097152"), ("sector-size", "512"), ("info", "0"),
            ("feature-flush-cache", "1")),
    "vif": (("feature-sg", "1"), ("feature-rx-copy", "1"), ("feature-gso-tcpv4", "1")),
    "pci": (("root_num", "1"), ("root-0", "0000:00")),  # pciback's virtual root bus
}
_CONNECT_KEYS["tap"] = _CONNECT_KEYS["vbd"]

Key = tuple[str, int, int, int]  # backend kind, frontend domid, devid, backend domid
_Dir = tuple[int, str | None, int | None]  # backend domid, [kind, [frontend domid]]
_DRIVER_KINDS = ("vif",)  # what a driver domain serves here (its netback)


def _root(be: int) -> str:
    return f"/local/domain/{be}/backend"


@dataclass(eq=False, slots=True)
class _Device:
    kind: str
    fe: int
    devid: int
    be: int                              # the backend's domain (0, or a driver domain)
    frontend: str                        # the frontend directory
    behaviour: Behaviour
    hotplug_at: float | None = None      # the script reports at this time
    hotplug_done: bool = False
    connected: bool = False              # holds the frontend domain's pages
    unregistered: bool = False
    stale: bool = False                  # behaviour to be looked up again

    @property
    def backend(self) -> str:
        return f"{_root(self.be)}/{self.kind}/{self.fe}/{self.devid}"

    @property
    def hotplug_dir(self) -> str:
        return f"/xapi/{self.fe}/hotplug/{self.kind}/{self.devid}"

    @property
    def fe_kind(self) -> str:
        return self.frontend.rstrip("/").split("/")[-2]


class SimBackends:
    """The dom0 backend drivers of the simulated host; see the module docstring."""

    def __init__(self, client: XenstoreClient, hypervisor: HypervisorServer,
                 lookup: Callable[[int], Behaviour]) -> None:
        self._xs = client
        self._hv = hypervisor
        self._lookup = lookup
        self._cond = threading.Condition()
        self._pending: set[Key] = set()
        self._dirs: set[_Dir] = set()  # directories above devices to look at
        self._rescan = True
        self._stopping = False
        # Changed by the worker thread only, under _cond (read elsewhere under _cond).
        self._devices: dict[Key, _Device] = {}
        self._by_frontend: dict[str, Key] = {}       # frontend dir -> key
        self._served: set[int] = set()               # driver domains whose netback we play
        self._thread = threading.Thread(target=self._run, name="sim-backends", daemon=True)

    def start(self) -> SimBackends:
        self._xs.watch(_BACKEND_ROOT, "sim-backends", self._on_backend_event)
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.ident is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"sim-backends did not stop within {timeout} s")

    def serve(self, domid: int) -> None:
        """Play the netback of driver domain ``domid`` (its ``backend/vif`` directories)."""
        with self._cond:
            if domid == 0 or domid in self._served or self._stopping:
                return
            self._served.add(domid)
        self._xs.watch(_root(domid), f"sim-backends-{domid}", self._on_backend_event)

    def unserve(self, domid: int) -> None:
        """Domain ``domid`` is gone: stop watching its backend directory."""
        with self._cond:
            if domid not in self._served:
                return
            self._served.discard(domid)
            self._pending |= {k for k in self._devices if k[3] == domid}
            self._cond.notify()
        self._xs.unwatch(_root(domid), f"sim-backends-{domid}")

    def behaviour_changed(self) -> None:
        """The control area changed: look the behaviours up again."""
        with self._cond:
            self._rescan = True
            self._cond.notify()

    def connected(self) -> list[tuple[str, int, int]]:
        """Devices (kind, frontend domid, devid) whose backend, in dom0 or a driver domain, is
        connected (holds its frontend's pages); for tests."""
        with self._cond:
            return sorted(k[:3] for k, d in self._devices.items() if d.connected)

    def connected_in(self, be: int) -> list[tuple[str, int, int]]:
        """:meth:`connected`, of the backends in domain ``be`` only."""
        with self._cond:
            return sorted(k[:3] for k, d in self._devices.items() if d.connected and k[3] == be)

    # --- watch callbacks (the client's dispatcher thread) --------------------------------------

    def _on_backend_event(self, event: WatchFired) -> None:
        head = event.path.split("/")  # /local/domain/<be>/backend/...
        be = int(head[3]) if len(head) > 3 and head[3].isdigit() else 0
        parts = event.path[len(_root(be)):].strip("/").split("/")
        if len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():
            self._post((parts[0], int(parts[1]), int(parts[2]), be))
            return
        kind = parts[0] or None  # the root itself: ""
        fe = int(parts[1]) if kind is not None and len(parts) == 2 and parts[1].isdigit() \
            else None
        with self._cond:
            self._dirs.add((be, kind, fe))
            self._cond.notify()

    def _on_frontend_event(self, event: WatchFired) -> None:
        parts = event.path.split("/")
        with self._cond:  # /local/domain/<fe>/device/<kind>/<devid>
            key = self._by_frontend.get("/".join(parts[:7]))
        if key is not None:
            self._post(key)

    def _post(self, key: Key) -> None:
        with self._cond:
            self._pending.add(key)
            self._cond.notify()

    # --- the worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._pending and not self._dirs \
                        and not self._rescan and not self._due():
                    self._cond.wait(self._next_timeout())
                if self._stopping:
                    return
                keys, self._pending = self._pending, set()
                dirs, self._dirs = self._dirs, set()
                rescan, self._rescan = self._rescan, False
            try:
                if rescan:
                    for device in self._devices.values():
                        device.stale = True
                    keys |= self._scan() | set(self._devices)
                else:
                    for where in dirs:
                        keys |= self._scan_dir(*where)
                for device in [d for d in self._devices.values() if self._is_due(d)]:
                    self._hotplug_add(device)
                    keys.add((device.kind, device.fe, device.devid, device.be))
                for key in sorted(keys):
                    self._process(key)
            except (XenstoreConnectionError, XenstoreTimeout) as exc:
                log.warning("sim backends: xenstore trouble, retrying: %s", exc)
                with self._cond:
                    self._pending |= keys
                    self._rescan = True
                    self._cond.wait(0.2)
            except Exception:
                log.exception("sim backends: unexpected failure; going on")

    def _is_due(self, device: _Device) -> bool:
        return device.hotplug_at is not None and device.hotplug_at <= time.monotonic()

    def _due(self) -> bool:
        return any(self._is_due(d) for d in self._devices.values())

    def _next_timeout(self) -> float:
        times = [d.hotplug_at for d in self._devices.values() if d.hotplug_at is not None]
        return max(0.0, min([1.0, *(t - time.monotonic() for t in times)]))

    def _scan(self) -> set[Key]:
        with self._cond:
            served = sorted(self._served)
        return set().union(*(self._scan_dir(be, None, None) for be in [0, *served]))

    def _scan_dir(self, be: int, kind: str | None, fe: int | None) -> set[Key]:
        """The devices under ``<be's backend>[/<kind>[/<fe>]]``: those listed there now and
        those known there (gone ones are looked at to be forgotten), their behaviours stale."""
        found: set[Key] = set()
        root = _root(be)
        for k in (BACKEND_KINDS if be == 0 else _DRIVER_KINDS) if kind is None else (kind,):
            fes = _listing(self._xs, f"{root}/{k}") if fe is None else [str(fe)]
            for f in fes:
                for devid in _listing(self._xs, f"{root}/{k}/{f}") if f.isdigit() else ():
                    if devid.isdigit():
                        found.add((k, int(f), int(devid), be))
        for key, device in self._devices.items():
            if key[3] == be and kind in (None, key[0]) and fe in (None, key[1]):
                device.stale = True
                found.add(key)
        return found

    def _process(self, key: Key) -> None:
        kind, fe, devid, be = key
        if kind not in (BACKEND_KINDS if be == 0 else _DRIVER_KINDS):
            return
        try:
            self._process_device(key)
        except (XenstoreConnectionError, XenstoreTimeout):
            raise
        except (XenstoreError, HypervisorError, RuntimeError) as exc:
            log.info("sim backend %s/%d/%d: %s (looked at again on its next event)",
                     kind, fe, devid, exc)

    def _process_device(self, key: Key) -> None:
        kind, fe, devid, be = key
        backend = f"{_root(be)}/{kind}/{fe}/{devid}"
        state = _state(self._xs, f"{backend}/state")
        device = self._devices.get(key)
        if state is None:
            if device is not None:
                if not device.unregistered:
                    self._apply(device, backend_next(BackendView(
                        kind, None, None, connected=device.connected)).effects)
                self._forget(key)
            return
        if device is None or (device.unregistered and state == _S.INITIALISING):
            if device is not None:
                self._forget(key)
            device = self._register(key, backend)
            if device is None:
                return
        if device.unregistered:
            return
        if device.stale:
            device.behaviour, device.stale = self._lookup(fe), False
        fe_state = _state(self._xs, f"{device.frontend}/state")
        if fe_state is None and self._xs.exists(device.frontend):
            fe_state = _S.UNKNOWN
        online = self._xs.try_read(f"{backend}/online") == "1"
        view = BackendView(kind, state, fe_state, online, device.hotplug_done, device.connected)
        step = backend_next(view, fail=device.behaviour.backend_fails(kind),
                            stop=device.behaviour.backend_stop)
        if step.state is not None and not self._write_state(backend, state, step.state):
            self._post(key)  # the state moved under us: look again
            return
        self._apply(device, step.effects)
        if fe == 0 and not device.unregistered:
            self._dom0_frontend(device, step.state or state)

    def _register(self, key: Key, backend: str) -> _Device | None:
        kind, fe, devid, be = key
        frontend = self._xs.try_read(f"{backend}/frontend")
        if not frontend:
            return None  # not laid out yet
        device = _Device(kind, fe, devid, be, frontend.rstrip("/"), self._lookup(fe))
        with self._cond:
            self._devices[key] = device
            self._by_frontend[device.frontend] = key
        self._xs.watch(device.frontend, "sim-frontends", self._on_frontend_event)
        if kind in _HOTPLUG_KINDS:
            if device.behaviour.hotplug_fails(kind):
                log.info("hotplug script of %s/%d/%d fails (behaviour)", kind, fe, devid)
            else:
                device.hotplug_at = time.monotonic() + device.behaviour.hotplug_delay
                if device.behaviour.hotplug_delay <= 0:
                    self._hotplug_add(device)
        else:
            device.hotplug_done = True
        log.debug("backend %s/%d/%d registered", kind, fe, devid)
        return device

    def _forget(self, key: Key) -> None:
        with self._cond:
            device = self._devices.pop(key, None)
            if device is None or self._by_frontend.get(device.frontend) != key:
                return
            del self._by_frontend[device.frontend]
        self._xs.unwatch(device.frontend, "sim-frontends")

    def _write_state(self, backend: str, seen: XenbusState, new: XenbusState) -> bool:
        path = f"{backend}/state"

        def guarded(t: Transaction) -> bool:
            if t.try_read(path) != seen.to_xenstore():
                return False
            t.write(path, new.to_xenstore())
            return True

        done = self._xs.transaction(guarded)
        if done:
            log.debug("%s: %s -> %s", backend, seen.name, new.name)
        return done

    def _apply(self, device: _Device, effects: tuple[BackendEffect, ...]) -> None:
        for effect in effects:
            if effect is BackendEffect.CONNECT:
                self._connect(device)
            elif effect is BackendEffect.FAIL:
                error = f"/local/domain/{device.fe}/error/device/{device.fe_kind}/" \
                        f"{device.devid}/error"
                self._write_if(f"/local/domain/{device.fe}", error,
                               f"simulated {device.kind} backend failure")
                log.info("backend %s failed (behaviour): %s", device.backend, error)
            elif effect is BackendEffect.DISCONNECT:
                self._disconnect(device)
            elif effect is BackendEffect.UNREGISTER:
                self._unregister(device)

    def _write_if(self, exists: str, path: str, value: str) -> None:
        """Write ``path`` only while ``exists`` does (never recreate a removed tree)."""

        def write(t: Transaction) -> None:
            if t.exists(exists):
                t.write(path, value)

        self._xs.transaction(write)

    def _connect(self, device: _Device) -> None:
        if device.fe != 0 and not device.connected:
            self._hv.hold(device.fe)
        device.connected = True
        keys = _CONNECT_KEYS.get(device.kind, ())
        if keys:
            backend = device.backend

            def publish(t: Transaction) -> None:
                if t.try_read(f"{backend}/state") == _S.CONNECTED.to_xenstore():
                    for k, v in keys:
                        t.write(f"{backend}/{k}", v)

            self._xs.transaction(publish)

    def _disconnect(self, device: _Device) -> None:
        if not device.connected:
            return
        device.connected = False
        if device.fe != 0:
            self._hv.unhold(device.fe)

    def _unregister(self, device: _Device) -> None:
        self._disconnect(device)
        device.unregistered = True
        device.hotplug_at = None
        if device.kind in _HOTPLUG_KINDS:
            for node in ("hotplug", "vif"):
                self._xs.rm(f"{device.hotplug_dir}/{node}")
        if device.fe == 0:
            self._xs.rm(f"/xapi/0/frontend/{device.fe_kind}/{device.devid}/hotplug")
        log.debug("backend %s unregistered", device.backend)

    def _hotplug_add(self, device: _Device) -> None:
        device.hotplug_at = None
        if device.unregistered:
            return
        hotplug_dir, backend = device.hotplug_dir, device.backend
        vif = f"vif{device.fe}.{device.devid}" if device.kind == "vif" else None

        def script(t: Transaction) -> None:
            if t.try_read(f"{backend}/state") is None:
                return  # the device went before the script ran
            if vif is not None:
                t.write(f"{hotplug_dir}/vif", vif)
            t.write(f"{backend}/hotplug-status", "connected")
            t.write(f"{hotplug_dir}/hotplug", "online")

        self._xs.transaction(script)
        device.hotplug_done = True
        log.debug("hotplug add of %s done", backend)

    def _dom0_frontend(self, device: _Device, backend_state: XenbusState) -> None:
        """dom0's own frontend (blkfront in dom0) and its udev script."""
        fe_state = _state(self._xs, f"{device.frontend}/state")
        if fe_state is None:
            return
        kind = device.fe_kind
        target = frontend_next(kind, fe_state, backend_state,
                               device.behaviour.frontend_stop_for(kind))
        frontend = device.frontend
        if target is not None:
            keys = frontend_ring_keys(kind, 0, device.devid) \
                if target in (_S.INITIALISED, _S.CONNECTED) else ()

            def publish(t: Transaction) -> None:
                if t.try_read(f"{frontend}/state") != fe_state.to_xenstore():
                    return
                for k, v in keys:
                    t.write(f"{frontend}/{k}", v)
                t.write(f"{frontend}/state", target.to_xenstore())

            self._xs.transaction(publish)
        node = f"/xapi/0/frontend/{kind}/{device.devid}/hotplug"
        if (target or fe_state) == _S.CONNECTED:
            self._xs.write(node, "online")
        elif (target or fe_state) == _S.CLOSED:
            self._xs.rm(node)


def _listing(client: XenstoreClient, path: str) -> list[str]:
    try:
        return client.directory(path)
    except NoSuchNode:
        return []


def _state(client: XenstoreClient, path: str) -> XenbusState | None:
    text = client.try_read(path)
    if text is None:
        return None
    try:
        return XenbusState.parse(text)
    except ValueError:
        log.warning("%s holds %r, not a xenbus state: ignored", path, text)
        return None
