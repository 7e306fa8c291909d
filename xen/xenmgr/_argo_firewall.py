"""The Argo firewall: one actor keeps the host's Argo rule table equal to what the running VMs'
rules say (the original's ``applyFirewallRules``/``unapply`` on VM state changes).

:class:`ArgoFirewall` is a child of the manager branch. It is told :class:`RecomputeArgo` by
the per-VM event handlers (a VM reached ``running``, or stopped) and by the rule methods
(``add_argo_firewall_rule``/``delete_argo_firewall_rule``); then it reads every VM's rules from
the database (the service's kept copy of ``/vm`` while it is current, ``_dbcache``: a host
shutdown's burst of stopped VMs reads the database once, not once per VM) and the running
VMs (domid, stub domain) from their monitors, computes the table
(:func:`~xen.xenmgr._argo_rules.table`) and applies only the difference to the table it last
applied. The messages of a burst are coalesced (the first queues one pass; those that arrive
before it runs join it: the pass reads the state as it is then, after all of them), and a
pass resolves again only the VMs whose inputs changed (:class:`~xen.xenmgr._argo_rules.TableCache`).
At start it resets the host's table (default deny, dom0 to dom0 allowed) and applies
the whole table. With db ``/xenmgr/argo-firewall`` false nothing is applied (and a table
applied earlier is reset to allow everything, as the original's flag did at boot).

Where the table lives (:class:`ArgoTable`):

* :class:`XenstoreArgoTable`, the simulated host's: ``/sim/argo-firewall/policy``
  (``default-deny`` or ``allow-all``) and one node per rule under
  ``/sim/argo-firewall/rules/`` (name ``<src>_<sport>_<dst>_<dport>``, ``any`` for any; value
  the rule's text), each change in one transaction: the host's state that tests read;
* :class:`ViptablesArgoTable`, a real OpenXT dom0's ``viptables`` (``-I 1 ... -j ACCEPT`` and
  ``-D ...``), bounded by a timeout per command; without the tool each apply is logged as not
  done (not proven here: this project has no Argo kernel);
* :class:`NoArgoTable`: rules are computed and logged only.

A rule text that does not parse is skipped with a warning naming the VM and the rule (the
methods refuse to store one). A failure to apply is logged and retried at the next change
from scratch (the actor forgets what it applied).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Protocol

from actors import (
    Actor,
    ActorDeadError,
    NoSuchActor,
    ServiceUnavailable,
    handles,
    service,
    tell,
)
from xen.xenmgr._argo_rules import (
    ArgoRule,
    ArgoRuleError,
    EffectiveRule,
    RunningVm,
    TableCache,
    diff,
    parse_rule,
    viptables_args,
)
from xen.xenmgr._handle import ManagerBus
from xen.xenmgr._host_io import xenstore
from xen.xenmgr._jsontree import parse_db_bool
from xen.xenmgr._monitors import monitor_view
from xen.xenmgr._settings import ManagerSettings
from xen.xenmgr._vm_mixin import db_list
from xen.xenstore import Transaction, XenstoreClient

__all__ = ["ArgoFirewall", "ArgoTable", "NoArgoTable", "RecomputeArgo", "RepeatedFailure",
           "ViptablesArgoTable", "XenstoreArgoTable", "argo_table", "recompute_argo",
           "rule_texts"]

logger = logging.getLogger("xenmgr")

SIM_ROOT = "/sim/argo-firewall"


@dataclass(frozen=True, slots=True)
class RecomputeArgo:
    """Recompute the table and apply the difference (``why`` is logged)."""

    why: str = ""


@dataclass(frozen=True, slots=True)
class _Pass:
    """Recompute now (queued by the first :class:`RecomputeArgo` of a burst)."""


_WHYS_LOGGED = 3  # reasons named in a pass's log line (then "and N more")


class ArgoTable(Protocol):
    """Where effective rules are applied."""

    def reset(self, deny: bool) -> None:
        """Empty the table; default deny (dom0 to dom0 allowed) or allow everything."""
        ...

    def apply(self, remove: list[EffectiveRule], add: list[EffectiveRule]) -> None:
        """Remove then add these rules."""
        ...


class NoArgoTable:
    """Computes only (see the module docstring)."""

    def reset(self, deny: bool) -> None:
        logger.debug("argo firewall: reset (%s), not applied", "deny" if deny else "allow")

    def apply(self, remove: list[EffectiveRule], add: list[EffectiveRule]) -> None:
        logger.debug("argo firewall: -%d +%d rules, not applied", len(remove), len(add))


def _node(rule: EffectiveRule) -> str:
    def part(value: int | None) -> str:
        return "any" if value is None else str(value)
    return "_".join(part(v) for v in (rule.source, rule.source_port, rule.destination,
                                      rule.destination_port))


class XenstoreArgoTable:
    """The simulated host's table, in xenstore (see the module docstring)."""

    def __init__(self, settings: ManagerSettings) -> None:
        self.settings = settings

    def _client(self) -> XenstoreClient:
        return xenstore(self.settings)

    def reset(self, deny: bool) -> None:
        def body(t: Transaction) -> None:
            t.rm(SIM_ROOT)
            t.write(f"{SIM_ROOT}/policy", "default-deny" if deny else "allow-all")
            t.mkdir(f"{SIM_ROOT}/rules")
        self._client().transaction(body)

    def apply(self, remove: list[EffectiveRule], add: list[EffectiveRule]) -> None:
        def body(t: Transaction) -> None:
            for rule in remove:
                t.rm(f"{SIM_ROOT}/rules/{_node(rule)}")
            for rule in add:
                t.write(f"{SIM_ROOT}/rules/{_node(rule)}", rule.text())
        self._client().transaction(body)


