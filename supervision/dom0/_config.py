"""The dom0 supervisor's configuration file (TOML), checked into a typed value.

Sections (every key optional; defaults in brackets; relative paths are relative to the state
directory):

``[supervisor]`` ``state_dir`` [``state``], ``backend`` [``sim``] (``sim`` | ``xc``), ``bus``
[``private``] (``private``: a dbus-daemon of ours; ``system``: the system bus; or an
address), ``intensity`` [10], ``period`` [30], ``log_level`` [``info``], ``syslog`` [true].

``[sim]`` ``state_dir`` [``simhost``]: where the simulated host keeps its sockets.

``[persistence]`` ``enabled`` [true], ``root`` [``config``] (``/config`` on a real dom0),
``flush_interval`` [3.0].

``[xen]`` ``enabled`` [true], ``xenstore_socket``, ``hypervisor_socket`` (defaults: the
simulated host's for ``sim``; ``$XENSTORED_PATH`` or the system's for ``xc``).

``[vms]`` ``enabled`` [true], ``intensity`` [10], ``period`` [10], ``hotplug_timeout`` [10]:
seconds a device's add or removal waits for the dom0 hotplug script (xenops' ``Timeouts``).
``[xenvm_bus]`` ``enabled`` [true]. ``[identity]`` ``enabled`` [true].
``[control]`` ``socket`` [``run/control.sock``].

``[xenmgr]`` ``enabled`` [true]: the VM manager branch (docs/xenmgr.md); ``storage``
[``storage/disks``] (``/storage/disks`` on a real dom0): where ``create_vhd`` puts VHDs;
``templates`` [``xenmgr/templates``] (``/config/xenmgr/templates`` on a dom0): the
administrator's template directory; ``autostart`` [true]; ``workers`` [8]; ``hook_timeout``
[30]; ``shutdown_timeout`` [30]: how long a host shutdown or reboot waits for each guest;
``storage_low_percent`` [10]: ``storage_space_low`` under this much free storage, checked
every ``storage_check`` [30] seconds; ``idle_shutdown_cap`` [300]: an idle shutdown forces
the host off this many seconds after it began.

``[[proxy]]`` ``args``: one rpc-proxy instance in the original's option syntax (``rpc-proxy
-h``); checked at load (a bad command line is a :class:`Dom0ConfigError`); a relative
rules path (``-r``) is relative to the configuration file's directory.

``[[vm]]`` ``uuid``, ``config`` (a xenvm config file): VMs to monitor; added at start when
no monitor for the uuid exists yet.

Unknown sections or keys, and values of the wrong type, are errors (:class:`Dom0ConfigError`
naming the section, key and value).
"""

from __future__ import annotations

import os
import shlex
import tomllib
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpc.proxy import parse_options

__all__ = ["Dom0Config", "Dom0ConfigError", "ProxySpec", "VmEntry", "load_config",
           "parse_config"]


class Dom0ConfigError(ValueError):
    """A bad configuration: names what and where."""


@dataclass(frozen=True, slots=True)
class ProxySpec:
    """One rpc-proxy instance, as its command line (``rpc.proxy.parse_options`` accepts it)."""

    argv: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VmEntry:
    """A VM to monitor."""

    uuid: str
    config: Path


@dataclass(frozen=True, slots=True)
class Dom0Config:
    """The checked configuration (see the module docstring)."""

    state_dir: Path = Path("state")
    backend: str = "sim"
    bus: str = "private"
    intensity: int = 10
    period: float = 30.0
    log_level: str = "info"
    syslog: bool = True
    sim_state_dir: Path = Path("simhost")
    persistence: bool = True
    db_root: Path = Path("config")
    flush_interval: float = 3.0
    xen: bool = True
    xenstore_socket: str | None = None
    hypervisor_socket: str | None = None
    vms: bool = True
    vms_intensity: int = 10
    vms_period: float = 10.0
    vms_hotplug_timeout: float = 10.0
    xenvm_bus: bool = True
    identity: bool = True
    control_socket: Path = Path("run/control.sock")
    xenmgr: bool = True
    xenmgr_storage: Path = Path("storage/disks")
    xenmgr_templates: Path = Path("xenmgr/templates")
    xenmgr_autostart: bool = True
    xenmgr_workers: int = 8
    xenmgr_hook_timeout: float = 30.0
    xenmgr_shutdown_timeout: float = 30.0
    xenmgr_storage_low_percent: int = 10
    xenmgr_storage_check: float = 30.0
    xenmgr_idle_shutdown_cap: float = 300.0
    proxies: tuple[ProxySpec, ...] = ()
    vm_entries: tuple[VmEntry, ...] = field(default=())

    def under_state(self, path: Path) -> Path:
        """``path`` itself if absolute, else relative to the state directory."""
        return path if path.is_absolute() else self.state_dir / path


