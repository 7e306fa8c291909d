"""Pure model of a xenstored: requests on behalf of connections against the tree.

No I/O, no threads: callers hand over requests (`Store.execute`) or raw packets
(`Store.process`) for a connection and get values back; watch firings come back as values
(`WatchEvent`, `Send`), never as callbacks. Drive one `Store` from one thread at a time.

Semantics (docs/misc/xenstore.txt, checked against cxenstored 4.17); paths, snapshots and
conflicts are detailed in `xen.sim.xenstored._tree`, watch matching in `xen.sim.xenstored._watches`:
- Relative paths resolve under ``/local/domain/<domid of the connection>``.
- WRITE and MKDIR create missing parents with empty values; a new node inherits its parent's
  permissions, and one made by an unprivileged domain is owned by it. MKDIR of an existing node
  changes nothing and fires nothing. RM removes a subtree; RM of a missing node is OK when its
  parent exists, ENOENT otherwise; RM of ``/`` is EINVAL.
- Permissions: connections of domain 0 are privileged. For others the first entry of a node's
  list names the owner (full access) and the access of unlisted domains; later entries are
  per-domain ACL entries, first match wins; SET_TARGET gives a domain its target's rights.
  Reading needs r; writing w; creating needs w on the nearest existing ancestor, which also
  decides ENOENT vs EACCES for a missing node (existence does not leak). SET_PERMS needs
  ownership, and an unprivileged owner may not give a node away (EPERM). Privileged-only ops
  (CONTROL, INTRODUCE, RELEASE, IS_DOMAIN_INTRODUCED, RESUME, SET_TARGET) answer EACCES.
- Quotas, unprivileged domains only (cxenstored defaults, `Quotas`): 1000 nodes owned per
  domain and 2048-byte values (ENOSPC); 128 watches (E2BIG) and 10 open transactions (ENOSPC)
  per connection; 5 permission entries per node (ENOSPC). Replies over 4096 bytes: E2BIG.
- Transactions: ids are per connection, from 1. Inside one, reads see the start snapshot plus
  its own writes; commit fails with EAGAIN if anything it touched was modified meanwhile, which
  is stricter than cxenstored (it compares generations at first access only). Its watch events
  fire at commit. A bad tx_id answers ENOENT; TRANSACTION_START inside one answers EBUSY.
  WATCH and UNWATCH ignore tx_id.
- Watches: registration fires once immediately (after the reply); duplicates answer EEXIST,
  unknown UNWATCH ENOENT. Unprivileged watchers only get events for nodes they could read with
  the node's old or new permissions, or its parent's (cxenstored's rule); special events only if
  the special name's permissions (GET/SET_PERMS on ``@introduceDomain``/``@releaseDomain``,
  default ``n0``) grant read.
- Domains: dom0 is always introduced. INTRODUCE (domid 1..0x7fef, port > 0) fires
  ``@introduceDomain`` once per domain; RELEASE forgets it, drops its connections with their
  watches and transactions (listed in ``Result.disconnect`` / `Disconnect` outputs) and fires
  ``@releaseDomain``. `Store.fire_special` fires a special watch on the hypervisor's behalf
  (a domain shut down or crashed without being released).

Failure behaviour: a refused request raises `XenstoreError` from `execute`, or becomes an ERROR
reply from `process`, and changes nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from xen.sim.xenstored._nodeops import (
    DEFAULT_PERMS,
    OWNER,
    READ,
    WRITE,
    Quotas,
    Who,
    access,
    directory_part,
    readable,
    rm,
    set_perms,
    write,
)
from xen.sim.xenstored._tree import Node, Tree, Tx, View, validate_path
from xen.sim.xenstored._watches import Change, WatchEvent, WatchIndex
from xen.sim.xenstored._watches import Watch as _Watch
from xen.xenstore import (
    PAYLOAD_MAX,
    REL_PATH_MAX,
    Control,
    Directory,
    DirectoryPart,
    GetDomainPath,
    GetPerms,
    Introduce,
    IsDomainIntroduced,
    Mkdir,
    Op,
    Packet,
    PacketTooLarge,
    Perm,
    Read,
    Release,
    Request,
    ResetWatches,
    Resume,
    Rm,
    SetPerms,
    SetTarget,
    TransactionEnd,
    TransactionStart,
    Unwatch,
    Watch,
    Write,
    XenstoreError,
    decode_request,
    encode_reply,
    error_packet,
    watch_event_packet,
)

__all__ = [
    "DOMID_FIRST_RESERVED",
    "INTERNAL_CONN",
    "SPECIAL_PATHS",
    "Disconnect",
    "Note",
    "Result",
    "Send",
    "Store",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

DOMID_FIRST_RESERVED = 0x7FF0
SPECIAL_PATHS = ("@introduceDomain", "@releaseDomain")
INTERNAL_CONN = 0  # the store's own privileged connection, used by the Python-side API

_DOM0 = Who(0)  # dom0 is never given a target (SET_TARGET of domain 0 changes nothing)
_PRIVILEGED_OPS = frozenset(
    {Op.DEBUG, Op.INTRODUCE, Op.RELEASE, Op.IS_DOMAIN_INTRODUCED, Op.RESUME, Op.SET_TARGET}
)


@dataclass(frozen=True, slots=True)
class Result:
    """What a request produced: its reply value, watch events, connections to drop."""

    value: object = None
    events: tuple[WatchEvent, ...] = ()
    disconnect: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Send:
    """Output of `Store.process`: send ``packet`` to connection ``conn_id``."""

    conn_id: int
    packet: Packet


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Output of `Store.process`: close connection ``conn_id`` (already forgotten)."""

    conn_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """Output of `Store.process`: something the server should log (the model does no I/O)."""

    level: str  # "debug", "info" or "warning"
    text: str