class ViptablesArgoTable:
    """A real dom0's ``viptables`` (see the module docstring)."""

    def __init__(self, program: str = "viptables", timeout: float = 10.0) -> None:
        self.program = program
        self.timeout = timeout

    def _run(self, *args: str) -> None:
        if shutil.which(self.program) is None:
            raise RuntimeError(f"{self.program} is not installed: Argo rules not applied")
        subprocess.run([self.program, *args], check=True, timeout=self.timeout,
                       capture_output=True)

    def reset(self, deny: bool) -> None:
        self._run("-F")
        if deny:
            self._run("-A", "--dom-in", "0", "--dom-out", "0", "-j", "ACCEPT")
            self._run("-A", "-j", "REJECT")

    def apply(self, remove: list[EffectiveRule], add: list[EffectiveRule]) -> None:
        for rule in remove:
            self._run("-D", *viptables_args(rule), "-j", "ACCEPT")
        for rule in add:
            self._run("-I", "1", *viptables_args(rule), "-j", "ACCEPT")


def recompute_argo(settings: ManagerSettings, why: str) -> None:
    """Tell the Argo firewall to recompute (best effort: a restarting one recomputes anyway)."""
    try:
        tell(settings.argo_firewall, RecomputeArgo(why))
    except (NoSuchActor, ActorDeadError):
        logger.info("argo firewall not running: %s not applied now", why)


def argo_table(settings: ManagerSettings) -> ArgoTable:
    """The table ``settings.argo_table`` names: ``sim``, ``viptables`` or ``none``."""
    if settings.argo_table == "sim":
        return XenstoreArgoTable(settings)
    if settings.argo_table == "viptables":
        return ViptablesArgoTable()
    return NoArgoTable()


def rule_texts(tree: dict[str, Any]) -> list[str]:
    """A VM's rule texts, in list order (the db list ``argo-firewall-rules/<n>``)."""
    return db_list(tree, "argo-firewall-rules")


def _flag(text: object, default: bool) -> bool:
    if not isinstance(text, str) or not text:
        return default
    try:
        return parse_db_bool(text, what="flag")
    except ValueError:
        return default


