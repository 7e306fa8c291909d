"""The firewall's I/O side: where rules and VM facts come from, and one check per message.

A :class:`ProxyPolicy` belongs to one proxy instance and is shared, thread-safe, by its client
connections and its ``-s`` service (published by the instance's ``policy`` actor, which closes
it when it stops).

* **Global rules**: the ``-r`` file, parsed on first use (as the original, lazily). A file that
  does not parse makes every check fail (:class:`PolicyError`, logged by the caller; the
  message is not forwarded) until it is fixed and reloaded. :meth:`ProxyPolicy.reload`
  (SIGHUP) drops the global and per-VM rules caches.
* **Runtime changes** (the ``-s`` service's ``add_rule``/``delete_rule``): a layer on top of
  the file, kept by :meth:`ProxyPolicy.reload`: added rules come after the file's rules (so
  they win), in the order added; a deleted rule removes every equal rule, added or from the
  file, and keeps hiding equal file rules after a reload. The layer lives as long as the
  policy (a restart of the instance or of its policy actor forgets it). Each change replaces
  the compiled rule set at once: the next message is checked by the new rules.
* **Per-VM rules**: dbd's ``/vm/<uuid>/rpc-firewall-rules`` (``dump``, over the policy's own
  connection to dom0's bus, bounded by ``timeout``), each rule with ``dom-uuid <uuid>`` forced,
  cached per uuid. Malformed -> :class:`PolicyError` naming the db node. dbd not answering ->
  no per-VM rules this time (not cached; logged).
* **VM properties** (``dom-type``, ``dom-name``, ``if-boolean``): xenmgr's
  ``com.citrix.xenclient.xenmgr.vm.unrestricted`` property of ``/vm/<uuid with _>``, fetched on
  first need with a bounded wait (the original retried every second forever, blocking the
  client) and cached per client connection (:meth:`ProxyPolicy.properties_for`). A failed
  fetch answers "unknown" (the specifier does not match) and is not cached.
* **Anonymous destinations** (``--translate-anonymous-dests``): the instance's table unique
  name -> well-known name (:attr:`ProxyPolicy.anonymous`, shared by its clients; the original
  shared one per process), filled by :meth:`ProxyPolicy.refresh_names` from ``ListNames`` and
  ``GetNameOwner`` over the policy's connection (newer entries override older; each call
  bounded by ``timeout``; one refresh at a time).
* **Domains**: the source VM's uuid and stubdomain flag come from the
  :class:`~rpc.proxy._transports.DomainDirectory` (xenstore); with ``-w`` none are looked up.

Checks: :meth:`ProxyPolicy.check` turns a :class:`~rpc.proxy._message.WireMessage` into
:class:`~rpc.proxy._rules_model.MessageFacts` and evaluates the rules; domid 0 is allowed
without rules (as the original).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from rpc.dbus import BusConnection, CallTimeout, ConnectionLost, DBusError, RemoteObject
from rpc.proxy._limits import WireError
from rpc.proxy._message import MessageType, WireMessage, decode_body
from rpc.proxy._names import AnonymousDestinations
from rpc.proxy._options import ProxyOptions
from rpc.proxy._rules_eval import RuleSet, compile_rules, evaluate
from rpc.proxy._rules_model import (
    PROPERTIES_INTERFACE,
    PROPERTIES_MEMBERS,
    Direction,
    DomainFacts,
    MessageFacts,
    MessageKind,
    Rule,
    Verdict,
    VerdictReason,
)
from rpc.proxy._rules_parse import RulesError, parse_rule, parse_rules, vm_rules_from_db
from rpc.proxy._transports import DomainDirectory

__all__ = ["DB_SERVICE", "XENMGR_SERVICE", "XENMGR_VM_UNRESTRICTED", "NoSuchRule",
           "PolicyError", "ProxyPolicy", "SourceDomain", "message_facts"]

log = logging.getLogger("rpc.proxy")

DB_SERVICE = "com.citrix.xenclient.db"
XENMGR_SERVICE = "com.citrix.xenclient.xenmgr"
XENMGR_VM_UNRESTRICTED = "com.citrix.xenclient.xenmgr.vm.unrestricted"

_KINDS = {MessageType.METHOD_CALL: MessageKind.METHOD_CALL,
          MessageType.SIGNAL: MessageKind.SIGNAL,
          MessageType.METHOD_RETURN: MessageKind.METHOD_RETURN,
          MessageType.ERROR: MessageKind.ERROR}


class PolicyError(RuntimeError):
    """Rules that cannot be used right now (the message names the file or db node)."""


class NoSuchRule(PolicyError):
    """``delete_rule`` of a rule (or index) the rules do not have."""


@dataclass(frozen=True, slots=True)
class SourceDomain:
    """Who a client connection speaks for."""

    domid: int
    uuid: str | None = None
    stubdom: bool = False


def message_facts(msg: WireMessage, direction: Direction = Direction.INCOMING) -> MessageFacts:
    """What the rules see of ``msg`` (the interface a Properties call is about included)."""
    target = None
    if msg.interface == PROPERTIES_INTERFACE and msg.member in PROPERTIES_MEMBERS \
            and msg.signature.startswith("s"):
        try:
            first = decode_body(msg)[0]
            target = first if isinstance(first, str) else None
        except (WireError, IndexError):
            target = None
    return MessageFacts(_KINDS[msg.type], direction, msg.destination, msg.sender, msg.path,
                        msg.interface, msg.member, target, msg.serial, msg.reply_serial)


class ProxyPolicy:
    """Rules and VM facts for one proxy instance (see the module docstring)."""

    def __init__(self, options: ProxyOptions, address: str, *,
                 domains: DomainDirectory | None = None, timeout: float = 2.0) -> None:
        self.options = options
        self.address = address
        self.domains = domains
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn_lock = threading.Lock()
        self._rules: RuleSet | PolicyError | None = None
        self._file_rules: tuple[Rule, ...] | PolicyError | None = None
        self._added: list[Rule] = []
        self._deleted: list[Rule] = []
        self._vm_rules: dict[str, RuleSet | None] = {}
        self._conn: BusConnection | None = None
        self._closed = False
        self.anonymous = AnonymousDestinations()
        self._names_lock = threading.Lock()

    # ------------------------------------------------------------------ sources

    def source(self, domid: int) -> SourceDomain:
        """The uuid and stubdomain flag of ``domid`` (none with ``-w`` or without a
        directory; a failing lookup is logged and gives none)."""
        if not self.options.firewall or self.domains is None or domid == 0:
            return SourceDomain(domid)
        try:
            return SourceDomain(domid, self.domains.vm_uuid(domid),
                                self.domains.is_stubdom(domid))
        except Exception as exc:
            log.warning("domain %d: cannot read its uuid: %s", domid, exc)
            return SourceDomain(domid)

    def connection(self) -> BusConnection:
        """The policy's own connection to dom0's bus (made on first use, again after a loss).
        Raises :class:`ConnectionLost`."""
        with self._conn_lock:
            if self._closed:
                raise ConnectionLost("the proxy policy is closed")
            if self._conn is None or not self._conn.alive:
                self._conn = BusConnection(self.address, label="rpc-proxy policy")
            return self._conn

    def rules(self) -> RuleSet:
        """The global rules: the file's (parsed on first use) and the runtime layer. Raises
        :class:`PolicyError`."""
        with self._lock:
            found = self._rules
        if found is None:
            with self._lock:
                file_rules = self._file_rules
            if file_rules is None:
                file_rules = self._load_rules()
            with self._lock:
                self._file_rules = file_rules
                found = self._rules = self._combine(file_rules)
        if isinstance(found, PolicyError):
            raise found
        return found

    def _combine(self, file_rules: tuple[Rule, ...] | PolicyError) -> RuleSet | PolicyError:
        """The compiled file rules with the runtime layer applied (call with the lock)."""
        if isinstance(file_rules, PolicyError):
            return file_rules
        kept = [rule for rule in file_rules if rule not in self._deleted]
        return compile_rules([*kept, *self._added])

    def _load_rules(self) -> tuple[Rule, ...] | PolicyError:
        path = self.options.rules
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            return PolicyError(f"cannot read the rules file {path}: {exc}")
        try:
            return parse_rules(text, source=path)
        except RulesError as exc:
            return PolicyError(f"malformed rules file: {exc}")

    def add_rule(self, text: str) -> Rule:
        """Parse ``text`` (one rule of the rules grammar) and append it to the runtime layer;
        the next check uses it. Raises :class:`~rpc.proxy._rules_parse.RulesSyntaxError`
        (line and column) and changes nothing when it does not parse."""
        with self._lock:
            number = len(self._added) + 1
        rule = parse_rule(text, source="add_rule")
        rule = dataclasses.replace(rule, origin=f"added:{number}")
        with self._lock:
            self._added.append(rule)  # a hidden file rule stays hidden
            self._rules = None  # recombined on the next check (the file stays cached)
        log.info("rule added: %s", text.strip())
        return rule

    def delete_rule(self, which: str) -> int:
        """Delete a rule given by its text (any spelling that parses to the same rule) or by
        its index (decimal, 0-based) in :meth:`rules` order: every equal rule goes, from the
        runtime layer and from the file's rules (hidden, also after a reload). How many rules
        went. Raises :class:`PolicyError` (no such rule, or the rules are unusable) or
        :class:`~rpc.proxy._rules_parse.RulesSyntaxError`."""
        text = which.strip()
        if text.isdigit():
            shown = self.rules().rules
            index = int(text)
            if index >= len(shown):
                raise NoSuchRule(f"no rule at index {index}: there are {len(shown)}")
            rule = shown[index]
        else:
            rule = parse_rule(which, source="delete_rule")
        before = len(self.rules())
        with self._lock:
            self._added = [r for r in self._added if r != rule]
            hid = rule not in self._deleted
            if hid:
                self._deleted.append(rule)
            self._rules = None
        gone = before - len(self.rules())
        if gone == 0:
            with self._lock:
                if hid:
                    self._deleted.remove(rule)
                self._rules = None
            raise NoSuchRule(f"no such rule: {which.strip()!r}")
        log.info("rule deleted (%d): %s", gone, which.strip())
        return gone

    def vm_rules(self, uuid: str) -> RuleSet | None:
        """The per-VM rules of ``uuid`` from the db (cached). Raises :class:`PolicyError`."""
        with self._lock:
            if uuid in self._vm_rules:
                return self._vm_rules[uuid]
        path = f"/vm/{uuid}/rpc-firewall-rules"
        try:
            db = RemoteObject(self.connection(), DB_SERVICE, "/", timeout=self.timeout)
            (text,) = db.call(DB_SERVICE, "dump", "s", path)
        except (DBusError, CallTimeout, ConnectionLost) as exc:
            log.warning("per-VM rules of %s: dbd did not answer: %s", uuid, exc)
            return None
        try:
            value = json.loads(text) if text else None
            found = compile_rules(vm_rules_from_db(uuid, value)) if value else None
        except (ValueError, RulesError) as exc:
            raise PolicyError(f"malformed rule in database at path {path}: {exc}") from None
        with self._lock:
            self._vm_rules[uuid] = found
        return found

    def properties_for(self, uuid: str | None) -> Callable[[str], str | None]:
        """A property source for one client connection (its own cache)."""
        if uuid is None:
            return lambda _name: None
        cache: dict[str, str | None] = {}
        obj_path = "/vm/" + uuid.replace("-", "_")

        def prop(name: str) -> str | None:
            if name in cache:
                return cache[name]
            try:
                vm = RemoteObject(self.connection(), XENMGR_SERVICE, obj_path,
                                  timeout=self.timeout)
                value = vm.get(XENMGR_VM_UNRESTRICTED, name)
            except (DBusError, CallTimeout, ConnectionLost) as exc:
                log.warning("VM %s property %s: xenmgr did not answer: %s", uuid, name, exc)
                return None
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            cache[name] = text
            return text
        return prop

    def refresh_names(self) -> int:
        """Refill :attr:`anonymous` from the bus (``ListNames``, then ``GetNameOwner`` of each
        well-known name); how many names it learnt. A failure is logged and learns nothing
        more (the table keeps what it had)."""
        with self._names_lock:
            learnt: dict[str, str] = {}
            try:
                conn = self.connection()
                (names,) = conn.bus_call("ListNames", timeout=self.timeout)
                for name in names:
                    if name.startswith(":") or name == "org.freedesktop.DBus":
                        continue
                    try:
                        (owner,) = conn.bus_call("GetNameOwner", "s", (name,),
                                                 timeout=self.timeout)
                    except DBusError:
                        continue  # it went meanwhile
                    learnt[owner] = name
            except (DBusError, ConnectionLost) as exc:
                log.warning("anonymous destinations: the bus did not answer: %s", exc)
            self.anonymous.learn_all(learnt)
            return len(learnt)

    # ------------------------------------------------------------------ checks

    def facts(self, source: SourceDomain,
              properties: Callable[[str], str | None] | None = None) -> DomainFacts:
        """The rules' view of ``source``."""
        return DomainFacts(source.domid, source.uuid, source.stubdom,
                           properties or self.properties_for(source.uuid))

    def check(self, msg: WireMessage, domain: DomainFacts,
              direction: Direction = Direction.INCOMING) -> Verdict:
        """The verdict on ``msg`` from ``domain``. Raises :class:`PolicyError`."""
        facts = message_facts(msg, direction)
        return self.check_facts(facts, domain)

    def check_facts(self, facts: MessageFacts, domain: DomainFacts, *,
                    dom0_bypass: bool = True) -> Verdict:
        """The verdict on ``facts`` from ``domain``. Raises :class:`PolicyError`."""
        if dom0_bypass and domain.domid == 0:
            return Verdict(True, VerdictReason.DOM0)
        vm = self.vm_rules(domain.uuid) if domain.uuid else None
        return evaluate(self.rules(), facts, domain, vm_rules=vm, dom0_bypass=dom0_bypass)

    def reload(self) -> None:
        """Drop the rules caches (SIGHUP): the next check reads the file and the db again; the
        runtime layer (added and deleted rules) is kept."""
        with self._lock:
            self._rules = None
            self._file_rules = None
            self._vm_rules.clear()
        log.info("rules caches dropped; they are read again on the next check (the %d added "
                 "and %d deleted rules are kept)", len(self._added), len(self._deleted))

    def close(self) -> None:
        """Close the policy's bus connection (idempotent)."""
        with self._conn_lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
