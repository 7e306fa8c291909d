"""The node operations of the xenstore client, and transactions with retry on EAGAIN.

`NodeOps` turns calls (read, write, mkdir, rm, directory, get/set_perms, exists) into typed
requests (`xen.xenstore._requests`) over one abstract method, ``_call(request) -> payload``;
`XenstoreClient` implements it outside any transaction and `Transaction` inside one, so both
offer the same operations. Paths are checked here with pyxs's rules (its expressions, without
its per-call path normalisation) before anything is sent (`InvalidRequest` naming the path).
Values are bytes on the wire: `write` takes ``str`` (UTF-8) or ``bytes``, and may be empty;
`read` decodes UTF-8 (undecodable bytes round-trip through ``surrogateescape``), `read_bytes`
returns the bytes.

`check_reply` turns a reply packet into its payload, or raises the server's error naming the
request and its path. Outcomes: a server error raises its `XenstoreError` subclass (`NoSuchNode`,
`PermissionDenied`, ...); `rm` of a node that does not exist succeeds (as the original client).
`directory` of a node whose listing exceeds one 4096-byte reply (xenstored answers E2BIG)
reads it with DIRECTORY_PART chunks, starting over if the node changes in between (bounded).

Transactions: `Transaction` is a context manager for one attempt (commit at the end, abort on
an exception; a conflict at commit raises `TransactionConflict`). `run_transaction` runs a
function in a fresh transaction until it commits, retrying the whole function on
`TransactionConflict` (at commit or inside the body) and on `ConnectionLost` before the commit
(the transaction died with its connection: nothing was applied) within a `RetryPolicy` bound
(count and time, with backoff), then raising the last failure's type. A `ConnectionLost` at the
commit is ambiguous (applied or not) and propagates. Any other exception from the body aborts
the transaction and propagates unchanged.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TypeVar

from xen.xenstore._clientcore import (
    ClientClosed,
    ConnectionLost,
    InvalidRequest,
    LimitExceeded,
    NoSuchNode,
    RetryPolicy,
    TransactionConflict,
    XenstoreConnectionError,
    XenstoreTimeout,
    error_from_reply,
)
from xen.xenstore._requests import (
    Directory,
    DirectoryPart,
    GetPerms,
    Mkdir,
    Read,
    Request,
    Rm,
    SetPerms,
    TransactionEnd,
    TransactionStart,
    Write,
    decode_reply,
)
from xen.xenstore._wire import Op, Packet, Perm, RemoteProtocolError, XenstoreError

__all__ = [
    "ManyCall",
    "NodeOps",
    "Transaction",
    "check_path",
    "check_reply",
    "parse_perm_list",
    "pyxs_accepts",
    "reply_or_error",
    "run_transaction",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Restarts of a chunked directory read when the node keeps changing between chunks.
_DIRECTORY_RESTARTS = 16


def check_path(path: str, *, watch: bool = False) -> str:
    """``path`` if xenstore accepts it (pyxs's rules: characters, ``//``, trailing ``/``,
    length; for a watch also ``@introduceDomain`` / ``@releaseDomain``); `InvalidRequest`
    naming it otherwise. Accepted paths are remembered (a bounded cache: the same paths come
    again and again); a refused one is checked afresh each time."""
    _accepted(path, watch)
    return path


# pyxs.helpers' rules (check_path, check_watch_path), applied here without its per-call
# posixpath.abspath (whose result is always truthy, so pyxs's limit is always 3072 bytes):
# the same regular expressions, used the same way (tests/xen/test_xs_client_pure.py compares).
_PATH_RE = re.compile(rb"^[a-zA-Z0-9-/_@]+\x00?$")
_SPECIAL_WATCH_RE = re.compile(rb"^@(?:introduceDomain|releaseDomain)\x00?$")
_PATH_LIMIT = 3072


def pyxs_accepts(raw: bytes, watch: bool) -> bool:
    """Whether pyxs's ``check_path`` (``check_watch_path`` for a watch) accepts ``raw``."""
    if watch and raw.startswith(b"@") and not _SPECIAL_WATCH_RE.match(raw):
        return False
    return (_PATH_RE.match(raw) is not None and len(raw) <= _PATH_LIMIT
            and not (len(raw) > 1 and raw.endswith(b"/")) and b"//" not in raw)


@functools.lru_cache(maxsize=4096)
def _accepted(path: str, watch: bool) -> None:
    try:
        accepted = pyxs_accepts(path.encode("ascii"), watch)
    except UnicodeEncodeError:
        accepted = False
    if not accepted:
        raise InvalidRequest("EINVAL", f"invalid xenstore path {path[:120]!r}")