class RepeatedFailure:
    """The log level of a failure: ERROR the first time its text is seen, DEBUG while the same
    failure repeats, ERROR again once it changed or `clear` (a success) ran."""

    def __init__(self) -> None:
        self.last: str | None = None

    def level(self, text: str) -> int:
        """The level to log failure ``text`` at (and remember it)."""
        repeated, self.last = text == self.last, text
        return logging.DEBUG if repeated else logging.ERROR

    def clear(self) -> None:
        """A success: the next failure is news again."""
        self.last = None


class ArgoFirewall(Actor):
    """See the module docstring."""

    def __init__(self, settings: ManagerSettings, table_: ArgoTable | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.table = table_ if table_ is not None else argo_table(settings)
        self.applied: frozenset[EffectiveRule] | None = None  # None: reset at the next pass
        self.enabled: bool | None = None
        self.cache = TableCache()
        self.whys: list[str] = []  # the reasons of the pass queued (empty: none queued)
        self.failed = RepeatedFailure()

    def on_start(self) -> None:
        self.actor_ref.tell(RecomputeArgo("start"))

    @handles(RecomputeArgo)
    def _recompute(self, msg: RecomputeArgo) -> None:
        if not self.whys:
            self.actor_ref.tell(_Pass())
        self.whys.append(msg.why)

    @handles(_Pass)
    def _pass(self, _msg: _Pass) -> None:
        whys = list(dict.fromkeys(self.whys))
        self.whys = []
        why = ", ".join(whys[:_WHYS_LOGGED])
        if len(whys) > _WHYS_LOGGED:
            why += f" and {len(whys) - _WHYS_LOGGED} more"
        self._run_pass(why)

    def _run_pass(self, why: str) -> None:
        try:
            bus = service(self.settings.service, ManagerBus)
        except (NoSuchActor, ServiceUnavailable, ActorDeadError):
            logger.info("argo firewall: the bus service is not running yet (%s)", why)
            self.applied = None
            return
        try:
            vms = bus.db.cached_vms()  # read only
            enabled = _flag(bus.db.read("/xenmgr/argo-firewall"), True)
        except Exception as exc:  # the db is away: try again at the next change
            logger.warning("argo firewall: cannot read the database (%s): %s", why, exc)
            self.applied = None
            return
        try:
            self._apply(vms, enabled, why)
        except Exception as exc:
            # the same failure again (viptables missing: at every VM change) is logged once
            logger.log(self.failed.level(str(exc)),
                       "argo firewall: applying the rules failed (%s): %s", why, exc)
            self.applied = None
        else:
            self.failed.clear()

    def _apply(self, vms: dict[str, Any], enabled: bool, why: str) -> None:
        if not enabled:
            if self.enabled is not False:
                self.table.reset(deny=False)
                logger.info("argo firewall: disabled (/xenmgr/argo-firewall is false)")
            self.enabled, self.applied = False, None
            return
        running: list[RunningVm] = []
        rules: dict[str, list[ArgoRule]] = {}
        for uuid, tree in vms.items():
            view = monitor_view(uuid)
            if not isinstance(tree, dict) or view is None or view.domid < 0:
                continue
            running.append(RunningVm(uuid, view.domid, view.stubdom_domid,
                                     str(tree.get("type") or "svm"), str(tree.get("name") or ""),
                                     _flag(tree.get("seamless-traffic"), False)))
            rules[uuid] = []
            for text in rule_texts(tree):
                try:
                    rules[uuid].append(parse_rule(text))
                except ArgoRuleError as exc:
                    logger.warning("argo firewall: VM %s: rule skipped: %s", uuid, exc)
        new = self.cache.table(rules, running)
        if self.applied is None or self.enabled is not True:
            self.table.reset(deny=True)
            remove: list[EffectiveRule] = []
            add = sorted(new, key=EffectiveRule.sort_key)
        else:
            remove, add = diff(self.applied, new)
        if remove or add:
            self.table.apply(remove, add)
            logger.info("argo firewall (%s): -%d +%d rules, %d in force", why, len(remove),
                        len(add), len(new))
        self.enabled, self.applied = True, new
