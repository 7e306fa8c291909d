"""The Argo stand-in's wire format, shared by the simulated host and the proxy (pure).

Real Argo is a Xen hypercall transport: a dom0 listener binds ``(port, any domain)`` and the
kernel gives each accepted stream the peer's ``(domid, port)`` — the trust anchor of the
proxy's caller identity. On the simulated host (``xen.sim``) a stand-in plays the kernel:

1. A listener (the proxy, in domain ``D``, port ``P``) binds the unix socket
   :func:`argo_listen_path` ``(argo_dir, D, P)``.
2. A guest of domain ``N`` connects to the stand-in's socket ``<argo_dir>/socket`` and sends one
   line, ``CONNECT <N> <D> <P>\\n`` (:func:`argo_connect_line`; at most
   :data:`ARGO_MAX_LINE` bytes).
3. The stand-in checks that domain ``N`` exists, connects to the listener's socket, answers the
   guest ``OK\\n`` (or ``ERR <reason>\\n`` and closes: no such domain, nobody listens), and hands
   the guest's socket to the listener with ``SCM_RIGHTS``, together with a :data:`ARGO_HEADER_SIZE`
   byte header carrying ``N`` and the guest's port (:func:`encode_argo_header`). From then on the
   guest and the listener talk directly, as over a real Argo stream.

Guarantees: every parser here is bounded and raises :class:`ArgoSimError` naming what was
wrong; nothing here does I/O.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

__all__ = [
    "ARGO_HEADER_SIZE",
    "ARGO_MAX_LINE",
    "ArgoPeer",
    "ArgoSimError",
    "argo_connect_line",
    "argo_listen_path",
    "argo_standin_path",
    "decode_argo_header",
    "encode_argo_header",
    "parse_argo_answer",
    "parse_connect_line",
]

__pure__ = True

#: The longest request or answer line (``CONNECT 32751 32751 4294967295\n`` is 31 bytes; an
#: error text is cut to fit).
ARGO_MAX_LINE = 256
_MAGIC = b"ARGO"
_HEADER = struct.Struct("!4sHHI")  # magic, version, peer domid, peer port
_VERSION = 1
#: Bytes of the header the stand-in sends with the guest's socket.
ARGO_HEADER_SIZE = _HEADER.size
_MAX_DOMID = 0x7FEF


class ArgoSimError(ValueError):
    """A malformed line or header of the Argo stand-in protocol."""


@dataclass(frozen=True, slots=True)
class ArgoPeer:
    """Who is at the other end of an accepted stream, as the kernel (stand-in) says."""

    domid: int
    port: int


def argo_standin_path(argo_dir: str) -> str:
    """The stand-in's socket, where guests connect."""
    return os.path.join(argo_dir, "socket")


def argo_listen_path(argo_dir: str, domid: int, port: int) -> str:
    """The unix socket a listener of domain ``domid`` on ``port`` binds."""
    return os.path.join(argo_dir, "listen", f"{domid}.{port}")


def _number(text: str, what: str, top: int) -> int:
    if not text.isdigit() or int(text) > top:
        raise ArgoSimError(f"bad {what} {text!r}")
    return int(text)


def argo_connect_line(src_domid: int, dst_domid: int, port: int) -> bytes:
    """The guest's request: connect domain ``src_domid`` to ``dst_domid``'s ``port``."""
    return f"CONNECT {src_domid} {dst_domid} {port}\n".encode()


def parse_connect_line(line: bytes) -> tuple[int, int, int]:
    """``(src domid, dst domid, port)`` of a request line (with or without its newline)."""
    if len(line) > ARGO_MAX_LINE:
        raise ArgoSimError(f"request longer than {ARGO_MAX_LINE} bytes")
    try:
        words = line.decode("ascii").rstrip("\n").split(" ")
    except UnicodeDecodeError:
        raise ArgoSimError("request is not ASCII") from None
    if len(words) != 4 or words[0] != "CONNECT":
        raise ArgoSimError(f"bad request {line[:60]!r}: expected CONNECT SRC DST PORT")
    return (_number(words[1], "source domid", _MAX_DOMID),
            _number(words[2], "destination domid", _MAX_DOMID),
            _number(words[3], "port", 0xFFFFFFFF))


def parse_argo_answer(line: bytes) -> str | None:
    """None for ``OK``; the reason of an ``ERR`` line. Raises on anything else."""
    text = line.decode("utf-8", "replace").rstrip("\n")
    if text == "OK":
        return None
    if text.startswith("ERR "):
        return text[4:] or "refused"
    raise ArgoSimError(f"bad answer from the Argo stand-in: {text[:60]!r}")


def encode_argo_header(peer: ArgoPeer) -> bytes:
    """The header that comes with a handed-over stream."""
    return _HEADER.pack(_MAGIC, _VERSION, peer.domid, peer.port)


def decode_argo_header(data: bytes) -> ArgoPeer:
    """The peer of a handed-over stream. Raises :class:`ArgoSimError`."""
    if len(data) != ARGO_HEADER_SIZE:
        raise ArgoSimError(f"header of {len(data)} bytes, expected {ARGO_HEADER_SIZE}")
    magic, version, domid, port = _HEADER.unpack(data)
    if magic != _MAGIC or version != _VERSION:
        raise ArgoSimError(f"not an Argo stand-in header (magic {magic!r}, version {version})")
    if domid > _MAX_DOMID:
        raise ArgoSimError(f"bad peer domid {domid}")
    return ArgoPeer(domid, port)