Output = Send | Disconnect | Note


@dataclass(slots=True)
class _Effects:
    changes: list[Change] = field(default_factory=list)
    events: list[WatchEvent] = field(default_factory=list)
    disconnect: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Conn:
    conn_id: int
    domid: int
    rank: int  # connections' order (of their watch events)
    watches: list[_Watch] = field(default_factory=list)
    txs: dict[int, Tx] = field(default_factory=dict)
    next_tx: int = 1


@dataclass(slots=True)
class _Domain:
    mfn: int
    port: int
    target: int | None = None


class Store:
    """The xenstore database and its connections; see the module docstring."""

    def __init__(self, quotas: Quotas | None = None) -> None:
        self.quotas = quotas or Quotas()
        self._tree = Tree()
        self._ranks = itertools.count()
        self._conns: dict[int, _Conn] = {INTERNAL_CONN: _Conn(INTERNAL_CONN, 0,
                                                              next(self._ranks))}
        self._watches = WatchIndex()
        self._domains: dict[int, _Domain] = {}
        self._special: dict[str, tuple[Perm, ...]] = dict.fromkeys(SPECIAL_PATHS, DEFAULT_PERMS)
        # cxenstored's initial tree: / , /tool and /tool/xenstored, all owned by dom0, "n0".
        self._tree.put("/", Node(b"", DEFAULT_PERMS, ("tool",), 0))
        self._tree.put("/tool", Node(b"", DEFAULT_PERMS, ("xenstored",), 0))
        self._tree.put("/tool/xenstored", Node(b"", DEFAULT_PERMS, (), 0))

    # --- connections and the Python-side API ---------------------------------------------------

    def connect(self, conn_id: int, domid: int = 0) -> None:
        """Register a connection; domid 0 is privileged, others must be introduced (ENOENT)."""
        if conn_id in self._conns:
            raise ValueError(f"connection {conn_id} is already registered")
        if not self.is_introduced(domid):
            raise XenstoreError("ENOENT", f"domain {domid} is not introduced")
        self._conns[conn_id] = _Conn(conn_id, domid, next(self._ranks))

    def disconnect(self, conn_id: int) -> None:
        """Forget a connection with its watches and transactions (no-op if unknown)."""
        if conn_id == INTERNAL_CONN:
            raise ValueError("the internal connection cannot be disconnected")
        conn = self._conns.pop(conn_id, None)
        if conn is not None:
            self._watches.remove(conn_id, conn.watches)
            self._drop_txs(conn)

    def introduce_domain(self, domid: int, mfn: int = 0, port: int = 1) -> Result:
        return self.execute(INTERNAL_CONN, Introduce(domid, mfn, port))

    def release_domain(self, domid: int) -> Result:
        return self.execute(INTERNAL_CONN, Release(domid))

    def fire_special(self, name: str) -> Result:
        """Fire a special watch (e.g. ``@releaseDomain`` when a domain shuts down)."""
        if name not in SPECIAL_PATHS:
            raise ValueError(f"{name!r} is not one of {SPECIAL_PATHS}")
        return Result(None, self._fire([Change(name, ())]))

    def is_introduced(self, domid: int) -> bool:
        return domid == 0 or domid in self._domains

    def domains(self) -> list[int]:
        """Introduced domains other than dom0, in introduction order."""
        return list(self._domains)

    def domain_of(self, conn_id: int) -> int:
        return self._conns[conn_id].domid

    def dump(self) -> dict[str, bytes]:
        """Every node path with its value (a copy, for tests and debugging)."""
        return {path: node.value for path, node in self._tree.nodes.items()}

    def node(self, path: str) -> Node | None:
        return self._tree.nodes.get(path)

    # --- request processing --------------------------------------------------------------------

    def process(self, conn_id: int, packet: Packet) -> list[Output]:
        """Handle one client packet: the reply first, then watch events, then disconnects;
        `Note`s say what is worth logging."""
        try:
            request = decode_request(packet)
            result = self.execute(conn_id, request, packet.tx_id)
            payload = encode_reply(packet.op, result.value)
            if len(payload) > PAYLOAD_MAX:
                raise XenstoreError("E2BIG", f"reply of {len(payload)} bytes")
            reply = Packet(packet.op, packet.req_id, packet.tx_id, payload)
        except XenstoreError as exc:
            return [Send(conn_id, error_packet(exc.name, packet.req_id, packet.tx_id)),
                    Note("debug", f"conn {conn_id} op {packet.op}: {exc}")]
        out: list[Output] = [Send(conn_id, reply)]
        if isinstance(request, Control) and request.args[:1] == (b"print",):
            text = request.args[1].decode("utf-8", "replace") if len(request.args) > 1 else ""
            out.append(Note("info", f"xenstore control print: {text}"))
        for ev in result.events:
            try:
                out.append(Send(ev.conn_id, watch_event_packet(ev.path, ev.token)))
            except PacketTooLarge as exc:
                out.append(Note("warning", f"dropping watch event for conn {ev.conn_id}: {exc}"))
        out.extend(Disconnect(c, "its domain was released") for c in result.disconnect)
        return out

    def execute(self, conn_id: int, request: Request, tx_id: int = 0) -> Result:
        """Run one request for a connection; raises `XenstoreError` on refusal."""
        conn = self._conns.get(conn_id)
        if conn is None:
            raise ValueError(f"unknown connection {conn_id}")
        op = request.OP
        if op in _PRIVILEGED_OPS and conn.domid != 0:
            raise XenstoreError("EACCES", f"{op.name} is for privileged connections only")
        tx = None
        if tx_id and op not in (Op.WATCH, Op.UNWATCH):
            tx = conn.txs.get(tx_id)
            if tx is None:
                raise XenstoreError("ENOENT", f"no transaction {tx_id} on this connection")
        if isinstance(request, TransactionStart):
            if tx is not None:
                raise XenstoreError("EBUSY", "TRANSACTION_START inside a transaction")
            return Result(self._tx_start(conn))
        if isinstance(request, TransactionEnd):
            if tx is None:
                raise XenstoreError("ENOENT", "TRANSACTION_END without a transaction")
            return Result("OK", self._tx_end(conn, tx, request.commit))
        fx = _Effects()
        value = self._dispatch(conn, View(self._tree, tx), request, fx)
        now = fx.changes
        if tx is not None:  # node changes wait for the commit; special events do not
            tx.changes.extend(c for c in now if not c.path.startswith("@"))
            now = [c for c in now if c.path.startswith("@")]
        return Result(value, (*fx.events, *self._fire(now)), tuple(fx.disconnect))

    def _dispatch(self, conn: _Conn, view: View, request: Request, fx: _Effects) -> object:
        who, quotas = self._who(conn), self.quotas
        match request:
            case Read(path):
                return readable(who, view, self._canon(conn, path)).value
            case Directory(path):
                return list(readable(who, view, self._canon(conn, path)).children)
            case DirectoryPart(path, offset):
                return directory_part(readable(who, view, self._canon(conn, path)), offset)
            case GetPerms(path) if path in SPECIAL_PATHS:
                return self._special[path]
            case GetPerms(path):
                return readable(who, view, self._canon(conn, path)).perms
            case Write(path, value):
                fx.changes += write(who, view, quotas, self._canon(conn, path), value, True)
            case Mkdir(path):
                fx.changes += write(who, view, quotas, self._canon(conn, path), b"", False)
            case Rm(path):
                fx.changes += rm(who, view, self._canon(conn, path))
            case SetPerms(path, perms) if path in SPECIAL_PATHS:
                self._set_special_perms(conn, path, perms)
            case SetPerms(path, perms):
                fx.changes += set_perms(who, view, quotas, self._canon(conn, path), perms)
            case Watch(path, token):
                fx.events.append(self._watch(conn, path, token))
            case Unwatch(path, token):
                self._unwatch(conn, path, token)
            case ResetWatches():
                self._watches.remove(conn.conn_id, conn.watches)
                conn.watches.clear()
                self._drop_txs(conn)
            case Introduce(domid, mfn, port):
                if self._introduce(domid, mfn, port):
                    fx.changes.append(Change("@introduceDomain", ()))
            case Release(domid):
                fx.disconnect.extend(self._release(domid))
                fx.changes.append(Change("@releaseDomain", ()))
            case GetDomainPath(domid):
                return f"/local/domain/{domid}"
            case IsDomainIntroduced(domid):
                return self.is_introduced(domid)
            case Resume(domid) | SetTarget(domid, _) if not self.is_introduced(domid):
                raise XenstoreError("ENOENT", f"domain {domid} is not introduced")
            case SetTarget(domid, target):
                if not self.is_introduced(target):
                    raise XenstoreError("ENOENT", f"target domain {target} is not introduced")
                if domid != 0:
                    self._domains[domid].target = target
            case Resume():
                pass
            case Control(args):
                return _control(args)
            case _:
                raise XenstoreError("ENOSYS", f"{type(request).__name__} is not handled")
        return "OK"

    # --- paths and permissions -----------------------------------------------------------------

    def _canon(self, conn: _Conn, path: str) -> str:
        if not path.startswith("/"):
            if path.startswith("@"):
                raise XenstoreError("EINVAL", f"{path[:80]!r} is a special watch name, not a node")
            path = f"/local/domain/{conn.domid}/{path}"
        validate_path(path)
        return path

    def _who(self, conn: _Conn) -> Who:
        if not conn.domid:
            return _DOM0
        dom = self._domains.get(conn.domid)
        return Who(conn.domid, dom.target if dom is not None else None)

    def _set_special_perms(self, conn: _Conn, path: str, perms: tuple[Perm, ...]) -> None:
        who = self._who(conn)
        if not who.privileged and len(perms) > self.quotas.perms_per_node:
            raise XenstoreError("ENOSPC", f"{len(perms)} permission entries exceed the quota")
        if access(who, self._special[path]) & (WRITE | OWNER) != WRITE | OWNER:
            raise XenstoreError("EACCES", f"not allowed to set permissions of {path}")
        self._special[path] = perms

    # --- transactions --------------------------------------------------------------------------

    def _tx_start(self, conn: _Conn) -> int:
        if conn.domid != 0 and len(conn.txs) >= self.quotas.transactions_per_connection:
            raise XenstoreError("ENOSPC", "too many open transactions")
        tx_id = conn.next_tx
        while tx_id == 0 or tx_id in conn.txs:
            tx_id = (tx_id + 1) & 0xFFFFFFFF
        conn.next_tx = (tx_id + 1) & 0xFFFFFFFF
        conn.txs[tx_id] = self._tree.open((conn.conn_id, tx_id), tx_id)
        return tx_id

    def _tx_end(self, conn: _Conn, tx: Tx, commit: bool) -> tuple[WatchEvent, ...]:
        del conn.txs[tx.tx_id]
        try:
            if not commit:
                return ()
            self._tree.commit(tx)
            return self._fire([c for c in tx.changes if isinstance(c, Change)])
        finally:
            self._tree.close((conn.conn_id, tx.tx_id))

    def _drop_txs(self, conn: _Conn) -> None:
        for tx_id in list(conn.txs):
            del conn.txs[tx_id]
            self._tree.close((conn.conn_id, tx_id))

    # --- watches and domains -------------------------------------------------------------------

    def _watch(self, conn: _Conn, path: str, token: bytes) -> WatchEvent:
        prefix = None
        if path.startswith("@"):
            if len(path) > REL_PATH_MAX:
                raise XenstoreError("EINVAL", "special watch name too long")
            canonical = path
        else:
            canonical = self._canon(conn, path)
            if not path.startswith("/"):
                prefix = f"/local/domain/{conn.domid}"
        if any(w.path == canonical and w.token == token for w in conn.watches):
            raise XenstoreError("EEXIST", f"watch {path[:80]!r} with this token already exists")
        if conn.domid != 0 and len(conn.watches) >= self.quotas.watches_per_connection:
            raise XenstoreError("E2BIG", "too many watches")
        watch = _Watch(canonical, token, prefix)
        conn.watches.append(watch)
        self._watches.add(conn.rank, conn.conn_id, watch)
        return WatchEvent(conn.conn_id, watch.shown(canonical), token)

    def _unwatch(self, conn: _Conn, path: str, token: bytes) -> None:
        if not path.startswith(("/", "@")):
            path = f"/local/domain/{conn.domid}/{path}"
        for i, w in enumerate(conn.watches):
            if w.path == path and w.token == token:
                del conn.watches[i]
                self._watches.remove(conn.conn_id, [w])
                return
        raise XenstoreError("ENOENT", f"no watch {path[:80]!r} with this token")

    def _fire(self, changes: list[Change]) -> tuple[WatchEvent, ...]:
        events: list[WatchEvent] = []
        for change in changes:
            special = self._special.get(change.path, DEFAULT_PERMS)
            for entry, shown, readers in self._watches.fired(change, special):
                who = self._who(self._conns[entry.conn_id])
                if not who.privileged and not any(access(who, p) & READ for p in readers):
                    continue
                events.append(WatchEvent(entry.conn_id, shown, entry.watch.token))
        return tuple(events)

    def _introduce(self, domid: int, mfn: int, port: int) -> bool:
        """Record the domain; True if it is new (then @introduceDomain fires)."""
        if not 0 < domid < DOMID_FIRST_RESERVED:
            raise XenstoreError("EINVAL", f"domid {domid} cannot be introduced")
        if port <= 0:
            raise XenstoreError("EINVAL", f"bad event channel port {port}")
        dom = self._domains.get(domid)
        if dom is not None:
            dom.mfn, dom.port = mfn, port
            return False
        self._domains[domid] = _Domain(mfn, port)
        return True

    def _release(self, domid: int) -> tuple[int, ...]:
        """Forget the domain and its connections; returns the dropped connection ids."""
        if not 0 < domid < DOMID_FIRST_RESERVED:
            raise XenstoreError("EINVAL", f"domid {domid} cannot be released")
        if domid not in self._domains:
            raise XenstoreError("ENOENT", f"domain {domid} is not introduced")
        del self._domains[domid]
        for dom in self._domains.values():
            if dom.target == domid:
                dom.target = None
        dropped = tuple(c.conn_id for c in self._conns.values() if c.domid == domid)
        for conn_id in dropped:
            self.disconnect(conn_id)
        return dropped


def _control(args: tuple[bytes, ...]) -> bytes | str:
    cmd = args[0] if args else b""
    if cmd == b"print" and len(args) > 1:
        return "OK"  # the text is logged by the server (a Note from `Store.process`)
    if cmd == b"help":
        return b"check\nhelp\nprint <string>\n\0"
    if cmd == b"check":
        return "OK"
    raise XenstoreError("EINVAL", f"unsupported control command {cmd[:32]!r}")