_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "supervisor": {"state_dir": str, "backend": str, "bus": str, "intensity": int,
                   "period": (int, float), "log_level": str, "syslog": bool},
    "sim": {"state_dir": str},
    "persistence": {"enabled": bool, "root": str, "flush_interval": (int, float)},
    "xen": {"enabled": bool, "xenstore_socket": str, "hypervisor_socket": str},
    "vms": {"enabled": bool, "intensity": int, "period": (int, float),
            "hotplug_timeout": (int, float)},
    "xenvm_bus": {"enabled": bool},
    "identity": {"enabled": bool},
    "control": {"socket": str},
    "xenmgr": {"enabled": bool, "storage": str, "templates": str, "autostart": bool,
               "workers": int, "hook_timeout": (int, float),
               "shutdown_timeout": (int, float), "storage_low_percent": int,
               "storage_check": (int, float), "idle_shutdown_cap": (int, float)},
}
_LISTS = {"proxy": {"args": str}, "vm": {"uuid": str, "config": str}}


def _check(section: str, table: Any, schema: dict[str, type | tuple[type, ...]]) -> None:
    if not isinstance(table, dict):
        raise Dom0ConfigError(f"[{section}] must be a table")
    for key, value in table.items():
        if key not in schema:
            raise Dom0ConfigError(f"[{section}] has no key {key!r} "
                                  f"(known: {', '.join(sorted(schema))})")
        want = schema[key]
        if isinstance(value, bool) and want is not bool and bool not in (
                want if isinstance(want, tuple) else (want,)):
            raise Dom0ConfigError(f"[{section}] {key} = {value!r}: expected {want}")
        if not isinstance(value, want):
            raise Dom0ConfigError(f"[{section}] {key} = {value!r}: wrong type")


def _rules_beside(argv: tuple[str, ...], base: Path | None) -> tuple[str, ...]:
    """``argv`` with a relative rules path (``-r P``, ``-rP``, ``--rules P``, ``--rules=P``)
    made relative to ``base``, the configuration file's directory."""
    if base is None:
        return argv

    def beside(path: str) -> str:
        return path if not path or os.path.isabs(path) else str(base / path)
    out: list[str] = []
    take = False
    for arg in argv:
        if take:
            out.append(beside(arg))
            take = False
        elif arg == "--":
            out.append(arg)
            take = False
        elif arg in ("-r", "--rules"):
            out.append(arg)
            take = True
        elif arg.startswith("--rules="):
            out.append("--rules=" + beside(arg[len("--rules="):]))
        elif arg.startswith("-r") and not arg.startswith("--"):
            out.append("-r" + beside(arg[2:]))
        else:
            out.append(arg)
    return tuple(out)


