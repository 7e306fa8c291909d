"""Fixtures for the tests that run inside the lab's dom0 (tests/xenlab, docs/xenlab.md).

``xc`` is an `XcBackend` (closed at teardown). ``xl_guest(config=GUEST_CONFIG)`` starts the
lab's PV guest (or the PVH one) with ``xl create -p -e`` (paused, no xl daemon) under a unique
name and returns its `Guest`; at teardown a guest still there is destroyed through libxl
(``xl destroy``), the fixture waits until Xen has let it go and removes what libxl leaves in
xenstore when someone else destroyed the domain, so the next test starts on a host holding
only dom0. Both are only used on Xen (the test modules skip themselves elsewhere).
"""

from __future__ import annotations

import functools
import itertools
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.xenlab.dom0 import GONE_TIMEOUT, GUEST_CONFIG, Guest, domain_exists, run, wait_for
from xen.xc import XcBackend

_names = itertools.count(1)


def domain_gone(domid: int) -> bool:
    return not domain_exists(domid)


@pytest.fixture
def xc() -> Iterator[XcBackend]:
    backend = XcBackend()
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def xl_guest() -> Iterator[Callable[..., Guest]]:
    started: list[Guest] = []

    def start(config: str = GUEST_CONFIG) -> Guest:
        name = f"oxt-lab-{os.getpid()}-{next(_names)}"
        run("xl", "create", "-p", "-e", config, f'name="{name}"', timeout=120)
        domid = int(run("xl", "domid", name).strip())
        vm_path = run("xenstore-read", f"/local/domain/{domid}/vm").strip()
        guest = Guest(domid, name, uuid.UUID(vm_path.rsplit("/", 1)[-1]))
        started.append(guest)
        return guest

    yield start
    for guest in started:
        if domain_exists(guest.domid):
            subprocess.run(["xl", "destroy", str(guest.domid)], capture_output=True,
                           timeout=60, check=False)
        wait_for(functools.partial(domain_gone, guest.domid), GONE_TIMEOUT,
                 f"domain {guest.domid} gone after the test")
        for path in (f"/local/domain/{guest.domid}", f"/vm/{guest.uuid}",
                     f"/libxl/{guest.domid}"):
            subprocess.run(["xenstore-rm", path], capture_output=True, timeout=30, check=False)
