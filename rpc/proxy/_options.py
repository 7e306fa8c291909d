"""The rpc-proxy command line: the original's options, parsed into a frozen :class:`ProxyOptions`.

Syntax is GNU getopt with permutation (options and operands may be mixed; ``--`` ends the
options), long options may be abbreviated to any unambiguous prefix, and a later flag overrides
an earlier one. The same parser serves the ``rpc-proxy`` console script and the ``[[proxy]]``
entries of ``oxt-supervisor``'s configuration.

Options (docs/rpc-proxy.md, "Running it")::

    -i, -l, --incoming-channel, --listen-channel CH   unix:PATH | tcp:PORT | tcp:HOST:PORT |
                                                      argo:PORT | serial:DEV  (argo:5555)
    -o, -f, --outgoing-channel, --forward-channel CH  unix:PATH | serial:PATH |
                                                      argo-domid:PORT:DOMID | argo-uuid:PORT:UUID
                                                      (unix:/var/run/dbus/system_bus_socket)
    -d, --incoming-domid N       force the domid of every incoming connection
    -v, --verbose                also log ALLOW decisions
    -r, --rules PATH             global rules file (/etc/rpc-proxy.rules)
    -n, --request-name NAME      rewrite RequestName ($UUID -> the VM uuid, - -> _)
    -s, --server                 also serve com.citrix.xenclient.rpc_proxy at /
    -w, --no-firewall            no rule checks, no uuid/stubdom lookups
    -u, --uuid                   send DATA <vm-uuid> during the auth
    --owner-name, --translate-anonymous-dests, --json-in, --json-out, --websockets-in,
    --auto-auth
    --allow-origin ORIGIN        (ours) a WebSocket Origin allowed (repeatable; ``null`` for a
                                 ``file:`` page, ``*`` for any); default: same host only
    --check-rules FILE           (ours) parse FILE, print the rules, exit
    -h, --help                   usage on stdout, exit 0

Failure: an unknown option, a missing or bad argument, a stray operand or a malformed channel
raise :class:`OptionsError` with a message naming it. (The original ignored unknown options and
operands silently and failed on a bad channel only when it used it.)
"""

from __future__ import annotations

import getopt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["DEFAULT_INCOMING", "DEFAULT_OUTGOING", "DEFAULT_RULES", "USAGE", "Channel",
           "OptionsError", "ProxyOptions", "parse_channel", "parse_options"]

__pure__ = True

DEFAULT_INCOMING = "argo:5555"
DEFAULT_OUTGOING = "unix:/var/run/dbus/system_bus_socket"
DEFAULT_RULES = "/etc/rpc-proxy.rules"

#: Largest domid Xen hands out to a guest (DOMID_FIRST_RESERVED - 1).
MAX_DOMID = 0x7FEF

_INCOMING_KINDS = ("unix", "tcp", "argo", "serial")
_OUTGOING_KINDS = ("unix", "serial", "argo-domid", "argo-uuid")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}$")


class OptionsError(ValueError):
    """A bad command line (the message names the option or operand)."""


@dataclass(frozen=True, slots=True)
class Channel:
    """One end of the proxy: where it listens or where it forwards to.

    ``kind`` is one of ``unix``, ``tcp``, ``argo``, ``serial`` (incoming) or ``unix``,
    ``serial``, ``argo-domid``, ``argo-uuid`` (outgoing). ``host`` is used by ``tcp`` only
    (default loopback).
    """

    kind: str
    path: str = ""
    port: int = 0
    host: str = "127.0.0.1"
    domid: int = 0
    uuid: str = ""

    def __str__(self) -> str:
        if self.kind in ("unix", "serial"):
            return f"{self.kind}:{self.path}"
        if self.kind == "tcp":
            return f"tcp:{self.port}" if self.host == "127.0.0.1" else \
                f"tcp:{self.host}:{self.port}"
        if self.kind == "argo":
            return f"argo:{self.port}"
        if self.kind == "argo-domid":
            return f"argo-domid:{self.port}:{self.domid}"
        return f"argo-uuid:{self.port}:{self.uuid}"


