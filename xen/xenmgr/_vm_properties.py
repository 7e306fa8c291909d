"""The bindings of the VM object's properties (``com.citrix.xenclient.xenmgr.vm`` and
``...vm.unrestricted``), as data.

:data:`VM_TABLE` has one row per property of ``...xenmgr.vm``: name, DBus signature and
whether it is settable (both as in the interface file; a test compares them), the source (see
``_binding``) and the effects of a set. :data:`UNRESTRICTED_ONLY` has the three properties
that only ``...vm.unrestricted`` declares. :func:`vm_bindings` makes the bindings of both
interfaces: the same source for the same name; setters of ``...vm`` are guarded by the VM's
``modify-vm-settings`` policy except ``wired-network`` and ``wireless-network`` (as the
original), those of ``...vm.unrestricted`` never.

Keys and defaults are the original's, including the renamed ones: ``start-on-boot`` is
``start_on_boot``, ``start-on-boot-priority`` ``start_on_boot_priority``, ``image-path`` (and
``image_path_vg``) ``image_path``, ``hidden-in-switcher`` ``hidden``, ``pv-addons``
``pv-addons-installed``, ``cmd-line`` ``config/cmdline``, ``primary_domain_color``
``config/domain-color``, the ``*_vg`` display-handler properties ``config/<name with ->``,
``policy-*`` ``policies/*`` (``policy-print-screen`` is the negation of
``policies/print-screen-disallowed``). ``start-on-boot``, ``control-platform-power-state``,
``usb-grab-devices`` and ``wireless-control`` read true, ``show-switcher`` false, while the VM
has ``native-experience``. ``memory-min`` and ``memory-static-max`` read ``memory`` when unset
or <= 0, and a value <= 0 removes them. Pure data: no I/O.
"""

from __future__ import annotations

from xen.xenmgr._binding import (
    Binding,
    Codec,
    Computed,
    Derived,
    Effect,
    Scope,
    Source,
    Stored,
)

