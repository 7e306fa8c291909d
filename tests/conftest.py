"""Suite-wide fixtures: every test must leave no actor and no thread behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pykka
import pytest

_GRACE = 3.0


@pytest.fixture(autouse=True)
def _no_leftover_actors_or_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = pykka.ActorRegistry.get_all()
    if leaked:
        pykka.ActorRegistry.stop_all(block=True, timeout=2)
    deadline = time.monotonic() + _GRACE
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    problems = []
    if leaked:
        problems.append(f"actors left running: {[str(r) for r in leaked]}")
    if extra:
        problems.append(f"threads left running: {[t.name for t in extra]}")
    if problems:
        pytest.fail("; ".join(problems))
