"""One proxy instance as a supervised subtree: policy, clients, listener (and the ``-s`` service).

::

    <instance>   rest_for_one, backoff
    ├── policy     owns the ProxyPolicy (rules, db and xenmgr lookups) and publishes it
    ├── service    com.citrix.xenclient.rpc_proxy (only with -s)
    ├── clients    simple_one_for_one: one temporary ProxyClient per accepted connection
    └── listener   listens on the incoming channel, starts a client per accepted stream

A client is a ``ProxyClient``, or with ``--json-in`` / ``--websockets-in`` a ``JsonProxyClient``
(the same actor speaking JSON to its client; ``--websockets-in`` implies JSON); with
``--json-out`` its outgoing side speaks JSON (``_jsonout``).

Guarantees: the listener starts last, so no client is accepted before the policy is up. A
listener that cannot listen (socket in use, no Argo) fails its start and is retried with the
instance's backoff; a listener crash restarts only the listener (it listens again; connected
clients keep going). A client crash or end touches no other client (temporary children). A
policy crash restarts the clients and the listener (rest_for_one): their rules and caches
came from it. :class:`Reload` (SIGHUP) drops the policy's rules caches.

The accept loop waits at most 0.5 s per accept so the listener stops promptly; a client the
clients' supervisor cannot start is closed. At most ``max_clients`` clients at once (1024);
more are closed at accept and logged.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass

from actors import Actor, ask, handles, service
from rpc.dbus import CallerIdentity, caller_identity
from rpc.proxy._client import ProxyClient, ProxyContext
from rpc.proxy._jsonclient import JsonProxyClient
from rpc.proxy._jsonout import JsonInOutProxyClient, JsonOutProxyClient
from rpc.proxy._options import ProxyOptions
from rpc.proxy._policy import ProxyPolicy
from rpc.proxy._transports import DomainDirectory, Listener, TransportError, open_listener
from supervision import (
    Backoff,
    ChildKind,
    ChildSpec,
    CountChildren,
    Restart,
    StartChild,
    Strategy,
    Supervisor,
    SupFlags,
    start_actor,
)

__all__ = ["ListenerActor", "PolicyActor", "Reload", "policy_of", "proxy_instance_spec"]

log = logging.getLogger("rpc.proxy")

_ACCEPT_WAIT = 0.5
_ASK_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Reload:
    """Drop the rules caches (SIGHUP); send it to the instance's ``policy`` child."""


class PolicyActor(Actor):
    """Owns and publishes the instance's :class:`ProxyPolicy`."""

    def __init__(self, options: ProxyOptions, address: str,
                 domains: DomainDirectory | None) -> None:
        super().__init__()
        self.policy = ProxyPolicy(options, address, domains=domains)

    def published(self) -> ProxyPolicy:
        """The policy (thread-safe)."""
        return self.policy

    @handles(Reload)
    def _reload(self, _msg: Reload) -> None:
        self.policy.reload()

    def on_stop(self) -> None:
        """Close the policy's bus connection."""
        self.policy.close()

    def on_failure(self, *_exc: object) -> None:
        """Close the policy's bus connection (after a kill too)."""
        self.policy.close()

    on_killed = on_failure


def _sibling(name: str, child: str) -> str:
    return f"{name.rsplit('/', 1)[0]}/{child}"


