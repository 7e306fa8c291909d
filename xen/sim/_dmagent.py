"""The simulated dm-agent: answers the device-model agent protocol of ``xen.xenops._dmagent``.

One :class:`SimDmAgent` stands for the dm-agent daemon of one domain: dom0's (run by the
simulated host on its own thread, :class:`DmAgentThread`) or a stub domain's (run by that
domain's simulated guest, :mod:`xen.sim._guests`, as the stub domain itself: an unprivileged
xenstore client whose writes happen only while the stub domain runs). Each :meth:`~SimDmAgent.
step` looks at xenstore again (events only mean "look again"):

1. publishes its capabilities (``dm-agent/capabilities/qemu/<device>``: every device of
   :data:`SIM_DEVICES`) when they are not there;
2. for every ``dm-agent/dms/<domid>``: with ``destroy`` = 1 it stops that guest's device
   models and removes ``dms/<domid>`` (what the toolstack waits for); else every device model
   with infos and no ``status`` is run: the simulated device model writes
   ``/local/domain/0/device-model/<domid>/state`` = ``running`` and the agent then
   ``status`` = ``running``. A stub domain's agent serves its target only: a request for
   another domain gets ``error`` (the reason) and ``status`` = ``failed``. A device model
   whose guest's xenstore tree is gone is forgotten;
3. for every device model it runs, answers the device-model commands as the simulated qemu
   does (:data:`DM_ANSWERS`): ``/local/domain/0/device-model/<domid>/command`` ``save`` ->
   ``state`` = ``paused``, ``continue`` -> ``running``; ``pci-ins``/``pci-rem`` get no answer
   (:data:`DM_SILENT`, as the original). Watch :attr:`~SimDmAgent.commands_root` to be
   nudged;
4. answers xenmgr's CD drive requests for the guests it runs device models for
   (`xen.sim._bsg`; a stub domain's agent is nudged by a watch on its guest's
   ``bsgdev-req``).

Nothing is emulated: the device model is its xenstore nodes (no qemu-pid: in this mode the
toolstack never signals a process). Failure behaviour: xenstore errors propagate to the
caller, which retries at the next nudge; permission errors are logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from xen.sim._bsg import answer_bsg_requests
from xen.xenops import (
    STATUS_FAILED,
    STATUS_RUNNING,
    Capability,
    agent_path,
    capabilities_path,
    capability_writes,
    dms_path,
    domain_path,
    list_dir,
    read_request,
    read_subtree,
)

if TYPE_CHECKING:
    from xen.xenstore import Transaction, WatchFired, XenstoreClient

__all__ = ["DM_ANSWERS", "DM_SILENT", "SIM_DEVICES", "DmAgentThread", "SimDmAgent"]

log = logging.getLogger(__name__)

#: What the simulated agents offer, all from one device model kind ``qemu``.
SIM_DEVICES = ("xenmou", "xen_acpi_pm", "xen_pci_pt", "svga", "xengfx", "vgpu", "gfx", "acpi",
               "audio", "serial", "net", "drive", "cdrom", "xenfb", "input")
_CAPS = tuple(Capability("qemu", name) for name in SIM_DEVICES)
#: Device-model commands and the ``state`` each answers (qemu's and the simulated ones').
DM_ANSWERS = {"save": "paused", "continue": "running"}
#: Commands a device model takes without an answer.
DM_SILENT = frozenset({"pci-ins", "pci-rem"})
Gate = Callable[[Callable[[], object]], bool]


def _direct(write: Callable[[], object]) -> bool:
    write()
    return True


def _writer(client: XenstoreClient, path: str, value: str) -> Callable[[], object]:
    return lambda: client.write(path, value)


class SimDmAgent:
    """The dm-agent of domain ``domid`` (see the module docstring); ``target`` is the one
    guest a stub domain's agent serves (None: any); ``gate(write)`` runs a write as the
    agent's domain would (False: it does not run)."""

    def __init__(self, domid: int, target: int | None = None, gate: Gate = _direct) -> None:
        self.domid = domid
        self.target = target
        self._gate = gate
        self.running: set[tuple[int, int]] = set()

    @property
    def dms_root(self) -> str:
        """``/local/domain/<domid>/dm-agent/dms``, the path to watch."""
        return f"{agent_path(self.domid)}/dms"

    @property
    def commands_root(self) -> str:
        """Where the commands to its device models are written: ``/local/domain/0/
        device-model`` (a stub domain's agent: its target's directory), the other path to
        watch."""
        root = f"{domain_path(0)}/device-model"
        return root if self.target is None else f"{root}/{self.target}"

    def step(self, client: XenstoreClient) -> None:
        """One look at xenstore (see the module docstring)."""
        if not client.exists(capabilities_path(self.domid)):
            writes = capability_writes(self.domid, _CAPS)

            def publish(t: Transaction) -> None:
                for w in writes:
                    t.write(w.path, w.value)

            if self._gate(lambda: client.transaction(publish)):
                log.info("dm-agent %d: capabilities published", self.domid)
        seen: set[int] = set()
        for name in list_dir(client, self.dms_root):
            if name.isdigit():
                seen.add(int(name))
                self._serve(client, int(name))
        self.running = {(d, m) for d, m in self.running
                        if d in seen and client.exists(f"/local/domain/{d}")}
        for domid in sorted({d for d, _m in self.running}):
            self._answer(client, domid)
            answer_bsg_requests(client, domid, self._gate)

    def _answer(self, client: XenstoreClient, domid: int) -> None:
        """Answer the command waiting for domain ``domid``'s device model, if any."""
        base = f"{domain_path(0)}/device-model/{domid}"
        command = client.try_read(f"{base}/command")
        answer = DM_ANSWERS.get(command or "")
        if answer is not None and client.try_read(f"{base}/state") != answer:
            if self._gate(_writer(client, f"{base}/state", answer)):
                log.info("dm-agent %d: domain %d's device model: %s -> state %s", self.domid,
                         domid, command, answer)
        elif command and answer is None and command not in DM_SILENT:
            log.debug("dm-agent %d: domain %d: command %r ignored", self.domid, domid, command)

    def _serve(self, client: XenstoreClient, domid: int) -> None:
        base = dms_path(self.domid, domid)
        names = list_dir(client, base)
        if "destroy" in names and client.try_read(f"{base}/destroy") == "1":
            request = read_request(self.domid, domid, {"destroy": "1"})  # nothing else counts
        else:
            request = read_request(self.domid, domid, read_subtree(client, base, 4, names))
        if request.destroy:
            self.running = {(d, m) for d, m in self.running if d != domid}
            if self._gate(lambda: client.rm(base)):
                log.info("dm-agent %d: device models of domain %d stopped", self.domid, domid)
            return
        for dmid in request.to_start():
            status = f"{base}/{dmid}/status"
            if self.target is not None and domid != self.target:
                log.warning("dm-agent %d serves domain %d only; refused %d", self.domid,
                            self.target, domid)
                self._gate(_writer(client, f"{base}/{dmid}/error",
                                   f"dm-agent {self.domid} serves domain {self.target} only"))
                self._gate(_writer(client, status, STATUS_FAILED))
                continue
            state = f"/local/domain/0/device-model/{domid}/state"

            def run(state: str = state, status: str = status) -> None:
                client.write(state, "running")
                client.write(status, STATUS_RUNNING)

            if self._gate(run):
                self.running.add((domid, dmid))
                log.info("dm-agent %d: device model %d of domain %d runs (%d devices)",
                         self.domid, dmid, domid, len(request.models[dmid][1]))