def check_reply(request: Request, packet: Packet) -> bytes:
    """The payload of a successful reply to ``request``; its error raised otherwise."""
    if packet.op == Op.ERROR:
        name = packet.payload.rstrip(b"\0").decode("ascii", "replace")
        what = getattr(request, "path", getattr(request, "domid", ""))
        raise error_from_reply(name, f"{request.OP.name} {what}".strip())
    if packet.op != request.OP:
        raise RemoteProtocolError(
            f"xenstored answered {request.OP.name} with message type {packet.op}"
        )
    return packet.payload


def _value_bytes(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    raise TypeError(f"a xenstore value is str or bytes, not {type(value).__name__}")


class NodeOps:
    """See the module docstring; subclasses implement `_call`."""

    def _call(self, request: Request) -> bytes:
        """Send ``request``; the reply payload, or the server's error raised."""
        raise NotImplementedError

    def read_bytes(self, path: str) -> bytes:
        _accepted(path, False)
        return self._call(Read(path))

    def read(self, path: str) -> str:
        """The node's value as text; `NoSuchNode` if it does not exist."""
        _accepted(path, False)
        return self._call(Read(path)).decode("utf-8", "surrogateescape")

    def try_read(self, path: str) -> str | None:
        """The node's value, or None if it does not exist."""
        try:
            return self.read(path)
        except NoSuchNode:
            return None

    def exists(self, path: str) -> bool:
        try:
            self.read_bytes(path)
        except NoSuchNode:
            return False
        return True

    def write(self, path: str, value: str | bytes) -> None:
        """Create or replace the node's value (missing parents are created); empty is fine."""
        _accepted(path, False)
        self._call(Write(path, _value_bytes(value)))

    def mkdir(self, path: str) -> None:
        """Create the node (and parents) with an empty value; an existing node is kept."""
        self._call(Mkdir(check_path(path)))

    def rm(self, path: str) -> None:
        """Remove the node and everything under it; a missing node is not an error."""
        try:
            self._call(Rm(check_path(path)))
        except NoSuchNode:
            pass

    def directory(self, path: str) -> list[str]:
        """The names of the node's children, in xenstored's order."""
        try:
            names = decode_reply(Op.DIRECTORY, self._call(Directory(check_path(path))))
        except LimitExceeded:
            return self._directory_parts(path)
        assert isinstance(names, list)
        return names

    def _directory_parts(self, path: str) -> list[str]:
        for _ in range(_DIRECTORY_RESTARTS):
            names: list[str] = []
            offset, generation = 0, None
            while True:
                reply = decode_reply(Op.DIRECTORY_PART, self._call(DirectoryPart(path, offset)))
                assert isinstance(reply, tuple)
                gen, part, complete = reply
                if generation is not None and gen != generation:
                    break  # the node changed between chunks: start over
                generation = gen
                names.extend(part)
                offset += sum(len(n) + 1 for n in part)
                if complete:
                    return names
                if not part:
                    raise LimitExceeded("E2BIG", f"DIRECTORY_PART of {path!r} made no progress")
        raise TransactionConflict(
            "EAGAIN", f"{path!r} changed during each of {_DIRECTORY_RESTARTS} chunked listings"
        )

    def get_perms(self, path: str) -> tuple[Perm, ...]:
        """Owner entry first (owner and everyone else's access), then the ACL entries."""
        perms = decode_reply(Op.GET_PERMS, self._call(GetPerms(check_path(path, watch=True))))
        assert isinstance(perms, tuple)
        return perms

    def set_perms(self, path: str, perms: Iterable[Perm | str]) -> None:
        """Set the permission list (`Perm` values or strings like ``"r5"``)."""
        self._call(SetPerms(check_path(path, watch=True), parse_perm_list(perms)))

    def pipeline(self, requests: Sequence[Request]) -> list[bytes | XenstoreError]:
        """Send ``requests`` without waiting for each reply in between (where the transport
        allows: one at a time on the xenbus device), in order; for each, its reply payload or
        the server's error, returned, not raised (a failed request does not stop the next:
        inside a transaction, abort to undo them all). Paths are checked before anything is
        sent; client failures (timeout, connection) are raised."""
        for request in requests:
            path = getattr(request, "path", None)
            if isinstance(path, str):
                check_path(path, watch=isinstance(request, SetPerms | GetPerms))
        return self._call_many(requests)

    def _call_many(self, requests: Sequence[Request]) -> list[bytes | XenstoreError]:
        """`pipeline` without the checks; this default sends one at a time."""
        replies: list[bytes | XenstoreError] = []
        for request in requests:
            try:
                replies.append(self._call(request))
            except XenstoreError as exc:
                replies.append(exc)
        return replies


def parse_perm_list(perms: Iterable[Perm | str]) -> tuple[Perm, ...]:
    """`Perm` values from `Perm` values or strings like ``"r5"``; at least the owner entry."""
    parsed = tuple(p if isinstance(p, Perm) else Perm.parse(p) for p in perms)
    if not parsed:
        raise InvalidRequest("EINVAL", "a permission list needs at least the owner entry")
    return parsed


def reply_or_error(request: Request, packet: Packet) -> bytes | XenstoreError:
    """`check_reply`, with the server's error returned instead of raised."""
    try:
        return check_reply(request, packet)
    except XenstoreError as exc:
        return exc


ManyCall = Callable[[Sequence[Request], int], list[bytes | XenstoreError]]


class Transaction(NodeOps):
    """One attempt of a transaction; ``call(request, tx_id)`` runs on its connection, and
    ``call_many(requests, tx_id)``, if given, pipelines (`NodeOps.pipeline`)."""

    def __init__(self, call: Callable[[Request, int], bytes], tx_id: int,
                 call_many: ManyCall | None = None) -> None:
        self._call_tx = call
        self._call_many_tx = call_many
        self._tx_id = tx_id
        self._ended = False

    def __repr__(self) -> str:
        return f"Transaction({self._tx_id}{', ended' if self._ended else ''})"

    @property
    def tx_id(self) -> int:
        return self._tx_id

    @classmethod
    def start(cls, call: Callable[[Request, int], bytes],
              call_many: ManyCall | None = None) -> Transaction:
        tx_id = decode_reply(Op.TRANSACTION_START, call(TransactionStart(), 0))
        assert isinstance(tx_id, int)
        return cls(call, tx_id, call_many)

    @classmethod
    def start_on(cls, request_many: Callable[[Sequence[Request], int, float], list[Packet]],
                 timeout: float) -> Transaction:
        """Start one on a connection (its ``request_many(requests, tx_id, deadline)``), each
        request bounded by ``timeout``; a lost connection names the transaction."""

        def call_many(requests: Sequence[Request], tx_id: int) -> list[bytes | XenstoreError]:
            try:
                packets = request_many(requests, tx_id, time.monotonic() + timeout)
            except ConnectionLost as exc:
                raise ConnectionLost(f"transaction {tx_id}: {exc}") from None
            return [reply_or_error(r, p) for r, p in zip(requests, packets, strict=True)]

        def call(request: Request, tx_id: int) -> bytes:
            reply = call_many((request,), tx_id)[0]
            if isinstance(reply, XenstoreError):
                raise reply
            return reply

        return cls.start(call, call_many)

    def _call(self, request: Request) -> bytes:
        if self._ended:
            raise RuntimeError(f"transaction {self._tx_id} has already ended")
        return self._call_tx(request, self._tx_id)

    def _call_many(self, requests: Sequence[Request]) -> list[bytes | XenstoreError]:
        if self._call_many_tx is None:
            return super()._call_many(requests)
        if self._ended:
            raise RuntimeError(f"transaction {self._tx_id} has already ended")
        return self._call_many_tx(requests, self._tx_id)

    def commit(self) -> None:
        """Apply every change at once; `TransactionConflict` (nothing applied) on EAGAIN."""
        self._end(True)

    def abort(self) -> None:
        """Drop every change."""
        self._end(False)

    def _end(self, commit: bool) -> None:
        if self._ended:
            raise RuntimeError(f"transaction {self._tx_id} has already ended")
        self._ended = True
        self._call_tx(TransactionEnd(commit), self._tx_id)

    def abort_quietly(self) -> None:
        """Abort if still open, logging (not raising) a failure: the caller is already
        handling an error, and xenstored drops the transaction with its connection anyway."""
        if self._ended:
            return
        try:
            self.abort()
        except (XenstoreError, XenstoreConnectionError, XenstoreTimeout) as exc:
            logger.info("abort of transaction %d failed: %s", self._tx_id, exc)

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort_quietly()
        elif not self._ended:
            self.commit()


def run_transaction(
    start: Callable[[], Transaction],
    body: Callable[[Transaction], T],
    policy: RetryPolicy,
    sleep: Callable[[float], bool],
) -> T:
    """Run ``body`` in a new transaction until it commits (see the module docstring).
    ``sleep(seconds)`` waits between attempts and returns True if the client is closing."""
    began = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        failure: TransactionConflict | ConnectionLost
        try:
            tx = start()
            try:
                result = body(tx)
            except BaseException:
                tx.abort_quietly()
                raise
        except (TransactionConflict, ConnectionLost) as exc:  # nothing was applied
            failure = exc
        else:
            try:
                tx.commit()
                return result
            except TransactionConflict as exc:  # a ConnectionLost here is ambiguous: raised
                failure = exc
        elapsed = time.monotonic() - began
        delay = policy.next_delay(attempt, elapsed)
        if delay is None:
            detail = f"after {attempt} attempts in {elapsed:.2f} s: {failure}"
            if isinstance(failure, ConnectionLost):
                raise ConnectionLost(f"transaction lost its connection {detail}") from failure
            raise TransactionConflict("EAGAIN", f"transaction still conflicting {detail}"
                                      ) from failure
        logger.debug("transaction attempt %d failed (%s); again in %.3f s",
                     attempt, failure, delay)
        if delay and sleep(delay):
            raise ClientClosed("the client was closed during a transaction retry") from failure
