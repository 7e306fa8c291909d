"""Recording xenmgr's signals on the bus, for tests: every signal of
``com.citrix.xenclient.xenmgr`` in arrival order, with bounded waits."""

from __future__ import annotations

import threading
import time
from typing import Any

from jeepney.low_level import HeaderFields, Message

from rpc.dbus import BusConnection

XENMGR = "com.citrix.xenclient.xenmgr"


class SignalRecorder:
    """A connection that records xenmgr's signals as ``(member, args)``."""

    def __init__(self, address: str) -> None:
        self.signals: list[tuple[str, tuple[Any, ...]]] = []
        self._cond = threading.Condition()
        self.conn = BusConnection(address, on_signal=self._got)
        self.conn.add_match(f"type='signal',sender='{XENMGR}'")

    def _got(self, msg: Message) -> None:
        member = str(msg.header.fields.get(HeaderFields.member, ""))
        with self._cond:
            self.signals.append((member, tuple(msg.body)))
            self._cond.notify_all()

    def of(self, member: str, uuid: str | None = None) -> list[tuple[Any, ...]]:
        with self._cond:
            return [args for m, args in self.signals
                    if m == member and (uuid is None or (args and args[0] == uuid))]

    def count(self, member: str, uuid: str | None = None) -> int:
        return len(self.of(member, uuid))

    def wait_for(self, member: str, uuid: str | None = None, *, n: int = 1,
                 timeout: float = 10.0) -> list[tuple[Any, ...]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [args for m, args in self.signals
                         if m == member and (uuid is None or (args and args[0] == uuid))]
                if len(found) >= n:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {n} {member} for {uuid} within {timeout} s: "
                                         f"{self.signals[-20:]}")
                self._cond.wait(left)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SignalRecorder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
