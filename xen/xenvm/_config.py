"""The xenvm VM config: a typed frozen value, its file format, and runtime get/set.

File format: text lines `key = value`. Blanks and tabs around the line, the key and the
value are trimmed; empty lines and lines starting with `#` are comments. List keys (disk, nic,
pci, ...; see _config_keys) append one entry per line, other keys take the last value given.
Defaults are the original's (`memory` has none: a VM without it cannot boot, see
`required_to_boot_kib`).

Units: `memory`, `memory-max` and `stubdom-memory` are MiB, in files and at run time alike
(the original used KiB for runtime get/set). `memory-kib`, `memory-max-kib` and
`stubdom-memory-kib` read and write the same values in KiB (whole MiB only);
`required-to-boot-kib` is read-only.

Unknown keys: with strict=True they are errors; otherwise they are logged, kept in
`VmConfig.unknown` and written back out, so nothing in a file is lost. A line without `=` is
an error in strict mode and is logged and skipped otherwise, as before.

Round trips: parse_config(format_config(c)) == c, and config_from_dict(config_to_dict(c)) == c
(the dict holds only str/int/list values, for msgpack snapshots).

Bounds: a file is at most MAX_CONFIG_BYTES and a line at most MAX_LINE_BYTES characters.
Failure: any bad key, value or bound raises ConfigError naming the key, the value and the line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from xen.xenops import name_to_devid
from xen.xenops import required_to_boot_kib as _required_to_boot_kib
from xen.xenvm._config_devices import (
    CpuidConfig,
    DiskConfig,
    NicConfig,
    PciConfig,
    sanitise_nics,
)
from xen.xenvm._config_keys import KEY_ALIASES, LIST_KEYS, SCALAR_KEYS, Key
from xen.xenvm._config_values import Action, ConfigError, Display, Notify, Startup

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_LINE_BYTES",
    "RUNTIME_FIELDS",
    "VmConfig",
    "add_entry",
    "config_from_dict",
    "config_to_dict",
    "format_config",
    "get_field",
    "parse_config",
    "required_to_boot_kib",
    "set_field",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


MAX_CONFIG_BYTES = 1 << 20  # a VM config is a few KiB; 1 MiB leaves room and bounds memory
MAX_LINE_BYTES = 8192       # longer than any path list xenvm ever wrote on one line
_DICT_FORMAT = "xenvm-config"
_DICT_VERSION = 1
_KIB_FIELDS = {"memory-kib": "memory", "memory-max-kib": "memory_max",
               "stubdom-memory-kib": "stubdom_memory"}
#: Names get/set know besides the config keys.
RUNTIME_FIELDS = (*_KIB_FIELDS, "required-to-boot-kib")


_START = Startup()
_VNC = Display()


@dataclass(frozen=True, slots=True)
class VmConfig:
    """One VM's configuration. Memory sizes in MiB; None means "not set"."""

    uuid: str | None = None
    name: str | None = None
    startup: Startup = _START
    hvm: bool = False
    pvh: bool = False
    hap: bool = True
    memory: int | None = None
    memory_max: int | None = None
    vcpus: int = 1
    kernel: str = ""
    cmdline: str = ""
    initrd: str | None = None
    serial: str = ""
    on_poweroff: Action = Action.DESTROY
    on_reboot: Action = Action.RESTART
    on_crash: Action = Action.DESTROY
    output: str = ""
    debug: bool = False
    no_mem_check: bool = False
    pae: bool = False
    apic: bool = False
    acpi: bool = False
    nx: bool = False
    viridian: bool = False
    nested: bool = False
    xci_cpuid_signature: bool = False
    usb: bool = True
    vsnd: bool = False
    vkbd: bool = False
    vfb: bool = False
    v4v: bool = False
    videoram: int | None = None
    extra_maxmem: int = 0
    smbios_pt: bool = False
    smbios_oem_types_pt: str = ""
    acpi_pt: bool = False
    diskinfo_pt: bool = False
    boot: str = "cd"
    timer_mode: int | None = None
    time_offset: str | None = None
    hpet: int | None = None
    vpt_align: int | None = None
    display: Display = _VNC
    power_management: int = 0
    oem_features: int = 0
    pci_msitranslate: int = 1
    pci_power_management: int = 1
    pci_script: str | None = None
    inject_sci: int = 0
    sound: str | None = None
    notify: Notify | None = None
    qemu_pv: bool = True
    cdrom_pt: str | None = None
    flask_label: str | None = None
    cores_per_socket: int | None = None
    stubdom: str | None = None
    stubdom_memory: int = 128
    stubdom_kernel: str = "/usr/lib/xen/boot/stubdomain-bzImage"
    stubdom_initrd: str | None = "/usr/lib/xen/boot/stubdomain-initramfs"
    stubdom_cmdline: str = "init=/init xen_blkfront.max=8"
    qemu_dm_path: str = ""
    qemu_dm_timeout: int = 30
    dm_mode: str = ""
    vtpm_backend: int = 0
    vtpm_instance: int | None = None
    xci_service: bool = False
    disable_migrate: bool = False
    # list keys
    disks: tuple[DiskConfig, ...] = ()
    nics: tuple[NicConfig, ...] = ()
    pcis: tuple[PciConfig, ...] = ()
    cpuid: tuple[CpuidConfig, ...] = ()
    extra_hvm: tuple[tuple[str, str | None], ...] = ()
    platform: tuple[tuple[str, str], ...] = ()
    extra_local_watches: tuple[str, ...] = ()
    extra_vm_watches: tuple[str, ...] = ()
    cpus_affinity: tuple[tuple[int, tuple[int, ...]], ...] = ()
    passthrough_io: tuple[tuple[int, int], ...] = ()
    passthrough_mmio: tuple[tuple[int, int], ...] = ()
    # unknown keys, kept as written
    unknown: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.memory is not None and self.memory_max is not None:
            if self.memory_max < self.memory:
                raise ConfigError("memory-max", str(self.memory_max),
                                  f"is below memory ({self.memory} MiB)")
        if self.pvh and self.hvm:
            raise ConfigError("pvh", "true", "a VM is HVM or PVH, not both (hvm = true)")
        if self.pvh and self.stubdom is not None:
            raise ConfigError("stubdom", self.stubdom,
                              "a PVH guest has no device model, so no stub domain")
        ids = [nic.nic_id for nic in self.nics]
        if None in ids or len(set(ids)) != len(ids):
            raise ConfigError("nic", None, "nics need distinct ids (see sanitise_nics)")
        devices: dict[int, str] = {}
        for disk in self.disks:  # two disks on one guest device could never both be plugged
            devid = name_to_devid(disk.virtpath)
            if devid in devices:
                raise ConfigError("disk", disk.format(), f"guest device {disk.virtpath} is "
                                  f"taken by another disk ({devices[devid]})")
            devices[devid] = disk.virtpath

    @property
    def hvm_container(self) -> bool:
        """Whether the domain is created HVM: an HVM guest, or a PVH one (an HVM container
        with no device model and no firmware, booted straight into its kernel)."""
        return self.hvm or self.pvh

    @property
    def static_max(self) -> int | None:
        """MiB the guest may grow to: memory-max, else memory."""
        return self.memory if self.memory_max is None else self.memory_max