__all__ = ["UNRESTRICTED_ONLY", "VM_INTERFACE", "VM_TABLE", "VM_UNRESTRICTED", "vm_bindings"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

VM_INTERFACE = "com.citrix.xenclient.xenmgr.vm"
VM_UNRESTRICTED = "com.citrix.xenclient.xenmgr.vm.unrestricted"

_S, _B, _I = Codec("string"), Codec("bool"), Codec("int")
_JOINED = Codec("joined")
_MODES = ("pv", "ignore", "restart", "snapshot")
#: xl's timer modes, by name or number.
TIMER_MODES = ("delay_for_missed_ticks", "no_delay_for_missed_ticks", "no_missed_ticks_pending",
               "one_missed_tick_pending", "0", "1", "2", "3")


def _s(key: str, default: str = "", *, remove_on: tuple[str, ...] = (), strip: bool = False,
       always_write: bool = False) -> Stored:
    return Stored(key, _S, default, remove_on=remove_on, strip=strip, always_write=always_write)


def _b(key: str, default: bool = False, *, native: bool | None = None,
       remove_on: tuple[bool, ...] = ()) -> Stored:
    return Stored(key, _B, default, remove_on=remove_on, native=native)


def _i(key: str, default: int = 0, *, remove_nonpositive: bool = False,
       fallback: str | None = None, always_write: bool = False) -> Stored:
    return Stored(key, _I, default, remove_nonpositive=remove_nonpositive, fallback=fallback,
                  always_write=always_write)


def _e(key: str, allowed: tuple[str, ...], default: str, lenient: str | None = None) -> Stored:
    return Stored(key, Codec("enum", allowed, lenient=lenient), default)


def _open(key: str, allowed: tuple[str, ...], default: str) -> Stored:
    """Any stored text reads back as it is (the original stored free text); a new value must
    be one of ``allowed``."""
    return Stored(key, Codec("enum", allowed, read_any=True), default)


R, RW = False, True
_E = Effect
Row = tuple[str, str, bool, Source, tuple[Effect, ...]]


def _row(name: str, sig: str, settable: bool, source: Source, *effects: Effect) -> Row:
    return name, sig, settable, source, effects


VM_TABLE: tuple[Row, ...] = (
    _row("acpi", "b", RW, _b("config/acpi")),
    _row("acpi-state", "i", R, Computed(
        "the internal state, the hibernated flag and the hypervisor's ACPI state of the domain "
        "(xen.xenmgr.acpi_state)")),
    _row("acpi-table", "b", RW, _b("config/acpi-table")),
    _row("amt-pt", "b", RW, _b("amt-pt")),
    _row("apic", "b", RW, _b("config/apic")),
    _row("argo", "b", RW, _b("config/argo")),
    _row("authenforce", "b", RW, _b("config/authenforce", True)),
    _row("auto-s3-wake", "b", RW, _b("auto-s3-wake")),
    _row("autostart-pending", "b", R, Derived(
        "autostart-pending", "the VM's uuid is in the list /xenmgr/autostart-pending-vms")),
    _row("bios", "s", RW, _s("config/bios", "seabios")),
    _row("boot", "s", RW, _s("config/boot")),
    _row("boot-sentinel", "s", RW, _s("boot-sentinel", remove_on=("",))),
    _row("cd", "s", RW, Derived(
        "cd", "the file name of the first CD disk's path ('' for null.iso); a set points every "
        "CD disk at <iso-path>/<name> (null.iso for '')"), _E.CD_HOTSWAP),
    _row("cmd-line", "s", RW, _s("config/cmdline")),
    _row("control-platform-power-state", "b", RW,
         _b("control-platform-power-state", native=True)),
    _row("cores-per-socket", "i", RW, _i("config/cores-per-socket")),
    _row("cpuid", "s", RW, _s("cpuid")),
    _row("crypto-key-dirs", "s", RW, _s("crypto-key-dirs")),
    _row("crypto-user", "s", RW, _s("crypto-user", remove_on=("",))),
    _row("dependencies", "ao", R, Computed(
        "the dependency graph of all VMs (each nic's backend VM, the network daemon)")),
    _row("description", "s", RW, _s("description")),
    _row("display", "s", RW, _s("config/display")),
    _row("domid", "i", R, Computed("the domain id from the VM's monitor (-1: not running)")),
    _row("domstore-read-access", "b", RW, _b("domstore-read-access")),
    _row("domstore-write-access", "b", RW, _b("domstore-write-access")),
    _row("download-progress", "i", RW, _i("download-progress", always_write=True),
         _E.TRANSFER_CHANGED),
    _row("extra-hvm", "s", RW, Stored("config/extra-hvm", _JOINED, "")),
    _row("extra-xenvm", "s", RW, Stored("config/extra-xenvm", _JOINED, "")),
    _row("flask-label", "s", RW, _s("config/flask-label")),
    _row("gpu", "s", RW, _s("gpu"), _E.GPU_PLACEMENT),
    _row("greedy-pciback-bind", "b", RW, _b("greedy-pciback-bind", True)),
    _row("hap", "b", RW, _b("config/hap")),
    _row("hdtype", "s", RW, _open("config/hdtype", ("ide", "ahci"), "ide")),
    _row("hibernated", "b", R, _b("hibernated")),
    _row("hidden-in-switcher", "b", RW, _b("hidden"), _E.SWITCHER_INFO),
    _row("hidden-in-ui", "b", RW, _b("hidden-in-ui")),
    _row("hpet", "b", RW, _b("config/hpet", True)),
    _row("icbinn-path", "s", RW, _s("icbinn-path")),
    _row("image-path", "s", RW, _s("image_path", strip=True), _E.SWITCHER_INFO),
    _row("init-flask-label", "s", RW, _s("config/init-flask-label")),
    _row("initrd", "s", RW, _s("config/initrd")),
    _row("initrd-extract", "s", RW, _s("config/initrd-extract")),
    _row("keep-alive", "b", RW, _b("keep-alive")),
    _row("kernel", "s", RW, _s("config/kernel")),
    _row("kernel-extract", "s", RW, _s("config/kernel-extract")),
    _row("display-handler-strict", "b", RW, _b("config/display-handler-strict")),
    _row("image_path_vg", "s", RW, _s("image_path", strip=True), _E.SWITCHER_INFO),
    _row("long_form_vg", "s", RW, _s("config/long-form")),
    _row("short_form_vg", "s", RW, _s("config/short-form")),
    _row("text_color_vg", "s", RW, _s("config/text-color")),
    _row("border_width_vg", "i", RW, _i("config/border-width")),
    _row("border_height_vg", "i", RW, _i("config/border-height")),
    _row("vglass_enabled", "b", RW, _b("config/vglass-enabled")),
    _row("mosaic_mode", "i", RW, _i("config/mosaic-mode")),
    _row("windowed_x", "i", RW, _i("config/windowed-x")),
    _row("windowed_y", "i", RW, _i("config/windowed-y")),
    _row("windowed_w", "i", RW, _i("config/windowed-w")),
    _row("windowed_h", "i", RW, _i("config/windowed-h")),
    _row("primary_domain_color", "s", RW, _s("config/domain-color")),
    _row("secondary_domain_color", "s", RW, _s("config/secondary-domain-color")),
    _row("mosaic_vm_enabled", "b", RW, _b("config/mosaic-vm-enabled")),
    _row("mac", "s", R, Derived(
        "mac", "the MAC of the nic with the lowest id, configured or derived ('' without nics)")),
    _row("measured", "b", R, _b("measured")),
    _row("memory", "i", RW, _i("config/memory")),
    _row("memory-min", "i", RW,
         _i("config/memory-min", remove_nonpositive=True, fallback="config/memory")),
    _row("memory-static-max", "i", RW,
         _i("config/memory-static-max", remove_nonpositive=True, fallback="config/memory")),
    _row("memory-target", "i", R, Computed(
        "the running domain's balloon target (xenstore memory/target) in MiB; 0 when stopped")),
    _row("name", "s", RW, _s("name", strip=True), _E.NAME_CHANGED, _E.SWITCHER_INFO),
    _row("native-experience", "b", RW, _b("native-experience"), _E.NATIVE_EXCLUSIVE),
    _row("nestedhvm", "b", RW, _b("config/nestedhvm")),
    _row("notify", "s", RW, _s("config/notify")),
    _row("nx", "b", RW, _b("config/nx")),
    _row("oem-acpi-features", "b", RW, _b("oem-acpi-features")),
    _row("os", "s", RW, _e("os", ("linux", "windows", "windows8", "unknown"), "unknown",
                          lenient="unknown")),
    _row("ovf-transport-iso", "b", RW, _b("ovf-transport-iso")),
    _row("pae", "b", RW, _b("config/pae")),
    _row("passthrough-io", "s", RW, _s("config/passthrough-io")),
    _row("passthrough-mmio", "s", RW, _s("config/passthrough-mmio")),
    _row("policy-audio-access", "b", RW, _b("policies/audio-access", True)),
    _row("policy-audio-recording", "b", RW, _b("policies/audio-rec", True)),
    _row("policy-cd-access", "b", RW, _b("policies/cd-access", True)),
    _row("policy-cd-recording", "b", RW, _b("policies/cd-rec", True)),
    _row("policy-modify-vm-settings", "b", RW, _b("policies/modify-vm-settings", True)),
    _row("policy-print-screen", "b", RW, Stored(
        "policies/print-screen-disallowed", Codec("not-bool"), True, remove_on=(True,))),
    _row("policy-wired-networking", "b", RW, _b("policies/wired-networking", True)),
    _row("policy-wireless-networking", "b", RW, _b("policies/wireless-networking", True)),
    _row("portica-enabled", "i", R, Computed(
        "portica-installed, portica-enabled and the effective seamless-traffic (which needs the "
        "host's capabilities): see xen.xenmgr.portica_enabled")),
    _row("portica-installed", "b", R, _b("portica-installed")),
    _row("preserve-on-reboot", "b", RW, _b("preserve-on-reboot")),
    _row("private-space", "i", R, Computed("the sizes of the VM's disk files, in MiB")),
    _row("provides-default-network-backend", "b", RW, _b("provides-default-network-backend")),
    _row("provides-graphics-fallback", "b", RW, _b("provides-graphics-fallback")),
    _row("provides-network-backend", "b", RW, _b("provides-network-backend")),
    _row("pv-addons", "b", RW, _b("pv-addons-installed")),
    _row("pv-addons-version", "s", RW, _s("pv-addons-version")),
    _row("qemu-dm-path", "s", RW, _s("config/qemu-dm-path",
                                     "/opt/xensource/libexec/qemu-dm-wrapper")),
    _row("qemu-dm-timeout", "i", RW, _i("config/qemu-dm-timeout", 30)),
    _row("ready", "b", RW, _b("ready", True)),
    _row("realm", "s", RW, _s("realm")),
    _row("restrict-display-depth", "b", RW, _b("restrict-display-depth")),
    _row("restrict-display-res", "b", RW, _b("restrict-display-res")),
    _row("run-insteadof-start", "s", RW, _s("run-insteadof-start", remove_on=("",))),
    _row("run-on-acpi-state-change", "s", RW, _s("run-on-acpi-state-change", remove_on=("",))),
    _row("run-on-state-change", "s", RW, _s("run-on-state-change", remove_on=("",))),
    _row("run-post-create", "s", RW, _s("run-post-create", remove_on=("",))),
    _row("run-pre-boot", "s", RW, _s("run-pre-boot", remove_on=("",))),
    _row("run-pre-delete", "s", RW, _s("run-pre-delete", remove_on=("",))),
    _row("s3-mode", "s", RW, _e("s3-mode", _MODES, "pv")),
    _row("s4-mode", "s", RW, _e("s4-mode", _MODES, "pv")),
    _row("seamless-id", "s", RW, _s("seamless-id")),
    _row("seamless-mouse-left", "i", R, Computed(
        "the slot of the running VM whose GPU is left of this VM's (-1: none)")),
    _row("seamless-mouse-right", "i", R, Computed(
        "the slot of the running VM whose GPU is right of this VM's (-1: none)")),
    _row("seamless-traffic", "b", RW, Computed(
        "for a guest (svm) VM the key, or when unset the host's seamless-traffic-default "
        "capability; false for service VMs (xen.xenmgr.seamless_traffic)",
        writes=_b("seamless-traffic"))),
    _row("secureboot", "b", RW, _b("config/secureboot")),
    _row("serial", "s", RW, _s("config/serial")),
    _row("show-switcher", "b", RW, _b("show-switcher", True, native=False)),
    _row("shutdown-priority", "i", RW, _i("shutdown-priority")),
    _row("slot", "i", RW, _i("slot"), _E.SLOT_SWAP),
    _row("sound", "s", RW, _s("config/sound")),
    _row("start-from-suspend-image", "s", RW, _s("start-from-suspend-image")),
    _row("start-on-boot", "b", RW, _b("start_on_boot", native=True)),
    _row("start-on-boot-priority", "i", RW, _i("start_on_boot_priority")),
    _row("state", "s", R, Computed(
        "the internal state and whether the crypto user is logged in (xen.xenmgr.public_state)")),
    _row("stubdom", "b", RW, Derived("stubdom", "the stubdom key, true only for an HVM guest")),
    _row("stubdom-flask-label", "s", RW, _s("config/stubdom-flask-label")),
    _row("sync-uuid", "s", RW, _s("sync-uuid")),
    _row("time-offset", "i", RW, _i("time-offset")),
    _row("timer-mode", "s", RW, _open("config/timer-mode", TIMER_MODES,
                                      "no_delay_for_missed_ticks")),
    _row("track-dependencies", "b", RW, _b("track-dependencies")),
    _row("type", "s", RW, Stored("type", Codec("string", aliases=(("pvm", "svm"),),
                                               pattern=r"[^/\s]+"), "svm")),
    _row("usb-auto-passthrough", "b", RW, _b("usb-auto-passthrough", True)),
    _row("usb-control", "b", RW, _b("usb-control"), _E.RPC_PROXY_RELOAD),
    _row("usb-enabled", "b", RW, _b("usb-enabled", True)),
    _row("usb-grab-devices", "b", RW, _b("usb-grab-devices", native=True)),
    _row("uuid", "s", R, Derived("uuid", "the VM's uuid")),
    _row("vcpus", "i", RW, _i("config/vcpus")),
    _row("videoram", "i", RW, _i("config/videoram")),
    _row("viridian", "b", RW, _b("config/viridian")),
    _row("virt-type", "s", RW, _e("config/virt-type", ("pv", "pvh", "hvm"), "pv")),
    _row("vkbd", "b", RW, _b("config/vkbd")),
    _row("vsnd", "b", RW, _b("config/vsnd")),
    _row("wired-network", "s", RW, Derived(
        "wired-network", "the network of the wired nic with the lowest id ('' without one); a "
        "set changes that nic's network"), _E.NIC_HOTSWAP),
    _row("wireless-control", "b", RW, _b("wireless-control", native=True)),
    _row("wireless-network", "s", RW, Derived(
        "wireless-network", "the network of the wireless nic with the lowest id ('' without "
        "one); a set changes that nic's network"), _E.NIC_HOTSWAP),
    _row("xci-cpuid-signature", "b", RW, _b("xci-cpuid-signature")),
)

UNRESTRICTED_ONLY: tuple[Row, ...] = (
    _row("stub_domid", "i", R, Computed(
        "the stub domain's id from the VM's monitor (-1: none)")),
    _row("stubdom-cmdline", "s", RW, _s("config/stubdom-cmdline")),
    _row("stubdom-memory", "i", RW, _i("config/stubdom-memory", 96)),
)

_UNGUARDED = frozenset({"wired-network", "wireless-network"})


def vm_bindings() -> tuple[Binding, ...]:
    """The bindings of both VM interfaces."""
    out = []
    for name, sig, settable, source, effects in VM_TABLE:
        guarded = settable and name not in _UNGUARDED
        out.append(Binding(VM_INTERFACE, name, sig, settable, Scope.VM, source, guarded,
                           effects))
    for name, sig, settable, source, effects in VM_TABLE + UNRESTRICTED_ONLY:
        out.append(Binding(VM_UNRESTRICTED, name, sig, settable, Scope.VM, source, False,
                           effects))
    return tuple(out)
