"""The storage check: every ``storage_check`` seconds (30, as the original; the first one a
period after the start) the free space of
the storage directory's file system; ``/host`` ``storage_space_low(percent free)`` is sent
when it falls under ``storage_low_percent`` (10 %), once per fall: it is sent again only after
the space went back over the threshold plus 2 points (so a level hovering at the threshold
does not repeat it every 30 s). A file system that cannot be read is logged, not signalled.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from actors import Actor, handles
from xen.xenmgr._messages import Emit
from xen.xenmgr._queue import tell_queue
from xen.xenmgr._settings import ManagerSettings

__all__ = ["StorageWatch", "percent_free", "space_transition"]

logger = logging.getLogger("xenmgr")

HOST = "com.citrix.xenclient.xenmgr.host"
HYSTERESIS = 2


@dataclass(frozen=True, slots=True)
class _Check:
    """Time to look at the free space."""


def percent_free(path: str) -> int:
    """Whole percent of the file system of ``path`` free for unprivileged use (a directory not
    made yet: the file system of its nearest existing parent, where it will be made)."""
    target = os.path.abspath(path)
    while not os.path.exists(target) and os.path.dirname(target) != target:
        target = os.path.dirname(target)
    st = os.statvfs(target)
    return 100 * st.f_bavail // st.f_blocks if st.f_blocks else 0


def space_transition(was_low: bool, percent: int, threshold: int) -> tuple[bool, bool]:
    """(low now, send the signal now) for ``percent`` free (pure; module docstring)."""
    if percent < threshold:
        return True, not was_low
    if was_low and percent < threshold + HYSTERESIS:
        return True, False
    return False, False


class StorageWatch(Actor):
    """See the module docstring."""

    def __init__(self, settings: ManagerSettings) -> None:
        super().__init__()
        self.settings = settings
        self.low = False

    def on_start(self) -> None:
        self.send_every(self.settings.storage_check, _Check())

    @handles(_Check)
    def _check(self, _msg: _Check) -> None:
        try:
            percent = percent_free(self.settings.storage_dir)
        except OSError as exc:
            logger.warning("storage check: %s: %s", self.settings.storage_dir, exc.strerror)
            return
        self.low, send = space_transition(self.low, percent,
                                          self.settings.storage_low_percent)
        if send:
            logger.warning("storage space low: %d%% free on %s", percent,
                           self.settings.storage_dir)
            self.tell_queue(Emit("/host", HOST, "storage_space_low", (percent,)))

    def tell_queue(self, message: Emit) -> None:
        """Hand the signal to the notification queue (best effort, ``_queue.tell_queue``)."""
        tell_queue(self.settings, message)