def _port(text: str, spec: str, *, zero: bool = False) -> int:
    if not text.isdigit() or not (0 if zero else 1) <= int(text) < 1 << 32:
        raise OptionsError(f"bad port {text!r} in channel {spec!r}")
    return int(text)


def _domid(text: str, what: str) -> int:
    if not text.isdigit() or int(text) > MAX_DOMID:
        raise OptionsError(f"bad domid {text!r} in {what} (0..{MAX_DOMID})")
    return int(text)


def parse_channel(spec: str, *, outgoing: bool) -> Channel:
    """Parse a channel spec (split on ``:``, as the original). Raises :class:`OptionsError`."""
    kind, _, rest = spec.partition(":")
    kinds = _OUTGOING_KINDS if outgoing else _INCOMING_KINDS
    if kind not in kinds:
        raise OptionsError(f"bad {'outgoing' if outgoing else 'incoming'} channel {spec!r}: "
                           f"expected one of {', '.join(k + ':' for k in kinds)}")
    parts = rest.split(":") if rest else []
    if kind in ("unix", "serial"):
        if len(parts) != 1 or not parts[0]:
            raise OptionsError(f"bad channel {spec!r}: {kind}:PATH (a path without ':')")
        return Channel(kind, path=parts[0])
    if kind == "argo":
        if len(parts) != 1:
            raise OptionsError(f"bad channel {spec!r}: argo:PORT")
        return Channel(kind, port=_port(parts[0], spec))
    if kind == "tcp":
        # port 0: the system picks one (tests)
        if len(parts) == 1:
            return Channel(kind, port=_port(parts[0], spec, zero=True))
        if len(parts) == 2 and parts[0]:
            port = _port(parts[1], spec, zero=True)
            if port > 0xFFFF:
                raise OptionsError(f"bad port {parts[1]!r} in channel {spec!r}")
            return Channel(kind, port=port, host=parts[0])
        raise OptionsError(f"bad channel {spec!r}: tcp:PORT or tcp:HOST:PORT")
    if len(parts) != 2:
        raise OptionsError(f"bad channel {spec!r}: {kind}:PORT:"
                           f"{'DOMID' if kind == 'argo-domid' else 'UUID'}")
    port = _port(parts[0], spec)
    if kind == "argo-domid":
        return Channel(kind, port=port, domid=_domid(parts[1], f"channel {spec!r}"))
    if not _UUID.match(parts[1]):
        raise OptionsError(f"bad uuid {parts[1]!r} in channel {spec!r}")
    return Channel(kind, port=port, uuid=parts[1].lower())


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    """One proxy instance's settings (see the module docstring for each field's option)."""

    incoming: Channel = field(default_factory=lambda: parse_channel(DEFAULT_INCOMING,
                                                                    outgoing=False))
    outgoing: Channel = field(default_factory=lambda: parse_channel(DEFAULT_OUTGOING,
                                                                    outgoing=True))
    incoming_domid: int | None = None
    verbose: bool = False
    rules: str = DEFAULT_RULES
    request_name: str | None = None
    server: bool = False
    no_firewall: bool = False
    send_uuid: bool = False
    owner_name: bool = False
    translate_anonymous_dests: bool = False
    json_in: bool = False
    json_out: bool = False
    websockets_in: bool = False
    auto_auth: bool = False
    #: ``--allow-origin`` values, in order (empty: same-host origins only)
    allow_origins: tuple[str, ...] = ()
    check_rules: str | None = None
    help: bool = False
    #: the command line these options came from (for logs and the shell)
    argv: tuple[str, ...] = ()

    @property
    def firewall(self) -> bool:
        """Rules are checked (no ``-w``)."""
        return not self.no_firewall


_SHORT = "i:l:o:f:d:vr:n:swuh"
_LONG = ["incoming-channel=", "listen-channel=", "outgoing-channel=", "forward-channel=",
         "incoming-domid=", "verbose", "rules=", "request-name=", "server", "no-firewall",
         "uuid", "owner-name", "translate-anonymous-dests", "json-in", "json-out",
         "websockets-in", "auto-auth", "allow-origin=", "check-rules=", "help"]

