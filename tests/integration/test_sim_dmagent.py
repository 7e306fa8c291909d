"""The dm-agent protocol end to end on the simulated host: the toolstack side (``xen.xenops``
plans run by the executor) against the simulated agents (``xen.sim._dmagent``) over the real
xenstored socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from xen.hypervisor import SimBackend
from xen.sim import SimHost
from xen.sim._dmagent import SIM_DEVICES, SimDmAgent
from xen.xenops import (
    DmDevice,
    Plan,
    PlanExecutor,
    PlanFailed,
    assign,
    capabilities_path,
    dm_stop_steps,
    parse_capabilities,
    plan_dm_start,
    read_subtree,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[SimHost, PlanExecutor]]:
    with SimHost(tmp_path / "host") as sim:
        hv = SimBackend(sim.hypervisor_path)
        try:
            yield sim, PlanExecutor(hv, sim.xenstore)
        finally:
            hv.close()


def test_dom0_agent_round_trip(host: tuple[SimHost, Any]) -> None:
    sim, ex = host
    xs = sim.xenstore
    wait_until(lambda: xs.exists(capabilities_path(0)), timeout=5)
    caps = parse_capabilities(0, read_subtree(xs, capabilities_path(0), 3))  # type: ignore[arg-type]
    assert set(caps.devices) == set(SIM_DEVICES)
    xs.write("/local/domain/5/name", "guest")
    devs = [DmDevice("drive0", (("file", "/srv/a.img"),)), DmDevice("net0", (("mac", "m"),))]
    ex.run(plan_dm_start(5, assign(devs, [caps]), 5.0))
    base = "/local/domain/0/dm-agent/dms/5/0"
    assert xs.read(f"{base}/status") == "running"
    assert xs.read(f"{base}/infos/drive0/file") == "/srv/a.img"
    assert xs.read("/local/domain/0/device-model/5/state") == "running"
    ex.run(Plan("dm-stop", dm_stop_steps(0, 5, 5.0)))
    assert not xs.exists("/local/domain/0/dm-agent/dms/5")


def test_a_stub_domain_agent_refuses_another_guest_at_once(host: tuple[SimHost, Any]) -> None:
    sim, ex = host
    xs = sim.xenstore
    agent = SimDmAgent(9, target=3)  # dom0's client stands in for the stub domain here
    agent.step(xs)
    caps = parse_capabilities(9, read_subtree(xs, capabilities_path(9), 3))  # type: ignore[arg-type]
    plan = plan_dm_start(4, assign([DmDevice("svga")], [caps]), 30.0)
    tx, wait = plan.steps
    ex.run(Plan("infos", (tx,)))
    agent.step(xs)
    with pytest.raises(PlanFailed, match="serves domain 3 only"):
        ex.run(Plan("wait", (wait,)))
    assert xs.read("/local/domain/9/dm-agent/dms/4/0/status") == "failed"
