"""Where the proxy listens and where it forwards: unix, tcp and Argo (real or simulated).

Incoming (:func:`open_listener`):

* ``unix:PATH``: a stream socket at PATH (a stale socket file is replaced; a live one or a
  non-socket is refused). Peers are domain 0.
* ``tcp:PORT`` / ``tcp:HOST:PORT``: IPv4, loopback unless a host is given. Peers are domain 0.
* ``argo:PORT``: on the simulated host (``argo_dir`` given: the stand-in's directory, see
  ``_argo_sim``) the listener binds the stand-in's listen socket and each accepted stream comes
  with the peer's domid, told by the stand-in as the Argo kernel tells it. Without ``argo_dir``
  real Argo is needed: without the kernel module (``/dev/argo_stream``) the error says so.
* ``serial:``: not supported (the original served one conversation on a character device).

A listener's :meth:`Listener.accept` waits at most its timeout and returns ``None`` then;
:meth:`Listener.close` wakes a waiting accept. An accepted stream whose hand-over is malformed
is closed and reported as :class:`TransportError` (the accept loop logs it and goes on).

Outgoing (:func:`connect_outgoing`): ``unix:PATH`` (the bus), ``argo-domid:PORT:DOMID`` and
``argo-uuid:PORT:UUID`` (the domid from a :class:`DomainDirectory`) through the stand-in.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from typing import Protocol

from rpc.proxy._argo_sim import (
    ARGO_HEADER_SIZE,
    ARGO_MAX_LINE,
    ArgoSimError,
    argo_connect_line,
    argo_listen_path,
    argo_standin_path,
    decode_argo_header,
    parse_argo_answer,
)
from rpc.proxy._options import Channel
from supervision import bound_inode, claim_socket_path, remove_if_bound

__all__ = ["ARGO_DEVICE", "Accepted", "DomainDirectory", "Listener", "TransportError",
           "argo_connect", "connect_outgoing", "open_listener"]

#: The device the OpenXT Argo kernel module provides for stream sockets.
ARGO_DEVICE = "/dev/argo_stream"
_BACKLOG = 64


class TransportError(OSError):
    """A listener or connection that cannot be set up (the message says why)."""


class DomainDirectory(Protocol):
    """What the proxy needs to know about domains (xenstore on dom0; provided by the root)."""

    def vm_uuid(self, domid: int) -> str | None:
        """The VM uuid of a running domain (``/local/domain/<domid>/vm`` -> ``<vm>/uuid``)."""

    def is_stubdom(self, domid: int) -> bool:
        """Whether the domain is a stubdomain (``/local/domain/<domid>/target`` exists)."""

    def domid_of(self, uuid: str) -> int | None:
        """The domid of the running VM ``uuid`` (``/xenmgr/vms/<uuid>/domid``), or None."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """An accepted client stream and the domain it comes from (by the transport)."""

    sock: socket.socket
    domid: int
    peer: str


class Listener:
    """A listening socket of one of the incoming channel kinds (see the module docstring)."""

    def __init__(self, sock: socket.socket, description: str, *, argo: bool = False,
                 path: str | None = None) -> None:
        self._sock = sock
        self.description = description
        self._argo = argo
        self._path = path
        self._inode = bound_inode(path) if path is not None else None  # see close()
        self._closed = False

    @property
    def address(self) -> str:
        """Where it listens (a path or ``host:port``)."""
        if self._path is not None:
            return self._path
        host, port = self._sock.getsockname()[:2]
        return f"{host}:{port}"

    def accept(self, timeout: float) -> Accepted | None:
        """The next client, or None after ``timeout`` s or once closed.

        Raises :class:`TransportError` for a stream whose hand-over was malformed (closed).
        """
        if self._closed:
            return None
        self._sock.settimeout(timeout)
        try:
            conn, addr = self._sock.accept()
        except TimeoutError:
            return None
        except OSError as exc:
            if self._closed or exc.errno in (errno.EINVAL, errno.EBADF):
                return None
            raise TransportError(exc.errno, f"accept on {self.description}: {exc}") from exc
        if self._argo:
            return self._handover(conn)
        conn.settimeout(None)
        if conn.family == socket.AF_INET:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return Accepted(conn, 0, f"tcp {addr[0]}:{addr[1]}")
        return Accepted(conn, 0, f"unix {self.description}")

    def _handover(self, conn: socket.socket) -> Accepted:
        """Receive the guest's stream and its peer header from the stand-in."""
        try:
            conn.settimeout(2.0)
            data, fds, _flags, _addr = socket.recv_fds(conn, ARGO_HEADER_SIZE, 1)
        except OSError as exc:
            conn.close()
            raise TransportError(errno.EPROTO, f"Argo hand-over failed: {exc}") from exc
        conn.close()
        try:
            peer = decode_argo_header(data)
            if len(fds) != 1:
                raise ArgoSimError(f"{len(fds)} file descriptors handed over, expected 1")
        except ArgoSimError as exc:
            for fd in fds:
                os.close(fd)
            raise TransportError(errno.EPROTO, f"Argo hand-over: {exc}") from exc
        stream = socket.socket(fileno=fds[0])
        stream.settimeout(None)
        return Accepted(stream, peer.domid, f"argo dom{peer.domid}:{peer.port}")

    def close(self) -> None:
        """Stop listening (wakes a waiting accept) and remove a unix socket file, if it is
        still the one bound here (a later listener may have bound the same path)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if self._path is not None:
            remove_if_bound(self._path, self._inode)


def _claim(path: str) -> None:
    """Make ``path`` free for bind: a stale socket is removed, a live one or a file refused."""
    try:
        claim_socket_path(path)
    except OSError as exc:
        raise TransportError(exc.errno, exc.strerror or str(exc)) from None


def _unix_listener(path: str, description: str, *, argo: bool = False) -> Listener:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _claim(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise TransportError(exc.errno, f"cannot listen on {description}: {exc}") from exc
    return Listener(sock, description, argo=argo, path=path)


def open_listener(channel: Channel, *, argo_dir: str | None = None) -> Listener:
    """Listen on an incoming channel (see the module docstring). Raises TransportError."""
    if channel.kind == "unix":
        return _unix_listener(channel.path, str(channel))
    if channel.kind == "tcp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((channel.host, channel.port))
            sock.listen(_BACKLOG)
        except OSError as exc:
            sock.close()
            raise TransportError(exc.errno, f"cannot listen on {channel}: {exc}") from exc
        return Listener(sock, str(channel))
    if channel.kind == "argo":
        if argo_dir is not None:
            return _unix_listener(argo_listen_path(argo_dir, 0, channel.port),
                                  f"{channel} (simulated)", argo=True)
        if not os.path.exists(ARGO_DEVICE):
            raise TransportError(errno.ENODEV, f"{channel} needs the Argo kernel module "
                                 f"({ARGO_DEVICE} is missing); on the simulated host give the "
                                 f"stand-in's directory (OXT_ARGO_SIM)")
        raise TransportError(errno.ENOSYS, f"{channel}: real Argo sockets are not supported "
                             f"yet (only the simulated host's stand-in)")
    raise TransportError(errno.ENOSYS, f"incoming channel {channel} is not supported")


def argo_connect(argo_dir: str, src_domid: int, dst_domid: int, port: int,
                 timeout: float = 5.0) -> socket.socket:
    """Connect as domain ``src_domid`` to ``dst_domid``'s ``port`` through the stand-in.

    Returns the stream (talking to the listener). Raises :class:`TransportError` with the
    stand-in's reason (no such domain, nobody listens) or the socket error.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(argo_standin_path(argo_dir))
        sock.sendall(argo_connect_line(src_domid, dst_domid, port))
        line = bytearray()
        while not line.endswith(b"\n"):
            byte = sock.recv(1)
            if not byte or len(line) > ARGO_MAX_LINE:
                raise TransportError(errno.ECONNRESET, "the Argo stand-in closed the stream")
            line += byte
        reason = parse_argo_answer(bytes(line))
    except (OSError, ArgoSimError) as exc:
        sock.close()
        if isinstance(exc, TransportError):
            raise
        raise TransportError(errno.ECONNREFUSED, f"argo connect to dom{dst_domid}:{port}: "
                             f"{exc}") from exc
    if reason is not None:
        sock.close()
        raise TransportError(errno.ECONNREFUSED, f"argo connect to dom{dst_domid}:{port}: "
                             f"{reason}")
    sock.settimeout(None)
    return sock


def connect_outgoing(channel: Channel, *, argo_dir: str | None = None,
                     domains: DomainDirectory | None = None,
                     timeout: float = 5.0) -> socket.socket:
    """Connect to an outgoing channel (the bus). Raises :class:`TransportError`."""
    if channel.kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(channel.path)
        except OSError as exc:
            sock.close()
            raise TransportError(exc.errno, f"cannot connect to {channel}: {exc}") from exc
        sock.settimeout(None)
        return sock
    if channel.kind in ("argo-domid", "argo-uuid"):
        domid = channel.domid
        if channel.kind == "argo-uuid":
            found = domains.domid_of(channel.uuid) if domains is not None else None
            if found is None:
                raise TransportError(errno.ENOENT, f"no domain with uuid {channel.uuid}")
            domid = found
        if argo_dir is None:
            raise TransportError(errno.ENODEV, f"{channel} needs the Argo kernel module "
                                 f"({ARGO_DEVICE}) or the simulated host's stand-in")
        return argo_connect(argo_dir, 0, domid, channel.port, timeout)
    raise TransportError(errno.ENOSYS, f"outgoing channel {channel} is not supported")