_DEFAULTS = VmConfig()


def _located(err: ValueError, key: str, value: str | None, line: int | None,
             source: str | None) -> ConfigError:
    if isinstance(err, ConfigError):
        return err.at(line=line, source=source)
    return ConfigError(key, value, str(err), line=line, source=source)


def _lines(text: str, source: str | None) -> list[tuple[int, str]]:
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError("<file>", None, f"config larger than {MAX_CONFIG_BYTES} bytes",
                          source=source)
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if len(raw) > MAX_LINE_BYTES:
            raise ConfigError("<line>", raw[:40] + "...",
                              f"line longer than {MAX_LINE_BYTES} characters",
                              line=number, source=source)
        out.append((number, raw.strip(" \t\r")))
    return out


def _build(
    scalars: dict[str, Any], lists: dict[str, list[Any]], unknown: list[tuple[str, str]],
    source: str | None,
) -> VmConfig:
    values: dict[str, Any] = dict(scalars)
    for field, items in lists.items():
        values[field] = tuple(items)
    try:
        values["nics"] = sanitise_nics(values.get("nics", ()))
    except ValueError as err:
        raise ConfigError("nic", None, str(err), source=source) from None
    values["unknown"] = tuple(unknown)
    try:
        return VmConfig(**values)
    except ConfigError as err:
        raise err.at(line=None, source=source) from None