class DmAgentThread:
    """Dom0's simulated dm-agent on a thread of its own, on the host's xenstore client
    (thread-safe); watch events nudge it, and it looks at least every second."""

    def __init__(self, client: XenstoreClient, domid: int = 0) -> None:
        self.agent = SimDmAgent(domid)
        self._client = client
        self._cond = threading.Condition()
        self._nudged = True
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"sim-dm-agent-{domid}",
                                        daemon=True)
        self._token = f"sim-dm-agent-{domid}"

    def start(self) -> DmAgentThread:
        """Watch the agent's tree and start the thread."""
        self._client.watch(self.agent.dms_root, self._token, self._on_watch)
        self._client.watch(self.agent.commands_root, self._token, self._on_watch)
        self._thread.start()
        return self

    def _on_watch(self, _event: WatchFired) -> None:
        with self._cond:
            self._nudged = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._nudged and not self._stopping:
                    self._cond.wait(1.0)
                if self._stopping:
                    return
                self._nudged = False
            try:
                self.agent.step(self._client)
            except Exception as exc:  # retried at the next nudge
                log.info("dm-agent %d: step failed (retried): %s", self.agent.domid, exc)

    def close(self, timeout: float = 5.0) -> None:
        """Stop watching and join the thread (TimeoutError if it does not end)."""
        try:
            self._client.unwatch(self.agent.dms_root, self._token)
            self._client.unwatch(self.agent.commands_root, self._token)
        except Exception as exc:  # the client may be closing already
            log.debug("dm-agent unwatch: %s", exc)
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.ident is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError("the simulated dm-agent thread did not stop")
