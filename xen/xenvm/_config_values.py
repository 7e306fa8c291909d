"""Value types and codecs of the xenvm config: booleans, integers, actions, startup, display,
notify, and the ConfigError every parser raises.

Each codec is a pair parse(str) -> value / format(value) -> str with
parse(format(v)) == v for every value parse can return.

- booleans: 1/y/yes/true and 0/n/no/false, any case; written as true/false.
- integers: decimal or 0x-hex, optional sign; written in decimal.
- actions: restart | destroy | preserve (`reboot` is accepted as restart, as the readme said).
- startup: start (also `started`) | paused | shutdown (also `poweroff`) | restore <file> |
  restore-del <file>.
- display: none | sdl[:x] | intel[:x] | vnc[:use-port-unused,keymap=K,port=P].
- notify: "" | unix,<path> | tcp,<ip>:<port> | dbus[,<path>] (tcp6 is refused, as before).

Failure: parse functions raise ValueError with a reason; the config layer turns it into a
ConfigError naming the key, the value and the line.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Action",
    "ConfigError",
    "Display",
    "Notify",
    "Startup",
    "format_bool",
    "parse_bool",
    "parse_int",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_TRUE = frozenset({"1", "y", "yes", "true"})
_FALSE = frozenset({"0", "n", "no", "false"})
_INT_RE = re.compile(r"[+-]?(0[xX][0-9a-fA-F]+|[0-9]+)")
_MAX_INT_TEXT = 40


class ConfigError(ValueError):
    """A config key or value that is wrong, with where it was found."""

    def __init__(
        self, key: str, value: str | None, reason: str, *, line: int | None = None,
        source: str | None = None,
    ) -> None:
        self.key, self.value, self.reason, self.line, self.source = key, value, reason, line, source
        if source is not None and line is not None:
            where = f"{source}:{line}: "
        elif line is not None:
            where = f"line {line}: "
        elif source is not None:
            where = f"{source}: "
        else:
            where = ""
        shown = "" if value is None else f" = {value!r}"
        super().__init__(f"{where}config key {key!r}{shown}: {reason}")

    def at(self, *, line: int | None, source: str | None) -> ConfigError:
        """The same error, located at a line of a source."""
        return ConfigError(self.key, self.value, self.reason, line=line, source=source)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected a boolean (1/y/yes/true or 0/n/no/false)")


def format_bool(value: bool) -> str:
    return "true" if value else "false"


def parse_int(text: str) -> int:
    stripped = text.strip()
    if len(stripped) > _MAX_INT_TEXT or not _INT_RE.fullmatch(stripped):
        raise ValueError("expected an integer (decimal or 0x-hex)")
    return int(stripped, 0) if "x" in stripped.lower() else int(stripped, 10)


class Action(enum.Enum):
    """What to do when the guest powers off, reboots or crashes."""

    RESTART = "restart"
    DESTROY = "destroy"
    PRESERVE = "preserve"

    @classmethod
    def parse(cls, text: str) -> Action:
        value = text.strip().lower()
        if value == "reboot":
            return cls.RESTART
        for action in cls:
            if action.value == value:
                return action
        raise ValueError("expected restart, destroy or preserve")


@dataclass(frozen=True, slots=True)
class Startup:
    """What xenvm does with the VM when it starts: start it, pause it, leave it, restore it."""

    mode: Literal["start", "paused", "shutdown", "restore"] = "start"
    file: str | None = None
    delete: bool = False

    def __post_init__(self) -> None:
        if (self.mode == "restore") != (self.file is not None):
            raise ValueError("a restore startup needs a file, and only it")

    @classmethod
    def parse(cls, text: str) -> Startup:
        word, _, rest = text.strip().partition(" ")
        rest = rest.strip()
        if word in ("start", "started") and not rest:
            return cls("start")
        if word == "paused" and not rest:
            return cls("paused")
        if word in ("shutdown", "poweroff") and not rest:
            return cls("shutdown")
        if word in ("restore", "restore-del"):
            if not rest:
                raise ValueError(f"{word} needs a file name")
            return cls("restore", rest, word == "restore-del")
        raise ValueError("expected start, paused, shutdown, restore <file> or restore-del <file>")

    def format(self) -> str:
        if self.mode == "restore":
            return f"{'restore-del' if self.delete else 'restore'} {self.file}"
        return self.mode


@dataclass(frozen=True, slots=True)
class Display:
    """The guest display. Only VNC reaches the device model; sdl and intel mean none there."""

    kind: Literal["none", "sdl", "intel", "vnc"] = "vnc"
    option: str | None = None  # the sdl/intel argument
    use_unused_port: bool = False
    port: int = 0
    keymap: str = "en-us"

    @classmethod
    def parse(cls, text: str) -> Display:
        kind, sep, options = text.strip().partition(":")
        if kind == "none":
            return cls("none")
        if kind in ("sdl", "intel"):
            return cls(kind, options if sep else None)  # type: ignore[arg-type]
        if kind != "vnc":
            raise ValueError("expected none, sdl[:x], intel[:x] or vnc[:options]")
        unused, port, keymap = False, 0, "en-us"
        for option in filter(None, options.split(",")):
            name, has_value, value = option.partition("=")
            if name == "use-port-unused" and not has_value:
                unused = True
            elif name == "keymap" and has_value and value:
                keymap = value
            elif name == "port" and has_value:
                port = parse_int(value)
                if not 0 <= port <= 65535:
                    raise ValueError(f"vnc port out of range: {port}")
            else:
                raise ValueError(f"unknown vnc option {option!r} "
                                 "(use-port-unused, keymap=K, port=P)")
        return cls("vnc", None, unused, port, keymap)

    def format(self) -> str:
        if self.kind == "vnc":
            options = (["use-port-unused"] if self.use_unused_port else []) + [
                f"port={self.port}", f"keymap={self.keymap}"]
            return "vnc:" + ",".join(options)
        if self.option is not None:
            return f"{self.kind}:{self.option}"
        return self.kind


@dataclass(frozen=True, slots=True)
class Notify:
    """Where lifecycle notifications go."""

    kind: Literal["unix", "tcp", "dbus"]
    path: str | None = None   # unix socket path, or the dbus object path
    host: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> Notify | None:
        value = text.strip()
        if not value:
            return None
        kind, sep, rest = value.partition(",")
        if kind == "unix" and rest:
            return cls("unix", path=rest)
        if kind == "tcp" and rest:
            host, _, port_text = rest.rpartition(":")
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError(f"tcp notify needs an IPv4 address, got {host!r}") from None
            port = parse_int(port_text)
            if not 0 < port <= 65535:
                raise ValueError(f"notify port out of range: {port}")
            return cls("tcp", host=host, port=port)
        if kind == "tcp6":
            raise ValueError("tcp6 notify is not implemented")
        if kind == "dbus" and "," not in rest:
            return cls("dbus", path=rest if sep and rest else None)
        raise ValueError("expected unix,<path>, tcp,<ip>:<port> or dbus[,<path>]")

    def format(self) -> str:
        if self.kind == "unix":
            return f"unix,{self.path}"
        if self.kind == "tcp":
            return f"tcp,{self.host}:{self.port}"
        return "dbus" if self.path is None else f"dbus,{self.path}"
