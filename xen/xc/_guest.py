"""Building a PV or PVH guest's memory with libxenguest's ``xc_dom_*`` builder (ABI mode).

`build_image` runs on a domain that ``xc_domain_create`` made and the build-pre plan sized (max
vcpus, maxmem). The order is libxl's (libxl_dom.c, ``libxl__build_pre`` then
``libxl__build_dom``; ``libxl__build_hvm`` for PVH), written here from its facts:

0. the domain's CPUID policy, as libxl sets it for every new domain
   (``xc_cpuid_apply_policy``: not a restore, no featureset, PAE, no invariant TSC, no nested
   virtualisation, no overrides): Xen's default policy for the domain type, with the
   toolstack's topology (APIC ids ``2 * vcpu``, as our MADT says) and hypervisor leaves;
1. two unbound event channels in the new domain, for xenstored (``store_domid``) and for
   xenconsoled (``console_domid``): ``xc_evtchn_alloc_unbound``;
2. ``xc_dom_allocate(xch, cmdline, NULL)``; the image fields: PV container, ``flags`` 0, the
   console and xenstore event channels and backend domids, ``max_vcpus``, no claim;
   ``xc_dom_kernel_file`` and, with a ramdisk, ``xc_dom_module_file``;
3. ``xc_dom_boot_xen_init``, ``xc_dom_parse_image``, ``xc_dom_mem_init(memory MiB)``,
   ``xc_dom_boot_mem_init``, ``xc_dom_build_image``, ``xc_dom_boot_image``,
   ``xc_dom_gnttab_init`` (the reserved grant entries that let xenconsoled and xenstored map
   the rings by grant);
4. the console and xenstore ring pages: pfns in the image, turned into machine frames through
   the image's p2m for a PV guest (what ``xc_dom_p2m``, an inline function of xenguest.h,
   does: a translated guest's frames are its pfns);
5. ``xc_dom_release`` always, whatever failed.

A **PVH** guest (``GuestImage.pvh``: a domain created as HVM with only the local APIC
emulated, no device model, no firmware) differs as libxl's PVH build does: an HVM container;
``target_pages`` = the memory; an MMIO hole below 4 GiB that holds the local APIC page and the
special pages (from 0xfc000000 up: libxl's choice, which also leaves room for ACPI tables);
low memory up to the hole, the rest above 4 GiB; a memory map (RAM, the special pages
reserved, high RAM) given to Xen (``xc_domain_set_memory_map``) and to the image for the
guest's start info; after the build the rings are the special pages' frames as the guest sees
them (a translated guest), and their event channels go into HVM_PARAM_STORE_EVTCHN /
HVM_PARAM_CONSOLE_EVTCHN, where a PVH kernel looks for them. Its ACPI tables
(`xen.xc._acpi`: FADT, MADT with a local APIC per vcpu, ...) go in as libxenguest's ACPI
modules at the start of the MMIO hole (module 0 is the RSDP, whose address libxenguest puts in
the guest's start info), marked ACPI in the memory map; libxenguest populates their pages.
Without a MADT a Linux PVH kernel runs with no timer interrupt (docs/xenlab.md, finding 11).

A failing step raises the `xen.hypervisor` error for its errno with libxenctrl's last error
(libxenguest reports through the same handle), naming the step and the domain. The domain is
left as it is: the caller destroys it (the VM monitor's build rolls back by destroying).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xen.hypervisor import HvmParam, InvalidArgument
from xen.xc._acpi import ACPI_BASE, pvh_acpi_tables
from xen.xc._cdefs import (
    E820_ACPI,
    E820_RAM,
    E820_RESERVED,
    X86_HVM_END_SPECIAL_REGION,
    X86_HVM_NR_SPECIAL_PAGES,
    XC_DOM_HVM_CONTAINER,
    XC_DOM_PV_CONTAINER,
)

__all__ = ["GuestImage", "GuestRings", "build_image"]

#: xc_dom_p2m's answer for a pfn past the guest's memory (INVALID_MFN, ~0UL).
_INVALID_MFN = (1 << 64) - 1
_GIB4 = 1 << 32
#: Where libxl starts a PVH guest's MMIO hole: below the local APIC page (0xfee00000), the
#: special pages and hvmloader's ACPI area (0xfc000000).
_PVH_MMIO_START = min((X86_HVM_END_SPECIAL_REGION - X86_HVM_NR_SPECIAL_PAGES) << 12,
                      0xFEE00000, ACPI_BASE)


@dataclass(frozen=True, slots=True)
class GuestImage:
    """What to load: kernel, ramdisk, command line, memory (MiB), vcpus, backend domains;
    ``pvh`` for a PVH guest (the domain must have been created HVM)."""

    kernel: str
    ramdisk: str | None
    cmdline: str
    memory_mib: int
    vcpus: int
    store_domid: int = 0
    console_domid: int = 0
    pvh: bool = False

    def __post_init__(self) -> None:
        if not self.kernel:
            raise InvalidArgument("building a PV guest needs a kernel")
        if isinstance(self.memory_mib, bool) or not isinstance(self.memory_mib, int) \
                or self.memory_mib < 1:
            raise InvalidArgument(f"guest memory must be >= 1 MiB, got {self.memory_mib!r}")
        if isinstance(self.vcpus, bool) or not isinstance(self.vcpus, int) or self.vcpus < 1:
            raise InvalidArgument(f"guest vcpus must be >= 1, got {self.vcpus!r}")


@dataclass(frozen=True, slots=True)
class GuestRings:
    """The built guest's xenstore and console rings: machine frames (PV) or guest frames (PVH),
    and event channels."""

    store_mfn: int
    store_port: int
    console_mfn: int
    console_port: int


def build_image(ffi: Any, ctrl: Any, guest: Any, xch: Any, domid: int, image: GuestImage,
             check: Callable[[int, str], None]) -> GuestRings:
    """Build ``image`` into domain ``domid`` (see the module docstring; PV or PVH by
    ``image.pvh``). ``ctrl`` and ``guest`` are the dlopened libxenctrl and libxenguest, ``xch``
    the open handle and ``check(rc, what)`` raises for a negative ``rc``; the caller holds the
    handle's lock."""
    where = f"domain {domid}"
    rc = guest.xc_cpuid_apply_policy(xch, domid, False, ffi.NULL, 0, True, False, False,
                                     ffi.NULL, ffi.NULL)
    if rc < 0:
        ffi.errno = -rc  # it returns -errno
    check(rc, f"xc_cpuid_apply_policy({where})")
    store_port = ctrl.xc_evtchn_alloc_unbound(xch, domid, image.store_domid)
    check(store_port, f"xc_evtchn_alloc_unbound({where}, remote {image.store_domid}: store)")
    console_port = ctrl.xc_evtchn_alloc_unbound(xch, domid, image.console_domid)
    check(console_port,
          f"xc_evtchn_alloc_unbound({where}, remote {image.console_domid}: console)")
    keep = [ffi.new("char[]", image.cmdline.encode())]  # alive until xc_dom_release
    dom = guest.xc_dom_allocate(xch, keep[0], ffi.NULL)
    if dom == ffi.NULL:
        check(-1, f"xc_dom_allocate({where})")
    try:
        dom.container_type = XC_DOM_HVM_CONTAINER if image.pvh else XC_DOM_PV_CONTAINER
        dom.flags = 0
        dom.console_evtchn = console_port
        dom.console_domid = image.console_domid
        dom.xenstore_evtchn = store_port
        dom.xenstore_domid = image.store_domid
        dom.claim_enabled = 0
        dom.max_vcpus = image.vcpus
        check(guest.xc_dom_kernel_file(dom, image.kernel.encode()),
              f"xc_dom_kernel_file({where}, {image.kernel})")
        if image.ramdisk:
            check(guest.xc_dom_module_file(dom, image.ramdisk.encode(), ffi.NULL),
                  f"xc_dom_module_file({where}, {image.ramdisk})")
        if image.pvh:
            keep.extend(_pvh_layout(ffi, ctrl, xch, dom, domid, image, check))
        check(guest.xc_dom_boot_xen_init(dom, xch, domid), f"xc_dom_boot_xen_init({where})")
        check(guest.xc_dom_parse_image(dom), f"xc_dom_parse_image({where}, {image.kernel})")
        check(guest.xc_dom_mem_init(dom, image.memory_mib),
              f"xc_dom_mem_init({where}, {image.memory_mib} MiB)")
        for step in ("xc_dom_boot_mem_init", "xc_dom_build_image", "xc_dom_boot_image",
                     "xc_dom_gnttab_init"):
            check(getattr(guest, step)(dom), f"{step}({where})")
        store_mfn = _frame(ffi, guest, dom, int(dom.xenstore_pfn))
        console_mfn = _frame(ffi, guest, dom, int(dom.console_pfn))
    finally:
        guest.xc_dom_release(dom)
    if image.pvh:
        for param, port in ((HvmParam.STORE_EVTCHN, store_port),
                            (HvmParam.CONSOLE_EVTCHN, console_port)):
            check(ctrl.xc_hvm_param_set(xch, domid, int(param), port),
                  f"xc_hvm_param_set({where}, HVM_PARAM_{param.name}={port})")
    if _INVALID_MFN in (store_mfn, console_mfn):
        raise InvalidArgument(f"building {where}: a ring page lies outside the guest's memory "
                              f"(store {store_mfn:#x}, console {console_mfn:#x})")
    return GuestRings(store_mfn=store_mfn, store_port=store_port, console_mfn=console_mfn,
                      console_port=console_port)


