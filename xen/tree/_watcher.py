"""`DomainWatcher`: turns ``@introduceDomain`` / ``@releaseDomain`` into "look again" messages.

The watcher watches both special paths on the tree's xenstore client (xenstored fires each
once at registration, so a new watcher always makes one full pass). On every event it reads the
hypervisor's domain list and compares it with the last one: every domain that appeared,
disappeared or changed its flags (paused, shutdown, dying) is reported to the monitor of the VM
whose uuid is the domain's handle, as a :class:`~xen.xenvm._messages.CheckState` message. The
monitor decides what happened from what it reads then; the event is never trusted as data.
Events that arrive together are coalesced: an event queues one rescan unless one is already
queued behind it, and a rescan reads the list as it is then, so it covers every event before it
(50 domains going down at once cost a few passes over the list, not 50).
A stub domain's changes go to its guest's monitor too (the stub has a uuid of its own; the
watcher reads its ``target`` node once and remembers it while the stub exists), so a stub
domain that dies alone is seen by the VM that owns it. A domain without a ``target`` once it
has run is remembered as no stub domain (a stub's ``target`` is written before its first
unpause), so its later changes cost no read. Domains no monitor owns (dom0, ones
started by hand) are ignored. Under ``rest_for_one`` after
the xenstore and hypervisor actors, a restart of either restarts the watcher, which registers
its watches again on the new connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from actors import Actor, ActorDeadError, NoSuchActor, handles, resolve, service
from xen.hypervisor import Hypervisor
from xen.xenstore import WatchFired, XenstoreClient
from xen.xenvm import CheckState, vm_path

__all__ = ["DomainWatcher"]

logger = logging.getLogger(__name__)

_TOKEN = "oxt-domain-watcher"
Key = tuple[str, bool, bool, bool, bool]


@dataclass(frozen=True, slots=True)
class _Rescan:
    """Read the domain list again (queued by the first of a run of watch events)."""


class DomainWatcher(Actor):
    """Reports domain changes to VM monitors (see the module docstring)."""

    def __init__(self, xenstore: str = "/xen/xenstore", hypervisor: str = "/xen/hypervisor"
                 ) -> None:
        super().__init__()
        self.xenstore_name = xenstore
        self.hypervisor_name = hypervisor
        self.known: dict[int, Key] = {}
        self.targets: dict[int, int] = {}  # stub domain -> the guest it serves; -1: no stub
        self.target_reads = 0
        self.events = 0
        self.scans = 0
        self.rescan_queued = False
        self.token = _TOKEN

    def on_start(self) -> None:
        """Watch the special paths (each fires once now).

        The token names this instance: a crashed or killed predecessor may have left its
        watches on the same xenstore connection (dropped by its ``on_failure`` or
        ``on_killed`` when that ran; harmless when not: their events go to a dead actor and
        are discarded).
        """
        self.token = f"{_TOKEN}-{self.actor_urn[-12:]}"
        client = service(self.xenstore_name, XenstoreClient)
        for path in ("@introduceDomain", "@releaseDomain"):
            client.watch(path, self.token, self.actor_ref)

    @handles(WatchFired)
    def _fired(self, _msg: WatchFired) -> None:
        self.events += 1
        if not self.rescan_queued:
            self.rescan_queued = True
            self.actor_ref.tell(_Rescan())

    @handles(_Rescan)
    def _rescan(self, _msg: _Rescan) -> None:
        self.rescan_queued = False
        self.scans += 1
        hv = service(self.hypervisor_name, Hypervisor)
        now: dict[int, Key] = {}
        for info in hv.getinfolist():
            if info.domid == 0:
                continue
            now[info.domid] = (str(info.uuid), info.paused, info.shutdown, info.dying,
                               info.running or info.blocked)
        moved = {d for d, key in now.items() if self.known.get(d) != key}
        moved |= {d for d in self.known if d not in now}
        changed = {(now.get(d) or self.known[d])[0] for d in moved}
        for d in moved:
            target = (self._target(d, now[d][4] and not now[d][1]) if d in now
                      else self.targets.pop(d, None))
            key = None if target is None else (now.get(target) or self.known.get(target))
            if key is not None:
                changed.add(key[0])
        self.known = now
        for uuid in sorted(changed):
            self._tell(uuid)

    def _target(self, domid: int, has_run: bool) -> int | None:
        """The guest stub domain ``domid`` serves (None: not a stub domain, or not yet).
        ``has_run``: the domain runs or blocks, unpaused: a stub's ``target`` exists by then,
        so a missing one is remembered."""
        if domid not in self.targets:
            self.target_reads += 1
            try:
                text = service(self.xenstore_name, XenstoreClient).try_read(
                    f"/local/domain/{domid}/target")
            except Exception:  # the domain's tree is going away
                return None
            if text is None or not text.isdigit():
                if has_run:
                    self.targets[domid] = -1
                return None
            self.targets[domid] = int(text)
        target = self.targets[domid]
        return None if target < 0 else target

    def _tell(self, uuid: str) -> None:
        try:
            resolve(vm_path(uuid)).tell(CheckState())
        except (NoSuchActor, ActorDeadError):
            pass  # no monitor owns this domain (or it is restarting and will look itself)

    def snapshot(self) -> dict[str, Any]:
        """Domains seen, for inspection."""
        return {"domains": {str(d): list(k) for d, k in self.known.items()},
                "events": self.events, "scans": self.scans, "target_reads": self.target_reads}

    def _unwatch(self) -> None:
        try:
            client = service(self.xenstore_name, XenstoreClient)
            for path in ("@introduceDomain", "@releaseDomain"):
                client.unwatch(path, self.token)
        except Exception:  # the xenstore actor stopped first, or its connection is gone
            logger.debug("watcher: unwatch skipped", exc_info=True)

    def on_stop(self) -> None:
        """Stop watching (the client may already be gone)."""
        self._unwatch()

    def on_failure(self, *_exc: object) -> None:
        """Stop watching (this instance's token only), so the next instance starts clean; the
        same after a kill."""
        self._unwatch()

    on_killed = on_failure
