"""Device-model (qemu-dm) command lines for direct mode, and the nodes prepared for it.

`qemu_args(info, domid)` builds qemu's arguments in the original's order:

  -d <domid>
  HVM: -m <MiB> -videoram <n> -vcpus <n>     PV: -videoram <n>
  -boot <order>            (if set)
  -serial <s>              (if set; the config's "" means pty and "none" means no -serial)
  -M xenfv | xenpv
  VNC: -vncunused -k <keymap>  or  -vnc <addr>:<port> -k <keymap>   (other displays: none)
  -soundhw <dev>           (if set)
  -usb -usbdevice <d>...   (if any)
  per nic: -net nic,vlan=<i>,macaddr=<mac>,model=<model|rtl8139>
           -net tap,vlan=<i>,bridge=<bridge>,ifname=tap<domid>.<nic id>
           (no nic: -net none)
  -acpi                    (if set)
  -loadvm /tmp/xen.qemu-dm.<domid>   (on restore)
  -pciemulation <x>...
  each extra (k, v): -k [v], in the order given
  -smp <n>                 (if vcpus > 1)

Fixed from the original (listed in docs/compatibility.md): `-net none` is two argv elements
(the original passed the single element "-net none"); extras keep their config order (the
original reversed the pairs); the tap ifname uses the nic's id, as nic-network-switch expects
(the original used the nic's position).

`qemu_argv` prefixes the wrapper's own arguments: `<qemu-dm-path> <domid> <logfile>`.
Pure: no process is started here. Failure: an invalid DmInfo raises DmArgsError (ValueError).
"""

from __future__ import annotations

from dataclasses import dataclass

from xen.xenops._atomics import Write

