"""What the simulated host's socket servers share: sending what a non-blocking socket takes,
and running one server in the foreground until SIGTERM or SIGINT (the ``python -m xen.sim.*``
commands). They claim their socket paths with `supervision.claim_socket_path`.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from typing import Protocol

__all__ = ["send_pending", "serve_in_foreground"]


class _Server(Protocol):
    def start(self) -> None: ...

    def close(self, timeout: float = 5.0) -> None: ...


def send_pending(sock: socket.socket, out: bytearray) -> OSError | None:
    """Send what a non-blocking ``sock`` takes now from the front of ``out``; drop it from
    ``out``. The error if the connection is broken (a full socket buffer is not one)."""
    if not out:
        return None
    try:
        sent = sock.send(out)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as exc:
        return exc
    del out[:sent]
    return None


def serve_in_foreground(server: _Server, what: str, path: str, log: logging.Logger) -> int:
    """Start ``server``, run until SIGTERM/SIGINT, close it. 0, or 1 if it cannot listen."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        server.start()
    except OSError as exc:
        log.error("cannot listen on %s: %s", path, exc)
        return 1
    print(f"{what} listening on {path}", file=sys.stderr, flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.close()
    return 0