class ListenerActor(Actor):
    """Listens on the instance's incoming channel (see the module docstring)."""

    def __init__(self, context: ProxyContext, max_clients: int = 1024) -> None:
        super().__init__()
        self.ctx = context
        self.max_clients = max_clients
        self.listener: Listener | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ids = itertools.count(1)

    def on_start(self) -> None:
        """Listen (a failure fails the start: the supervisor retries with backoff)."""
        self.listener = open_listener(self.ctx.options.incoming, argo_dir=self.ctx.argo_dir)
        log.info("rpc-proxy listening on %s", self.listener.description)
        self._thread = threading.Thread(target=self._accept_loop,
                                        name=f"proxy-accept{self.name}", daemon=True)
        self._thread.start()

    @property
    def clients(self) -> str:
        """The name of the clients' supervisor."""
        return _sibling(self.name, "clients")

    def _accept_loop(self) -> None:
        listener = self.listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                accepted = listener.accept(_ACCEPT_WAIT)
            except TransportError as exc:
                log.warning("accept on %s: %s", listener.description, exc)
                continue
            if accepted is None:
                continue
            try:
                count = ask(self.clients, CountChildren(), timeout=_ASK_TIMEOUT)
                if count["active"] >= self.max_clients:
                    raise RuntimeError(f"{count['active']} clients already (the limit)")
                child = f"c{next(self._ids)}"
                ask(self.clients, StartChild(child, (accepted,)), timeout=_ASK_TIMEOUT)
            except Exception as exc:
                log.warning("client %s not started: %s", accepted.peer, exc)
                accepted.sock.close()

    def on_stop(self) -> None:
        """Stop listening and join the accept thread."""
        self._shutdown()

    def on_failure(self, *_exc: object) -> None:
        """Stop listening (after a kill too: a listener left open keeps the next instance from
        starting)."""
        self._shutdown()

    on_killed = on_failure

    def _shutdown(self) -> None:
        self._stopping.set()
        if self.listener is not None:
            self.listener.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(_ACCEPT_WAIT + 2.0)


def proxy_instance_spec(instance_id: str, options: ProxyOptions, address: str, *,
                        domains: DomainDirectory | None = None, argo_dir: str | None = None,
                        local_identity: bool = True, registry: CallerIdentity | None = None,
                        supervisor_path: str = "", max_clients: int = 1024) -> ChildSpec:
    """The subtree of one proxy instance (see the module docstring).

    ``supervisor_path`` is the name the instance will run under (``/proxies/<id>``, or ``/``
    for a root), from which its children's names follow. ``local_identity``: register
    identities in the process-wide registry (in ``oxt-supervisor``), else with the identity
    service on the bus (a standalone ``rpc-proxy``); ``registry`` replaces the process-wide one
    (tests).
    """
    base = supervisor_path.rstrip("/")
    local = (registry or caller_identity) if local_identity else None
    context = ProxyContext(options, address, policy=f"{base}/policy", argo_dir=argo_dir,
                           registry=local)
    json_in = options.json_in or options.websockets_in
    kind: type[ProxyClient] = ((JsonInOutProxyClient if json_in else JsonOutProxyClient)
                               if options.json_out else
                               JsonProxyClient if json_in else ProxyClient)
    client = ChildSpec("client", start_actor(kind, context),
                       restart=Restart.TEMPORARY, shutdown=3.0)
    children = [ChildSpec("policy", start_actor(PolicyActor, options, address, domains))]
    if options.server:
        from rpc.proxy._service import RpcProxyService
        children.append(ChildSpec("service", start_actor(RpcProxyService, address,
                                                         context.policy)))
    children += [
        ChildSpec("clients", start_actor(
            Supervisor, SupFlags(Strategy.SIMPLE_ONE_FOR_ONE, intensity=1_000_000, period=1.0),
            [client]), kind=ChildKind.SUPERVISOR, shutdown=30.0),
        ChildSpec("listener", start_actor(ListenerActor, context, max_clients)),
    ]
    flags = SupFlags(Strategy.REST_FOR_ONE, intensity=10, period=10.0,
                     backoff=Backoff(0.1, 5.0))
    return ChildSpec(instance_id, start_actor(Supervisor, flags, children),
                     kind=ChildKind.SUPERVISOR, shutdown=60.0)


def policy_of(instance_path: str) -> ProxyPolicy:
    """The policy an instance publishes (raises NoSuchActor / ServiceUnavailable)."""
    return service(f"{instance_path.rstrip('/')}/policy", ProxyPolicy)
