"""Helpers for the tests that run inside the lab's dom0 (tests/xenlab, docs/xenlab.md).

`on_xen` skips a module off Xen (no /dev/xen/privcmd), so the normal suite only collects
them. `run` runs a dom0 command (xl, xenstore-*) and fails naming it; `xl_info` parses
``xl info``; `domain_exists` asks libxl; `wait_for` polls with a bound. `Guest` is a domain
the ``xl_guest`` fixture (conftest.py) started from the lab's PV (`GUEST_CONFIG`) or PVH
(`HVM_GUEST_CONFIG`) guest config.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

__all__ = ["GONE_TIMEOUT", "GUEST_CONFIG", "HAVE_XEN", "HVM_GUEST_CONFIG", "Guest",
           "domain_exists", "on_xen", "run", "wait_for", "xl_info"]

PRIVCMD = "/dev/xen/privcmd"
HAVE_XEN = os.path.exists(PRIVCMD)
GUEST_CONFIG = os.environ.get("OXT_XC_XL_CONFIG", "/xenlab/guest/guest.cfg")
HVM_GUEST_CONFIG = os.environ.get("OXT_XC_XL_HVM_CONFIG", "/xenlab/guest/guest-pvh.cfg")
#: Seconds for a destroyed domain to disappear (xenconsoled must unmap its ring first).
GONE_TIMEOUT = 30.0

on_xen = pytest.mark.skipif(
    not HAVE_XEN, reason=f"not a Xen dom0 ({PRIVCMD} absent): `make xenlab-test` runs these "
                         "inside the QEMU lab")


@dataclass(frozen=True, slots=True)
class Guest:
    """A domain started by ``xl create``: its domid, name and the UUID libxl gave it."""

    domid: int
    name: str
    uuid: uuid.UUID


def run(*argv: str, timeout: float = 60.0) -> str:
    """Run a dom0 command; its stdout. A non-zero exit fails the test, naming the command."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}): "
                             f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def xl_info() -> dict[str, str]:
    """``xl info`` as a dict (its ``key : value`` lines)."""
    out: dict[str, str] = {}
    for line in run("xl", "info").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def domain_exists(domid: int) -> bool:
    """Whether Xen still has the domain, as libxl sees it (dying included)."""
    done = subprocess.run(["xl", "list", str(domid)], capture_output=True, timeout=30,
                          check=False)
    return done.returncode == 0


def wait_for(predicate: Callable[[], object], timeout: float, what: str,
             interval: float = 0.05) -> None:
    """Poll ``predicate`` until truthy, at most ``timeout`` seconds (then fail naming ``what``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)
