"""The device-model agent (dm-agent) protocol in xenstore: a pure core for both of its sides.

A dm-agent is a daemon in some domain X (dom0, or a stub domain) that starts device models
for other domains when the toolstack asks through xenstore. Everything lives under
``/local/domain/<X>/dm-agent``:

* ``capabilities/<dm>/<device>/depends`` (comma-separated device names that must come with it,
  may be empty) and ``.../target`` (``1`` when the device model serves another domain, the
  only kind we use): what the agent can emulate, published by the agent when it starts. The
  toolstack waits for ``capabilities`` to appear before it asks anything.
* ``dms/<domid>/<dmid>/infos/<device>/type`` = the capability it needs (``drive`` for the
  node ``drive0``), plus the device's own keys (a drive's ``file``, ``media``, ``format``,
  ``index``, ``readonly``; a nic's ``model``, ``mac``, ``bridge``, ``id``, ``name``; ...):
  one device model ``dmid`` of guest ``domid``, written by the toolstack in one transaction.
* ``dms/<domid>/<dmid>/status``: ``running`` once the agent runs it; when it cannot, the agent
  writes ``status`` = ``failed`` and ``error`` = the reason, and the toolstack stops waiting at
  once with that reason.
* ``dms/<domid>/destroy`` = ``1``: the toolstack wants every device model of ``domid`` gone; the
  agent stops them and removes ``dms/<domid>``, whose disappearance the toolstack waits for
  (bounded) at teardown.

Toolstack side: :func:`parse_capabilities` reads what an agent offers, :func:`assign` decides
which agent runs which device (an agent the caller prefers first, e.g. the stub domain's)
and fails with :class:`DmAgentError` naming every device no agent offers, before anything is
written; :func:`plan_dm_start` is the transaction and the bounded waits; :func:`dm_stop_steps`
the stop request and its wait. Agent side: :func:`capability_writes` and
:func:`read_request` / :class:`AgentRequest` (what was asked and what to do). No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xen.xenops._atomics import (
    Appears,
    Atomic,
    Becomes,
    Disappears,
    Plan,
    Transaction,
    WaitFor,
    Write,
)
from xen.xenops._layout import domain_path

__all__ = [
    "STATUS_FAILED",
    "STATUS_RUNNING",
    "AgentRequest",
    "Capabilities",
    "Capability",
    "DmAgentError",
    "DmAssignment",
    "DmDevice",
    "agent_path",
    "assign",
    "capabilities_path",
    "capability_writes",
    "dm_path",
    "dm_stop_steps",
    "dms_path",
    "parse_capabilities",
    "plan_dm_start",
    "read_request",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

STATUS_RUNNING = "running"
STATUS_FAILED = "failed"


class DmAgentError(ValueError):
    """A device-model request no agent can serve, or a malformed agent answer."""


def agent_path(agent: int) -> str:
    """``/local/domain/<agent>/dm-agent``."""
    return f"{domain_path(agent)}/dm-agent"


def capabilities_path(agent: int) -> str:
    """Where agent ``agent`` publishes its capabilities."""
    return f"{agent_path(agent)}/capabilities"


def dms_path(agent: int, domid: int) -> str:
    """The device models agent ``agent`` runs for ``domid``."""
    return f"{agent_path(agent)}/dms/{domid}"


def dm_path(agent: int, domid: int, dmid: int) -> str:
    """One device model ``dmid`` of ``domid`` on agent ``agent``."""
    return f"{dms_path(agent, domid)}/{dmid}"


@dataclass(frozen=True, slots=True)
class Capability:
    """One device an agent emulates: the device model kind, its dependencies."""

    dm: str
    device: str
    depends: tuple[str, ...] = ()
    target: bool = True


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What agent ``agent`` offers, by device name."""

    agent: int
    devices: Mapping[str, Capability]


@dataclass(frozen=True, slots=True)
class DmDevice:
    """A device asked of a device model: its node name under ``infos``, its keys (name,
    value) and the capability it needs (``kind``; "" = the name without trailing digits, so
    ``drive0`` and ``drive1`` need ``drive``)."""

    name: str
    keys: tuple[tuple[str, str], ...] = ()
    kind: str = ""

    @property
    def capability(self) -> str:
        """The device name an agent must offer."""
        return self.kind or self.name.rstrip("0123456789") or self.name


@dataclass(frozen=True, slots=True)
class DmAssignment:
    """Device model ``dmid`` of kind ``dm`` on agent ``agent`` with these devices."""

    agent: int
    dm: str
    dmid: int
    devices: tuple[DmDevice, ...]


def parse_capabilities(agent: int, tree: Mapping[str, Mapping[str, Mapping[str, str]]]
                       ) -> Capabilities:
    """``tree`` = {dm: {device: {"depends": "a,b", "target": "1"}}} as read from xenstore.
    A device offered by two device models keeps the first in name order."""
    devices: dict[str, Capability] = {}
    for dm in sorted(tree):
        for device in sorted(tree[dm]):
            keys = tree[dm][device]
            depends = tuple(d for d in (keys.get("depends") or "").split(",") if d)
            if device not in devices:
                devices[device] = Capability(dm, device, depends,
                                             keys.get("target", "1") not in ("0", "false"))
    return Capabilities(agent, devices)


