"""The layout of a VM in the config database, as data: every key under ``/vm/<uuid>/``.

:data:`VM_KEYS` lists each key with its path relative to ``/vm/<uuid>`` (``*`` stands for the
id of a disk, nic, PCI rule or firewall rule), its :class:`Kind`, its default when the key is
missing (``None``: no default, the key is simply unset), the values it may take where there is
a fixed set, and a one-line description. Values are strings in the database; the codecs of
``_codecs`` turn them into booleans and integers (:func:`decode`, :func:`encode`).

Layout (the original's; renamed DBus properties are in ``_properties``):

* top level: identity and placement (``uuid name description slot type image_path os``),
  switcher and UI flags, boot and shutdown ordering, service-VM roles, power and USB settings,
  crypto, hooks (``run-*``), guest-tools reports, policies (``policies/*``, default true),
  firewall rules (lists ``argo-firewall-rules``, ``rpc-firewall-rules``; map
  ``firewall-rule/<id>``), and opaque subtrees (``backend``: the managed-VM marker,
  ``productproperty``);
* ``config/``: what the domain is built from (virt type, memory, vcpus, kernel, platform
  flags, device model, stub domain, display, lists ``extra-hvm`` and ``extra-xenvm``) and the
  maps ``config/disk/<id>/``, ``config/nic/<id>/``, ``config/pci/<id>/``.

Rules kept from the original: a missing ``config/virt-type`` is ``pv``; ``type`` ``pvm`` means
``svm``; an ``os`` it does not know reads as ``unknown``; a nic's network may be a legacy
bridge name (``brbridged brshared brwireless brinternal``, :func:`network_path`); a new disk or
nic gets id max+1 (:func:`next_id`); a new disk the first free virtual device ``hda``..``hdz``
(:func:`next_virtual_device`); the disk with device ``hdc`` is "the CD"; a nic without a MAC
gets :func:`default_mac`: MD5 of ``"<nic id> <vm uuid>"``, bytes made of the digest's nibbles
``(i, i+12)`` for ``i`` in 0 2 1 7 6 4, the first byte locally administered and not multicast,
written lowercase.

Failure behaviour: decoding or encoding a value that does not fit raises
:class:`~xen.xenmgr._codecs.SchemaError` naming the key and the value; an unknown key raises
``KeyError`` naming it. Pure: no I/O.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from xen.xenmgr._codecs import (
    SchemaError,
    decode_bool,
    decode_enum,
    decode_int,
    encode_bool,
    encode_enum,
    encode_int,
)

__all__ = [
    "CD_DEVICE",
    "DEFAULT_NETWORK",
    "LEGACY_NETWORKS",
    "VIRTUAL_DEVICES",
    "VM_KEYS",
    "Key",
    "Kind",
    "decode",
    "default_mac",
    "encode",
    "find_key",
    "map_ids",
    "network_path",
    "next_id",
    "next_virtual_device",
    "vm_key",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


class Kind(enum.Enum):
    STRING = "string"
    BOOL = "bool"
    INT = "int"
    ENUM = "enum"   # a string of a fixed set (Key.allowed)
    LIST = "list"   # children 0, 1, ... of strings
    MAP = "map"     # children keyed by id; their keys are the entries "<path>/*/<name>"
    TREE = "tree"   # an opaque subtree xenmgr reads or writes as a whole


@dataclass(frozen=True, slots=True)
class Key:
    """One database key of a VM (see the module docstring)."""

    path: str
    kind: Kind
    default: str | bool | int | tuple[str, ...] | None
    doc: str
    allowed: tuple[str, ...] = ()
    pattern: str | None = None  # a regular expression a string value must match
    lenient: bool = False       # an unknown value reads as the default instead of failing

    def __post_init__(self) -> None:
        if (self.kind is Kind.ENUM) != bool(self.allowed):
            raise ValueError(f"{self.path}: allowed values go with Kind.ENUM only")


_STR, _BOOL, _INT, _ENUM, _LIST, _MAP, _TREE = (
    Kind.STRING, Kind.BOOL, Kind.INT, Kind.ENUM, Kind.LIST, Kind.MAP, Kind.TREE)
_MODES = ("pv", "ignore", "restart", "snapshot")
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_MAC = r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}"
_HEX16 = r"0[xX][0-9a-fA-F]{1,4}"
_BDF = r"[0-9a-fA-F]{1,4}:[0-9a-fA-F]{1,2}:[0-9a-fA-F]{1,2}\.[0-7](@[0-9a-fA-F]{1,2})?"


def _k(path: str, kind: Kind, default: str | bool | int | tuple[str, ...] | None, doc: str,
       *allowed: str, pattern: str | None = None, lenient: bool = False) -> Key:
    return Key(path, kind, default, doc, tuple(allowed), pattern, lenient)


#: Every key of a VM's subtree, relative to ``/vm/<uuid>``.
VM_KEYS: tuple[Key, ...] = (
    # ---- identity and placement
    _k("uuid", _STR, None, "the VM's uuid (the name of its node)", pattern=_UUID),
    _k("name", _STR, "", "display name"),
    _k("description", _STR, "", "free text"),
    _k("slot", _INT, 0, "switcher slot (-1: none; slots of guest VMs 1..9)"),
    _k("type", _STR, "svm", "svm (a guest; pvm is read as svm) or a service VM's tag"),
    _k("image_path", _STR, "", "the VM's icon, relative to the UI's root"),
    _k("os", _ENUM, "unknown", "guest OS", "linux", "windows", "windows8", "unknown",
       lenient=True),
    _k("ui-selectable", _BOOL, False, "a template offered by the UI (templates only)"),
    # ---- switcher and UI
    _k("hidden", _BOOL, False, "hidden in the switcher"),
    _k("hidden-in-ui", _BOOL, False, "hidden in the UI"),
    _k("show-switcher", _BOOL, True, "show the switcher bar"),
    _k("native-experience", _BOOL, False, "the one VM with the native experience"),
    _k("seamless-id", _STR, "", "seamless-application id (the uuid at creation)"),
    _k("seamless-traffic", _BOOL, None, "seamless traffic (default: the host's capability)"),
    _k("seamless-mouse-left", _STR, "", "slot of the VM left of this one for the mouse"),
    _k("seamless-mouse-right", _STR, "", "slot of the VM right of this one for the mouse"),
    _k("gpu", _STR, "", "the passed-through GPU's PCI address"),
    _k("restrict-display-depth", _BOOL, False, "restrict the display depth"),
    _k("restrict-display-res", _BOOL, False, "restrict the display resolution"),
    # ---- boot, shutdown, lifetime
    _k("start_on_boot", _BOOL, False, "start when the host boots"),
    _k("start_on_boot_priority", _INT, 0, "autostart order, higher first"),
    _k("shutdown-priority", _INT, 0, "host shutdown order, higher first"),
    _k("keep-alive", _BOOL, False, "start again after it shuts down"),
    _k("track-dependencies", _BOOL, False, "start the VMs it depends on first"),
    _k("ready", _BOOL, True, "complete: may be autostarted"),
    _k("preserve-on-reboot", _BOOL, False, "stored only: no effect in the original either"),
    _k("boot-sentinel", _STR, None, "xenstore node the guest fills when booted"),
    _k("start-from-suspend-image", _STR, "", "restore this image instead of booting"),
    _k("hibernated", _BOOL, False, "the guest hibernated (ACPI S4)"),
    _k("time-offset", _INT, 0, "guest RTC offset in seconds"),
    _k("download-progress", _INT, 0, "percentage of a VM transfer"),
    # ---- service VM roles
    _k("provides-network-backend", _BOOL, False, "serves network backends"),
    _k("provides-default-network-backend", _BOOL, False, "serves the default network"),
    _k("provides-graphics-fallback", _BOOL, False, "shown when no VM has the focus"),
    _k("backend", _TREE, None, "present: a managed VM (its files are not deleted with it)"),
    # ---- platform and power
    _k("stubdom", _BOOL, False, "run the device model in a stub domain (HVM only)"),
    _k("measured", _BOOL, False, "check the disks' SHA1 sums before booting"),
    _k("amt-pt", _BOOL, False, "AMT passthrough"),
    _k("auto-s3-wake", _BOOL, False, "resume from S3 at once"),
    _k("control-platform-power-state", _BOOL, False, "guest S3/S4/halt drive the host's"),
    _k("oem-acpi-features", _BOOL, False, "OEM ACPI features"),
    _k("s3-mode", _ENUM, "pv", "what S3 means for this VM", *_MODES),
    _k("s4-mode", _ENUM, "pv", "what S4 means for this VM", *_MODES),
    _k("wireless-control", _BOOL, False, "controls the wireless hardware"),
    _k("cpuid", _STR, "", "';'-separated cpuid responses"),
    _k("xci-cpuid-signature", _BOOL, False, "show the XCI cpuid signature"),
    _k("greedy-pciback-bind", _BOOL, True, "bind its PCI devices to pciback at startup"),
    # ---- USB
    _k("usb-enabled", _BOOL, True, "USB emulation"),
    _k("usb-auto-passthrough", _BOOL, True, "pass new USB devices through"),
    _k("usb-control", _BOOL, False, "may control USB assignment"),
    _k("usb-grab-devices", _BOOL, False, "grabs USB devices"),
    # ---- crypto and storage
    _k("crypto-user", _STR, None, "user whose secure store must be mounted (else locked)"),
    _k("crypto-key-dirs", _STR, "", "','-separated directories of disk keys"),
    _k("domstore-read-access", _BOOL, False, "may read its dom-store"),
    _k("domstore-write-access", _BOOL, False, "may write its dom-store"),
    _k("realm", _STR, "", "realm (sync)"),
    _k("sync-uuid", _STR, "", "uuid in the sync server"),
    _k("icbinn-path", _STR, "", "icbinn share"),
    _k("ovf-transport-iso", _BOOL, False, "attach the OVF environment ISO"),
    # ---- guest tools
    _k("pv-addons-installed", _BOOL, False, "PV add-ons installed in the guest"),
    _k("pv-addons-version", _STR, "", "their version"),
    _k("portica-installed", _BOOL, False, "seamless-application tools installed"),
    _k("portica-enabled", _BOOL, False, "and enabled"),
    # ---- hooks: ';'-separated entries; unset when empty
    _k("run-post-create", _STR, None, "hook after creation (failure fails the call)"),
    _k("run-pre-delete", _STR, None, "hook before deletion (failure fails the call)"),
    _k("run-pre-boot", _STR, None, "hook before boot (failure fails the start)"),
    _k("run-insteadof-start", _STR, None, "hooks that replace the start"),
    _k("run-on-state-change", _STR, None, "hook on each state change"),
    _k("run-on-acpi-state-change", _STR, None, "hook on each ACPI state change"),
    # ---- policies (true unless written false)
    _k("policies/cd-access", _BOOL, True, "may use CD drives"),
    _k("policies/cd-rec", _BOOL, True, "may record CDs"),
    _k("policies/audio-access", _BOOL, True, "has sound"),
    _k("policies/audio-rec", _BOOL, True, "may record sound"),
    _k("policies/wired-networking", _BOOL, True, "wired nics are plugged"),
    _k("policies/wireless-networking", _BOOL, True, "wireless nics are plugged"),
    _k("policies/modify-vm-settings", _BOOL, True, "properties may be changed"),
    _k("policies/print-screen-disallowed", _BOOL, False, "print screen is refused"),
    # ---- firewalls
    _k("argo-firewall-rules", _LIST, (), "Argo rules '<from>[:port] -> <to>[:port]'"),
    _k("rpc-firewall-rules", _LIST, (), "rules of the RPC proxy for this VM"),
    _k("firewall-rule", _MAP, None, "network firewall rules by id"),
    _k("firewall-rule/*/direction", _ENUM, None, "in or out", "in", "out"),
    _k("firewall-rule/*/remote-ip", _STR, "", "remote address"),
    _k("firewall-rule/*/extra", _STR, "", "extra match text"),
    _k("productproperty", _TREE, None, "OVF product properties"),
    # ---- config/: what the domain is built from
    _k("config/notify", _STR, "", "where the VM's monitor sends notifications"),
    _k("config/virt-type", _ENUM, "pv", "virtualisation", "hvm", "pvh", "pv"),
    _k("config/hvm", _BOOL, None, "legacy: replaced by virt-type, read by nothing"),
    _k("config/debug", _BOOL, None, "set by templates, read by nothing"),
    _k("config/startup", _STR, None, "legacy: read by nothing since the domain tool changed"),
    _k("config/pae", _BOOL, False, "PAE"),
    _k("config/acpi", _BOOL, False, "ACPI"),
    _k("config/apic", _BOOL, False, "APIC"),
    _k("config/viridian", _BOOL, False, "Viridian (Hyper-V) enlightenments"),
    _k("config/hap", _BOOL, False, "hardware-assisted paging"),
    _k("config/nx", _BOOL, False, "NX"),
    _k("config/nestedhvm", _BOOL, False, "nested HVM"),
    _k("config/hpet", _BOOL, True, "HPET"),
    _k("config/timer-mode", _STR, "no_delay_for_missed_ticks", "virtual timer mode"),
    _k("config/acpi-table", _BOOL, False, "pass the host's SLIC table"),
    _k("config/secureboot", _BOOL, False, "secure boot"),
    _k("config/authenforce", _BOOL, True, "secure boot: enforce authentication"),
    _k("config/bios", _STR, "seabios", "firmware"),
    _k("config/sound", _STR, "", "emulated sound card ('' or none: no sound)"),
    _k("config/memory", _INT, 0, "MiB"),
    _k("config/memory-min", _INT, 0, "MiB; <= 0: memory"),
    _k("config/memory-static-max", _INT, 0, "MiB; <= 0: memory"),
    _k("config/vcpus", _INT, 0, "virtual CPUs (unset: 1 at boot)"),
    _k("config/cores-per-socket", _INT, 0, "cores per socket (unset: vcpus)"),
    _k("config/videoram", _INT, 0, "MiB of video memory (unset: 16 for HVM, else 0)"),
    _k("config/display", _STR, "", "none, nogfx or a display handler name"),
    _k("config/boot", _STR, "", "boot order (c, d, n letters)"),
    _k("config/serial", _STR, "", "serial port"),
    _k("config/hdtype", _STR, "ide", "disk controller: ide or ahci"),
    _k("config/kernel", _STR, "", "PV/PVH kernel (unset: /tmp/kernel-<uuid>)"),
    _k("config/kernel-extract", _STR, "", "[disk,part:]path of a kernel to copy from a disk"),
    _k("config/initrd", _STR, "", "initial ramdisk"),
    _k("config/initrd-extract", _STR, "", "[disk,part:]path of a ramdisk to copy from a disk"),
    _k("config/cmdline", _STR, "", "kernel command line"),
    _k("config/passthrough-mmio", _STR, "", "host MMIO range given to the guest"),
    _k("config/passthrough-io", _STR, "", "host I/O port range given to the guest"),
    _k("config/flask-label", _STR, "", "XSM label of the domain"),
    _k("config/init-flask-label", _STR, "", "XSM label while it is built"),
    _k("config/stubdom-flask-label", _STR, "", "XSM label of the stub domain"),
    _k("config/qemu-dm-path", _STR, "/opt/xensource/libexec/qemu-dm-wrapper", "device model"),
    _k("config/qemu-dm-timeout", _INT, 30, "seconds to wait for the device model"),
    _k("config/stubdom-memory", _INT, 96, "MiB of the stub domain"),
    _k("config/stubdom-cmdline", _STR, "", "stub domain command line"),
    _k("config/vsnd", _BOOL, False, "PV sound"),
    _k("config/vkbd", _BOOL, None, "PV keyboard/pointer (unset: with vglass)"),
    _k("config/argo", _BOOL, False, "Argo device nodes"),
    _k("config/display-handler-strict", _BOOL, False, "display handler: strict"),
    _k("config/long-form", _STR, "", "display handler: long banner"),
    _k("config/short-form", _STR, "", "display handler: short banner"),
    _k("config/text-color", _STR, "", "display handler: text colour"),
    _k("config/domain-color", _STR, "", "display handler: primary colour"),
    _k("config/secondary-domain-color", _STR, "", "display handler: secondary colour"),
    _k("config/border-width", _INT, 0, "display handler: border width"),
    _k("config/border-height", _INT, 0, "display handler: border height"),
    _k("config/mosaic-vm-enabled", _BOOL, False, "display handler: mosaic"),
    _k("config/vglass-enabled", _BOOL, False, "display handler: vglass"),
    _k("config/mosaic-mode", _INT, 0, "display handler: mosaic mode"),
    _k("config/windowed-x", _INT, 0, "display handler: window x"),
    _k("config/windowed-y", _INT, 0, "display handler: window y"),
    _k("config/windowed-w", _INT, 0, "display handler: window width"),
    _k("config/windowed-h", _INT, 0, "display handler: window height"),
    _k("config/extra-hvm", _LIST, (), "extra device-model options"),
    _k("config/extra-xenvm", _LIST, (), "extra lines for the VM's domain config"),
    # ---- config/disk/<id>/
    _k("config/disk", _MAP, None, "virtual disks by id"),
    _k("config/disk/*/path", _STR, None, "file or device"),
    _k("config/disk/*/type", _ENUM, None, "storage type",
       "file", "phy", "qcow", "vdi", "aio", "vhd", "raw"),
    _k("config/disk/*/mode", _ENUM, None, "read-only or read-write", "r", "w"),
    _k("config/disk/*/device", _STR, None, "virtual device (hda..hdz; hdc: the CD)"),
    _k("config/disk/*/devtype", _ENUM, None, "disk or cdrom", "disk", "cdrom"),
    _k("config/disk/*/snapshot", _ENUM, None, "snapshot mode (unset: none)", "temporary",
       "temporary-encrypted", "coalesce", "scripted", "scripted-author", "scripted-no-snapshot"),
    _k("config/disk/*/sha1sum", _STR, None, "expected SHA1 (hex)", pattern=r"[0-9a-fA-F]{1,40}"),
    _k("config/disk/*/shared", _BOOL, False, "shared by several VMs (never deleted)"),
    _k("config/disk/*/managed-disktype", _ENUM, "", "managed disk role",
       "", "system", "application", "user"),
    _k("config/disk/*/enable", _BOOL, True, "attached at boot"),
    # ---- config/nic/<id>/
    _k("config/nic", _MAP, None, "virtual nics by id"),
    _k("config/nic/*/id", _INT, None, "device id (the node's name when unset)"),
    _k("config/nic/*/network", _STR, "/wired/0/bridged", "network object path"),
    _k("config/nic/*/backend-uuid", _STR, None, "uuid of the VM serving it", pattern=_UUID),
    _k("config/nic/*/backend-name", _STR, None, "name of the VM serving it"),
    _k("config/nic/*/enable", _BOOL, True, "plugged at boot"),
    _k("config/nic/*/wireless-driver", _BOOL, False, "presented as wireless"),
    _k("config/nic/*/mac", _STR, None, "MAC (unset: derived, see default_mac)", pattern=_MAC),
    _k("config/nic/*/model", _STR, None, "emulated model (unset: e1000)"),
    # ---- config/pci/<id>/: a bdf rule, or a class/vendor/device rule
    _k("config/pci", _MAP, None, "PCI passthrough rules by id"),
    _k("config/pci/*/bdf", _STR, None, "DDDD:BB:SS.F[@guest slot, hex]", pattern=_BDF),
    _k("config/pci/*/class", _STR, None, "PCI class (0x%04x)", pattern=_HEX16),
    _k("config/pci/*/vendor", _STR, None, "vendor id (0x%04x)", pattern=_HEX16),
    _k("config/pci/*/device", _STR, None, "device id (0x%04x)", pattern=_HEX16),
    _k("config/pci/*/force-slot", _BOOL, False, "keep the host's slot number in the guest"),
)

_BY_PATH: Mapping[str, Key] = MappingProxyType({key.path: key for key in VM_KEYS})
assert len(_BY_PATH) == len(VM_KEYS), "duplicate key in VM_KEYS"
_ID = re.compile(r"[0-9]+")


def vm_key(path: str) -> Key:
    """The key with exactly this (pattern) path; ``KeyError`` naming it otherwise."""
    try:
        return _BY_PATH[path]
    except KeyError:
        raise KeyError(f"no VM db key {path!r}") from None


def find_key(path: str) -> Key | None:
    """The key a concrete relative path belongs to: ``config/disk/3/path`` ->
    ``config/disk/*/path``; a child of a list or tree -> the list or tree; else ``None``."""
    parts = [p for p in path.split("/") if p]
    for end in range(len(parts), 0, -1):
        head = "/".join(parts[:end])
        key = _BY_PATH.get(head)
        if key is None and end >= 3 and _BY_PATH.get("/".join(parts[:end - 2])) is not None:
            generic = "/".join([*parts[:end - 2], "*", parts[end - 1]])
            key = _BY_PATH.get(generic)
        if key is None:
            continue
        if end == len(parts) or key.kind in (Kind.LIST, Kind.TREE):
            return key
        if key.kind is Kind.MAP and end == len(parts) - 1:
            return key  # the node of one entry: config/disk/3
        return None
    return None


def decode(key: Key, text: str) -> str | bool | int:
    """The value a stored text means for ``key`` (a scalar key)."""
    if key.kind is Kind.BOOL:
        return decode_bool(key.path, text)
    if key.kind is Kind.INT:
        return decode_int(key.path, text)
    if key.kind is Kind.ENUM:
        if key.lenient and text not in key.allowed:
            assert isinstance(key.default, str)
            return key.default
        return decode_enum(key.path, text, key.allowed)
    if key.kind is Kind.STRING:
        if key.pattern is not None and not re.fullmatch(key.pattern, text):
            raise SchemaError(key.path, text, f"does not match {key.pattern}")
        return text
    raise SchemaError(key.path, text, f"is a {key.kind.value}, not a single value")


def encode(key: Key, value: object) -> str:
    """The text that stores ``value`` at ``key`` (a scalar key)."""
    if key.kind is Kind.BOOL:
        return encode_bool(key.path, value)
    if key.kind is Kind.INT:
        return encode_int(key.path, value)
    if key.kind is Kind.ENUM:
        return encode_enum(key.path, value, key.allowed)
    if key.kind is Kind.STRING:
        if not isinstance(value, str):
            raise SchemaError(key.path, value, "is not a string")
        return str(decode(key, value))
    raise SchemaError(key.path, value, f"is a {key.kind.value}, not a single value")


# ----------------------------------------------------------------- nics, disks, networks

DEFAULT_NETWORK = "/wired/0/bridged"
#: Bridge names of old databases -> the network object path they mean.
LEGACY_NETWORKS: Mapping[str, str] = MappingProxyType({
    "brbridged": "/wired/0/bridged",
    "brshared": "/wired/0/shared",
    "brwireless": "/wifi/0/shared",
    "brinternal": "/internal",
})
CD_DEVICE = "hdc"
VIRTUAL_DEVICES = tuple(f"hd{chr(c)}" for c in range(ord("a"), ord("z") + 1))
_UUID_RE = re.compile(_UUID)


def network_path(stored: str | None) -> str:
    """The network object path a nic's ``network`` value means (unset: the default)."""
    if stored is None:
        return DEFAULT_NETWORK
    return LEGACY_NETWORKS.get(stored, stored)


def default_mac(nic_id: int, vm_uuid: str) -> str:
    """The MAC of nic ``nic_id`` of VM ``vm_uuid`` when none is configured."""
    if isinstance(nic_id, bool) or not isinstance(nic_id, int) or nic_id < 0:
        raise ValueError(f"nic id must be a non-negative integer, got {nic_id!r}")
    if not _UUID_RE.fullmatch(vm_uuid):
        raise ValueError(f"not a VM uuid: {vm_uuid!r}")
    digest = hashlib.md5(f"{nic_id} {vm_uuid}".encode(), usedforsecurity=False).hexdigest()
    octets = [int(digest[i], 16) << 4 | int(digest[i + 12], 16) for i in (0, 2, 1, 7, 6, 4)]
    octets[0] = (octets[0] & 0xFE) | 0x02
    return ":".join(f"{octet:02x}" for octet in octets)


def next_id(ids: Iterable[int]) -> int:
    """The id of a new disk or nic: one more than the largest (0 for the first)."""
    return max(ids, default=-1) + 1


def next_virtual_device(used: Iterable[str]) -> str:
    """The first of ``hda``..``hdz`` no disk uses."""
    taken = set(used)
    for device in VIRTUAL_DEVICES:
        if device not in taken:
            return device
    raise SchemaError("config/disk/*/device", sorted(taken), "leave no free device hda..hdz")


def map_ids(children: Iterable[str], path: str) -> list[int]:
    """The numeric ids of a map's children; a child that is not a number is an error."""
    out = []
    for name in children:
        if not _ID.fullmatch(name):
            raise SchemaError(f"{path}/{name}", name, "is not a numeric id")
        out.append(int(name))
    return out