def _frame(ffi: Any, guest: Any, dom: Any, pfn: int) -> int:
    """xc_dom_p2m: the frame of ``pfn`` as the toolstack names it to xenstored/xenconsoled."""
    if guest.xc_dom_translated(dom):
        return pfn
    if pfn >= dom.total_pages or dom.pv_p2m == ffi.NULL:
        return _INVALID_MFN
    return int(dom.pv_p2m[pfn])


def _pvh_layout(ffi: Any, ctrl: Any, xch: Any, dom: Any, domid: int, image: GuestImage,
                check: Callable[[int, str], None]) -> list[Any]:
    """The memory layout of a PVH guest and its ACPI tables, set in the image and given to
    Xen; returns the buffers the image points at (they must outlive the build)."""
    memory = image.memory_mib << 20
    low, high = memory, 0
    if low > _PVH_MMIO_START:
        high = _GIB4 + low - _PVH_MMIO_START
        low = _PVH_MMIO_START
    dom.target_pages = memory >> 12
    dom.mmio_start = _PVH_MMIO_START
    dom.mmio_size = _GIB4 - _PVH_MMIO_START
    dom.lowmem_end = low
    dom.highmem_end = high
    dom.vga_hole_size = 0
    dom.device_model = False
    acpi = pvh_acpi_tables(image.vcpus, ACPI_BASE)
    # module 0 is the RSDP: libxenguest names its address in the guest's start info
    modules = ((acpi.rsdp, acpi.rsdp_addr), (acpi.tables, acpi.tables_addr))
    blobs = [ffi.new("uint8_t[]", data) for data, _ in modules]
    for i, ((data, addr), blob) in enumerate(zip(modules, blobs, strict=True)):
        module = dom.acpi_modules[i]
        module.data, module.length, module.guest_addr_out = blob, len(data), addr
    special = (X86_HVM_END_SPECIAL_REGION - X86_HVM_NR_SPECIAL_PAGES) << 12
    entries = [(0, low, E820_RAM),
               (acpi.tables_addr, len(acpi.tables), E820_ACPI),
               (acpi.rsdp_addr, len(acpi.rsdp), E820_ACPI),
               (special, X86_HVM_NR_SPECIAL_PAGES << 12, E820_RESERVED)]
    if high:
        entries.append((_GIB4, high - _GIB4, E820_RAM))
    e820 = ffi.new("struct e820entry[]", len(entries))
    for i, (addr, size, kind) in enumerate(entries):
        e820[i].addr, e820[i].size, e820[i].type = addr, size, kind
    check(ctrl.xc_domain_set_memory_map(xch, domid, e820, len(entries)),
          f"xc_domain_set_memory_map(domain {domid}, {len(entries)} entries)")
    dom.e820 = e820
    dom.e820_entries = len(entries)
    return [e820, *blobs]
