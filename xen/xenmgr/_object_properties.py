"""The bindings of the properties of xenmgr's other objects, as data: the root object
(``...xenmgr.config``, ``...xenmgr.config.ui``), ``/host`` (``...xenmgr.host``), a VM's disks
(``com.citrix.xenclient.vmdisk``) and nics (``com.citrix.xenclient.vmnic``).

Same row shape as ``_vm_properties``: name, DBus signature, settable (as in the interface files;
a test compares), source, effects. No setter here is policy-guarded.

Host-wide keys are absolute paths (scope ``HOST``) and their setters always write (the
original did not compare first); most emit ``config_changed``. Three are stored negated:
``vm-creation-allowed``, ``vm-deletion-allowed`` and ``ota-upgrades-allowed`` are the negation
of ``/vm-create-disallowed``, ``/vm-delete-disallowed`` and ``/ota-upgrades-disallowed``
(allowing removes the key); ``switcher-self-switch-enabled`` is the negation of
``/switcher/self-switch-disabled`` (which defaults to true). ``pointer-trail-timeout`` is stored
in seconds as a decimal fraction and shown in milliseconds. ``measure-fail-action`` reads an
unknown stored action as ``nothing``, as the original, but refuses to store one (the original
stored ``nothing`` instead). What lives in files or hardware (``enable-ssh``, ``language``,
the host's memory, models and addresses...) is ``Computed`` for the service.

Disks and nics: keys relative to ``config/disk/<id>`` and ``config/nic/<node>``. A disk's
``snapshot`` reads ``none`` when unset and setting ``none`` removes it; a nic's ``mac`` reads
``auto`` when unset (setting ``auto`` removes it), its ``model`` ``e1000`` (setting ``''``
removes it); ``wireless-driver`` false removes the key. A disk's ``backend-name`` and
``backend-uuid`` were never implemented by the original: they read ``''`` and refuse a set
with "not implemented". Unlike the original, a nic's ``backend-name`` reads without added
quotes. Pure data: no I/O.
"""

from __future__ import annotations

from xen.xenmgr._binding import (
    Binding,
    Codec,
    Computed,
    Derived,
    Effect,
    Fixed,
    Scope,
    Source,
    Stored,
)
from xen.xenmgr._schema import DEFAULT_NETWORK

__all__ = [
    "CONFIG_INTERFACE",
    "CONFIG_UI_INTERFACE",
    "DISK_INTERFACE",
    "HOST_INTERFACE",
    "NIC_INTERFACE",
    "PM_ACTIONS",
    "object_bindings",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

CONFIG_INTERFACE = "com.citrix.xenclient.xenmgr.config"
CONFIG_UI_INTERFACE = "com.citrix.xenclient.xenmgr.config.ui"
HOST_INTERFACE = "com.citrix.xenclient.xenmgr.host"
DISK_INTERFACE = "com.citrix.xenclient.vmdisk"
NIC_INTERFACE = "com.citrix.xenclient.vmnic"

#: Power-management actions (``measure-fail-action``, the lid-close actions).
PM_ACTIONS = ("sleep", "hibernate", "shutdown", "forced-shutdown", "idle-shutdown", "reboot",
              "nothing")
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_MAC = r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}"
_S, _B, _I, _NOT = Codec("string"), Codec("bool"), Codec("int"), Codec("not-bool")
R, RW = False, True
_E = Effect
_CC = Effect.CONFIG_CHANGED
Row = tuple[str, str, bool, Source, tuple[Effect, ...]]


def _row(name: str, sig: str, settable: bool, source: Source, *effects: Effect) -> Row:
    return name, sig, settable, source, effects


def _hw(what: str) -> Computed:
    return Computed(what)


