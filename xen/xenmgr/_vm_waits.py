"""Waiting for VM state changes without polling: the VM monitors' state notifications, as
xenmgr receives them, wake the waiters.

The notification queue (``_queue``) reports every ``vm:state:<s>`` notification of a VM
monitor to the live service's :class:`StateChanges` (``ManagerBus.states``) after sending its
signals; a waiter (the host shutdown's groups, ``_host_power``) blocks on one condition until
its predicate holds, re-checked at each notification, bounded: at the bound the predicate is
checked one last time.

:meth:`StateChanges.last` is the latest state notified for a VM: a monitor notifies before it
publishes the view that goes with the change, so a waiter woken by ``shutdown`` may still read
the VM's previous view; the notified state tells it the VM has no domain any more.

Failure behaviour: a notification that does not reach us (the queue or the service
restarting, a lost message) only delays the waiter to its bound and the last check; the
predicate itself is what decides.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from xen.xenmgr._states import InternalState

__all__ = ["StateChanges"]


class StateChanges:
    """The latest notified state of each VM, and the condition waiters block on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._last: dict[str, InternalState] = {}

    def changed(self, uuid: str, state: InternalState) -> None:
        """VM ``uuid``'s monitor notified ``state`` (wakes every waiter)."""
        with self._cond:
            self._last[uuid] = state
            self._cond.notify_all()

    def forget(self, uuid: str) -> None:
        """VM ``uuid``'s monitor stopped: its last state is no longer known."""
        with self._cond:
            self._last.pop(uuid, None)
            self._cond.notify_all()

    def last(self, uuid: str) -> InternalState | None:
        """The latest state notified for VM ``uuid`` (None: none since its monitor started)."""
        with self._cond:
            return self._last.get(uuid)

    def wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Block until ``done()`` holds, checked now and at each notification, at most
        ``timeout`` s; then the result of one last check."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return done()
                self._cond.wait(left)
            return True