__all__ = [
    "DmArgsError",
    "DmInfo",
    "DmNic",
    "Vnc",
    "dm_prepare_writes",
    "qemu_args",
    "qemu_argv",
    "qemu_logfile",
    "qemu_restore_file",
    "stubdom_dm_args",
    "stubdom_mac",
    "wants_vnc_port",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

_DEFAULT_NIC_MODEL = "rtl8139"


class DmArgsError(ValueError):
    """A device-model description that cannot become a command line."""


@dataclass(frozen=True, slots=True)
class Vnc:
    """VNC display: an unused port (`-vncunused`) or a fixed `bindaddr:port`."""

    use_unused_port: bool = False
    bindaddr: str = ""
    port: int = 0
    keymap: str = "en-us"


@dataclass(frozen=True, slots=True)
class DmNic:
    """An emulated nic: its id (0..31), MAC, bridge name and qemu model ("" = rtl8139)."""

    nic_id: int
    mac: str
    bridge: str
    model: str = ""


@dataclass(frozen=True, slots=True)
class DmInfo:
    """What the device model is started with. Memory in MiB; serial already resolved."""

    hvm: bool
    memory_mib: int
    vcpus: int = 1
    videoram_mib: int = 0
    boot: str = ""
    serial: str = ""
    display: Vnc | None = Vnc()
    sound: str | None = None
    usb: tuple[str, ...] = ()
    nics: tuple[DmNic, ...] = ()
    acpi: bool = False
    pci_emulations: tuple[str, ...] = ()
    extras: tuple[tuple[str, str | None], ...] = ()
    restore: bool = False

    def __post_init__(self) -> None:
        if self.memory_mib < 0 or self.videoram_mib < 0:
            raise DmArgsError("device-model memory and videoram must not be negative")
        if self.vcpus < 1:
            raise DmArgsError(f"device-model vcpus must be >= 1, got {self.vcpus}")
        for key, _value in self.extras:
            if not key or key.startswith("-") or any(c.isspace() for c in key):
                raise DmArgsError(f"bad extra-hvm key {key!r}")


def qemu_logfile(domid: int) -> str:
    """Where qemu-dm-wrapper redirects qemu's output."""
    return f"/tmp/qemu.{domid}"


def qemu_restore_file(domid: int) -> str:
    """qemu's saved state file on suspend/restore."""
    return f"/tmp/xen.qemu-dm.{domid}"


def wants_vnc_port(info: DmInfo) -> bool:
    """Whether the start waits for `console/vnc-port` (only with a VNC display)."""
    return isinstance(info.display, Vnc)


def qemu_args(info: DmInfo, domid: int) -> list[str]:
    """qemu's arguments (after the wrapper's), in the original's order with its bugs fixed."""
    args = ["-d", str(domid)]
    if info.hvm:
        args += ["-m", str(info.memory_mib), "-videoram", str(info.videoram_mib),
                 "-vcpus", str(info.vcpus)]
    else:
        args += ["-videoram", str(info.videoram_mib)]
    if info.boot:
        args += ["-boot", info.boot]
    if info.serial:
        args += ["-serial", info.serial]
    args += ["-M", "xenfv" if info.hvm else "xenpv"]
    if isinstance(info.display, Vnc):
        vnc = info.display
        if vnc.use_unused_port:
            args += ["-vncunused", "-k", vnc.keymap]
        else:
            args += ["-vnc", f"{vnc.bindaddr}:{vnc.port}", "-k", vnc.keymap]
    if info.sound is not None:
        args += ["-soundhw", info.sound]
    if info.usb:
        args.append("-usb")
        for device in info.usb:
            args += ["-usbdevice", device]
    if info.nics:
        for vlan, nic in enumerate(info.nics):
            model = nic.model or _DEFAULT_NIC_MODEL
            args += ["-net", f"nic,vlan={vlan},macaddr={nic.mac},model={model}",
                     "-net", f"tap,vlan={vlan},bridge={nic.bridge},ifname=tap{domid}.{nic.nic_id}"]
    else:
        args += ["-net", "none"]
    if info.acpi:
        args.append("-acpi")
    if info.restore:
        args += ["-loadvm", qemu_restore_file(domid)]
    for emulation in info.pci_emulations:
        args += ["-pciemulation", emulation]
    for key, value in info.extras:
        args.append(f"-{key}")
        if value is not None:
            args.append(value)
    if info.vcpus > 1:
        args += ["-smp", str(info.vcpus)]
    return args


def qemu_argv(qemu_dm_path: str, info: DmInfo, domid: int) -> list[str]:
    """The full argv for qemu-dm-wrapper: path, domid, logfile, then qemu's arguments."""
    if not qemu_dm_path:
        raise DmArgsError("no device-model path (qemu-dm-path is empty)")
    return [qemu_dm_path, str(domid), qemu_logfile(domid), *qemu_args(info, domid)]


def stubdom_dm_args(args: list[str]) -> list[str]:
    """The arguments given to a stubdomain's qemu: without `-M`, `xenfv` and `-sdl`."""
    return [arg for arg in args if arg not in ("-M", "xenfv", "-sdl")]


def stubdom_mac(mac: str) -> str:
    """A guest nic's MAC as seen by its stubdomain: the locally-administered bit flipped."""
    try:
        first = int(mac[:2], 16)
    except ValueError:
        raise DmArgsError(f"bad MAC {mac!r}") from None
    return f"{first ^ 0x02:02x}{mac[2:]}"


def dm_prepare_writes(
    domid: int, *, power_mgmt: int = 0, oem_features: int = 0, inject_sci: int = 0,
    host_has_battery: bool = False,
) -> list[Write]:
    """Nodes written under /local/domain/0/device-model/<domid> before the device model starts.

    xen_extended_power_mgmt only when the host has /proc/acpi/battery (the caller checks).
    """
    base = f"/local/domain/0/device-model/{domid}"
    writes = []
    if power_mgmt != 0 and host_has_battery:
        writes.append(Write(f"{base}/xen_extended_power_mgmt", str(power_mgmt)))
    if oem_features != 0:
        writes.append(Write(f"{base}/oem_features", str(oem_features)))
    if inject_sci != 0:
        writes.append(Write(f"{base}/inject-sci", str(inject_sci)))
    return writes
