"""rpc-proxy instances in the dom0 application: the xenstore domain directory, the ``[[proxy]]``
entries of ``oxt-supervisor``, and the ``rpc-proxy`` console script.

* :class:`XenstoreDomains` is the proxy's :class:`~rpc.proxy.DomainDirectory` on xenstore:
  a domain's VM uuid is ``/local/domain/<domid>/vm`` -> ``<that>/uuid``, it is a stubdomain
  when ``/local/domain/<domid>/target`` exists, and a VM's domid is
  ``/xenmgr/vms/<uuid>/domid`` (as the original read them). A xenstore that does not answer
  raises (the proxy logs it and treats the domain as having no uuid).
* :func:`proxy_specs`: one supervised instance per ``[[proxy]]`` entry, under a ``proxies``
  supervisor (one_for_one), on the tree's bus (an entry without ``-o`` forwards to it),
  identities registered in the process-wide registry that dbd and the identity service use.
* :func:`main`: ``rpc-proxy [OPTION...]``, the original's command line (``rpc.proxy``'s
  options), plus ``--check-rules FILE``. It runs one instance on the shared daemon runner:
  SIGTERM stops it in order, SIGHUP drops the rules caches, exit 1 when it gives up. Identities
  go to the bus identity service (``org.openxt.toolstack.identity``), which must be running.
  ``argo:`` channels use the simulated host's Argo stand-in when ``$OXT_ARGO_SIM`` names its
  directory. Exit status 2 for a bad command line.

JSON and WebSocket clients (``--json-in``, ``--websockets-in``) and a JSON outgoing side
(``--json-out``) are served (docs/rpc-proxy.md, "JSON and WebSocket").
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpc.proxy import (
    DEFAULT_OUTGOING,
    USAGE,
    Channel,
    OptionsError,
    ProxyOptions,
    Reload,
    check_rules_text,
    parse_channel,
    parse_options,
    proxy_instance_spec,
)
from supervision import (
    Backoff,
    ChildKind,
    ChildSpec,
    DaemonConfig,
    Started,
    Strategy,
    Supervisor,
    SupFlags,
    run_daemon,
    start_actor,
)

if TYPE_CHECKING:
    from xen.xenstore import XenstoreClient

__all__ = ["ARGO_SIM_ENV", "XenstoreDomains", "main", "proxy_specs"]

log = logging.getLogger("rpc-proxy")

ARGO_SIM_ENV = "OXT_ARGO_SIM"
_IDENTS = (("rpc", "rpc-proxy"), ("supervision", "rpc-proxy"), ("actors", "rpc-proxy"))


class XenstoreDomains:
    """The proxy's domain directory on xenstore (see the module docstring)."""

    def __init__(self, client: Callable[[], XenstoreClient]) -> None:
        self._client = client

    def vm_uuid(self, domid: int) -> str | None:
        """The VM uuid of ``domid``, or None."""
        xs = self._client()
        vm = xs.try_read(f"/local/domain/{domid}/vm")
        if not vm:
            return None
        return xs.try_read(f"{vm}/uuid") or None

    def is_stubdom(self, domid: int) -> bool:
        """Whether ``domid`` serves another domain (``target`` exists)."""
        return self._client().exists(f"/local/domain/{domid}/target")

    def domid_of(self, uuid: str) -> int | None:
        """The domid of the running VM ``uuid``, or None."""
        text = self._client().try_read(f"/xenmgr/vms/{uuid}/domid")
        return int(text) if text and text.isdigit() else None


def forwarding_to(options: ProxyOptions, address: str) -> ProxyOptions:
    """``options`` forwarding to the bus at ``address`` unless ``-o`` named another channel."""
    from rpc.dbus import socket_path
    if options.outgoing != parse_channel(DEFAULT_OUTGOING, outgoing=True):
        return options
    return dataclasses.replace(options, outgoing=Channel("unix", path=socket_path(address)))


def proxy_specs(entries: Sequence[Sequence[str]], address: str, *,
                xenstore: Callable[[], XenstoreClient] | None,
                argo_dir: str | None = None) -> ChildSpec:
    """The ``proxies`` supervisor of the tree: one instance per entry (``[[proxy]]`` args).

    Raises :class:`~rpc.proxy.OptionsError` for an entry that does not parse.
    """
    children = []
    for n, argv in enumerate(entries):
        options = forwarding_to(parse_options(argv), address)
        domains = XenstoreDomains(xenstore) if xenstore is not None else None
        children.append(proxy_instance_spec(
            f"proxy{n}", options, address, domains=domains, argo_dir=argo_dir,
            supervisor_path=f"/proxies/proxy{n}"))
    flags = SupFlags(Strategy.ONE_FOR_ONE, intensity=10, period=30.0, backoff=Backoff(0.1, 5.0))
    return ChildSpec("proxies", start_actor(Supervisor, flags, children),
                     kind=ChildKind.SUPERVISOR, shutdown=60.0)


def _xenstore_client() -> Callable[[], XenstoreClient]:
    from xen.xenstore import XenstoreClient
    client: list[XenstoreClient] = []

    def get() -> XenstoreClient:
        if not client:
            client.append(XenstoreClient(os.environ.get("XENSTORED_PATH")).connect())
        return client[0]
    return get


def main(argv: Sequence[str] | None = None) -> int:
    """The ``rpc-proxy`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        options = parse_options(args)
    except OptionsError as exc:
        sys.stderr.write(f"rpc-proxy: {exc}\n{USAGE}")
        return 2
    if options.help:
        sys.stdout.write(USAGE)
        return 0
    if options.check_rules is not None:
        return _check_rules(options.check_rules)
    from rpc.dbus import resolve_address
    if options.outgoing.kind == "unix":
        address = f"unix:path={os.path.abspath(options.outgoing.path)}"
    else:
        address = resolve_address(None)
    argo_dir = os.environ.get(ARGO_SIM_ENV) or None
    xenstore = _xenstore_client() if options.firewall else None
    spec = proxy_instance_spec(
        "proxy", options, address, argo_dir=argo_dir, local_identity=False,
        domains=XenstoreDomains(xenstore) if xenstore is not None else None,
        supervisor_path="/proxy")

    def start(on_escalate: Callable[[Any], None]) -> Started:
        flags = SupFlags(Strategy.ONE_FOR_ONE, intensity=5, period=30.0,
                         backoff=Backoff(0.1, 5.0))
        root = Supervisor.start_root(flags, [spec], on_escalate=on_escalate)
        return Started(root, {"incoming": str(options.incoming),
                              "outgoing": str(options.outgoing)})

    def reload() -> None:
        from actors import tell
        tell("/proxy/policy", Reload())

    level = "debug" if options.verbose else "info"
    config = DaemonConfig(name="rpc-proxy", idents=_IDENTS, log_level=level, stop_timeout=30.0)
    return run_daemon(config, start, reload=reload)


def _check_rules(path: str) -> int:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        sys.stderr.write(f"rpc-proxy: cannot read {path}: {exc}\n")
        return 1
    ok, out = check_rules_text(text, source=path)
    (sys.stdout if ok else sys.stderr).write(out if out.endswith("\n") or not out
                                             else out + "\n")
    return 0 if ok else 1
