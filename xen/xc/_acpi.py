"""The ACPI tables a PVH guest boots with, built as bytes (pure: no I/O, no cffi).

A PVH guest has no firmware: the toolstack hands it its ACPI tables, loaded into its memory by
libxenguest (``xc_dom_image.acpi_modules``) and found through the RSDP address in its start
info. Without them a Linux PVH kernel finds no MADT, so it disables SMP, never installs Xen's
per-vcpu timer and runs with no timer interrupt: anything that sleeps (a poweroff, a ping, a
driver's timeout) waits for ever (docs/xenlab.md, finding 11). With them it boots as libxl's
PVH guests do.

What is built, in the shape libxl gives a PVH guest (its libacpi with no optional table
enabled), written here from the ACPI specification's layouts:

- an **RSDP** (revision 2, 36 bytes) naming the RSDT and the XSDT;
- an **XSDT** and an **RSDT** listing the FADT and the MADT;
- a **FADT** (revision 5, 268 bytes): the FACS and DSDT addresses, SCI interrupt 9, the PM1a
  event and control blocks and the GPE0 block at the I/O ports Xen's ACPI emulation uses for
  HVM guests (``0xb000``, ``0xb004``, ``0xafe0``), no PM timer, no power or sleep button, no
  VGA, C2/C3 unsupported;
- a **FACS** (64 bytes, 64-byte aligned: it comes first);
- a **DSDT** with an empty AML body (libxl's carries processor objects for CPU hotplug, which
  this project does not do);
- a **MADT**: the local APIC base, PC-AT compatible, one enabled local APIC per vcpu with APIC
  id ``2 * vcpu`` (Xen's numbering for HVM vcpus; x2APIC entries past id 254), no I/O APIC
  (a PVH guest has none).

No ``\\_S5`` object: a PVH domain has no sleep hardware. A kernel asked to power off halts its
vcpus and Xen then shuts the domain down with reason poweroff (what happens with libxl's tables
too).

`pvh_acpi_tables(vcpus, base)` lays the tables out from ``base`` (a page boundary; libxl uses
``0xfc000000``, the start of a PVH guest's MMIO hole) and returns the two blobs to load: the
tables, and the RSDP in the page after them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["ACPI_BASE", "AcpiTables", "checksum_ok", "pvh_acpi_tables"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: Where the tables go in a PVH guest's memory (libxl's ACPI_INFO_PHYSICAL_ADDRESS).
ACPI_BASE = 0xFC000000
PAGE = 4096
#: The local APIC's physical address (the architectural default).
LAPIC_BASE = 0xFEE00000
#: Xen's emulated ACPI register blocks (I/O ports) for HVM-type guests, version 1 layout.
PM1A_EVT_BLK, PM1A_CNT_BLK, GPE0_BLK = 0xB000, 0xB004, 0xAFE0
PM1_EVT_LEN, PM1_CNT_LEN, GPE0_BLK_LEN = 4, 2, 4
SCI_INT = 9

_OEM_ID = b"Xen   "
_OEM_TABLE_ID = b"HVM     "
_CREATOR_ID = b"OXTP"
_HEADER = struct.Struct("<4sIBB6s8sI4sI")  # signature ... creator revision: 36 bytes
_GAS = struct.Struct("<BBBBQ")  # generic address: space, bit width, bit offset, access, address
_SYSTEM_IO = 1

# FADT flags and IA-PC boot architecture flags (ACPI 5.0, table 5-34 and 5-35)
_FADT_WBINVD = 1 << 0
_FADT_PROC_C1 = 1 << 2
_FADT_PWR_BUTTON = 1 << 4  # set: there is no fixed power button
_FADT_SLP_BUTTON = 1 << 5  # set: there is no fixed sleep button
_FADT_FIX_RTC = 1 << 6
_FADT_TMR_VAL_EXT = 1 << 8
_FADT_USE_PLATFORM_CLOCK = 1 << 15
_BOOT_ARCH_NO_VGA = 1 << 2
_MADT_PCAT_COMPAT = 1
_LAPIC_ENABLED = 1
_MAX_XAPIC_ID = 254  # 255 is the broadcast id: larger ids need x2APIC entries


@dataclass(frozen=True, slots=True)
class AcpiTables:
    """The blobs to load into the guest: ``tables`` at ``tables_addr`` and the ``rsdp`` at
    ``rsdp_addr`` (the address the guest's start info names)."""

    tables: bytes
    tables_addr: int
    rsdp: bytes
    rsdp_addr: int


def pvh_acpi_tables(vcpus: int, base: int = ACPI_BASE) -> AcpiTables:
    """The ACPI tables of a PVH guest with ``vcpus`` vcpus, laid out from ``base``."""
    if isinstance(vcpus, bool) or not isinstance(vcpus, int) or vcpus < 1:
        raise ValueError(f"a PVH guest's ACPI tables need >= 1 vcpu, got {vcpus!r}")
    if base % PAGE:
        raise ValueError(f"the ACPI tables' base {base:#x} is not page aligned")
    blob = bytearray()

    def place(table: bytes) -> int:
        """Append ``table`` 16-byte aligned (the FACS, first, is 64-byte aligned)."""
        blob.extend(bytes(-len(blob) % 16))
        blob.extend(table)
        return base + len(blob) - len(table)

    facs = place(_facs())
    dsdt = place(_table(b"DSDT", 5, b""))
    fadt = place(_fadt(facs, dsdt))
    madt = place(_madt(vcpus))
    xsdt = place(_table(b"XSDT", 1, struct.pack("<QQ", fadt, madt)))
    rsdt = place(_table(b"RSDT", 1, struct.pack("<II", fadt, madt)))
    rsdp_addr = base + len(blob) + (-len(blob) % PAGE)
    return AcpiTables(tables=bytes(blob), tables_addr=base, rsdp=_rsdp(rsdt, xsdt),
                      rsdp_addr=rsdp_addr)


def checksum_ok(data: bytes) -> bool:
    """Whether ``data``'s bytes sum to zero modulo 256 (every ACPI checksum's rule)."""
    return sum(data) % 256 == 0


def _fix_checksum(table: bytearray, at: int, length: int) -> None:
    table[at] = 0
    table[at] = -sum(table[:length]) % 256


def _table(signature: bytes, revision: int, body: bytes) -> bytes:
    """A described table: the standard 36-byte header (checksum set) then ``body``."""
    table = bytearray(_HEADER.pack(signature, _HEADER.size + len(body), revision, 0, _OEM_ID,
                                   _OEM_TABLE_ID, 0, _CREATOR_ID, 0) + body)
    _fix_checksum(table, 9, len(table))
    return bytes(table)


def _facs() -> bytes:
    """The FACS: signature, length 64, version 1, the rest zero (no firmware waking vector)."""
    facs = bytearray(64)
    struct.pack_into("<4sI", facs, 0, b"FACS", 64)
    facs[32] = 1  # version
    return bytes(facs)


def _fadt(facs: int, dsdt: int) -> bytes:
    """The FADT, revision 5 (268 bytes with its header)."""
    body = bytearray(268 - _HEADER.size)

    def put(offset: int, fmt: str, *values: int) -> None:  # offsets from the table's start
        struct.pack_into(fmt, body, offset - _HEADER.size, *values)

    put(36, "<II", facs, dsdt)
    put(46, "<H", SCI_INT)
    put(56, "<I", PM1A_EVT_BLK)
    put(64, "<I", PM1A_CNT_BLK)
    put(80, "<I", GPE0_BLK)
    put(88, "<BB", PM1_EVT_LEN, PM1_CNT_LEN)
    put(92, "<B", GPE0_BLK_LEN)
    put(96, "<HH", 0x0FFF, 0x0FFF)  # C2 and C3 latencies past their limits: unsupported
    put(109, "<H", _BOOT_ARCH_NO_VGA)
    put(112, "<I", _FADT_WBINVD | _FADT_PROC_C1 | _FADT_PWR_BUTTON | _FADT_SLP_BUTTON
        | _FADT_FIX_RTC | _FADT_TMR_VAL_EXT | _FADT_USE_PLATFORM_CLOCK)
    put(132, "<QQ", facs, dsdt)  # X_FIRMWARE_CTRL, X_DSDT
    for offset, length, port in ((148, PM1_EVT_LEN, PM1A_EVT_BLK),  # X_PM1a_EVT_BLK
                                 (172, PM1_CNT_LEN, PM1A_CNT_BLK),  # X_PM1a_CNT_BLK
                                 (220, GPE0_BLK_LEN, GPE0_BLK)):  # X_GPE0_BLK
        _GAS.pack_into(body, offset - _HEADER.size, _SYSTEM_IO, length * 8, 0, 0, port)
    return _table(b"FACP", 5, bytes(body))


def _madt(vcpus: int) -> bytes:
    """The MADT: the local APIC base, PC-AT compatible, an enabled local APIC per vcpu."""
    body = bytearray(struct.pack("<II", LAPIC_BASE, _MADT_PCAT_COMPAT))
    for vcpu in range(vcpus):
        apic_id = 2 * vcpu
        if apic_id <= _MAX_XAPIC_ID:  # processor local APIC: type 0, length 8
            body += struct.pack("<BBBBI", 0, 8, vcpu, apic_id, _LAPIC_ENABLED)
        else:  # processor local x2APIC: type 9, length 16
            body += struct.pack("<BBHIII", 9, 16, 0, apic_id, _LAPIC_ENABLED, vcpu)
    return _table(b"APIC", 3, bytes(body))


def _rsdp(rsdt: int, xsdt: int) -> bytes:
    """The RSDP, revision 2: its ACPI 1.0 checksum over 20 bytes, the extended one over 36."""
    rsdp = bytearray(struct.pack("<8sB6sBIIQB3x", b"RSD PTR ", 0, _OEM_ID, 2, rsdt, 36, xsdt,
                                 0))
    _fix_checksum(rsdp, 8, 20)
    _fix_checksum(rsdp, 32, 36)
    return bytes(rsdp)