def capability_writes(agent: int, offered: Sequence[Capability]) -> tuple[Write, ...]:
    """The nodes an agent writes to publish ``offered`` (the agent side)."""
    base = capabilities_path(agent)
    writes: list[Write] = []
    for cap in offered:
        node = f"{base}/{cap.dm}/{cap.device}"
        writes += [Write(f"{node}/depends", ",".join(cap.depends)),
                   Write(f"{node}/target", "1" if cap.target else "0")]
    return tuple(writes)


def assign(devices: Sequence[DmDevice], agents: Sequence[Capabilities]) -> tuple[DmAssignment, ...]:
    """Which agent runs which device: the first agent of ``agents`` that offers a device (put
    the preferred one first); one device model per (agent, kind), numbered from 0 in order.
    A dependency not asked for is added (with no keys). `DmAgentError` names every device no
    agent offers, and nothing is assigned."""
    wanted = list(devices)
    kinds = {d.capability for d in wanted}
    for dev in list(wanted):
        for agent in agents:
            cap = agent.devices.get(dev.capability)
            if cap is not None:
                for dep in cap.depends:
                    if dep not in kinds:
                        kinds.add(dep)
                        wanted.append(DmDevice(dep))
                break
    missing = sorted({d.capability for d in wanted
                      if not any(d.capability in a.devices for a in agents)})
    if missing:
        offered = ", ".join(f"{a.agent}: {','.join(sorted(a.devices)) or 'nothing'}"
                            for a in agents) or "no agent"
        raise DmAgentError(f"no dm-agent offers {', '.join(missing)} (offered: {offered})")
    groups: dict[tuple[int, str], list[DmDevice]] = {}
    for dev in wanted:
        agent = next(a for a in agents if dev.capability in a.devices)
        groups.setdefault((agent.agent, agent.devices[dev.capability].dm), []).append(dev)
    return tuple(DmAssignment(agent, dm, dmid, tuple(devs))
                 for dmid, ((agent, dm), devs) in enumerate(groups.items()))


def plan_dm_start(domid: int, assignments: Sequence[DmAssignment], timeout: float) -> Plan:
    """One transaction writing every device model's infos, then for each a bounded wait for
    ``status`` = running (an ``error`` node ends the wait at once)."""
    ops: list[Write] = []
    waits: list[Atomic] = []
    for a in assignments:
        base = dm_path(a.agent, domid, a.dmid)
        for dev in a.devices:
            node = f"{base}/infos/{dev.name}"
            ops.append(Write(f"{node}/type", dev.capability))
            ops += [Write(f"{node}/{key}", value) for key, value in dev.keys]
        waits.append(WaitFor(Becomes(f"{base}/status", STATUS_RUNNING), timeout,
                             f"dm-agent {a.agent} to run device model {a.dmid} of {domid}",
                             error=Appears(f"{base}/error")))
    return Plan(f"dm-agent-start {domid}", (Transaction(tuple(ops)), *waits))


def dm_stop_steps(agent: int, domid: int, timeout: float, *,
                  ignore_errors: bool = False) -> tuple[Atomic, ...]:
    """Ask ``agent`` to stop every device model of ``domid`` and wait for ``dms/<domid>``
    to go."""
    dms = dms_path(agent, domid)
    return (Write(f"{dms}/destroy", "1"),
            WaitFor(Disappears(dms), timeout, f"dm-agent {agent} to stop {domid}",
                    ignore_errors=ignore_errors))


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """What the toolstack asked agent ``agent`` about ``domid`` (the agent side).

    ``models``: dmid -> (status or None, devices); ``destroy``: the stop request."""

    agent: int
    domid: int
    models: Mapping[int, tuple[str | None, tuple[DmDevice, ...]]]
    destroy: bool

    def to_start(self) -> tuple[int, ...]:
        """The device models that have infos and no status yet (none once destroying)."""
        if self.destroy:
            return ()
        return tuple(dmid for dmid, (status, devs) in sorted(self.models.items())
                     if status is None and devs)


def read_request(agent: int, domid: int, tree: Mapping[str, object]) -> AgentRequest:
    """``tree`` is ``dms/<domid>`` read as nested dicts (leaves are strings):
    {"destroy": "1", "0": {"status": ..., "infos": {device: {key: value}}}}. Entries that are
    not device-model numbers are ignored."""
    models: dict[int, tuple[str | None, tuple[DmDevice, ...]]] = {}
    for name, node in tree.items():
        if not name.isdigit() or not isinstance(node, Mapping):
            continue
        status = node.get("status")
        infos = node.get("infos")
        devs: list[DmDevice] = []
        if isinstance(infos, Mapping):
            for dev, keys in sorted(infos.items()):
                if isinstance(keys, Mapping):
                    devs.append(DmDevice(dev, tuple(sorted((k, str(v)) for k, v in keys.items()
                                                           if isinstance(v, str)))))
        models[int(name)] = (status if isinstance(status, str) else None, tuple(devs))
    return AgentRequest(agent, domid, models, tree.get("destroy") == "1")
