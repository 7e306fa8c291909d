"""The dom0 tree's start bounds: workers that connect to the bus get more than OTP's 5 s."""

from __future__ import annotations

from pathlib import Path

from supervision.dom0._config import parse_config
from supervision.dom0._tree import BUS_WORKER_START_TIMEOUT, build_specs


def test_bus_workers_may_take_longer_to_start_than_other_workers(tmp_path: Path) -> None:
    specs = {s.id: s for s in build_specs(parse_config(
        f'[supervisor]\nstate_dir = "{tmp_path}"\n[xenmgr]\nenabled = false\n'))}
    for bus_worker in ("identity", "xenvm-bus"):
        assert specs[bus_worker].effective_start_timeout == BUS_WORKER_START_TIMEOUT > 5.0
    assert specs["control"].effective_start_timeout == 5.0  # a local socket: the default