_FLAGS = {
    "-v": "verbose", "--verbose": "verbose", "-s": "server", "--server": "server",
    "-w": "no_firewall", "--no-firewall": "no_firewall", "-u": "send_uuid", "--uuid": "send_uuid",
    "--owner-name": "owner_name", "--translate-anonymous-dests": "translate_anonymous_dests",
    "--json-in": "json_in", "--json-out": "json_out", "--websockets-in": "websockets_in",
    "--auto-auth": "auto_auth", "-h": "help", "--help": "help",
}

USAGE = """\
Usage: rpc-proxy [OPTION...]
  -i CH, -l CH  --incoming-channel=CH, --listen-channel=CH
                          where to listen: unix:PATH, tcp:PORT, tcp:HOST:PORT, argo:PORT
                          (default argo:5555)
  -o CH, -f CH  --outgoing-channel=CH, --forward-channel=CH
                          where to forward: unix:PATH, argo-domid:PORT:DOMID,
                          argo-uuid:PORT:UUID (default unix:/var/run/dbus/system_bus_socket)
  -d N          --incoming-domid=N    treat every incoming connection as domain N
  -v            --verbose             also log allowed messages
  -r PATH       --rules=PATH          global rules file (default /etc/rpc-proxy.rules)
  -n NAME       --request-name=NAME   rewrite RequestName to NAME ($UUID: the VM's uuid)
  -s            --server              also serve com.citrix.xenclient.rpc_proxy
  -w            --no-firewall         check no rules
  -u            --uuid                send DATA <vm uuid> during the authentication
                --owner-name          answer GetNameOwner with the well-known name
                --translate-anonymous-dests
                                      rewrite :x.y destinations to well-known names
                --json-in             clients speak JSON
                --json-out            the bus side speaks JSON
                --websockets-in       clients speak WebSocket
                --auto-auth           authenticate to the bus for the client
                --allow-origin=ORIGIN WebSocket origin allowed (repeatable; null: file:
                                      pages; *: any); default same host only
                --check-rules=FILE    parse FILE, print its rules and exit (1 if malformed)
  -h            --help                this text
"""


def parse_options(argv: Sequence[str]) -> ProxyOptions:
    """Parse ``argv`` (without the program name). Raises :class:`OptionsError`."""
    try:
        opts, operands = getopt.gnu_getopt(list(argv), _SHORT, _LONG)
    except getopt.GetoptError as exc:
        raise OptionsError(str(exc)) from None
    if operands:
        raise OptionsError(f"unexpected argument {operands[0]!r} (rpc-proxy takes options only)")
    out = ProxyOptions(argv=tuple(argv))
    for opt, value in opts:
        if opt in _FLAGS:
            flag: dict[str, Any] = {_FLAGS[opt]: True}
            out = replace(out, **flag)
        elif opt in ("-i", "-l", "--incoming-channel", "--listen-channel"):
            out = replace(out, incoming=parse_channel(value, outgoing=False))
        elif opt in ("-o", "-f", "--outgoing-channel", "--forward-channel"):
            out = replace(out, outgoing=parse_channel(value, outgoing=True))
        elif opt in ("-d", "--incoming-domid"):
            out = replace(out, incoming_domid=_domid(value, f"{opt} {value}"))
        elif opt in ("-r", "--rules"):
            if not value:
                raise OptionsError(f"{opt} needs a file name")
            out = replace(out, rules=value)
        elif opt in ("-n", "--request-name"):
            if not value:
                raise OptionsError(f"{opt} needs a bus name")
            out = replace(out, request_name=value)
        elif opt == "--allow-origin":
            if not value.strip():
                raise OptionsError("--allow-origin needs an origin (scheme://host[:port], "
                                   "null or *)")
            out = replace(out, allow_origins=(*out.allow_origins, value.strip()))
        elif opt == "--check-rules":
            out = replace(out, check_rules=value)
    return out
