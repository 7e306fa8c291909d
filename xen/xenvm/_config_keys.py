"""The table of xenvm config keys: name, VmConfig field, codec, aliases.

SCALAR_KEYS are set once (a repeated key: the last line wins, as in the original); LIST_KEYS
append one entry per line. The order of the tables is the order of a serialised file.
Key names are the original's; on_poweroff/on_reboot replace on_halt/on_restart, which stay
accepted as aliases (the readme's on_reboot was never read by the original's code).

Units: `memory`, `memory-max` and `stubdom-memory` are MiB in files and at run time.

Failure: codecs raise ValueError with a reason; the config layer adds key, value and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xen.xenvm._config_devices import (
    CpuidConfig,
    DiskConfig,
    NicConfig,
    PciConfig,
    format_affinity,
    format_kv,
    format_range,
    parse_affinity,
    parse_kv,
    parse_range,
)
from xen.xenvm._config_values import (
    Action,
    Display,
    Notify,
    Startup,
    format_bool,
    parse_bool,
    parse_int,
)

__all__ = ["KEY_ALIASES", "LIST_KEYS", "SCALAR_KEYS", "Key"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    field: str
    parse: Callable[[str], Any]
    format: Callable[[Any], str]
    aliases: tuple[str, ...] = ()


def _text(value: str) -> str:
    if "\n" in value or "\0" in value:
        raise ValueError("a value cannot contain a newline or NUL")
    return value


def _opt_text(value: str) -> str | None:
    return _text(value) or None


def _fmt_text(value: Any) -> str:
    return "" if value is None else str(value)


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = parse_int(text)
        if not low <= value <= high:
            raise ValueError(f"must be in {low}..{high}")
        return value

    return parse


def _opt_int(low: int, high: int) -> Callable[[str], int | None]:
    inner = _int(low, high)

    def parse(text: str) -> int | None:
        return None if not text.strip() else inner(text)

    return parse


def _uuid(text: str) -> str | None:
    if not text:
        return None
    if not _UUID_RE.fullmatch(text):
        raise ValueError("expected a UUID (8-4-4-4-12 hex digits)")
    return text.lower()


def _fmt_enum(value: Any) -> str:
    return str(value.value)


def _fmt_method(value: Any) -> str:
    return "" if value is None else str(value.format())


_BIG = 1 << 31
_S = _text, _fmt_text
_OS = _opt_text, _fmt_text
_B = parse_bool, format_bool


def _k(name: str, field: str, codec: tuple[Callable[[str], Any], Callable[[Any], str]],
       *aliases: str) -> Key:
    return Key(name, field, codec[0], codec[1], aliases)


def _i(low: int, high: int = _BIG) -> tuple[Callable[[str], Any], Callable[[Any], str]]:
    return _int(low, high), _fmt_text


def _oi(low: int, high: int = _BIG) -> tuple[Callable[[str], Any], Callable[[Any], str]]:
    return _opt_int(low, high), _fmt_text


SCALAR_KEYS: tuple[Key, ...] = (
    _k("uuid", "uuid", (_uuid, _fmt_text)),
    _k("name", "name", _OS),
    _k("startup", "startup", (Startup.parse, _fmt_method)),
    _k("hvm", "hvm", _B),
    _k("pvh", "pvh", _B),
    _k("hap", "hap", _B),
    _k("memory", "memory", _oi(1)),
    _k("memory-max", "memory_max", _oi(1)),
    _k("vcpus", "vcpus", _i(1, 4096)),
    _k("kernel", "kernel", _S),
    _k("cmdline", "cmdline", _S),
    _k("initrd", "initrd", _OS),
    _k("serial", "serial", _S),
    _k("on_poweroff", "on_poweroff", (Action.parse, _fmt_enum), "on_halt"),
    _k("on_reboot", "on_reboot", (Action.parse, _fmt_enum), "on_restart"),
    _k("on_crash", "on_crash", (Action.parse, _fmt_enum)),
    _k("output", "output", _S),
    _k("debug", "debug", _B),
    _k("no_mem_check", "no_mem_check", _B),
    _k("pae", "pae", _B),
    _k("apic", "apic", _B),
    _k("acpi", "acpi", _B),
    _k("nx", "nx", _B),
    _k("viridian", "viridian", _B),
    _k("nested", "nested", _B),
    _k("xci-cpuid-signature", "xci_cpuid_signature", _B),
    _k("usb", "usb", _B),
    _k("vsnd", "vsnd", _B),
    _k("vkbd", "vkbd", _B),
    _k("vfb", "vfb", _B),
    _k("v4v", "v4v", _B),
    _k("videoram", "videoram", _oi(0, 1024)),
    _k("extra-maxmem", "extra_maxmem", _i(0)),
    _k("smbios-pt", "smbios_pt", _B),
    _k("smbios-oem-types-pt", "smbios_oem_types_pt", _S),
    _k("acpi-pt", "acpi_pt", _B),
    _k("diskinfo-pt", "diskinfo_pt", _B),
    _k("boot", "boot", _S),
    _k("timer-mode", "timer_mode", _oi(0)),
    _k("time-offset", "time_offset", _OS),
    _k("hpet", "hpet", _oi(0)),
    _k("vpt-align", "vpt_align", _oi(0)),
    _k("display", "display", (Display.parse, _fmt_method)),
    _k("power-management", "power_management", _i(0)),
    _k("oem-features", "oem_features", _i(0)),
    _k("pci-msitranslate", "pci_msitranslate", _i(0)),
    _k("pci-power-management", "pci_power_management", _i(0)),
    _k("pci-script", "pci_script", _OS),
    _k("inject-sci", "inject_sci", _i(0)),
    _k("sound", "sound", _OS),
    _k("notify", "notify", (Notify.parse, _fmt_method)),
    _k("qemu-pv", "qemu_pv", _B),
    _k("cdrom-pt", "cdrom_pt", _OS),
    _k("flask-label", "flask_label", _OS),
    _k("cores-per-socket", "cores_per_socket", _oi(1)),
    _k("stubdom", "stubdom", (_uuid, _fmt_text)),
    _k("stubdom-memory", "stubdom_memory", _i(1)),
    _k("stubdom-kernel", "stubdom_kernel", _S),
    _k("stubdom-initrd", "stubdom_initrd", _OS),
    _k("stubdom-cmdline", "stubdom_cmdline", _S),
    _k("qemu-dm-path", "qemu_dm_path", _S),
    _k("qemu-dm-timeout", "qemu_dm_timeout", _i(1)),
    _k("dm-mode", "dm_mode", _S),
    _k("vtpm-backend", "vtpm_backend", _i(0)),
    _k("vtpm-instance", "vtpm_instance", _oi(0)),
    _k("xci-service", "xci_service", _B),
    _k("disable-migrate", "disable_migrate", _B),
)


def _pair_opt(text: str) -> tuple[str, str | None]:
    key, sep, value = _text(text).partition("=")
    if not key:
        raise ValueError("expected k[=v]")
    return key, (value if sep else None)


def _pair(text: str) -> tuple[str, str]:
    return parse_kv(_text(text))


def _method(value: Any) -> str:
    return str(value.format())


LIST_KEYS: tuple[Key, ...] = (
    _k("disk", "disks", (DiskConfig.parse, _method)),
    _k("nic", "nics", (NicConfig.parse, _method), "vif"),
    _k("pci", "pcis", (PciConfig.parse, _method)),
    _k("cpuid", "cpuid", (CpuidConfig.parse, _method)),
    _k("extra-hvm", "extra_hvm", (_pair_opt, lambda v: format_kv(v[0], v[1]))),
    _k("platform", "platform", (_pair, lambda v: format_kv(v[0], v[1]))),
    _k("extra-local-watch", "extra_local_watches", _S),
    _k("extra-vm-watch", "extra_vm_watches", _S),
    _k("cpus-affinity", "cpus_affinity", (parse_affinity, format_affinity)),
    _k("passthrough-io", "passthrough_io", (lambda t: parse_range(t, 0xFFFF), format_range)),
    _k("passthrough-mmio", "passthrough_mmio",
       (lambda t: parse_range(t, (1 << 64) - 1), format_range)),
)

#: Every accepted key name (aliases included) -> its Key.
KEY_ALIASES: dict[str, Key] = {
    name: key for key in SCALAR_KEYS + LIST_KEYS for name in (key.name, *key.aliases)
}
