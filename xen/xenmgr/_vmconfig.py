"""From a VM's database subtree to the config of OUR VM monitor (``xen.xenvm``).

:func:`translate` takes the VM's subtree (a :class:`~xen.xenmgr._dbview.DbView` of the dbd
``dump`` of ``/vm/<uuid>``, all values strings), its uuid and the :class:`HostFacts` the
service gathered, and answers a :class:`Translation`: the config lines (each with the database
key it came from), the text of the config file (``key = value`` lines, the format of
``docs/xenvm.md``) and notes naming the settings that could not take effect. It checks its own
output with the monitor's strict parser, so a value the monitor would refuse fails here, named
by its database key.

What goes where is data (``_vmconfig_keys.TRANSLATION``: every database key, translated, left
to the service, or unsupported by our monitor). Choices that are ours:

* ``startup = shutdown``: making a monitor never boots the VM; xenmgr asks for ``start``.
* ``on_poweroff = destroy``, ``on_reboot = restart``, ``on_crash = destroy``: the monitor
  restarts a rebooting guest itself (state ``rebooted`` then ``creating-domain``...), so the
  service must not start it again on ``rebooted`` as the original did after its domain tool's
  reboot; it never asks for *preserve*.
* platform flags (``pae acpi apic viridian hap nx``) are written only when the database sets
  them, so unset ones take the monitor's defaults, as unset ones took the original domain
  tool's; ``hpet`` is always written (default true), ``timer-mode`` (HVM) as its number.
* ``pvh`` is our monitor's ``pvh = true`` (an HVM container booted straight into its kernel,
  no device model); ``kernel``, ``initrd`` and ``cmdline`` are for PV and PVH guests (an
  unset kernel is ``/tmp/kernel-<uuid>``, where xenmgr extracts one); ``display`` is always
  ``none`` (the original never ran VNC either).
* nics get their MAC explicitly: the configured one or xenmgr's default MAC, so the guest's
  MAC is the one the ``mac`` property shows (our monitor's own derivation differs).
* a stub domain (HVM with ``stubdom``) gets a uuid derived from the VM's (:func:`stubdom_uuid`)
  unless the facts give one.
* ``extra-xenvm`` entries are ``key=value`` lines of OUR monitor's format (the original's were
  its domain tool's); an entry our monitor does not know is refused, named.

Failure behaviour: :class:`VmConfigError` names the database key, the value and the reason
(a value that does not decode, a required disk key missing, a vdi disk, a PCI class rule the
facts do not resolve, a line our monitor refuses). Pure: no I/O.
"""

from __future__ import annotations

import re
import uuid as _uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from xen.xenmgr._codecs import SchemaError
from xen.xenmgr._dbview import DbView
from xen.xenmgr._devices import read_disks, read_nics, read_pci_rules, read_value
from xen.xenmgr._schema import decode, find_key
from xen.xenmgr._vmconfig_keys import TRANSLATION, How
from xen.xenvm import ConfigError, parse_config

