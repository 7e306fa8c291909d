"""Fixtures for integration tests: a real dbus-daemon for the whole run."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpc.dbus import start_bus


@pytest.fixture(scope="session")
def bus_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a private dbus-daemon started for this test run."""
    directory: Path = tmp_path_factory.mktemp("bus")
    proc, address = start_bus(directory, own_prefixes=("org.openxt", "com.citrix.xenclient",
                                                       "org.xen.vm", "org.test"))
    try:
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()
