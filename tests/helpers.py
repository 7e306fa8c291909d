"""Helpers shared by tests: bounded waiting instead of sleeps."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.002) -> T:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes (then fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


def run_as_nobody(task: Callable[[], str]) -> str:
    """Run ``task`` in a forked child that dropped to uid/gid 65534; return what it returned.

    For tests of callers that are neither root nor registered: the bus sees the child's uid.
    Anything the child raises comes back as ``CHILD FAILED <repr>``.
    """
    import os

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, run, report, exit without cleanup
        try:
            os.close(read_fd)
            os.setgid(65534)
            os.setuid(65534)
            out = task()
        except BaseException as exc:
            out = f"CHILD FAILED {exc!r}"
        os.write(write_fd, out.encode())
        os._exit(0)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 4096):
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 60.0) -> None:
    """SIGTERM ``proc`` if it still runs and wait up to ``timeout`` s, then SIGKILL it."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