__all__ = [
    "DEFAULT_QEMU_DM_PATH",
    "TIMER_MODE_NUMBERS",
    "HostFacts",
    "Line",
    "Translation",
    "VmConfigError",
    "stubdom_uuid",
    "translate",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

DEFAULT_QEMU_DM_PATH = "/opt/xensource/libexec/qemu-dm-wrapper"
TIMER_MODE_NUMBERS: Mapping[str, int] = MappingProxyType({
    "delay_for_missed_ticks": 0, "no_delay_for_missed_ticks": 1,
    "no_missed_ticks_pending": 2, "one_missed_tick_pending": 3,
    "0": 0, "1": 1, "2": 2, "3": 3,
})
_STUBDOM_NAMESPACE = _uuid.UUID("6f1c3a52-1d7e-4c55-9b0e-2f4b8f1e7a10")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_BDF_RE = re.compile(r"([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])")
_EMPTY: Mapping[int, str] = MappingProxyType({})
_T = TypeVar("_T")


class VmConfigError(ValueError):
    """The VM's database subtree cannot become a monitor config; ``key`` is the db key."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        shown = "" if value is None else f" = {value!r}"
        super().__init__(f"db key {key}{shown}: {reason}")
        self.key, self.value, self.reason = key, value, reason


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What the translation needs from outside the VM's subtree; the service gathers it.

    ``bridges``: network object path -> bridge name; ``wireless_networks``: the networks that
    are wireless (the wireless policy applies to their nics); ``nic_backends``: nic id ->
    domid of the VM serving it (unset: dom0); ``pci_matches``: id of a class/vendor/device
    PCI rule -> the addresses of the host's matching devices; ``amt_devices``: the host's AMT
    devices (passed through when the VM has ``amt-pt``); ``key_dirs``: the existing
    directories of disk keys (the VM's crypto user's, its ``crypto-key-dirs``, the platform's);
    ``disk_paths``: disk id -> the path to boot from instead (a temporary snapshot xenmgr
    made); ``qemu_dm_path``: the device model for HVM guests that do not name one;
    ``stubdom_uuid``: the stub domain's uuid (unset: :func:`stubdom_uuid`);
    ``snapshots``: disk id -> the qcow2 overlay of a temporary snapshot to boot from
    (``_snapshots``).
    """

    bridges: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    wireless_networks: frozenset[str] = frozenset()
    nic_backends: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    pci_matches: Mapping[int, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    amt_devices: tuple[str, ...] = ()
    key_dirs: tuple[str, ...] = ()
    disk_paths: Mapping[int, str] = field(default_factory=lambda: _EMPTY)
    snapshots: Mapping[int, str] = field(default_factory=lambda: _EMPTY)
    qemu_dm_path: str = DEFAULT_QEMU_DM_PATH
    stubdom_uuid: str | None = None


@dataclass(frozen=True, slots=True)
class Line:
    """One config line and the database key it came from ("" for lines of our own)."""

    key: str
    value: str
    source: str


@dataclass(frozen=True, slots=True)
class Translation:
    lines: tuple[Line, ...]
    notes: tuple[str, ...]

    @property
    def text(self) -> str:
        """The config file: one ``key = value`` line per :class:`Line`."""
        return "".join(f"{line.key} = {line.value}\n" for line in self.lines)


def stubdom_uuid(vm_uuid: str) -> str:
    """The uuid of the stub domain of VM ``vm_uuid``: fixed for a VM, unique between VMs."""
    return str(_uuid.uuid5(_STUBDOM_NAMESPACE, vm_uuid.lower()))


def _flag(value: bool) -> str:
    return "true" if value else "false"


class _Builder:
    def __init__(self, vm: DbView, uuid: str, facts: HostFacts) -> None:
        self.vm, self.uuid, self.facts = vm, uuid, facts
        self.lines: list[Line] = []
        self.notes: list[str] = []

    def get(self, path: str, pattern: str | None = None) -> str | bool | int | None:
        try:
            return read_value(self.vm, path, pattern)
        except SchemaError as exc:
            raise VmConfigError(exc.key, exc.value, exc.reason) from None

    def text(self, path: str) -> str:
        value = self.get(path)
        return value if isinstance(value, str) else ""

    def add(self, key: str, value: str | int | bool, source: str) -> None:
        shown = _flag(value) if isinstance(value, bool) else str(value)
        if any(c in shown for c in "\n\r\0"):
            raise VmConfigError(source, value, "contains a line break or NUL")
        self.lines.append(Line(key, shown, source))

    def note(self, text: str) -> None:
        self.notes.append(text)

    # ----------------------------------------------------------------- the sections

    def identity(self) -> bool:
        stored = self.text("uuid")
        if stored and stored.lower() != self.uuid.lower():
            raise VmConfigError("uuid", stored, f"differs from the VM's node {self.uuid}")
        self.add("uuid", self.uuid.lower(), "uuid")
        if self.text("name"):
            self.add("name", self.text("name"), "name")
        self.add("startup", "shutdown", "")
        virt = self.get("config/virt-type") or "pv"
        hvm = virt == "hvm"
        self.add("hvm", hvm, "config/virt-type")
        if virt == "pvh":
            self.add("pvh", True, "config/virt-type")
        for action, value in (("on_poweroff", "destroy"), ("on_reboot", "restart"),
                              ("on_crash", "destroy")):
            self.add(action, value, "")
        return hvm

    def memory(self) -> None:
        memory = self.get("config/memory")
        assert memory is None or isinstance(memory, int)
        if memory is None or memory <= 0:
            self.note("config/memory is not set: the VM cannot start")
            memory = None
        else:
            self.add("memory", memory, "config/memory")
        top = self.get("config/memory-static-max")
        if isinstance(top, int) and top > 0 and memory is not None and top != memory:
            if top < memory:
                raise VmConfigError("config/memory-static-max", top,
                                    f"is below config/memory ({memory} MiB)")
            self.add("memory-max", top, "config/memory-static-max")
        vcpus = self.get("config/vcpus")
        assert vcpus is None or isinstance(vcpus, int)
        if vcpus is not None and vcpus < 1:
            raise VmConfigError("config/vcpus", vcpus, "is not a number of vcpus (1 or more)")
        vcpus = vcpus or 1
        self.add("vcpus", vcpus, "config/vcpus")
        cores = self.get("config/cores-per-socket")
        assert cores is None or isinstance(cores, int)
        self.add("cores-per-socket", cores if cores is not None and cores > 1 else vcpus,
                 "config/cores-per-socket")

    def boot(self, hvm: bool) -> None:
        if hvm:
            for key in ("config/kernel", "config/initrd", "config/cmdline"):
                if self.text(key):
                    self.note(f"{key} = {self.text(key)!r}: ignored for an HVM guest")
            self.add("qemu-dm-path", self.text("config/qemu-dm-path") or self.facts.qemu_dm_path,
                     "config/qemu-dm-path")
        else:
            self.add("kernel", self.text("config/kernel") or f"/tmp/kernel-{self.uuid.lower()}",
                     "config/kernel")
            for key, name in (("config/initrd", "initrd"), ("config/cmdline", "cmdline")):
                if self.text(key):
                    self.add(name, self.text(key), key)
        timeout = self.get("config/qemu-dm-timeout")
        self.add("qemu-dm-timeout", timeout if timeout is not None else 30,
                 "config/qemu-dm-timeout")
        if self.text("config/notify"):
            self.add("notify", self.text("config/notify"), "config/notify")

    def platform(self, hvm: bool) -> None:
        for name in ("pae", "acpi", "apic", "viridian", "hap", "nx"):
            value = self.get(f"config/{name}")
            if value is not None:
                self.add(name, value, f"config/{name}")
        if self.get("config/nestedhvm"):
            self.add("nested", True, "config/nestedhvm")
        hpet = self.get("config/hpet")
        self.add("hpet", 0 if hpet is False else 1, "config/hpet")
        if hvm:
            mode = self.text("config/timer-mode") or "no_delay_for_missed_ticks"
            if mode not in TIMER_MODE_NUMBERS:
                raise VmConfigError("config/timer-mode", mode, "is not a timer mode ("
                                    + ", ".join(k for k in TIMER_MODE_NUMBERS if len(k) > 1)
                                    + " or 0..3)")
            self.add("timer-mode", TIMER_MODE_NUMBERS[mode], "config/timer-mode")
        videoram = self.get("config/videoram")
        self.add("videoram", videoram if videoram is not None else (16 if hvm else 0),
                 "config/videoram")
        for key, name in (("config/acpi-table", "acpi-pt"), ("xci-cpuid-signature",
                                                             "xci-cpuid-signature"),
                          ("config/vsnd", "vsnd"), ("config/argo", "v4v")):
            value = self.get(key)
            if value is not None:
                self.add(name, value, key)
        if self.get("oem-acpi-features"):
            self.add("oem-features", 1, "oem-acpi-features")
        if self.get("usb-enabled") is False:
            self.add("usb", False, "usb-enabled")
        for key in ("restrict-display-depth", "restrict-display-res"):
            if self.get(key):
                self.add("platform", key.replace("-", "") + "=1", key)
        vkbd, vglass = self.get("config/vkbd"), self.get("config/vglass-enabled")
        if vkbd is not None or vglass:
            self.add("vkbd", bool(vkbd if vkbd is not None else vglass),
                     "config/vkbd" if vkbd is not None else "config/vglass-enabled")
        offset = self.get("time-offset")
        if offset is not None:
            self.add("time-offset", offset, "time-offset")
        for key, name in (("config/boot", "boot"), ("config/serial", "serial"),
                          ("config/flask-label", "flask-label"),
                          ("config/passthrough-io", "passthrough-io"),
                          ("config/passthrough-mmio", "passthrough-mmio")):
            if self.text(key):
                self.add(name, self.text(key), key)
        for response in (r.strip() for r in self.text("cpuid").split(";")):
            if response:
                self.add("cpuid", response, "cpuid")
        display = self.text("config/display")
        if display not in ("", "none", "nogfx"):
            self.note(f"config/display = {display!r}: our device model has no display handler")
        self.add("display", "none", "config/display")

    def sound(self) -> None:
        sound = self.text("config/sound")
        if sound not in ("", "none"):
            if self.get("policies/audio-access") is False:
                self.note(f"config/sound = {sound!r}: no sound, policies/audio-access is false")
            else:
                self.add("sound", sound, "config/sound")
        if self.get("policies/audio-rec") is False:
            self.add("extra-hvm", "disable-audio-rec", "policies/audio-rec")

    def stubdom(self, hvm: bool) -> None:
        if not self.get("stubdom"):
            return
        if not hvm:
            self.note("stubdom = true: ignored, stub domains serve HVM guests only")
            return
        self.add("stubdom", self.facts.stubdom_uuid or stubdom_uuid(self.uuid), "stubdom")
        memory = self.get("config/stubdom-memory")
        self.add("stubdom-memory", memory if memory is not None else 96, "config/stubdom-memory")
        if self.text("config/stubdom-cmdline"):
            self.add("stubdom-cmdline", self.text("config/stubdom-cmdline"),
                     "config/stubdom-cmdline")

    # ----------------------------------------------------------------------- devices

    def disks(self) -> None:
        for disk in self._read(read_disks):
            base = f"config/disk/{disk.id}"
            if not disk.enabled:
                self.note(f"{base}: disabled, left out")
                continue
            fields = {"path": disk.path, "type": disk.type, "mode": disk.mode,
                      "device": disk.device, "devtype": disk.devtype}
            for name, value in fields.items():
                if not value:
                    raise VmConfigError(f"{base}/{name}", value, "is not set")
            path = self.facts.disk_paths.get(disk.id, disk.path or "")
            if ":" in path:
                raise VmConfigError(f"{base}/path", path, "contains ':', which a disk line "
                                    "cannot hold")
            if disk.type == "vdi":
                raise VmConfigError(f"{base}/type", "vdi", "is no longer supported")
            phystype = "file" if disk.type == "raw" else disk.type
            snapshot = disk.snapshot or "none"
            if disk.id in self.facts.snapshots:  # boot from xenmgr's overlay
                path, phystype, snapshot = self.facts.snapshots[disk.id], "qcow", "none"
            elif disk.snapshot is not None and disk.id not in self.facts.disk_paths:
                self.note(f"{base}/snapshot = {disk.snapshot!r}: xenmgr makes the snapshot "
                          "before the start (HostFacts.disk_paths)")
            spec = f"{path}:{phystype}:{disk.device}:{disk.mode}:{disk.devtype}:{snapshot}"
            if disk.type == "vhd" and self.facts.key_dirs:
                spec += ":key-dir=" + ",".join(self.facts.key_dirs)
            self.add("disk", spec, base)

    def nics(self, hvm: bool) -> None:
        linux = self.get("os") == "linux"
        for nic in self._read(read_nics):
            base = f"config/nic/{nic.node}"
            if not nic.enabled:
                self.note(f"{base}: disabled, left out")
                continue
            wireless_net = nic.network in self.facts.wireless_networks
            policy = ("policies/wireless-networking" if wireless_net
                      else "policies/wired-networking")
            if self.get(policy) is False:
                self.note(f"{base}: left out, {policy} is false")
                continue
            if "," in nic.network:
                raise VmConfigError(f"{base}/network", nic.network, "contains ','")
            items = [f"id={nic.id}", f"network={nic.network}"]
            bridge = self.facts.bridges.get(nic.network)
            if bridge:
                items.append(f"bridge={bridge}")
            items.append(f"mac={nic.actual_mac(self.uuid).lower()}")
            if hvm:
                items.append(f"model={nic.model or 'e1000'}")
            if nic.wireless and not linux:
                items.append("wireless=true")
            backend = self.facts.nic_backends.get(nic.id, 0)
            if backend:
                items.append(f"backend-domid={backend}")
            self.add("nic", ",".join(items), base)

    def pcis(self) -> None:
        devices: dict[str, tuple[int | None, str]] = {}

        def take(bdf: str, slot: int | None, force: bool, source: str) -> None:
            match = _BDF_RE.fullmatch(bdf)
            if match is None:
                raise VmConfigError(source, bdf, "is not a PCI address DDDD:BB:SS.F")
            domain, bus, dev, func = (int(g, 16) for g in match.groups())
            key = f"{domain:04x}:{bus:02x}:{dev:02x}.{func:x}"
            devices.setdefault(key, (dev if force and slot is None else slot, source))

        gpu = self.text("gpu")
        if gpu:
            if _BDF_RE.fullmatch(gpu):
                take(gpu, None, False, "gpu")
            else:
                self.note(f"gpu = {gpu!r}: not a PCI address, nothing passed through")
        if self.get("amt-pt"):
            for bdf in self.facts.amt_devices:
                take(bdf, None, False, "amt-pt")
        for rule in self._read(read_pci_rules):
            base = f"config/pci/{rule.id}"
            if rule.bdf is not None:
                take(rule.bdf, rule.guest_slot, rule.force_slot, f"{base}/bdf")
                continue
            if rule.id not in self.facts.pci_matches:
                raise VmConfigError(base, None, "is a class/vendor/device rule: the host's "
                                    "matching devices must be given (HostFacts.pci_matches)")
            for bdf in self.facts.pci_matches[rule.id]:
                take(bdf, None, rule.force_slot, base)
        for bdf, (slot, source) in devices.items():
            self.add("pci", f"0,bind,{bdf}" + ("" if slot is None else f",guest_slot={slot}"),
                     source)

    def extras(self) -> None:
        for path in ("config/extra-hvm", "config/extra-xenvm"):
            for child in self.vm.children(path):
                entry = self.vm.read(f"{path}/{child}") or ""
                source = f"{path}/{child}"
                if path.endswith("hvm"):
                    if entry.strip():
                        self.add("extra-hvm", entry.strip(), source)
                    continue
                key, sep, value = entry.partition("=")
                if not sep or not key.strip():
                    raise VmConfigError(source, entry, "is not a key=value config line")
                self.add(key.strip(), value.strip(), source)

    def _read(self, reader: Callable[[DbView], _T]) -> _T:
        try:
            return reader(self.vm)
        except SchemaError as exc:
            raise VmConfigError(exc.key, exc.value, exc.reason) from None

    # ------------------------------------------------------------------------- notes

    def unsupported_notes(self) -> None:
        for path, text in self.vm.walk():
            key = find_key(path)
            if key is None:
                self.note(f"{path}: not a key xenmgr knows, ignored")
                continue
            rule = TRANSLATION[key.path]
            if rule.how is not How.UNSUPPORTED:
                continue
            try:
                value = decode(key, text)
            except SchemaError:
                value = text
            if value != key.default:
                self.note(f"{path} = {text!r}: no effect, {rule.detail}")


def translate(vm: DbView, uuid: str, facts: HostFacts | None = None) -> Translation:
    """The monitor config of the VM whose subtree is ``vm`` (see the module docstring)."""
    if not _UUID_RE.fullmatch(uuid):
        raise VmConfigError("uuid", uuid, "is not a VM uuid")
    build = _Builder(vm, uuid, facts or HostFacts())
    hvm = build.identity()
    build.memory()
    build.boot(hvm)
    build.platform(hvm)
    build.sound()
    build.stubdom(hvm)
    build.disks()
    build.nics(hvm)
    build.pcis()
    build.extras()
    build.unsupported_notes()
    result = Translation(tuple(build.lines), tuple(build.notes))
    _check(result, uuid)
    return result


def _check(result: Translation, uuid: str) -> None:
    """Parse the text as the monitor will; name the database key of a refused line."""
    try:
        parse_config(result.text, strict=True, source=f"/vm/{uuid}")
    except ConfigError as exc:
        line = None
        if exc.line is not None and 0 < exc.line <= len(result.lines):
            line = result.lines[exc.line - 1]
        else:
            line = next((ln for ln in result.lines if ln.key == exc.key), None)
        source = line.source if line is not None and line.source else exc.key
        value = line.value if line is not None else exc.value
        raise VmConfigError(source, value, f"our VM monitor refuses it: {exc.reason}") from None