CONFIG_TABLE: tuple[Row, ...] = (
    _row("argo-firewall", "b", RW, Stored("/xenmgr/argo-firewall", _B, True)),
    _row("argo-hosts-file", "b", RW, Stored("/xenmgr/argo-hosts-file", _B, True), _CC),
    _row("autolock-cd-drives", "b", RW, Stored("/xenmgr/autolock-cd-drives", _B, True),
         _E.CD_AUTOLOCK),
    _row("autostart", "b", RW, Stored("/xenmgr/autostart", _B, True), _CC),
    _row("bypass-sha1sum-checks", "b", R, Stored("/xenmgr/bypass-sha1sum-checks", _B, False)),
    _row("configurable-save-changes-across-reboots", "b", R,
         _hw("the host's capabilities file (configurable-save-changes-across-reboots)")),
    _row("connect-remote-desktop-allowed", "b", RW,
         Stored("/xenmgr/uiConnectRemoteDesktopAllowed", _B, True), _CC),
    _row("dom0-mem-target-mib", "i", RW, Stored("/dom0-mem-target-mib", _I, 256)),
    _row("enable-argo-ssh", "b", RW,
         _hw("the flag file that disables the SSH-over-Argo service"), _E.HOST_SERVICE),
    _row("enable-dom0-networking", "b", RW,
         _hw("the flag file that disables dom0's networking"), _E.HOST_SERVICE),
    _row("enable-ssh", "b", RW, _hw("the flag file that disables the SSH service"),
         _E.HOST_SERVICE),
    _row("guest-only-networking", "b", R, Stored("/xenmgr/guest-only-networking", _B, False)),
    _row("iso-path", "s", RW, Stored("/xenmgr/isos", _S, "/storage/isos"), _CC),
    _row("measure-fail-action", "s", RW, Stored(
        "/xenmgr/measure-fail-action", Codec("enum", PM_ACTIONS, lenient="nothing"),
        "forced-shutdown"), _CC),
    _row("ota-upgrades-allowed", "b", RW,
         Stored("/ota-upgrades-disallowed", _NOT, True, remove_on=(True,)), _CC),
    _row("platform-crypto-key-dirs", "s", RW,
         Stored("/xenmgr/platform-crypto-key-dirs", _S, "/config/platform-crypto-keys"), _CC),
    _row("pvm-autostart-delay", "i", RW, Stored("/xenmgr/pvm-autostart-delay", _I, 0), _CC),
    _row("secondary-gpu-pt", "b", R, _hw("the host's capabilities file (secondary-gpu-pt)")),
    _row("svm-autostart-delay", "i", RW, Stored("/xenmgr/svm-autostart-delay", _I, 0), _CC),
    _row("use-networking-domain", "b", R, Fixed(True)),
    _row("vm-creation-allowed", "b", RW,
         Stored("/vm-create-disallowed", _NOT, True, remove_on=(True,)), _CC),
    _row("vm-deletion-allowed", "b", RW,
         Stored("/vm-delete-disallowed", _NOT, True, remove_on=(True,)), _CC),
    _row("xc-diag-timeout", "i", RW, Stored("/xenmgr/xc-diag-timeout", _I, 180), _CC),
)

CONFIG_UI_TABLE: tuple[Row, ...] = (
    _row("idle-time-threshold", "i", RW, Fixed(0), _CC),
    _row("language", "s", RW, Computed(
        "/config/language.conf (default en-us); a new language must be a supported one "
        "(error 236)"), _E.LANGUAGE_CHANGED, _CC),
    _row("modify-advanced-vm-settings", "b", RW,
         Stored("/xenmgr/uiModifyAdvancedVmSettings", _B, True), _CC),
    _row("modify-services", "b", RW, Stored("/xenmgr/uiModifyServices", _B, True), _CC),
    _row("modify-settings", "b", RW, Stored("/xenmgr/uiModifySettings", _B, True), _CC),
    _row("modify-usb-settings", "b", RW, Stored("/xenmgr/uiModifyUsbSettings", _B, True), _CC),
    _row("pointer-trail-timeout", "i", RW, Stored("/xenmgr/pointerTrailTimeout", Codec("ms"), 0),
         _CC),
    _row("show-mboot-warning", "b", RW, Stored("/xenmgr/showMbootWarning", _B, True), _CC),
    _row("show-msg-on-no-disk", "b", RW, Stored("/xenmgr/showMsgOnNoDisk", _B, True), _CC),
    _row("show-msg-on-vm-start", "b", RW, Stored("/xenmgr/showMsgOnVmStart", _B, True), _CC),
    _row("show-msg-on-vm-start-tools-warning", "b", RW,
         Stored("/xenmgr/showMsgOnVmStartToolsWarning", _B, True), _CC),
    _row("show-tools-warning", "b", RW, Stored("/xenmgr/showToolsWarning", _B, True), _CC),
    _row("supported-languages", "as", R,
         _hw("the host's capabilities file (supported-languages)")),
    _row("switcher-enabled", "b", RW, Stored("/switcher/enabled", _B, True)),
    _row("switcher-keyboard-follows-mouse", "b", RW,
         Stored("/switcher/keyboard_follows_mouse", _B, False)),
    _row("switcher-resistance", "i", RW, Stored("/switcher/resistance", _I, 10)),
    _row("switcher-self-switch-enabled", "b", RW,
         Stored("/switcher/self-switch-disabled", _NOT, False)),
    _row("switcher-status-report-enabled", "b", RW,
         Stored("/switcher/status-report-enabled", _B, True)),
    _row("view-type", "s", RW, Stored("/xenmgr/viewType", _S, ""), _CC),
    _row("wallpaper", "s", RW, Stored("/xenmgr/wallpaper", _S, "images/wallpapers/s9.png"),
         _CC),
)

