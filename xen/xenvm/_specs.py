"""From a VmConfig to the xenops values a start needs: domain spec, build memory, device
specs and the device-model description. Pure; what needs the host (the backend domain's UUID,
loop devices, tapdisk paths, host bridges) is passed in by the caller.

Rules kept from the original:
- platform data: pae, apic (true/false), acpi, acpi_s3, acpi_s4 (1/0, all from acpi), nx,
  smbios-pt, smbios-oem-types-pt, acpi-pt, viridian, nested, vcpu_number, vcpu_current,
  then timer-mode, hpet, vpt-align when set, then the `platform` entries.
- an HVM guest without a kernel boots /usr/lib/xen/boot/hvmloader; the RTC offset defaults
  to "0"; video memory is `videoram` MiB (default 0).
- only nics backed by dom0 reach qemu, unless a stubdomain runs it; nics are sorted by id.
- the device model gets serial "pty" for "", nothing for "none"; VNC is the only display it
  is told about; `cdrom-pt` becomes the first extra.
- PCI entries are grouped by group id; per-device msitranslate/power_mgmt default to the
  global pci-msitranslate / pci-power-management; a group binds to pciback if any entry asks.

Failure: ConfigError when the config cannot be started (no memory); ValueErrors from the
xenops spec constructors otherwise.
"""

from __future__ import annotations

import random
from dataclasses import replace

from xen.xenops import (
    BootImage,
    BuildMemory,
    DmInfo,
    DmNic,
    DomainSpec,
    Kind,
    PciDev,
    PciSpec,
    PhysType,
    Protocol,
    PvDeviceSpec,
    VbdSpec,
    VifSpec,
    Vnc,
    VtpmSpec,
    build_memory,
    kib_of_mib,
)
from xen.xenvm._config import VmConfig
from xen.xenvm._config_devices import DiskConfig, NicConfig
from xen.xenvm._config_values import ConfigError, format_bool

