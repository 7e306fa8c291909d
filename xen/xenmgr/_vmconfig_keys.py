"""How each key of a VM's database subtree reaches our VM monitor's config, as data.

:data:`TRANSLATION` maps every key of ``_schema.VM_KEYS`` (a test checks: all of them, nothing
else) to a :class:`Rule`:

* ``MONITOR`` - translated into the monitor's config; ``detail`` says into what;
* ``SERVICE`` - a setting xenmgr itself acts on (autostart, hooks, policies, the switcher...):
  it does not belong in a domain's config, in the original either;
* ``UNSUPPORTED`` - it did shape the domain in the original, but our monitor has no
  equivalent; the VM starts without it, and the translation reports the key in its notes when
  it is set to anything but its default.

Pure data: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["TRANSLATION", "How", "Rule"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


class How(enum.Enum):
    MONITOR = "monitor"
    SERVICE = "service"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class Rule:
    how: How
    detail: str


def _m(detail: str) -> Rule:
    return Rule(How.MONITOR, detail)


def _svc(detail: str) -> Rule:
    return Rule(How.SERVICE, detail)


def _no(detail: str) -> Rule:
    return Rule(How.UNSUPPORTED, detail)


_UI = _svc("shown by the UI and the switcher; no effect on the domain")
_ROLE = _svc("xenmgr's start order, dependencies and network backends")
_TOOLS = _svc("reported by the guest's tools")
_HOOK = _svc("a hook xenmgr runs")
_POLICY = _svc("a policy xenmgr checks")
_DH = _no("a display-handler setting; our device model has no display handler")

TRANSLATION: Mapping[str, Rule] = MappingProxyType({
    "uuid": _m("uuid (must equal the uuid of the VM's node)"),
    "name": _m("name (when not empty)"),
    "description": _UI, "slot": _UI, "image_path": _UI, "hidden": _UI, "hidden-in-ui": _UI,
    "show-switcher": _UI, "seamless-id": _UI, "seamless-traffic": _UI,
    "seamless-mouse-left": _UI, "seamless-mouse-right": _UI, "native-experience": _UI,
    "ui-selectable": _svc("marks a template for the UI"),
    "type": _svc("the VM's role (guest or service VM)"),
    "os": _m("a wireless nic is presented as wireless unless os is linux"),
    "gpu": _m("pci: the GPU's address is passed through when it is a PCI address"),
    "restrict-display-depth": _m("platform = restrictdisplaydepth=1 when true"),
    "restrict-display-res": _m("platform = restrictdisplayres=1 when true"),
    "start_on_boot": _ROLE, "start_on_boot_priority": _ROLE, "shutdown-priority": _ROLE,
    "keep-alive": _svc("xenmgr starts the VM again after it shuts down"),
    "track-dependencies": _ROLE, "ready": _ROLE,
    "preserve-on-reboot": _svc("stored only: the original did not act on it either"),
    "boot-sentinel": _svc("xenmgr waits for this xenstore node after unpausing"),
    "start-from-suspend-image": _svc("xenmgr restores the image instead of starting"),
    "hibernated": _svc("xenmgr's record of an S4"),
    "time-offset": _m("time-offset (when set)"),
    "download-progress": _svc("progress of a VM transfer"),
    "provides-network-backend": _ROLE, "provides-default-network-backend": _ROLE,
    "provides-graphics-fallback": _ROLE,
    "backend": _svc("marks a managed VM (its disks are kept when it is deleted)"),
    "stubdom": _m("stubdom = <stub domain uuid>, stubdom-memory, stubdom-cmdline (HVM only)"),
    "measured": _svc("xenmgr checks the disks' SHA1 sums before starting"),
    "amt-pt": _m("pci: the host's AMT devices (given by the service) are passed through"),
    "auto-s3-wake": _svc("xenmgr resumes the VM from S3"),
    "control-platform-power-state": _svc("xenmgr links the host's power state to the VM's"),
    "oem-acpi-features": _m("oem-features = 1 when true"),
    "s3-mode": _svc("what xenmgr does on S3"), "s4-mode": _svc("what xenmgr does on S4"),
    "wireless-control": _svc("for the input and network daemons"),
    "cpuid": _m("cpuid (one entry per ';'-separated response)"),
    "xci-cpuid-signature": _m("xci-cpuid-signature"),
    "greedy-pciback-bind": _svc("xenmgr binds the VM's PCI devices to pciback at startup"),
    "usb-enabled": _m("usb = false when false"),
    "usb-auto-passthrough": _svc("for the USB daemon"), "usb-control": _svc("for the USB daemon"),
    "usb-grab-devices": _svc("for the USB daemon"),
    "crypto-user": _svc("xenmgr's login check (state locked)"),
    "crypto-key-dirs": _m("disk option key-dir of VHD disks (directories given by the service)"),
    "domstore-read-access": _svc("dbd's access check"),
    "domstore-write-access": _svc("dbd's access check"),
    "realm": _svc("sync settings"), "sync-uuid": _svc("sync settings"),
    "icbinn-path": _svc("a share xenmgr exports"),
    "ovf-transport-iso": _svc("xenmgr adds the OVF environment ISO as a disk"),
    "pv-addons-installed": _TOOLS, "pv-addons-version": _TOOLS,
    "portica-installed": _TOOLS, "portica-enabled": _TOOLS,
    "run-post-create": _HOOK, "run-pre-delete": _HOOK, "run-pre-boot": _HOOK,
    "run-insteadof-start": _HOOK, "run-on-state-change": _HOOK,
    "run-on-acpi-state-change": _HOOK,
    "policies/cd-access": _no("the host's physical CD drives are not passed through"),
    "policies/cd-rec": _no("the host's physical CD drives are not passed through"),
    "policies/audio-access": _m("no sound when false"),
    "policies/audio-rec": _m("extra-hvm = disable-audio-rec when false"),
    "policies/wired-networking": _m("nics on wired networks are left out when false"),
    "policies/wireless-networking": _m("nics on wireless networks are left out when false"),
    "policies/modify-vm-settings": _POLICY, "policies/print-screen-disallowed": _POLICY,
    "argo-firewall-rules": _svc("xenmgr's Argo firewall"),
    "rpc-firewall-rules": _svc("the RPC proxy's rules"),
    "firewall-rule": _svc("network firewall rules for the network daemon"),
    "firewall-rule/*/direction": _svc("network firewall rules for the network daemon"),
    "firewall-rule/*/remote-ip": _svc("network firewall rules for the network daemon"),
    "firewall-rule/*/extra": _svc("network firewall rules for the network daemon"),
    "productproperty": _svc("OVF product properties"),
    "config/notify": _m("notify"),
    "config/virt-type": _m("hvm = true for hvm, pvh = true for pvh"),
    "config/hvm": _svc("legacy, replaced by virt-type; read by nothing"),
    "config/debug": _svc("set by templates, read by nothing"),
    "config/startup": _svc("legacy; the translation always writes startup = shutdown"),
    "config/pae": _m("pae (when set)"), "config/acpi": _m("acpi (when set)"),
    "config/apic": _m("apic (when set)"), "config/viridian": _m("viridian (when set)"),
    "config/hap": _m("hap (when set)"), "config/nx": _m("nx (when set)"),
    "config/nestedhvm": _m("nested = true when true"),
    "config/hpet": _m("hpet = 1 or 0"),
    "config/timer-mode": _m("timer-mode as a number (HVM only)"),
    "config/acpi-table": _m("acpi-pt (the host's SLIC table)"),
    "config/secureboot": _no("our firmware has no secure boot"),
    "config/authenforce": _no("our firmware has no secure boot"),
    "config/bios": _no("our HVM guests boot hvmloader; no firmware choice"),
    "config/sound": _m("sound (unless '' or none, or the audio policy forbids)"),
    "config/memory": _m("memory (MiB; unset or <= 0: left out, the monitor refuses to start)"),
    "config/memory-min": _svc("xenmgr's ballooning floor"),
    "config/memory-static-max": _m("memory-max when above memory"),
    "config/vcpus": _m("vcpus (unset: 1)"),
    "config/cores-per-socket": _m("cores-per-socket (when > 1, else vcpus)"),
    "config/videoram": _m("videoram (unset: 16 for HVM, else 0)"),
    "config/display": _m("display = none (no VNC); a display handler name is noted"),
    "config/boot": _m("boot"), "config/serial": _m("serial"),
    "config/hdtype": _no("our device model emulates IDE disks only; ahci is noted"),
    "config/kernel": _m("kernel (PV; unset: /tmp/kernel-<uuid>)"),
    "config/kernel-extract": _svc("xenmgr copies the kernel out of a disk before starting"),
    "config/initrd": _m("initrd (PV)"),
    "config/initrd-extract": _svc("xenmgr copies the ramdisk out of a disk before starting"),
    "config/cmdline": _m("cmdline (PV)"),
    "config/passthrough-mmio": _m("passthrough-mmio (a start-end range)"),
    "config/passthrough-io": _m("passthrough-io (a start-end range)"),
    "config/flask-label": _m("flask-label"),
    "config/init-flask-label": _no("our domain builder sets one XSM label"),
    "config/stubdom-flask-label": _no("our monitor does not label stub domains"),
    "config/qemu-dm-path": _m("qemu-dm-path (HVM; unset: the host's default)"),
    "config/qemu-dm-timeout": _m("qemu-dm-timeout"),
    "config/stubdom-memory": _m("stubdom-memory (with stubdom)"),
    "config/stubdom-cmdline": _m("stubdom-cmdline (with stubdom, when not empty)"),
    "config/vsnd": _m("vsnd"),
    "config/vkbd": _m("vkbd (unset: the value of vglass-enabled)"),
    "config/argo": _m("v4v (Argo replaced v4v)"),
    "config/display-handler-strict": _DH, "config/long-form": _DH, "config/short-form": _DH,
    "config/text-color": _DH, "config/domain-color": _DH,
    "config/secondary-domain-color": _DH, "config/border-width": _DH,
    "config/border-height": _DH, "config/mosaic-vm-enabled": _DH,
    "config/vglass-enabled": _m("vkbd when config/vkbd is unset"),
    "config/mosaic-mode": _DH, "config/windowed-x": _DH, "config/windowed-y": _DH,
    "config/windowed-w": _DH, "config/windowed-h": _DH,
    "config/extra-hvm": _m("extra-hvm, one line per entry (k[=v])"),
    "config/extra-xenvm": _m("one config line per entry (key=value in our monitor's format)"),
    "config/disk": _m("disk, one line per enabled disk"),
    "config/disk/*/path": _m("disk: physpath"),
    "config/disk/*/type": _m("disk: phystype (raw as file; vdi is refused)"),
    "config/disk/*/mode": _m("disk: mode"), "config/disk/*/device": _m("disk: virtpath"),
    "config/disk/*/devtype": _m("disk: devtype"),
    "config/disk/*/snapshot": _m("disk: snapshot mode (xenmgr makes temporary snapshots)"),
    "config/disk/*/sha1sum": _svc("xenmgr checks it before starting a measured VM"),
    "config/disk/*/shared": _svc("xenmgr never deletes a shared disk"),
    "config/disk/*/managed-disktype": _svc("managed VMs' disk roles"),
    "config/disk/*/enable": _m("a disabled disk is left out"),
    "config/nic": _m("nic, one line per enabled nic its policy allows"),
    "config/nic/*/id": _m("nic: id"),
    "config/nic/*/network": _m("nic: network (and bridge when the service knows it)"),
    "config/nic/*/backend-uuid": _m("nic: backend-domid (resolved by the service)"),
    "config/nic/*/backend-name": _m("nic: backend-domid (resolved by the service)"),
    "config/nic/*/enable": _m("a disabled nic is left out"),
    "config/nic/*/wireless-driver": _m("nic: wireless = true (not for linux guests)"),
    "config/nic/*/mac": _m("nic: mac (unset: the derived default MAC)"),
    "config/nic/*/model": _m("nic: model (HVM; unset: e1000)"),
    "config/pci": _m("pci, one line per device"),
    "config/pci/*/bdf": _m("pci: the address, and guest_slot from @<slot>"),
    "config/pci/*/class": _m("pci: the host's matching devices (given by the service)"),
    "config/pci/*/vendor": _m("pci: the host's matching devices (given by the service)"),
    "config/pci/*/device": _m("pci: the host's matching devices (given by the service)"),
    "config/pci/*/force-slot": _m("pci: guest_slot = the host's slot"),
})