_PARSED_KEPT = 512
_parsed: dict[tuple[str, bool, str | None], tuple[VmConfig, tuple[str, ...]]] = {}


def parse_config(text: str, *, strict: bool = False, source: str | None = None,
                 warn: Callable[[str], None] | None = None) -> VmConfig:
    """Parse a config file's text. `source` (a file name) only labels error messages; `warn`
    is told about each line kept or skipped without being understood (unless `strict`, which
    refuses them).

    The last texts parsed are remembered with their result and warnings (a VM monitor parses
    its config, and its snapshot's, at every restart): a text seen again gives the same
    (immutable) config and the same warnings, again; a text that fails is parsed every time.
    """
    key = (text, strict, source)
    known = _parsed.get(key)
    if known is None:
        notes: list[str] = []
        known = (_parse_config(text, strict, source, notes.append), tuple(notes))
        if len(_parsed) >= _PARSED_KEPT:
            _parsed.clear()
        _parsed[key] = known
    if warn is not None:
        for note in known[1]:
            warn(note)
    return known[0]


def _parse_config(text: str, strict: bool, source: str | None,
                  warn: Callable[[str], None]) -> VmConfig:
    scalars: dict[str, Any] = {}
    lists: dict[str, list[Any]] = {}
    unknown: list[tuple[str, str]] = []
    for number, line in _lines(text, source):
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name, value = name.rstrip(" \t"), value.lstrip(" \t")
        if not sep or not name:
            if strict:
                raise ConfigError(line, None, "not a `key = value` line", line=number,
                                  source=source)
            warn(f"{source}:{number}: ignoring line without `key = value`: {line!r}")
            continue
        key = KEY_ALIASES.get(name)
        if key is None:
            if strict:
                raise ConfigError(name, value, "unknown config key", line=number, source=source)
            warn(f"{source}:{number}: unknown config key {name!r} kept as is")
            unknown.append((name, value))
            continue
        try:
            parsed = key.parse(value)
        except ValueError as err:
            raise _located(err, name, value, number, source) from None
        if key in LIST_KEYS:
            lists.setdefault(key.field, []).append(parsed)
        else:
            scalars[key.field] = parsed
    return _build(scalars, lists, unknown, source)


def _entries(cfg: VmConfig) -> list[tuple[str, str]]:
    out = []
    for key in SCALAR_KEYS:
        value = getattr(cfg, key.field)
        if value != getattr(_DEFAULTS, key.field):
            out.append((key.name, key.format(value)))
    for key in LIST_KEYS:
        out += [(key.name, key.format(item)) for item in getattr(cfg, key.field)]
    return out + list(cfg.unknown)


def format_config(cfg: VmConfig) -> str:
    """The file text of a config: every value that differs from the default, then lists."""
    return "".join(f"{key} = {value}\n" for key, value in _entries(cfg))


def config_to_dict(cfg: VmConfig) -> dict[str, Any]:
    """A msgpack-able snapshot: {"format", "version", "entries": [[key, value], ...]}."""
    return {"format": _DICT_FORMAT, "version": _DICT_VERSION,
            "entries": [[k, v] for k, v in _entries(cfg)]}