__all__ = [
    "HVMLOADER",
    "boot_image",
    "build_kernel",
    "config_build_memory",
    "dm_info",
    "domain_spec",
    "pci_specs",
    "platform_data",
    "pv_device_specs",
    "resolve_macs",
    "stub_pci_specs",
    "vbd_spec",
    "vif_specs",
    "vtpm_specs",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

HVMLOADER = "/usr/lib/xen/boot/hvmloader"


def platform_data(cfg: VmConfig) -> tuple[tuple[str, str], ...]:
    acpi = "1" if cfg.acpi else "0"
    data = [
        ("pae", format_bool(cfg.pae)), ("apic", format_bool(cfg.apic)),
        ("acpi", acpi), ("acpi_s3", acpi), ("acpi_s4", acpi),
        ("nx", format_bool(cfg.nx)), ("smbios-pt", format_bool(cfg.smbios_pt)),
        ("smbios-oem-types-pt", cfg.smbios_oem_types_pt),
        ("acpi-pt", format_bool(cfg.acpi_pt)), ("viridian", format_bool(cfg.viridian)),
        ("nested", format_bool(cfg.nested)),
        ("vcpu_number", str(cfg.vcpus)), ("vcpu_current", str(cfg.vcpus)),
    ]
    for key, value in (("timer-mode", cfg.timer_mode), ("hpet", cfg.hpet),
                       ("vpt-align", cfg.vpt_align)):
        if value is not None:
            data.append((key, str(value)))
    return (*data, *cfg.platform)


def domain_spec(cfg: VmConfig, uuid: str, *, ssidref: int = 0) -> DomainSpec:
    return DomainSpec(uuid=uuid, name=cfg.name or "", hvm=cfg.hvm_container, hap=cfg.hap,
                      ssidref=ssidref, platform=platform_data(cfg))


def build_kernel(cfg: VmConfig) -> str:
    return HVMLOADER if cfg.hvm and not cfg.kernel else cfg.kernel


def boot_image(cfg: VmConfig) -> BootImage:
    """What the builder loads for ``cfg``."""
    return BootImage(build_kernel(cfg), cfg.initrd, cfg.cmdline, pvh=cfg.pvh)


def config_build_memory(cfg: VmConfig) -> BuildMemory:
    if cfg.memory is None:
        raise ConfigError("memory", None, "is not set")
    static_max = cfg.static_max if cfg.static_max is not None else cfg.memory
    return build_memory(hvm=cfg.hvm_container, vcpus=cfg.vcpus,
                        static_max_kib=kib_of_mib(static_max),
                        target_kib=kib_of_mib(cfg.memory), video_mib=cfg.videoram or 0)


def vbd_spec(
    cfg: VmConfig,
    disk: DiskConfig,
    domid: int,
    *,
    physpath: str | None = None,
    phystype: PhysType | None = None,
    backend_uuid: str = "",
    physical_device: tuple[int, int] | None = None,
    loop_device: str | None = None,
    protocol: Protocol = Protocol.NATIVE,
) -> VbdSpec:
    """A disk's VbdSpec; physpath/phystype override the config's once a vhd is tap-mounted."""
    return VbdSpec(
        frontend_domid=domid, virtpath=disk.virtpath, physpath=physpath or disk.physpath,
        phystype=phystype or disk.phystype, mode=disk.mode, device_type=disk.devtype,
        backend_domid=disk.backend_domid, backend_uuid=backend_uuid, hvm=cfg.hvm,
        protocol=protocol,
        physical_device=physical_device, loop_device=loop_device,
    )


def _sorted_nics(cfg: VmConfig) -> list[NicConfig]:
    return sorted(cfg.nics, key=lambda n: -1 if n.nic_id is None else n.nic_id)


def resolve_macs(cfg: VmConfig, vm_uuid: str, rng: random.Random | None = None) -> VmConfig:
    """The config with every nic's MAC made concrete (derived, or drawn once for `random`).

    Start from this so that the vif and the device model's nic get the same random MAC.
    """
    nics = tuple(replace(nic, mac=nic.effective_mac(vm_uuid, rng)) for nic in cfg.nics)
    return replace(cfg, nics=nics)


def _mac(nic: NicConfig, vm_uuid: str) -> str:
    if nic.mac == "random":
        raise ConfigError("nic", nic.format(), "random MAC not resolved (use resolve_macs)")
    return nic.effective_mac(vm_uuid)


def vif_specs(
    cfg: VmConfig, domid: int, vm_uuid: str, *, backend_uuids: dict[int, str] | None = None,
    protocol: Protocol = Protocol.NATIVE,
) -> tuple[VifSpec, ...]:
    uuids = backend_uuids or {}
    return tuple(
        VifSpec(frontend_domid=domid, devid=nic.nic_id or 0, mac=_mac(nic, vm_uuid),
                network=nic.network, backend_domid=nic.backend_domid,
                backend_uuid=uuids.get(nic.backend_domid, ""), wireless=nic.wireless,
                protocol=protocol)
        for nic in _sorted_nics(cfg)
    )


def pci_specs(cfg: VmConfig, domid: int) -> tuple[PciSpec, ...]:
    groups: dict[int, list[PciDev]] = {}
    bind: dict[int, bool] = {}
    for pci in cfg.pcis:
        dev = PciDev(
            pci.domain, pci.bus, pci.slot, pci.func, guest_slot=pci.guest_slot,
            msitranslate=cfg.pci_msitranslate if pci.msitranslate is None else pci.msitranslate,
            power_mgmt=(cfg.pci_power_management if pci.power_mgmt is None
                        else pci.power_mgmt),
            vdevfn=pci.vdevfn,
        )
        groups.setdefault(pci.group, []).append(dev)
        bind[pci.group] = bind.get(pci.group, False) or pci.bind
    return tuple(
        PciSpec(domid, group, tuple(devs), hvm=cfg.hvm, pvpci=cfg.stubdom is None, flr=True,
                bind=bind[group])
        for group, devs in groups.items()
    )


def stub_pci_specs(cfg: VmConfig, target: int, stub: int) -> tuple[PciSpec, ...]:
    """Stub domain ``stub``'s copies of guest ``target``'s PCI groups, as the original: a PV-PCI
    frontend in the stub, not assigned (the guest has the devices), pciback permissive (the
    device model there writes config space), no reset, no bind (the guest's plug did it)."""
    return tuple(replace(spec, frontend_domid=stub, hvm=False, pvpci=True,
                         flr=False, assign=False, permissive=True, bind=False)
                 for spec in pci_specs(cfg, target))


def pv_device_specs(cfg: VmConfig, domid: int,
                    protocol: Protocol = Protocol.NATIVE) -> tuple[PvDeviceSpec, ...]:
    """vkbd (devids 0 and 1), vfb, vsnd and v4v, as the config asks, in the original's order."""
    specs: list[PvDeviceSpec] = []
    if cfg.vkbd:
        specs += [PvDeviceSpec(Kind.VKBD, domid, 0, protocol),
                  PvDeviceSpec(Kind.VKBD, domid, 1, protocol)]
    if cfg.vfb:
        specs.append(PvDeviceSpec(Kind.VFB, domid, 0, protocol))
    if cfg.vsnd:
        specs.append(PvDeviceSpec(Kind.VSND, domid))
    if cfg.v4v:
        specs.append(PvDeviceSpec(Kind.V4V, domid))
    return tuple(specs)


def vtpm_specs(cfg: VmConfig, domid: int, uuid: str) -> tuple[VtpmSpec, ...]:
    """The vTPM of a config that names a ``vtpm-instance`` (served by ``vtpm-backend``)."""
    if cfg.vtpm_instance is None:
        return ()
    return (VtpmSpec(domid, cfg.vtpm_backend, cfg.vtpm_instance, uuid, cfg.name or ""),)


def _bridge(nic: NicConfig, host_bridges: tuple[str, ...]) -> str:
    if nic.backend_domid == 0 and not nic.bridge and not nic.network and host_bridges:
        return host_bridges[0]
    return nic.bridge


def dm_info(
    cfg: VmConfig, vm_uuid: str, *, restore: bool = False, host_bridges: tuple[str, ...] = (),
) -> DmInfo:
    """The device model's description (resolve `random` MACs first, see resolve_macs).

    A dom0 nic with neither network nor bridge uses the first of `host_bridges`.
    """
    if cfg.memory is None:
        raise ConfigError("memory", None, "is not set")
    nics = tuple(
        DmNic(nic.nic_id or 0, _mac(nic, vm_uuid), _bridge(nic, host_bridges), nic.model)
        for nic in _sorted_nics(cfg)
        if cfg.stubdom is not None or nic.backend_domid == 0
    )
    serial = {"": "pty", "none": ""}.get(cfg.serial, cfg.serial)
    display = None
    if cfg.display.kind == "vnc":
        display = Vnc(cfg.display.use_unused_port, "", cfg.display.port, cfg.display.keymap)
    extras = ((("cdrom-pt", cfg.cdrom_pt),) if cfg.cdrom_pt is not None else ()) + cfg.extra_hvm
    return DmInfo(
        hvm=cfg.hvm, memory_mib=cfg.memory, vcpus=cfg.vcpus, videoram_mib=cfg.videoram or 0,
        boot=cfg.boot, serial=serial, display=display, sound=cfg.sound, nics=nics,
        acpi=cfg.acpi, extras=extras, restore=restore,
    )
