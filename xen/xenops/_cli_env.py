"""Where the ``xenops`` command finds its hypervisor and xenstored, and the connections to them.

Choice of backend (`choose_target`), first match wins:

1. ``--backend sim|xc`` as given;
2. ``sim`` when ``--hypervisor-socket`` is given;
3. ``sim`` when a simulated host is recorded in the state directory (``--state DIR``, else
   ``$OXT_STATE_DIR``, else ``./state``): ``DIR/simhost.json`` exists (`oxt-simhost` writes it
   once everything accepts connections and removes it on stop);
4. ``xc`` when ``/dev/xen/privcmd`` exists (a real dom0);
5. otherwise an error saying what was looked for.

Sockets: the sim hypervisor's is ``--hypervisor-socket``, else the one ``simhost.json`` names,
else ``DIR/hypervisor/socket`` if it exists. Xenstored's is ``--xenstore-socket``, else
``$XENSTORED_PATH``, else (sim) the one ``simhost.json`` names, else the client's default
(``/var/run/xenstored/socket``).

`Session` opens each connection on first use only (``list`` never touches xenstored) and
closes both at the end. Failures are `CliError` (exit 1) or `UsageError` (exit 2) with a
message naming what was wrong; connecting to xenstored is retried briefly (about 1 s), never
the 30 s of the toolstack's default policy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xen.xenops._executor import HostActions, PlanExecutor

if TYPE_CHECKING:
    from xen.hypervisor import Hypervisor
    from xen.xenstore import XenstoreClient

__all__ = ["PRIVCMD", "CliError", "Session", "Target", "UsageError", "choose_target"]

PRIVCMD = "/dev/xen/privcmd"


class CliError(Exception):
    """A failure reported as ``error: <message>`` with exit status 1."""


class UsageError(CliError):
    """A bad command line, reported with exit status 2."""


@dataclass(frozen=True, slots=True)
class Target:
    """The chosen backend and sockets, and why (``reason``, shown by ``--debug``)."""

    backend: str
    state_dir: Path
    hypervisor_socket: str | None
    xenstore_socket: str | None
    reason: str


def _simhost_info(state_dir: Path) -> dict[str, object] | None:
    try:
        doc = json.loads((state_dir / "simhost.json").read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def choose_target(backend: str | None, state: str | None, hypervisor_socket: str | None,
                  xenstore_socket: str | None, environ: Mapping[str, str] | None = None,
                  privcmd: str = PRIVCMD) -> Target:
    """The backend and sockets to use (see the module docstring)."""
    env = os.environ if environ is None else environ
    state_dir = Path(state or env.get("OXT_STATE_DIR") or "state")
    info = _simhost_info(state_dir)
    if backend is not None:
        if backend not in ("sim", "xc"):
            raise UsageError(f"unknown backend {backend!r} (expected sim or xc)")
        reason = "--backend"
    elif hypervisor_socket is not None:
        backend, reason = "sim", "--hypervisor-socket"
    elif info is not None:
        backend, reason = "sim", f"simulated host recorded in {state_dir / 'simhost.json'}"
    elif os.path.exists(privcmd):
        backend, reason = "xc", f"{privcmd} exists"
    else:
        raise CliError(f"no hypervisor found: no simulated host recorded in "
                       f"{state_dir / 'simhost.json'} and no {privcmd}; start one with "
                       f"`oxt-simhost --state DIR` (then --state DIR or $OXT_STATE_DIR), or "
                       f"give --backend / --hypervisor-socket")
    hv_socket = hypervisor_socket
    if backend == "sim" and hv_socket is None:
        recorded = info.get("hypervisor_socket") if info is not None else None
        default = state_dir / "hypervisor" / "socket"
        if isinstance(recorded, str):
            hv_socket = recorded
        elif default.exists():
            hv_socket = str(default)
        else:
            raise CliError(f"the sim backend needs the simulated hypervisor's socket: none is "
                           f"recorded in {state_dir / 'simhost.json'} and {default} does not "
                           f"exist (give --hypervisor-socket or --state)")
    xs_socket = xenstore_socket or env.get("XENSTORED_PATH") or None
    if xs_socket is None and backend == "sim" and info is not None:
        recorded = info.get("xenstored_socket")
        xs_socket = recorded if isinstance(recorded, str) else None
    return Target(backend, state_dir, hv_socket, xs_socket, reason)


class Session:
    """The connections of one command (see the module docstring)."""

    def __init__(self, target: Target, timeout: float = 5.0) -> None:
        self.target = target
        self.timeout = timeout
        self._hv: Hypervisor | None = None
        self._xs: XenstoreClient | None = None
        self._host: HostActions | None = None

    @property
    def sim(self) -> bool:
        return self.target.backend == "sim"

    def hv(self) -> Hypervisor:
        """The hypervisor backend (opened on first use)."""
        if self._hv is None:
            from xen.xenops._platform import open_backend

            self._hv = open_backend(self.target.backend,
                                    socket_path=self.target.hypervisor_socket,
                                    timeout=self.timeout)
        return self._hv

    def xs(self) -> XenstoreClient:
        """A connected xenstore client (opened on first use)."""
        if self._xs is None:
            from xen.xenstore import RetryPolicy, XenstoreClient, XenstoreConnectionError

            client = XenstoreClient(self.target.xenstore_socket, timeout=self.timeout,
                                    reconnect=RetryPolicy(attempts=4, max_time=1.0),
                                    name="xenops-cli")
            try:
                client.connect()
            except XenstoreConnectionError as exc:
                where = self.target.xenstore_socket or "the default xenstored socket"
                raise CliError(f"cannot reach xenstored at {where}: {exc}") from exc
            self._xs = client
        return self._xs

    def host(self) -> HostActions:
        """Host actions: the simulated host's stand-ins, or a dom0's real ones."""
        if self._host is None:
            from xen.xenops._host import Dom0HostActions, SimHostActions

            self._host = (SimHostActions(xenstore_path=self.target.xenstore_socket,
                                         hypervisor_path=self.target.hypervisor_socket)
                          if self.sim else Dom0HostActions())
        return self._host

    def executor(self) -> PlanExecutor:
        """A plan executor over both connections and the host actions."""
        return PlanExecutor(self.hv(), self.xs(), self.host(), poll=0.02)

    def close(self) -> None:
        """Close whatever was opened."""
        if self._xs is not None:
            self._xs.close()
            self._xs = None
        if self._hv is not None:
            self._hv.close()
            self._hv = None
