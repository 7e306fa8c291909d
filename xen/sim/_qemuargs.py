"""Parsing and checking the device-model command line our builder produces (pure).

The simulated device model (`xen.sim.qemu_dm`) reads the same argv as qemu-dm-wrapper:
``<domid> [<logfile>] <qemu args...>`` (`xen.xenops._dmargs.qemu_argv` without its first
element). `parse_wrapper_argv` and `parse_qemu_args` turn it into a frozen `QemuConfig`, and
refuse, with a `QemuArgsError` naming the option and the value, anything qemu-dm would not
take or that our builder should never produce, so that an argument-construction bug fails
loudly in sim mode instead of being ignored:

- an unknown option or a stray positional argument; a known option given twice (only
  ``-net``, ``-usbdevice`` and ``-pciemulation`` repeat); an option missing its value (a
  value may not start with ``-``);
- ``-d`` not first, or not the wrapper's domid; ``-M`` missing or not ``xenfv``/``xenpv``;
- HVM (``xenfv``) without ``-m``/``-vcpus``, or PV (``xenpv``) with them; ``-videoram`` missing;
  a number that is not a decimal integer in range (``-m`` and ``-vcpus``/``-smp`` ≥ 1);
  ``-smp`` different from ``-vcpus`` (a PV device model gets ``-smp`` alone, as the original);
- ``-vnc`` not ``<addr>:<display>``, ``-vnc`` together with ``-vncunused``, ``-k`` without a
  VNC display; ``-usbdevice`` before ``-usb``; ``-boot`` other than letters of ``acdn``;
- ``-net`` not ``none``, ``nic,vlan=N,macaddr=MAC,model=M`` or
  ``tap,vlan=N,bridge=B,ifname=tapD.I`` (exact keys, in that order); a nic without its tap
  or the other way round; ``none`` with nics, or no ``-net`` at all.

Extras (the config's ``extra-hvm`` entries, given as ``-key [value]``) are checked against
`KNOWN_EXTRAS`: a value is taken when the next element does not start with ``-``. An extra
that is not in the table is refused as qemu refuses an option it does not know; add it there
when the toolstack learns a new one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "KNOWN_EXTRAS",
    "QemuArgsError",
    "QemuConfig",
    "QemuNic",
    "parse_qemu_args",
    "parse_wrapper_argv",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


class QemuArgsError(ValueError):
    """A device-model command line that qemu-dm would refuse (or our builder must not make)."""


# option -> takes a value; repeatable options listed separately.
_OPTIONS: dict[str, bool] = {
    "d": True, "m": True, "videoram": True, "vcpus": True, "boot": True, "serial": True,
    "M": True, "vncunused": False, "vnc": True, "k": True, "soundhw": True, "usb": False,
    "usbdevice": True, "net": True, "acpi": False, "loadvm": True, "pciemulation": True,
    "smp": True,
}
_REPEATABLE = frozenset({"net", "usbdevice", "pciemulation"})
# extra-hvm keys the simulated qemu accepts (value optional): the ones the original's device model
# names (display adapters and CD-ROM pass-through).
KNOWN_EXTRAS = frozenset({"cdrom-pt", "std-vga", "xengfx", "vgpu", "gfx_passthru"})

_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
_INT_MAX = 1 << 31


@dataclass(frozen=True, slots=True)
class QemuNic:
    """One emulated nic and its tap (both ``-net`` elements of one vlan)."""

    vlan: int
    mac: str
    model: str
    bridge: str
    ifname: str


@dataclass(frozen=True, slots=True)
class QemuConfig:
    """What a device-model command line asks for."""

    domid: int
    hvm: bool
    videoram_mib: int
    memory_mib: int | None = None
    vcpus: int = 1
    boot: str = ""
    serial: str = ""
    vnc_unused: bool = False
    vnc_display: tuple[str, int] | None = None
    keymap: str = ""
    sound: str = ""
    usb: tuple[str, ...] = ()
    nics: tuple[QemuNic, ...] = ()
    acpi: bool = False
    loadvm: str = ""
    pci_emulations: tuple[str, ...] = ()
    extras: tuple[tuple[str, str | None], ...] = ()

    @property
    def wants_vnc(self) -> bool:
        """A VNC display was asked for (``-vnc`` or ``-vncunused``)."""
        return self.vnc_unused or self.vnc_display is not None


def _int(option: str, text: str, low: int = 0) -> int:
    if not text.isdigit() or not low <= int(text) < _INT_MAX:
        raise QemuArgsError(f"-{option} needs a decimal integer >= {low}, got {text!r}")
    return int(text)


def _split_options(args: Sequence[str]) -> list[tuple[str, str | None]]:
    """(option, value) pairs in order; raises on unknown options and missing values."""
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or len(arg) < 2:
            raise QemuArgsError(f"unexpected argument {arg!r} (qemu takes options only)")
        name = arg[1:]
        nxt = args[i + 1] if i + 1 < len(args) else None
        if name in _OPTIONS:
            if not _OPTIONS[name]:
                out.append((name, None))
                i += 1
                continue
            if nxt is None or nxt.startswith("-"):
                got = "nothing" if nxt is None else f"option {nxt}"
                raise QemuArgsError(f"-{name} needs a value, got {got}")
            out.append((name, nxt))
            i += 2
        elif name in KNOWN_EXTRAS:
            value = nxt if nxt is not None and not nxt.startswith("-") else None
            out.append((name, value))
            i += 1 if value is None else 2
        else:
            raise QemuArgsError(f"unknown option {arg}")
    return out


def _net(value: str, domid: int) -> tuple[str, dict[str, str]]:
    if value == "none":
        return "none", {}
    kind, _, rest = value.partition(",")
    expected = {"nic": ("vlan", "macaddr", "model"), "tap": ("vlan", "bridge", "ifname")}
    if kind not in expected:
        raise QemuArgsError(f"-net {value!r}: expected none, nic,... or tap,...")
    pairs = [item.partition("=") for item in rest.split(",")] if rest else []
    keys = tuple(k for k, _, _ in pairs)
    if keys != expected[kind] or any(not sep or not v for _, sep, v in pairs):
        raise QemuArgsError(f"-net {value!r}: expected {kind},"
                            + ",".join(f"{k}=..." for k in expected[kind]))
    fields = {k: v for k, _, v in pairs}
    _int("net vlan", fields["vlan"])
    if kind == "nic":
        if not _MAC.fullmatch(fields["macaddr"]):
            raise QemuArgsError(f"-net {value!r}: bad macaddr {fields['macaddr']!r}")
        if not _NAME.fullmatch(fields["model"]):
            raise QemuArgsError(f"-net {value!r}: bad model {fields['model']!r}")
    else:
        if not _NAME.fullmatch(fields["bridge"]):
            raise QemuArgsError(f"-net {value!r}: bad bridge {fields['bridge']!r}")
        if not re.fullmatch(rf"tap{domid}\.\d+", fields["ifname"]):
            raise QemuArgsError(f"-net {value!r}: ifname must be tap{domid}.<nic id>")
    return kind, fields


def _nics(values: list[str], domid: int) -> tuple[QemuNic, ...]:
    if not values:
        raise QemuArgsError("no -net option (the builder gives -net none when there is no nic)")
    nics: dict[int, dict[str, str]] = {}
    taps: dict[int, dict[str, str]] = {}
    for value in values:
        kind, fields = _net(value, domid)
        if kind == "none":
            if len(values) > 1:
                raise QemuArgsError("-net none together with other -net options")
            return ()
        table = nics if kind == "nic" else taps
        vlan = int(fields["vlan"])
        if vlan in table:
            raise QemuArgsError(f"two -net {kind} options for vlan {vlan}")
        table[vlan] = fields
    if set(nics) != set(taps):
        odd = sorted(set(nics) ^ set(taps))
        raise QemuArgsError(f"vlan {odd[0]} has a nic without a tap or a tap without a nic")
    return tuple(QemuNic(v, nics[v]["macaddr"], nics[v]["model"], taps[v]["bridge"],
                         taps[v]["ifname"]) for v in sorted(nics))


def _vnc(value: str) -> tuple[str, int]:
    addr, sep, display = value.rpartition(":")
    if not sep:
        raise QemuArgsError(f"-vnc {value!r}: expected <address>:<display>")
    return addr, _int("vnc display", display)


def parse_qemu_args(args: Sequence[str], domid: int | None = None) -> QemuConfig:
    """Check qemu's arguments (see the module docstring); ``domid``: the wrapper's."""
    pairs = _split_options(args)
    if not pairs or pairs[0][0] != "d":
        raise QemuArgsError("the first option must be -d <domid>")
    seen: dict[str, str | None] = {}
    lists: dict[str, list[str]] = {name: [] for name in _REPEATABLE}
    extras: list[tuple[str, str | None]] = []
    for name, value in pairs:
        if name in KNOWN_EXTRAS:
            if any(name == k for k, _ in extras):
                raise QemuArgsError(f"-{name} given twice")
            extras.append((name, value))
        elif name in _REPEATABLE:
            if name == "usbdevice" and "usb" not in seen:
                raise QemuArgsError("-usbdevice before -usb")
            assert value is not None
            lists[name].append(value)
        elif name in seen:
            raise QemuArgsError(f"-{name} given twice")
        else:
            seen[name] = value
    dm_domid = _int("d", seen["d"] or "")
    if domid is not None and dm_domid != domid:
        raise QemuArgsError(f"-d {dm_domid} is not the wrapper's domid {domid}")
    machine = seen.get("M")
    if machine not in ("xenfv", "xenpv"):
        raise QemuArgsError(f"-M must be xenfv or xenpv, got {machine!r}")
    hvm = machine == "xenfv"
    if hvm and ("m" not in seen or "vcpus" not in seen):
        raise QemuArgsError("an HVM device model (-M xenfv) needs -m and -vcpus")
    if not hvm and ("m" in seen or "vcpus" in seen):
        raise QemuArgsError("-m and -vcpus are for HVM (-M xenfv) only")
    if "videoram" not in seen:
        raise QemuArgsError("no -videoram option")
    smp = _int("smp", seen["smp"] or "", 1) if "smp" in seen else None
    vcpus = _int("vcpus", seen["vcpus"] or "", 1) if "vcpus" in seen else (smp or 1)
    if smp is not None and smp != vcpus:
        raise QemuArgsError(f"-smp {smp} differs from -vcpus {vcpus}")
    boot = seen.get("boot") or ""
    if "boot" in seen and not re.fullmatch(r"[acdn]+", boot):
        raise QemuArgsError(f"-boot {boot!r}: expected letters of a, c, d, n")
    if "vnc" in seen and "vncunused" in seen:
        raise QemuArgsError("-vnc and -vncunused together")
    if "k" in seen and not ("vnc" in seen or "vncunused" in seen):
        raise QemuArgsError("-k (keymap) without a VNC display")
    if ("vnc" in seen or "vncunused" in seen) and "k" not in seen:
        raise QemuArgsError("a VNC display without -k (keymap)")
    return QemuConfig(
        domid=dm_domid, hvm=hvm, videoram_mib=_int("videoram", seen["videoram"] or ""),
        memory_mib=_int("m", seen["m"] or "", 1) if "m" in seen else None, vcpus=vcpus,
        boot=boot, serial=seen.get("serial") or "", vnc_unused="vncunused" in seen,
        vnc_display=_vnc(seen["vnc"] or "") if "vnc" in seen else None,
        keymap=seen.get("k") or "", sound=seen.get("soundhw") or "",
        usb=tuple(lists["usbdevice"]), nics=_nics(lists["net"], dm_domid),
        acpi="acpi" in seen, loadvm=seen.get("loadvm") or "",
        pci_emulations=tuple(lists["pciemulation"]), extras=tuple(extras),
    )


def parse_wrapper_argv(argv: Sequence[str]) -> tuple[int, str, QemuConfig]:
    """``<domid> [<logfile>] <qemu args...>`` -> (domid, logfile or "", config)."""
    if not argv:
        raise QemuArgsError("missing <domid>")
    if not argv[0].isdigit() or int(argv[0]) >= 0x7FF0:
        raise QemuArgsError(f"the first argument must be the domid, got {argv[0]!r}")
    domid = int(argv[0])
    rest = list(argv[1:])
    logfile = ""
    if rest and not rest[0].startswith("-"):
        logfile = rest.pop(0)
    return domid, logfile, parse_qemu_args(rest, domid)
