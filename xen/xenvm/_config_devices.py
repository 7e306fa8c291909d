"""The repeated (list) entries of the xenvm config: disk, nic/vif, pci, cpuid and the simple
pairs (extra-hvm, platform, cpus-affinity, passthrough-io/-mmio), and nic sanitising.

Formats (each has parse(str) and format() with parse(format(x)) == x):

- disk   `physpath:phystype:virtpath:mode:devtype[:snapshot][:k=v...]`. The 6-field form
  is the original's; the readme's 5-field form is accepted too (snapshot `none`): a 6th field
  containing `=` is an option. phystype phy|file|qcow|vhd|aio; mode r|w; devtype disk|cdrom;
  options backend-domid, key-file (+cipher aes-xts-plain, key-size 256), key-dir; other
  options are kept as written. `vdi` (the removed storehouse) is refused. The path may be
  empty only for a cdrom (an empty drive: what an eject leaves in the config).
- nic    `k=v,...` with id (0..31), network, bridge, model, mac, wireless, backend-domid;
  unknown keys are kept. mac: "" or `vm` = derived from MD5("<id> [<model> ]<uuid>") with
  the locally-administered unicast bit, `random` = 00:16:3e + 23 random bits at each start,
  else a literal MAC (anything else is an error).
- pci    `<group>[,bind],DDDD:BB:SS.F[,msitranslate=n][,power_mgmt=n][,guest_slot=n]
  [,vdevfn=n]` (hex BDF).
- cpuid  `<leaf>[+<subleaf>]:<reg>=<32 of 0 1 x s k>[,...]` (xend format).
- extra-hvm / platform `k[=v]`; cpus-affinity `<vcpu>:<cpu>,...`; passthrough-io/-mmio `a-b`
  (the end really is the end: the original parsed it from the start).

Failure: parse raises ValueError with the reason (the caller adds key and line).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from xen.xenops import PhysType, name_to_devid
from xen.xenvm._config_values import parse_bool, parse_int

__all__ = [
    "SNAPSHOT_MODES",
    "CpuidConfig",
    "DiskConfig",
    "NicConfig",
    "PciConfig",
    "format_affinity",
    "format_kv",
    "format_range",
    "parse_affinity",
    "parse_kv",
    "parse_range",
    "random_mac",
    "sanitise_nics",
    "vm_mac",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

SNAPSHOT_MODES = ("none", "temporary", "temporary-encrypted", "coalesce", "scripted",
                  "scripted-author", "scripted-no-snapshot")
_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
_BDF_RE = re.compile(r"([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])")
_MAX_NIC_ID = 31
_CPUID_REGS = ("eax", "ebx", "ecx", "edx")
_CPUID_MASK_RE = re.compile(r"[01xsk]{32}")


def _int_in(text: str, what: str, low: int, high: int) -> int:
    value = parse_int(text)
    if not low <= value <= high:
        raise ValueError(f"{what} must be in {low}..{high}, got {value}")
    return value


# ----------------------------------------------------------------------------- disks


@dataclass(frozen=True, slots=True)
class DiskConfig:
    physpath: str
    phystype: PhysType
    virtpath: str
    mode: Literal["r", "w"] = "w"
    devtype: Literal["disk", "cdrom"] = "disk"
    snapshot: str = "none"
    options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        texts = [self.physpath, self.virtpath, self.snapshot]
        texts += [text for pair in self.options for text in pair]
        if any(":" in t or "\n" in t for t in texts):
            raise ValueError("disk fields and options cannot contain ':' or a newline")

    @property
    def backend_domid(self) -> int:
        return parse_int(dict(self.options).get("backend-domid", "0"))

    @property
    def key_file(self) -> str | None:
        return dict(self.options).get("key-file")

    @property
    def key_dir(self) -> str | None:
        return dict(self.options).get("key-dir")

    @property
    def cipher(self) -> str:
        return dict(self.options).get("cipher", "aes-xts-plain")

    @property
    def key_size(self) -> int:
        return parse_int(dict(self.options).get("key-size", "256"))

    @classmethod
    def parse(cls, text: str) -> DiskConfig:
        fields = text.strip().split(":")
        if len(fields) < 5:
            raise ValueError("expected physpath:phystype:virtpath:mode:devtype[:snapshot][:k=v]")
        physpath, phystype, virtpath, mode, devtype, *rest = fields
        if not physpath and devtype != "cdrom":  # an empty CD drive has none (ejected)
            raise ValueError("empty disk path")
        if phystype == "vdi":
            raise ValueError("phystype vdi (storehouse) is no longer supported")
        try:
            physty = PhysType(phystype)
        except ValueError:
            raise ValueError(f"unknown phystype {phystype!r} (phy, file, qcow, vhd, aio)") from None
        name_to_devid(virtpath)  # DeviceNameError is a ValueError naming it
        if mode not in ("r", "w"):
            raise ValueError(f"disk mode must be r or w, got {mode!r}")
        if devtype not in ("disk", "cdrom"):
            raise ValueError(f"disk type must be disk or cdrom, got {devtype!r}")
        snapshot = "none"
        if rest and "=" not in rest[0]:
            snapshot = rest.pop(0) or "none"
            if snapshot not in SNAPSHOT_MODES:
                raise ValueError(f"unknown snapshot mode {snapshot!r}")
        options = tuple(parse_kv(item, require_value=True) for item in rest)
        disk = cls(physpath, physty, virtpath, mode, devtype,  # type: ignore[arg-type]
                   snapshot, options)
        disk.backend_domid  # noqa: B018 - validates the integer options now
        disk.key_size  # noqa: B018
        return disk

    def format(self) -> str:
        head = [self.physpath, self.phystype.value, self.virtpath, self.mode, self.devtype,
                self.snapshot]
        return ":".join(head + [f"{k}={v}" for k, v in self.options])


# ------------------------------------------------------------------------------ nics


def vm_mac(nic_id: int, model: str, vm_uuid: str) -> str:
    """The original's deterministic MAC: MD5 of "<id> [<model> ]<uuid>", digits paired
    (i, i+12) for i in 0 2 1 7 6 4, first byte made locally administered and unicast."""
    words = [str(nic_id)] + ([model] if model else []) + [vm_uuid]
    digest = hashlib.md5(" ".join(words).encode(), usedforsecurity=False).hexdigest()
    octets = [int(digest[i] + digest[i + 12], 16) for i in (0, 2, 1, 7, 6, 4)]
    octets[0] = 0x02 | (octets[0] & 0xFE)
    return ":".join(f"{b:02x}" for b in octets)


def random_mac(rng: random.Random | None = None) -> str:
    """00:16:3e (Xensource OUI) and three random bytes, the first below 0x80."""
    pick = rng or random.SystemRandom()
    tail = [pick.randrange(0x80), pick.randrange(0x100), pick.randrange(0x100)]
    return ":".join(f"{b:02x}" for b in [0x00, 0x16, 0x3E, *tail])


@dataclass(frozen=True, slots=True)
class NicConfig:
    nic_id: int | None = None
    network: str = ""
    bridge: str = ""
    model: str = ""
    mac: str = ""
    wireless: bool = False
    backend_domid: int = 0
    extra: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        texts = [self.network, self.bridge, self.model, self.mac]
        texts += [text for pair in self.extra for text in pair]
        if any("," in t or "\n" in t for t in texts):
            raise ValueError("nic values cannot contain ',' or a newline")

    def effective_mac(self, vm_uuid: str, rng: random.Random | None = None) -> str:
        """The MAC the guest gets: derived for ""/vm, random for `random`, else as written."""
        if self.mac in ("", "vm"):
            if self.nic_id is None:
                raise ValueError("nic id must be assigned before its MAC is derived")
            return vm_mac(self.nic_id, self.model, vm_uuid)
        if self.mac == "random":
            return random_mac(rng)
        return self.mac.lower()

    @classmethod
    def parse(cls, text: str) -> NicConfig:
        nic = cls()
        extra: list[tuple[str, str]] = []
        for item in filter(None, text.strip().split(",")):
            key, value = parse_kv(item, require_value=True)
            if key == "id":
                nic = replace(nic, nic_id=_int_in(value, "nic id", 0, _MAX_NIC_ID))
            elif key == "network":
                nic = replace(nic, network=value)
            elif key == "bridge":
                nic = replace(nic, bridge=value)
            elif key == "model":
                nic = replace(nic, model=value)
            elif key == "mac":
                if value not in ("", "vm", "random") and not _MAC_RE.fullmatch(value):
                    raise ValueError(f"bad MAC {value!r} (xx:xx:xx:xx:xx:xx, vm or random)")
                nic = replace(nic, mac=value)
            elif key == "wireless":
                nic = replace(nic, wireless=parse_bool(value))
            elif key == "backend-domid":
                nic = replace(nic, backend_domid=_int_in(value, "backend-domid", 0, 0x7FEF))
            else:
                extra.append((key, value))
        return replace(nic, extra=tuple(extra))

    def format(self) -> str:
        items = []
        if self.nic_id is not None:
            items.append(f"id={self.nic_id}")
        for key, value in (("network", self.network), ("bridge", self.bridge),
                           ("model", self.model), ("mac", self.mac)):
            if value:
                items.append(f"{key}={value}")
        if self.wireless:
            items.append("wireless=true")
        if self.backend_domid:
            items.append(f"backend-domid={self.backend_domid}")
        items += [f"{k}={v}" for k, v in self.extra]
        return ",".join(items)


def sanitise_nics(nics: tuple[NicConfig, ...]) -> tuple[NicConfig, ...]:
    """Give id-less nics the lowest free ids and sort by id; duplicate ids are an error.

    As in the original, id-less nics are numbered from the last one backwards (the last gets
    the lowest free id), so the derived MACs of existing configs do not change.
    """
    assigned = [nic for nic in nics if nic.nic_id is not None]
    ids = [nic.nic_id for nic in assigned]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})  # type: ignore[type-var]
    if duplicates:
        raise ValueError(f"duplicate nic id {duplicates[0]}")
    used = set(ids)
    result = list(assigned)
    for nic in reversed([n for n in nics if n.nic_id is None]):
        free = next(i for i in range(_MAX_NIC_ID + 2) if i not in used)
        if free > _MAX_NIC_ID:
            raise ValueError(f"more than {_MAX_NIC_ID + 1} nics")
        used.add(free)
        result.append(replace(nic, nic_id=free))
    return tuple(sorted(result, key=lambda n: -1 if n.nic_id is None else n.nic_id))


# ------------------------------------------------------------------------------- pci


@dataclass(frozen=True, slots=True)
class PciConfig:
    group: int
    domain: int
    bus: int
    slot: int
    func: int
    bind: bool = False
    msitranslate: int | None = None
    power_mgmt: int | None = None
    guest_slot: int | None = None
    vdevfn: int | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def bdf(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.func:x}"

    @classmethod
    def parse(cls, text: str) -> PciConfig:
        items = text.strip().split(",")
        if len(items) < 2:
            raise ValueError("expected <group>[,bind],DDDD:BB:SS.F[,k=v...]")
        group = _int_in(items[0], "pci group", 0, 255)
        bind = items[1] == "bind"
        rest = items[2:] if bind else items[1:]
        if not rest:
            raise ValueError("missing PCI address DDDD:BB:SS.F")
        match = _BDF_RE.fullmatch(rest[0])
        if match is None or int(match.group(3), 16) > 0x1F:
            raise ValueError(f"bad PCI address {rest[0]!r} (DDDD:BB:SS.F, hex)")
        domain, bus, slot, func = (int(g, 16) for g in match.groups())
        pci = cls(group, domain, bus, slot, func, bind)
        extra: list[tuple[str, str]] = []
        for item in rest[1:]:
            key, value = parse_kv(item, require_value=True)
            if key in ("msitranslate", "power_mgmt", "guest_slot", "vdevfn"):
                changes: dict[str, Any] = {key: _int_in(value, key, 0, 0xFF)}
                pci = replace(pci, **changes)
            else:
                extra.append((key, value))
        return replace(pci, extra=tuple(extra))

    def format(self) -> str:
        items = [str(self.group)] + (["bind"] if self.bind else []) + [self.bdf]
        for key in ("msitranslate", "power_mgmt", "guest_slot", "vdevfn"):
            value = getattr(self, key)
            if value is not None:
                items.append(f"{key}={value}")
        items += [f"{k}={v}" for k, v in self.extra]
        return ",".join(items)


# ----------------------------------------------------------------------------- cpuid


@dataclass(frozen=True, slots=True)
class CpuidConfig:
    leaf: int
    subleaf: int | None
    registers: tuple[tuple[str, str], ...]  # (eax|ebx|ecx|edx, 32 chars of 0 1 x s k)

    @classmethod
    def parse(cls, text: str) -> CpuidConfig:
        nodes, sep, regs = text.strip().partition(":")
        if not sep:
            raise ValueError("expected <leaf>[+<subleaf>]:<reg>=<mask>[,...]")
        leaf_text, plus, sub_text = nodes.partition("+")
        leaf = _int_in(leaf_text, "cpuid leaf", 0, 0xFFFFFFFF)
        subleaf = _int_in(sub_text, "cpuid subleaf", 0, 0xFFFFFFFF) if plus else None
        registers = []
        for item in regs.split(","):
            reg, _, mask = item.partition("=")
            if reg not in _CPUID_REGS:
                raise ValueError(f"unknown cpuid register {reg!r}")
            if mask.startswith("0x"):
                raise ValueError("hexadecimal cpuid masks are not supported")
            if not _CPUID_MASK_RE.fullmatch(mask):
                raise ValueError("a cpuid mask is 32 characters of 0 1 x s k")
            registers.append((reg, mask))
        return cls(leaf, subleaf, tuple(registers))

    def format(self) -> str:
        node = f"{self.leaf:#x}" + ("" if self.subleaf is None else f"+{self.subleaf:#x}")
        return node + ":" + ",".join(f"{reg}={mask}" for reg, mask in self.registers)


# ---------------------------------------------------------------------- simple pairs


def parse_kv(text: str, *, require_value: bool = False) -> tuple[str, str]:
    """`k=v` (or `k` alone unless require_value, meaning value "")."""
    key, sep, value = text.partition("=")
    if not key or (require_value and not sep):
        raise ValueError(f"expected key=value, got {text!r}")
    return key, value


def format_kv(key: str, value: str | None) -> str:
    return key if value is None else f"{key}={value}"


def parse_affinity(text: str) -> tuple[int, tuple[int, ...]]:
    vcpu, sep, cpus = text.strip().partition(":")
    if not sep or not cpus:
        raise ValueError("expected <vcpu>:<cpu>,<cpu>...")
    return (_int_in(vcpu, "vcpu", 0, 4095),
            tuple(_int_in(c, "cpu", 0, 4095) for c in cpus.split(",")))


def format_affinity(value: tuple[int, tuple[int, ...]]) -> str:
    return f"{value[0]}:" + ",".join(str(c) for c in value[1])


def parse_range(text: str, limit: int) -> tuple[int, int]:
    start_text, sep, end_text = text.strip().partition("-")
    if not sep:
        raise ValueError("expected <start>-<end>")
    start = _int_in(start_text, "range start", 0, limit)
    end = _int_in(end_text, "range end", 0, limit)
    if end < start:
        raise ValueError(f"range end {end:#x} is below its start {start:#x}")
    return start, end


def format_range(value: tuple[int, int]) -> str:
    return f"{value[0]:#x}-{value[1]:#x}"