HOST_TABLE: tuple[Row, ...] = (
    _row("amt-capable", "b", R, _hw("the host's hardware description")),
    _row("avail-mem", "i", R, _hw("the hypervisor's free memory plus ballooned-out memory")),
    _row("bios-revision", "s", R, _hw("the host's hardware description")),
    _row("build-info", "a{ss}", R, _hw("the build description file")),
    _row("capture-pcm", "s", RW, Stored("/audio/capture-pcm", _S, "00-00"), _E.PCM_CONFIG),
    _row("cpu-count", "i", R, _hw("the hypervisor's physical CPUs")),
    _row("eth0-mac", "s", R, _hw("the host's wired network card")),
    _row("eth0-model", "s", R, _hw("the host's wired network card")),
    _row("free-mem", "i", R, _hw("the hypervisor's free memory")),
    _row("free-storage", "i", R, _hw("the storage partition")),
    _row("is-licensed", "b", R, _hw("the licence in xenstore (/xenmgr/license)")),
    _row("laptop", "b", R, _hw("the host's hardware description")),
    _row("measured-boot-enabled", "b", R, _hw("the measured-boot flag files")),
    _row("measured-boot-successful", "b", R, _hw("the measured-boot flag files")),
    _row("model", "s", R, _hw("the host's hardware description")),
    _row("physical-cpu-model", "s", R, _hw("the host's hardware description")),
    _row("physical-gpu-model", "s", R, _hw("the host's hardware description")),
    _row("playback-pcm", "s", RW, Stored("/audio/playback-pcm", _S, "00-00"), _E.PCM_CONFIG),
    _row("safe-graphics", "b", R, _hw("the host's kernel command line")),
    _row("serial", "s", R, _hw("the host's hardware description")),
    _row("state", "s", R, _hw("the host state in xenstore (xen.xenmgr.host_public_state)")),
    _row("system-amt-pt", "b", R, _hw("the host's AMT capability")),
    _row("total-mem", "i", R, _hw("the hypervisor's total memory")),
    _row("total-storage", "i", R, _hw("the storage partition")),
    _row("ui-ready", "b", RW, _hw("the xenstore node /xenmgr/ui-ready"), _E.UI_READY),
    _row("vendor", "s", R, _hw("the host's hardware description")),
    _row("wireless-mac", "s", R, _hw("the host's wireless network card")),
    _row("wireless-model", "s", R, _hw("the host's wireless network card")),
)

_NOT_IMPLEMENTED = Fixed("", on_set="not implemented")
_SNAPSHOTS = ("none", "temporary", "temporary-encrypted", "coalesce", "scripted",
              "scripted-author", "scripted-no-snapshot")

DISK_TABLE: tuple[Row, ...] = (
    _row("backend-name", "s", RW, _NOT_IMPLEMENTED),
    _row("backend-uuid", "s", RW, _NOT_IMPLEMENTED),
    _row("devtype", "s", RW, Stored("devtype", Codec("enum", ("disk", "cdrom")), "")),
    _row("enabled", "b", RW, Stored("enable", _B, True)),
    _row("encryption-key-set", "b", R, _hw("a key file for the VHD in the key directories")),
    _row("managed-disktype", "s", RW, Stored(
        "managed-disktype", Codec("enum", ("", "system", "application", "user")), "",
        remove_on=("",))),
    _row("mode", "s", RW, Stored("mode", Codec("enum", ("r", "w")), "")),
    _row("phys-path", "s", RW, Stored("path", _S, "")),
    _row("phys-type", "s", RW, Stored(
        "type", Codec("enum", ("file", "phy", "qcow", "vdi", "aio", "vhd", "raw")), "")),
    _row("shared", "b", RW, Stored("shared", _B, False)),
    _row("snapshot", "s", RW, Stored("snapshot", Codec("enum", _SNAPSHOTS), "none",
                                     remove_on=("none",))),
    _row("utilization-bytes", "x", R, _hw("the size of the disk's file (vhd-util)")),
    _row("virt-path", "s", RW, Stored("device", _S, "")),
    _row("virtual-size-mb", "i", R, _hw("the virtual size of the disk's VHD (vhd-util)")),
)

NIC_TABLE: tuple[Row, ...] = (
    _row("backend-name", "s", RW, Stored("backend-name", _S, "", remove_on=("",))),
    _row("backend-uuid", "s", RW, Stored("backend-uuid", Codec("string", pattern=_UUID), "",
                                         remove_on=("",))),
    _row("enabled", "b", RW, Stored("enable", _B, True)),
    _row("mac", "s", RW, Stored("mac", Codec("string", pattern=_MAC), "auto",
                                remove_on=("auto",))),
    _row("mac-actual", "s", R, Derived(
        "mac-actual", "the configured MAC, else the one derived from the nic id and VM uuid")),
    _row("model", "s", RW, Stored("model", _S, "e1000", remove_on=("",))),
    _row("network", "s", RW, Stored("network", Codec("network"), DEFAULT_NETWORK),
         _E.NIC_HOTSWAP),
    _row("wireless-driver", "b", RW, Stored("wireless-driver", _B, False, remove_on=(False,))),
)


def object_bindings() -> tuple[Binding, ...]:
    """The bindings of the root, host, disk and nic interfaces."""
    tables = ((CONFIG_INTERFACE, Scope.HOST, CONFIG_TABLE),
              (CONFIG_UI_INTERFACE, Scope.HOST, CONFIG_UI_TABLE),
              (HOST_INTERFACE, Scope.HOST, HOST_TABLE),
              (DISK_INTERFACE, Scope.DISK, DISK_TABLE),
              (NIC_INTERFACE, Scope.NIC, NIC_TABLE))
    return tuple(Binding(interface, name, sig, settable, scope, source, False, effects)
                 for interface, scope, table in tables
                 for name, sig, settable, source, effects in table)
