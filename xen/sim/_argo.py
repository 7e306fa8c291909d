"""The Argo stand-in of the simulated host: plays the Argo kernel for guests and listeners.

Protocol in ``rpc.proxy`` (``_argo_sim``): a guest connects to ``<dir>/socket`` and asks
``CONNECT <its domid> <dst domid> <port>``; the stand-in checks that the guest's domain
exists (domain 0 always does), connects to the listener's socket ``<dir>/listen/<dst>.<port>``,
answers ``OK`` and hands the guest's stream over with the peer header (the guest's domid and a
port of its own), as the kernel gives an accepted Argo stream its peer address. Refusals are
answered ``ERR <reason>`` and the stream closed: a malformed request, no such domain, nobody
listening.

One accept thread; each request is read with a bound (1 s) so a silent client cannot hold it
long. :meth:`ArgoStandIn.close` stops the thread (bounded) and removes the socket.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from rpc.proxy import (
    ARGO_MAX_LINE,
    ArgoPeer,
    ArgoSimError,
    encode_argo_header,
    parse_connect_line,
)
from supervision import claim_socket_path

__all__ = ["ArgoStandIn"]

log = logging.getLogger(__name__)

_REQUEST_TIMEOUT = 1.0
_FIRST_PORT = 0x10000  # guests' own ports, as the kernel picks them


class ArgoStandIn:
    """The stand-in at ``directory`` (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str],
                 domain_exists: Callable[[int], bool]) -> None:
        self.directory = Path(directory)
        self.socket_path = str(self.directory / "socket")
        self._domain_exists = domain_exists
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._ports = itertools.count(_FIRST_PORT)

    def start(self) -> ArgoStandIn:
        """Listen and start the accept thread."""
        (self.directory / "listen").mkdir(parents=True, exist_ok=True)
        claim_socket_path(self.socket_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.socket_path)
        sock.listen(64)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="sim-argo", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._closing.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            try:
                self._connect(conn)
            except Exception:
                log.exception("argo stand-in: a connect failed")
            finally:
                conn.close()  # the listener has its own copy now

    def _connect(self, conn: socket.socket) -> None:
        conn.settimeout(_REQUEST_TIMEOUT)
        line = bytearray()
        try:
            while not line.endswith(b"\n") and len(line) <= ARGO_MAX_LINE:
                byte = conn.recv(1)
                if not byte:
                    return
                line += byte
            src, dst, port = parse_connect_line(bytes(line))
        except (OSError, ArgoSimError) as exc:
            self._refuse(conn, str(exc))
            return
        if not self._domain_exists(src):
            self._refuse(conn, f"no domain {src}")
            return
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.settimeout(_REQUEST_TIMEOUT)
            try:
                listener.connect(str(self.directory / "listen" / f"{dst}.{port}"))
            except OSError:
                self._refuse(conn, f"connection refused: nobody listens on dom{dst}:{port}")
                return
            conn.sendall(b"OK\n")
            header = encode_argo_header(ArgoPeer(src, next(self._ports)))
            socket.send_fds(listener, [header], [conn.fileno()])
            log.debug("argo stand-in: dom%d -> dom%d:%d", src, dst, port)
        finally:
            listener.close()

    @staticmethod
    def _refuse(conn: socket.socket, reason: str) -> None:
        log.info("argo stand-in: refused: %s", reason)
        try:
            conn.sendall(f"ERR {reason[:200]}\n".encode())
        except OSError:
            pass

    def close(self, timeout: float = 5.0) -> None:
        """Stop the accept thread (bounded by ``timeout``) and remove the socket."""
        self._closing.set()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError("the Argo stand-in's thread did not stop")
        try:
            os.unlink(self.socket_path)
        except OSError:
            pass
