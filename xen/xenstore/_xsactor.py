"""`XenstoreActor`: the "xenstore" child of the "xen" supervisor; it owns one `XenstoreClient`.

Why hand out the client instead of proxying requests: a xenstore request blocks on I/O; going
through one mailbox would serialise every request of the toolstack behind the slowest one and
make this actor a bottleneck. The client is thread-safe and is the only shared object, so other
actors get it with ``ask(name, GetClient(), timeout=...)`` and call it directly from their own
threads. A client handed out belongs to one incarnation of this actor: after a restart it is
closed (`ClientClosed`), and callers ask again (resolve the name, never keep a stale client
across an error).

Watches that must survive a restart of this actor are registered through it:
``ask(name, AddWatch(path, token, target_name), timeout=...)`` with the target's registered
name. They are kept in the snapshot, so in the supervisor's resume mode the next instance
registers them again at start (and xenstored fires each once, telling its watcher to look
again). Watches registered directly on a client die with that client.

Failure behaviour: `on_start` connects within the reconnect policy (`ACTOR_RECONNECT`: at
most 3 s, inside the supervisor's start timeout) and fails (`StartFailed`) if xenstored is not
there. While running, a lost connection is
retried by the client; when it gives up, this actor crashes with `XenstoreUnavailable`, so its
supervisor restarts it (and, under ``rest_for_one``, the xen children started after it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pykka

from actors import Actor, handles
from xen.xenstore._client import XenstoreClient
from xen.xenstore._clientcore import RetryPolicy, XenstoreUnavailable

__all__ = [
    "ACTOR_RECONNECT",
    "AddWatch",
    "ConnectionFailed",
    "GetClient",
    "RemoveWatch",
    "XenstoreActor",
]

logger = logging.getLogger(__name__)

# Shorter than the client's default: the first connection is made in on_start, which must end
# within the supervisor's start timeout (5 s for workers); longer outages are the supervisor's
# (restart intensity and backoff).
ACTOR_RECONNECT = RetryPolicy(attempts=10, max_time=3.0, initial=0.05, maximum=1.0, jitter=0.2)


@dataclass(frozen=True, slots=True)
class GetClient:
    """Ask for the `XenstoreClient` (thread-safe; use it from any thread)."""


@dataclass(frozen=True, slots=True)
class AddWatch:
    """Watch ``path`` with ``token`` for the actor named ``target``; kept across restarts."""

    path: str
    token: str
    target: str


@dataclass(frozen=True, slots=True)
class RemoveWatch:
    path: str
    token: str


@dataclass(frozen=True, slots=True)
class ConnectionFailed:
    """Sent by the client's reconnect thread when it gives up: the actor crashes on it."""

    reason: str


class XenstoreActor(Actor):
    """See the module docstring. Arguments are those of `XenstoreClient`."""

    def __init__(
        self,
        path: str | None = None,
        *,
        xenbus: bool = False,
        timeout: float = 5.0,
        reconnect: RetryPolicy = ACTOR_RECONNECT,
    ) -> None:
        super().__init__()
        self._client_args: dict[str, Any] = {
            "xenbus": xenbus, "timeout": timeout, "reconnect": reconnect,
        }
        self._path = path
        self._watches: dict[tuple[str, str], str] = {}
        self._client: XenstoreClient | None = None

    def on_start(self) -> None:
        ref = self.actor_ref
        client = XenstoreClient(self._path, on_failed=lambda e: _tell_failed(ref, e),
                                name=self.name.strip("/").replace("/", "-") or "xenstore",
                                **self._client_args)
        saved = self.resume_snapshot or {}
        try:
            for path, token, target in saved.get("watches", ()):
                client.watch(path, token, target)  # registered when the client connects
                self._watches[(path, token)] = target
            client.connect()
        except BaseException:
            client.close()
            raise
        self._client = client

    def on_stop(self) -> None:
        self._close()

    def on_failure(self, *_exc: object) -> None:
        """Close the client (its connection and reader thread); the same after a kill."""
        self._close()

    on_killed = on_failure

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()

    def published(self) -> XenstoreClient | None:
        """The client, for ``actors.service(name, XenstoreClient)``."""
        return self._client

    def snapshot(self) -> dict[str, Any]:
        return {"watches": [[p, t, target] for (p, t), target in sorted(self._watches.items())]}

    @property
    def client(self) -> XenstoreClient:
        assert self._client is not None, "the client exists once on_start has run"
        return self._client

    @handles(GetClient)
    def _get_client(self, _msg: GetClient) -> XenstoreClient:
        return self.client

    @handles(AddWatch)
    def _add_watch(self, msg: AddWatch) -> None:
        self.client.watch(msg.path, msg.token, msg.target)
        self._watches[(msg.path, msg.token)] = msg.target
        self.save_snapshot()

    @handles(RemoveWatch)
    def _remove_watch(self, msg: RemoveWatch) -> None:
        self.client.unwatch(msg.path, msg.token)
        if self._watches.pop((msg.path, msg.token), None) is not None:
            self.save_snapshot()

    @handles(ConnectionFailed)
    def _connection_failed(self, msg: ConnectionFailed) -> None:
        raise XenstoreUnavailable(msg.reason)


def _tell_failed(ref: pykka.ActorRef[Any], error: XenstoreUnavailable) -> None:
    try:
        ref.tell(ConnectionFailed(str(error)))
    except pykka.ActorDeadError:
        logger.info("xenstore client gave up after its actor stopped: %s", error)
