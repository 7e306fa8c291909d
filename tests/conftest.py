"""Suite-wide guards: every test must leave no actor and no thread behind, and the run no OS
process (``tests/_procguard.py``: checked after the last test, naming the test)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pykka
import pytest
from hypothesis import HealthCheck, settings

from tests._procguard import ProcessGuard

_GRACE = 3.0

# Hypothesis without per-example deadlines: CI and newcomers run on loaded machines, and a test
# that passes only on a quiet one is a bug (the per-test timeout still bounds every test).
settings.register_profile("oxt", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("oxt")
_GUARD = ProcessGuard()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Note the processes this test started that still run (see tests/_procguard.py)."""
    _GUARD.scan(item.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a process started by a test still runs after every teardown."""
    _GUARD.scan("(session teardown)")
    leaks = _GUARD.leaks()
    if not leaks:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  pid {leak.pid} (from {leak.test}): {leak.cmdline[:200]}" for leak in leaks]
    text = "processes left running by the tests:\n" + "\n".join(lines)
    if reporter is not None:
        reporter.write_sep("=", "leaked processes", red=True)
        reporter.write_line(text)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
