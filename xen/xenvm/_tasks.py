"""The xenvm task table: names, arguments and kinds (pure).

Tasks come as a name and a dict of strings (the original's DBus ``a{ss}``; member names use
``_`` where task names use ``-``). :func:`parse_task` checks the name and every argument
against :data:`TASKS` and returns a typed :class:`TaskCall`; anything wrong is a
:class:`TaskError` naming the task, the argument and the value. Unknown arguments are errors
(the original ignored them).

Kinds: ``query`` tasks read the monitor's published state and never wait behind an operation;
``op`` tasks go through the monitor's mailbox, one at a time per VM. What each task does is
its handler in :mod:`xen.xenvm._handlers` (one per name of this table). :class:`TaskCall`'s
typed accessors (``flag``, ``integer``, ``number``, ``text``) read an argument of that type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = ["TASKS", "Arg", "TaskCall", "TaskError", "TaskSpec", "member_to_task", "parse_task"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

Kind = Literal["query", "op"]
ArgType = Literal["bool", "int", "str", "float"]


class TaskError(ValueError):
    """A task the monitor refuses: unknown, bad argument, or not allowed now."""


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: its type, whether it is required, its default."""

    name: str
    type: ArgType = "str"
    required: bool = False
    default: bool | int | float | str | None = None


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task."""

    name: str
    kind: Kind
    args: tuple[Arg, ...] = ()
    help: str = ""


def _t(name: str, kind: Kind, help_text: str, *args: Arg) -> TaskSpec:
    return TaskSpec(name, kind, args, help_text)


_SPECS = (
    _t("start", "op", "create, build and start the domain", Arg("paused", "bool", default=False)),
    _t("shutdown", "op", "ask the guest to power off; wait; destroy after the timeout if asked",
       Arg("forced", "bool", default=False), Arg("timeout", "float", default=30.0),
       Arg("destroy-after", "bool", default=False)),
    _t("halt", "op", "the original's name for shutdown",
       Arg("forced", "bool", default=False), Arg("timeout", "float", default=30.0),
       Arg("destroy-after", "bool", default=False)),
    _t("reboot", "op", "ask the guest to reboot, then start it again",
       Arg("forced", "bool", default=False), Arg("timeout", "float", default=30.0),
       Arg("auto-start", "bool", default=True)),
    _t("destroy", "op", "destroy the domain and its devices now"),
    _t("pause", "op", "pause the domain"),
    _t("unpause", "op", "unpause the domain"),
    _t("suspend", "op", "save the domain to a file and destroy it",
       Arg("file", "str", required=True), Arg("live", "bool", default=False)),
    _t("restore", "op", "start the domain from a saved file",
       Arg("file", "str", required=True), Arg("paused", "bool", default=False),
       Arg("delete", "bool", default=True)),
    _t("set", "op", "change a config field (applied at the next start)",
       Arg("field", required=True), Arg("value", required=True)),
    _t("set-config", "op", "replace the whole config (file text; pending while a domain exists)",
       Arg("config", required=True)),
    _t("disk-add", "op", "add a disk to the config (and plug it if the VM runs)",
       Arg("path", required=True), Arg("device", required=True), Arg("type", default="phy"),
       Arg("mode", default="w"), Arg("devtype", default="disk")),
    _t("disk-del", "op", "remove a disk by guest device name (unplug it if the VM runs)",
       Arg("device", required=True)),
    _t("nic-add", "op", "add a network interface to the config (and plug it if the VM runs)",
       Arg("bridge", default=""), Arg("mac", default=""), Arg("model", default=""),
       Arg("id", "int", default=-1), Arg("network", default=""),
       Arg("backend-domid", "int", default=0), Arg("wireless", "bool", default=False)),
    _t("nic-del", "op", "remove a network interface by id (unplug it if the VM runs)",
       Arg("id", "int", required=True)),
    _t("pci-add", "op", "add a PCI device to the config (and pass it through if the VM runs)",
       Arg("id", "int", required=True), Arg("domain", "int", required=True),
       Arg("bus", "int", required=True), Arg("slot", "int", required=True),
       Arg("func", "int", required=True), Arg("msitranslate", "int", default=-1),
       Arg("power_mgmt", "int", default=-1), Arg("bind", "bool", default=True)),
    _t("pci-del", "op", "remove a PCI device from the config (and from the VM if it runs)",
       Arg("domain", "int", required=True), Arg("bus", "int", required=True),
       Arg("slot", "int", required=True), Arg("func", "int", required=True)),
    _t("cd-insert-file", "op", "put an ISO file in a CD drive (the config and, live, the drive)",
       Arg("virtpath", required=True), Arg("physpath", required=True)),
    _t("cd-insert-real", "op", "put a host CD device in a CD drive",
       Arg("virtpath", required=True), Arg("physpath", required=True)),
    _t("cd-eject", "op", "empty a CD drive", Arg("virtpath", required=True)),
    _t("set-mem-target", "op", "set the balloon target of a running domain",
       Arg("mb", "int", required=True)),
    _t("quit", "op", "stop this monitor; the domain is left running"),
    _t("get-domid", "query", "the domid, -1 when none"),
    _t("get-stubdomid", "query", "the stubdomain's domid, -1 when none"),
    _t("get-status", "query", "the lifecycle state"),
    _t("get-vnc", "query", "the VNC port, empty when none"),
    _t("get", "query", "a config field (the pending value if one is set)",
       Arg("field", required=True)),
    _t("get-config", "query", "the whole config in the file format"),
    _t("disk-list", "query", "the disks of the config"),
    _t("nic-list", "query", "the network interfaces of the config"),
    _t("pci-list", "query", "the PCI devices of the config (passed through while it runs)"),
    _t("help", "query", "this table"),
)

TASKS: Mapping[str, TaskSpec] = MappingProxyType({s.name: s for s in _SPECS})


@dataclass(frozen=True, slots=True)
class TaskCall:
    """A checked task: its spec and typed arguments (every argument, defaults filled in)."""

    spec: TaskSpec
    args: Mapping[str, bool | int | float | str | None]

    @property
    def name(self) -> str:
        """The task name."""
        return self.spec.name

    def arg(self, name: str) -> bool | int | float | str | None:
        """One argument's value."""
        return self.args[name]

    def flag(self, name: str) -> bool:
        """A ``bool`` argument's value."""
        return bool(self._typed(name, bool))

    def integer(self, name: str) -> int:
        """An ``int`` argument's value."""
        return int(self._typed(name, int))

    def number(self, name: str) -> float:
        """A ``float`` argument's value."""
        return float(self._typed(name, float))

    def text(self, name: str) -> str:
        """A ``str`` argument's value."""
        return str(self._typed(name, str))

    def _typed(self, name: str, kind: type) -> bool | int | float | str:
        value = self.args[name]
        if value is None or not isinstance(value, kind):
            raise TypeError(f"{self.name}: argument {name} is not a {kind.__name__}")
        return value


