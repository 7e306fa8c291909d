"""``[vms] hotplug_timeout``: how long the VM monitors' device plans wait for the hotplug script."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervision.dom0._config import Dom0ConfigError, parse_config
from supervision.dom0._tree import make_env
from xen.xenops import DEFAULT_TIMEOUTS


def test_the_hotplug_timeout_reaches_the_vm_monitors_environment(tmp_path: Path) -> None:
    cfg = parse_config(f'[supervisor]\nstate_dir = "{tmp_path}"\n[vms]\nhotplug_timeout = 60\n')
    env = make_env(cfg)
    assert env.timeouts.hotplug == 60.0
    assert env.timeouts.device_close == DEFAULT_TIMEOUTS.device_close  # the rest unchanged


def test_the_default_is_xenops_default(tmp_path: Path) -> None:
    cfg = parse_config(f'[supervisor]\nstate_dir = "{tmp_path}"\n')
    assert make_env(cfg).timeouts == DEFAULT_TIMEOUTS


@pytest.mark.parametrize("value", ["0", "-1", '"ten"'])
def test_a_bad_hotplug_timeout_is_refused(value: str) -> None:
    with pytest.raises(Dom0ConfigError, match="hotplug_timeout"):
        parse_config(f"[vms]\nhotplug_timeout = {value}\n")