def config_from_dict(data: Any) -> VmConfig:
    """Inverse of config_to_dict. Raises ConfigError on any other shape."""
    if not isinstance(data, dict) or data.get("format") != _DICT_FORMAT:
        raise ConfigError("<snapshot>", None, "not a xenvm config snapshot")
    if data.get("version") != _DICT_VERSION:
        raise ConfigError("<snapshot>", str(data.get("version")), "unsupported version")
    entries = data.get("entries")
    if not isinstance(entries, list | tuple) or not all(
        isinstance(e, list | tuple) and len(e) == 2 and all(isinstance(x, str) for x in e)
        for e in entries
    ):
        raise ConfigError("<snapshot>", None, "entries must be [key, value] string pairs")
    for key, value in entries:
        if "\n" in key or "\n" in value or "=" in key:
            raise ConfigError(key, value, "snapshot entry cannot be a config line")
    return parse_config("".join(f"{k} = {v}\n" for k, v in entries), source="<snapshot>")


def required_to_boot_kib(cfg: VmConfig) -> int:
    """Free host KiB needed to boot this VM (guest footprint + stubdomain's, if any)."""
    if cfg.memory is None:
        raise ConfigError("memory", None, "is not set")
    return _required_to_boot_kib(
        hvm=cfg.hvm_container, vcpus=cfg.vcpus, memory_mib=cfg.memory,
        memory_max_mib=cfg.memory_max,
        stubdom_memory_mib=cfg.stubdom_memory if cfg.stubdom is not None else None,
    )


def _lookup(name: str) -> Key:
    key = KEY_ALIASES.get(name)
    if key is None:
        raise ConfigError(name, None, "unknown config key")
    return key


def get_field(cfg: VmConfig, name: str) -> str:
    """A value as text, in file syntax (list keys: one entry per line). Unset -> ""."""
    if name in _KIB_FIELDS:
        mib = getattr(cfg, _KIB_FIELDS[name])
        return "" if mib is None else str(mib * 1024)
    if name == "required-to-boot-kib":
        return str(required_to_boot_kib(cfg))
    key = _lookup(name)
    if key in LIST_KEYS:
        return "\n".join(key.format(item) for item in getattr(cfg, key.field))
    return key.format(getattr(cfg, key.field))


def set_field(cfg: VmConfig, name: str, value: str) -> VmConfig:
    """A new config with one scalar changed. Raises ConfigError naming key and value."""
    value = value.strip(" \t")
    if name in _KIB_FIELDS:
        field = _KIB_FIELDS[name]
        if not value:
            return set_field(cfg, field.replace("_", "-"), "")
        try:
            kib = int(value, 10)
        except ValueError:
            raise ConfigError(name, value, "expected a whole number of KiB") from None
        if kib <= 0 or kib % 1024:
            raise ConfigError(name, value, "must be a positive multiple of 1024 (whole MiB)")
        return set_field(cfg, field.replace("_", "-"), str(kib // 1024))
    if name in RUNTIME_FIELDS:
        raise ConfigError(name, value, "is read-only")
    key = _lookup(name)
    if key in LIST_KEYS:
        raise ConfigError(name, value, "is a list key: add entries instead")
    try:
        changes: dict[str, Any] = {key.field: key.parse(value)}
        return replace(cfg, **changes)
    except ConfigError as err:
        raise err from None
    except ValueError as err:
        raise ConfigError(name, value, str(err)) from None


def add_entry(cfg: VmConfig, name: str, value: str) -> VmConfig:
    """A new config with one list entry appended (disk-add, nic-add, pci-add ...)."""
    key = _lookup(name)
    if key not in LIST_KEYS:
        raise ConfigError(name, value, "is not a list key")
    try:
        item = key.parse(value.strip(" \t"))
        items = (*getattr(cfg, key.field), item)
        if key.field == "nics":
            items = sanitise_nics(items)
        changes: dict[str, Any] = {key.field: items}
        return replace(cfg, **changes)
    except ConfigError as err:
        raise err from None
    except ValueError as err:
        raise ConfigError(name, value, str(err)) from None


assert {k.field for k in SCALAR_KEYS + LIST_KEYS} | {"unknown"} == {
    f.name for f in fields(VmConfig)
}, "every VmConfig field has exactly one config key"