def parse_config(text: str, *, base: Path | None = None) -> Dom0Config:
    """Check a TOML document; ``base`` resolves relative ``[[vm]] config`` paths and the
    relative rules paths of ``[[proxy]]`` entries."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Dom0ConfigError(f"not valid TOML: {exc}") from None
    for section, table in doc.items():
        if section in _SCHEMA:
            _check(section, table, _SCHEMA[section])
        elif section in _LISTS:
            if not isinstance(table, list):
                raise Dom0ConfigError(f"[[{section}]] must be an array of tables")
            for item in table:
                _check(section, item, _LISTS[section])  # type: ignore[arg-type]
        else:
            raise Dom0ConfigError(f"unknown section [{section}]")

    def get(section: str, key: str, default: Any) -> Any:
        return doc.get(section, {}).get(key, default)

    state = Path(get("supervisor", "state_dir", "state"))
    backend = get("supervisor", "backend", "sim")
    if backend not in ("sim", "xc"):
        raise Dom0ConfigError(f"[supervisor] backend = {backend!r}: expected sim or xc")
    level = get("supervisor", "log_level", "info").lower()
    if level not in ("debug", "info", "warning", "error"):
        raise Dom0ConfigError(f"[supervisor] log_level = {level!r}")
    for section, key in (("supervisor", "intensity"), ("vms", "intensity")):
        if get(section, key, 1) < 0:
            raise Dom0ConfigError(f"[{section}] {key} must be >= 0")
    proxies = []
    for item in doc.get("proxy", []):
        try:
            argv = _rules_beside(tuple(shlex.split(item.get("args", ""))), base)
            parse_options(argv)  # OptionsError (a ValueError) names what is wrong
            proxies.append(ProxySpec(argv))
        except ValueError as exc:
            raise Dom0ConfigError(f"[[proxy]] args: {exc}") from None
    vms = []
    for item in doc.get("vm", []):
        try:
            vm_uuid = str(uuidlib.UUID(item["uuid"]))
        except (KeyError, ValueError):
            raise Dom0ConfigError(f"[[vm]] needs a valid uuid, got {item.get('uuid')!r}"
                                  ) from None
        if "config" not in item:
            raise Dom0ConfigError(f"[[vm]] {vm_uuid} needs a config file")
        path = Path(item["config"])
        vms.append(VmEntry(vm_uuid, path if path.is_absolute() or base is None
                           else base / path))
    if get("xenmgr", "workers", 8) < 1 or get("xenmgr", "hook_timeout", 30) <= 0 \
            or get("xenmgr", "shutdown_timeout", 30) <= 0 \
            or not 0 <= get("xenmgr", "storage_low_percent", 10) <= 101 \
            or get("xenmgr", "storage_check", 30) <= 0 \
            or get("xenmgr", "idle_shutdown_cap", 300) <= 0:
        raise Dom0ConfigError("[xenmgr] workers must be >= 1, hook_timeout and "
                              "shutdown_timeout > 0, storage_low_percent 0..101, "
                              "storage_check and idle_shutdown_cap > 0")
    if get("vms", "hotplug_timeout", 10) <= 0:
        raise Dom0ConfigError("[vms] hotplug_timeout must be > 0")
    return Dom0Config(
        state_dir=state, backend=backend, bus=get("supervisor", "bus", "private"),
        intensity=get("supervisor", "intensity", 10),
        period=float(get("supervisor", "period", 30.0)), log_level=level,
        syslog=get("supervisor", "syslog", True),
        sim_state_dir=Path(get("sim", "state_dir", "simhost")),
        persistence=get("persistence", "enabled", True),
        db_root=Path(get("persistence", "root", "config")),
        flush_interval=float(get("persistence", "flush_interval", 3.0)),
        xen=get("xen", "enabled", True),
        xenstore_socket=get("xen", "xenstore_socket", None) or None,
        hypervisor_socket=get("xen", "hypervisor_socket", None) or None,
        vms=get("vms", "enabled", True), vms_intensity=get("vms", "intensity", 10),
        vms_period=float(get("vms", "period", 10.0)),
        vms_hotplug_timeout=float(get("vms", "hotplug_timeout", 10.0)),
        xenvm_bus=get("xenvm_bus", "enabled", True), identity=get("identity", "enabled", True),
        control_socket=Path(get("control", "socket", "run/control.sock")),
        proxies=tuple(proxies), vm_entries=tuple(vms),
        xenmgr=get("xenmgr", "enabled", True),
        xenmgr_storage=Path(get("xenmgr", "storage", "storage/disks")),
        xenmgr_templates=Path(get("xenmgr", "templates", "xenmgr/templates")),
        xenmgr_autostart=get("xenmgr", "autostart", True),
        xenmgr_workers=get("xenmgr", "workers", 8),
        xenmgr_hook_timeout=float(get("xenmgr", "hook_timeout", 30.0)),
        xenmgr_shutdown_timeout=float(get("xenmgr", "shutdown_timeout", 30.0)),
        xenmgr_storage_low_percent=get("xenmgr", "storage_low_percent", 10),
        xenmgr_storage_check=float(get("xenmgr", "storage_check", 30.0)),
        xenmgr_idle_shutdown_cap=float(get("xenmgr", "idle_shutdown_cap", 300.0)),
    )


def load_config(path: Path) -> Dom0Config:
    """Read and check a configuration file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise Dom0ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return parse_config(text, base=path.parent)