def member_to_task(member: str) -> str:
    """DBus member name to task name (``get_status`` -> ``get-status``)."""
    return member.replace("_", "-")


def _convert(task: str, arg: Arg, text: str) -> bool | int | float | str:
    try:
        if arg.type == "bool":
            low = text.strip().lower()
            if low in ("true", "1", "yes", "y", "on"):
                return True
            if low in ("false", "0", "no", "n", "off"):
                return False
            raise ValueError("expected true or false")
        if arg.type == "int":
            return int(text.strip(), 10)
        if arg.type == "float":
            value = float(text.strip())
            if not value >= 0:
                raise ValueError("expected a number >= 0")
            return value
    except ValueError as exc:
        raise TaskError(f"{task}: bad value {text!r} for {arg.name}: {exc}") from None
    return text


def parse_task(name: str, params: Mapping[str, str]) -> TaskCall:
    """Check ``name`` and ``params`` against the table (see the module docstring)."""
    spec = TASKS.get(name)
    if spec is None:
        raise TaskError(f"unknown task {name!r}")
    known = {a.name: a for a in spec.args}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise TaskError(f"{name}: unknown argument(s) {', '.join(unknown)}")
    args: dict[str, bool | int | float | str | None] = {}
    for arg in spec.args:
        if arg.name in params:
            args[arg.name] = _convert(name, arg, params[arg.name])
        elif arg.required:
            raise TaskError(f"{name}: missing argument {arg.name}")
        else:
            args[arg.name] = arg.default
    return TaskCall(spec, MappingProxyType(args))


def help_text() -> str:
    """The task table as text (the ``help`` task)."""
    lines = []
    for spec in _SPECS:
        args = " ".join(f"{a.name}={a.type}{'' if a.required else '?'}" for a in spec.args)
        extra = f" [{args}]" if args else ""
        lines.append(f"{spec.name:<16} {spec.kind:<5} {spec.help}{extra}")
    return "\n".join(lines)
