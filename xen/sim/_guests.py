"""A simulated PV guest: one thread per running domain, talking to xenstore as that domain.

`SimGuest` stands for the kernel of one domain. The simulated host starts it when the domain is
first unpaused and stops it when the domain shuts down, dies or goes. It connects to xenstored
through the domain's own socket (``<xenstored socket>.dom<domid>``, which exists while the
domain is introduced), so it is an unprivileged client and xenstore permissions apply to it as
to a real guest; before the toolstack INTRODUCEs the domain it has no xenstore (status
``waiting``) and it connects when nudged after ``@introduceDomain``.

While running (unpaused) and not hung, on every nudge it looks at xenstore again: a watch
event at what that watch is for (its ``control/shutdown``, its frontends, its dm-agent), as a
kernel's watch handlers do; anything else (a behaviour change, an introduction, an unpause, a
timer, a failed step before) at everything:

- ``control/shutdown``: answered as `answer_shutdown` says: acknowledged by writing it empty
  (as Linux does), then, after the behaviour's ``shutdown-delay``, the domain shuts down with
  the matching reason through the simulated hypervisor (which makes xenstored fire
  ``@releaseDomain``). With ``ignore-shutdown`` the node is left alone.
- every frontend under ``device/<kind>/<devid>`` that has a ``state``: one step of the xenbus
  state machine (`frontend_next`) against its backend's ``state``, publishing ring keys before
  leaving Initialising; ``frontend-stop`` holds it at a state ("hang mid-handshake"). The
  guest watches each backend's ``state`` (readable to it through the backend's ACL).
- a stub domain (its ``target`` node names the guest it serves) runs a dm-agent
  (:mod:`xen.sim._dmagent`) for that guest, stepped on every nudge like the rest, its writes
  made as the guest's are;
- timers: ``crash`` and ``reboot`` fire that many seconds after the guest starts running or
  after the value changes.

Every write the guest makes is done under the hypervisor model's lock after checking that its
domain runs (not paused, shut down or dying), as a vcpu would: once `destroy` or `pause` has
returned to the toolstack, the guest writes nothing more. A paused guest does nothing until
unpaused (deadlines that pass meanwhile fire at the unpause).
A hung guest (``hang``) ignores everything but behaviour changes; its domain keeps running.
After it shuts its domain down the guest thread ends.

Failure behaviour: xenstore errors of one step are logged and the next nudge retries; a lost
connection is dropped and made again on the next nudge; hypervisor errors (the domain was
destroyed meanwhile) are logged. `stop` never blocks; `join` waits (bounded) for the thread,
which closes its xenstore client on the way out.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from xen.hypervisor import HypervisorError, ShutdownReason
from xen.sim._bsg import bsg_requests_path
from xen.sim._control import (
    Behaviour,
    answer_shutdown,
    frontend_next,
    frontend_ring_keys,
)
from xen.sim._dmagent import SimDmAgent
from xen.xenops import XenbusState
from xen.xenstore import (
    ClientState,
    PermissionDenied,
    RetryPolicy,
    XenstoreClient,
    XenstoreConnectionError,
    XenstoreError,
    XenstoreTimeout,
)

if TYPE_CHECKING:
    from xen.sim.hypervisor import HypervisorServer, SimHypervisor
    from xen.xenstore import Transaction, WatchFired

__all__ = ["GUEST_RECONNECT", "SimGuest"]

log = logging.getLogger(__name__)

# A guest's ring does not come back once its domain is released: give up quickly.
GUEST_RECONNECT = RetryPolicy(attempts=2, max_time=0.2, initial=0.05, maximum=0.1)
_S = XenbusState
_FLAG_LOOK = "look"
_FLAG_BEHAVIOUR = "behaviour"
_FLAG_LOST = "lost"
#: watch token -> what its event makes the guest look at (and nothing else)
_WATCHED = {"shutdown": "shutdown", "device": "devices", "backend": "devices",
            "dm-agent": "agent", "dm-agent-bsg": "agent"}


class SimGuest:
    """The simulated kernel of domain ``domid`` (see the module docstring).

    ``lookup(domid)`` gives its current behaviour, ``report(domid, status)`` publishes its
    status (waiting, running, paused, hung)."""

    def __init__(
        self,
        domid: int,
        *,
        socket_path: str,
        hypervisor: HypervisorServer,
        lookup: Callable[[int], Behaviour],
        report: Callable[[int, str], None],
        timeout: float = 2.0,
    ) -> None:
        self.domid = domid
        self._socket_path = socket_path
        self._hv = hypervisor
        self._lookup = lookup
        self._report = report
        self._timeout = timeout
        self._home = f"/local/domain/{domid}"
        self._cond = threading.Condition()
        self._flags: set[str] = {_FLAG_LOOK, _FLAG_BEHAVIOUR}
        self._running = True
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"sim-guest-{domid}", daemon=True)
        # Owned by the guest thread only:
        self._client: XenstoreClient | None = None
        self._behaviour = Behaviour()
        self._status = ""
        self._armed: dict[str, float | None] = {"crash": None, "reboot": None}
        self._deadlines: dict[str, float] = {}
        self._shutdown_reason: ShutdownReason | None = None
        self._backend_watches: dict[str, str] = {}  # frontend path -> watched backend state
        self._agent: SimDmAgent | None = None  # a stub domain's dm-agent
        self._look_all = False  # a step failed: the next nudge looks at everything

    # --- control (any thread) ------------------------------------------------------------------

    @property
    def status(self) -> str:
        return self._status

    @property
    def stopping(self) -> bool:
        return self._stopping

    def start(self) -> SimGuest:
        self._thread.start()
        return self

    def nudge(self, flag: str = _FLAG_LOOK) -> None:
        """Look at xenstore again (a watch fired, the domain was introduced, ...)."""
        with self._cond:
            self._flags.add(flag)
            self._cond.notify()

    def behaviour_changed(self) -> None:
        self.nudge(_FLAG_BEHAVIOUR)

    def set_running(self, running: bool) -> None:
        """Unpaused (True) or paused (False)."""
        with self._cond:
            self._running = running
            self._flags.add(_FLAG_LOOK)
            self._cond.notify()

    def stop(self) -> None:
        """The domain no longer runs: the thread ends soon (never blocks)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end; False if it is still alive after ``timeout``."""
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- the guest thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                what = self._wait()
                if what == "stop":
                    break
                if what == "paused":
                    self._set_status("paused")
                elif self._cycle():
                    break
        except Exception:
            log.exception("simulated guest %d failed", self.domid)
        finally:
            self._disconnect()

    def _wait(self) -> str:
        """Wait for something to do: "work", "paused" (newly) or "stop"."""
        with self._cond:
            while not self._stopping:
                if not self._running:
                    if self._status != "paused":
                        return "paused"
                    self._cond.wait(1.0)
                    continue
                if self._flags:
                    return "work"
                timeout = 1.0
                if not self._behaviour.hang and self._deadlines:
                    first = min(self._deadlines.values()) - time.monotonic()
                    if first <= 0:
                        return "work"
                    timeout = min(timeout, first)
                self._cond.wait(timeout)
            return "stop"

    def _take_flags(self) -> set[str]:
        with self._cond:
            flags, self._flags = self._flags, set()
            return flags

    def _cycle(self) -> bool:
        """One look at the world; True when the guest has shut its domain down."""
        flags = self._take_flags()
        everything = self._look_all or not flags or not flags <= {"shutdown", "devices", "agent"}
        self._look_all = False
        if _FLAG_LOST in flags and self._client is not None \
                and self._client.state in (ClientState.FAILED, ClientState.CLOSED):
            self._disconnect()
        if _FLAG_BEHAVIOUR in flags:
            self._refresh_behaviour()
        if self._behaviour.hang:
            self._set_status("hung")
            return False
        if self._fire_timers():
            return True
        client = self._client
        if client is None:
            client, everything = self._connect(), True
        self._set_status("running" if client is not None else "waiting")
        if client is None:
            return False
        try:
            if everything or "shutdown" in flags:
                self._answer_shutdown(client)
            if self._agent is not None and (everything or "agent" in flags):
                self._agent.step(client)  # before the devices: the toolstack waits for it
            if everything or "devices" in flags:
                self._step_devices(client)
            return False
        except XenstoreConnectionError as exc:
            log.info("guest %d: xenstore connection trouble: %s", self.domid, exc)
            if client.state in (ClientState.FAILED, ClientState.CLOSED):
                self._disconnect()
        except (XenstoreError, XenstoreTimeout) as exc:
            log.info("guest %d: xenstore step failed (retried on the next event): %s",
                     self.domid, exc)
        self._look_all = True  # the next nudge, whatever it is, looks at everything
        return False

    def _set_status(self, status: str) -> None:
        if status != self._status:
            self._status = status
            self._report(self.domid, status)

    def _refresh_behaviour(self) -> None:
        behaviour = self._lookup(self.domid)
        self._behaviour = behaviour
        now = time.monotonic()
        for name, value in (("crash", behaviour.crash_after),
                            ("reboot", behaviour.reboot_after)):
            if value != self._armed[name]:
                self._armed[name] = value
                if value is None:
                    self._deadlines.pop(name, None)
                else:
                    self._deadlines[name] = now + value

    def _fire_timers(self) -> bool:
        now = time.monotonic()
        for name in ("crash", "reboot", "shutdown"):
            at = self._deadlines.get(name)
            if at is None or at > now:
                continue
            del self._deadlines[name]
            if name == "crash":
                reason = ShutdownReason.CRASH
            elif name == "reboot":
                reason = ShutdownReason.REBOOT
            else:
                assert self._shutdown_reason is not None
                reason = self._shutdown_reason
            self._shut_down(reason)
            return True
        return False

    def _shut_down(self, reason: ShutdownReason) -> None:
        log.info("guest %d shuts down: %s", self.domid, reason.name.lower())
        try:
            if reason is ShutdownReason.CRASH:
                self._hv.crash(self.domid)
            else:
                self._hv.guest_shutdown(self.domid, reason)
        except (HypervisorError, RuntimeError) as exc:
            log.info("guest %d could not shut down (%s): %s", self.domid, reason.name, exc)

    # --- xenstore ------------------------------------------------------------------------------

    def _connect(self) -> XenstoreClient | None:
        if not os.path.exists(self._socket_path):
            return None  # not introduced (yet): no xenstore ring
        client = XenstoreClient(
            self._socket_path, timeout=self._timeout, reconnect=GUEST_RECONNECT,
            on_failed=lambda _exc: self.nudge(_FLAG_LOST), name=f"sim-guest-{self.domid}-xs")
        try:
            client.connect()
            client.watch(f"{self._home}/control/shutdown", "shutdown", self._on_watch)
            client.watch(f"{self._home}/device", "device", self._on_watch)
            target = _readable(client, f"{self._home}/target")
            if target is not None and target.isdigit():
                self._agent = SimDmAgent(self.domid, int(target), self._as_guest)
                client.watch(self._agent.dms_root, "dm-agent", self._on_watch)
                client.watch(bsg_requests_path(int(target)), "dm-agent-bsg", self._on_watch)
                client.watch(self._agent.commands_root, "dm-agent", self._on_watch)
        except (XenstoreError, XenstoreConnectionError, XenstoreTimeout) as exc:
            log.info("guest %d cannot use xenstore yet: %s", self.domid, exc)
            client.close()
            return None
        log.debug("guest %d connected to xenstore", self.domid)
        self._client = client
        self._backend_watches.clear()
        return client

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                log.exception("guest %d: closing its xenstore client failed", self.domid)

    def _as_guest(self, write: Callable[[], object]) -> bool:
        """Do ``write`` as the guest's vcpu would: only while its domain runs, atomically
        with respect to the domain's pause, shutdown or death (under the model's lock), so
        that a dead guest never writes again. False if the domain does not run."""

        def run(model: SimHypervisor) -> bool:
            try:
                info = model.getinfo(self.domid)
            except HypervisorError:
                return False
            if info.shutdown or info.dying or info.paused:
                return False
            write()
            return True

        return self._hv.inspect(run)

    def _on_watch(self, event: WatchFired) -> None:
        self.nudge(_WATCHED.get(event.token, _FLAG_LOOK))

    def _answer_shutdown(self, client: XenstoreClient) -> None:
        path = f"{self._home}/control/shutdown"
        value = client.try_read(path)
        if not value:
            return
        answer = answer_shutdown(value, self._behaviour)
        if not answer.ack:
            return
        if not self._as_guest(lambda: client.write(path, "")):
            return
        log.info("guest %d acknowledged control/shutdown = %s", self.domid, value)
        if answer.reason is not None and "shutdown" not in self._deadlines:
            self._shutdown_reason = answer.reason
            self._deadlines["shutdown"] = time.monotonic() + answer.delay

    def _step_devices(self, client: XenstoreClient) -> None:
        seen: set[str] = set()
        base = f"{self._home}/device"
        for kind in _listing(client, base):
            for devid in _listing(client, f"{base}/{kind}"):
                path = f"{base}/{kind}/{devid}"
                seen.add(path)
                self._step_device(client, kind, devid, path)
        for path in [p for p in self._backend_watches if p not in seen]:
            client.unwatch(self._backend_watches.pop(path), "backend")

    def _step_device(self, client: XenstoreClient, kind: str, devid: str, path: str) -> None:
        fe_state = _state(client, f"{path}/state")
        backend = client.try_read(f"{path}/backend")
        if fe_state is None or not backend:
            return  # no handshake (e.g. the primary console) or not laid out yet
        be_state_path = f"{backend}/state"
        if self._backend_watches.get(path) != be_state_path:
            old = self._backend_watches.pop(path, None)
            if old is not None:
                client.unwatch(old, "backend")
            client.watch(be_state_path, "backend", self._on_watch)
            self._backend_watches[path] = be_state_path
        try:
            be_state = _state(client, be_state_path)
        except PermissionDenied:
            be_state = None
        stop = self._behaviour.frontend_stop_for(kind)
        target = frontend_next(kind, fe_state, be_state, stop)
        if target is None:
            return
        keys: tuple[tuple[str, str], ...] = ()
        if fe_state in (_S.UNKNOWN, _S.INITIALISING, _S.CLOSED) \
                and target in (_S.INITIALISED, _S.CONNECTED):
            keys = frontend_ring_keys(kind, self.domid, int(devid) if devid.isdigit() else 0)

        def publish(t: Transaction) -> None:
            if t.try_read(f"{path}/state") != fe_state.to_xenstore():
                return  # changed or removed meanwhile: never recreate a removed frontend
            for key, value in keys:
                t.write(f"{path}/{key}", value)
            t.write(f"{path}/state", target.to_xenstore())

        if not self._as_guest(lambda: client.transaction(publish)):
            return
        log.debug("guest %d: %s/%s frontend %s -> %s", self.domid, kind, devid,
                  fe_state.name, target.name)


def _readable(client: XenstoreClient, path: str) -> str | None:
    """The value at ``path``, None when missing or not readable by the guest."""
    try:
        return client.try_read(path)
    except PermissionDenied:
        return None


def _listing(client: XenstoreClient, path: str) -> list[str]:
    try:
        return client.directory(path)
    except XenstoreError as exc:
        if exc.name in ("ENOENT", "EACCES"):
            return []
        raise


def _state(client: XenstoreClient, path: str) -> XenbusState | None:
    text = client.try_read(path)
    if text is None:
        return None
    try:
        return XenbusState.parse(text)
    except ValueError:
        log.warning("%s holds %r, not a xenbus state: ignored", path, text)
        return None
