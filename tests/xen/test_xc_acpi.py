"""The ACPI tables of a PVH guest (`xen.xc._acpi`): read back the way a guest's kernel walks
them (RSDP -> XSDT/RSDT -> FADT -> DSDT/FACS, MADT), every checksum, every pointer inside
the loaded blobs, and the MADT's local APIC per vcpu. The lab boots a real kernel on them
(tests/xenlab/test_dom0_xenmgr.py)."""

from __future__ import annotations

import struct

import pytest

from xen.xc._acpi import ACPI_BASE, AcpiTables, checksum_ok, pvh_acpi_tables


def memory(t: AcpiTables) -> dict[int, bytes]:
    return {t.tables_addr: t.tables, t.rsdp_addr: t.rsdp}


def read(t: AcpiTables, addr: int, length: int) -> bytes:
    """``length`` bytes at guest address ``addr``: must lie inside one loaded blob."""
    for base, blob in memory(t).items():
        if base <= addr and addr + length <= base + len(blob):
            return blob[addr - base:addr - base + length]
    raise AssertionError(f"{addr:#x}+{length} is outside the loaded tables")


def table(t: AcpiTables, addr: int, signature: bytes) -> bytes:
    """The described table at ``addr``: its signature, length and checksum checked."""
    head = read(t, addr, 36)
    assert head[:4] == signature, (head[:4], signature)
    data = read(t, addr, struct.unpack_from("<I", head, 4)[0])
    assert checksum_ok(data), f"{signature!r} checksum"
    assert data[10:16] == b"Xen   "
    return data


def walk(t: AcpiTables) -> dict[bytes, bytes]:
    """Every table reachable from the RSDP, by signature (the FACS too)."""
    rsdp = t.rsdp
    assert rsdp[:8] == b"RSD PTR " and rsdp[15] == 2 and len(rsdp) == 36
    assert checksum_ok(rsdp[:20]) and checksum_ok(rsdp)
    rsdt_addr, length, xsdt_addr = struct.unpack_from("<IIQ", rsdp, 16)
    assert length == 36
    xsdt, rsdt = table(t, xsdt_addr, b"XSDT"), table(t, rsdt_addr, b"RSDT")
    entries = list(struct.unpack_from(f"<{(len(xsdt) - 36) // 8}Q", xsdt, 36))
    assert entries == list(struct.unpack_from(f"<{(len(rsdt) - 36) // 4}I", rsdt, 36))
    found = {}
    for addr in entries:
        signature = read(t, addr, 4)
        found[signature] = table(t, addr, signature)
    fadt = found[b"FACP"]
    facs, dsdt = struct.unpack_from("<II", fadt, 36)
    assert struct.unpack_from("<QQ", fadt, 132) == (facs, dsdt)
    assert facs % 64 == 0
    found[b"FACS"] = read(t, facs, 64)
    found[b"DSDT"] = table(t, dsdt, b"DSDT")
    return found


def test_the_rsdp_reaches_every_table_and_every_checksum_holds() -> None:
    t = pvh_acpi_tables(2)
    tables = walk(t)
    assert set(tables) == {b"FACP", b"APIC", b"FACS", b"DSDT"}
    assert tables[b"FACS"][:4] == b"FACS" and struct.unpack_from("<I", tables[b"FACS"], 4) == (64,)
    # the RSDP has its own page after the tables, as the memory map's two ACPI ranges say
    assert t.tables_addr == ACPI_BASE and t.rsdp_addr % 4096 == 0
    assert t.tables_addr + len(t.tables) <= t.rsdp_addr


def test_the_fadt_describes_xens_acpi_registers_and_no_pm_timer() -> None:
    fadt = walk(pvh_acpi_tables(1))[b"FACP"]
    assert len(fadt) == 268 and fadt[8] == 5  # ACPI 5.0 layout, revision 5
    sci, = struct.unpack_from("<H", fadt, 46)
    pm1a_evt, _, pm1a_cnt, _, _, pm_tmr, gpe0 = struct.unpack_from("<7I", fadt, 56)
    assert (sci, pm1a_evt, pm1a_cnt, pm_tmr, gpe0) == (9, 0xB000, 0xB004, 0, 0xAFE0)
    assert tuple(fadt[88:93]) == (4, 2, 0, 0, 4)  # PM1 event, control, PM2, timer, GPE0 lengths
    flags, = struct.unpack_from("<I", fadt, 112)
    assert flags & (1 << 4) and flags & (1 << 5)  # no power button, no sleep button
    assert not flags & (1 << 20)  # not hardware-reduced: Xen emulates PM1a and GPE0
    boot_arch, = struct.unpack_from("<H", fadt, 109)
    assert boot_arch & (1 << 2)  # no VGA
    space, width, _, _, address = struct.unpack_from("<BBBBQ", fadt, 172)  # X_PM1a_CNT_BLK
    assert (space, width, address) == (1, 16, 0xB004)


@pytest.mark.parametrize("vcpus", [1, 2, 8, 127])
def test_the_madt_has_an_enabled_local_apic_per_vcpu_numbered_as_xen_does(vcpus: int) -> None:
    madt = walk(pvh_acpi_tables(vcpus))[b"APIC"]
    assert struct.unpack_from("<II", madt, 36) == (0xFEE00000, 1)
    entries, at = [], 44
    while at < len(madt):
        kind, length = madt[at], madt[at + 1]
        assert kind == 0 and length == 8  # local APICs only: no I/O APIC in a PVH guest
        entries.append(struct.unpack_from("<BBI", madt, at + 2))
        at += length
    assert at == len(madt)
    assert entries == [(vcpu, 2 * vcpu, 1) for vcpu in range(vcpus)]


def test_apic_ids_past_254_take_x2apic_entries() -> None:
    madt = walk(pvh_acpi_tables(130))[b"APIC"]
    x2 = []
    at = 44
    while at < len(madt):
        if madt[at] == 9:
            assert madt[at + 1] == 16
            x2.append(struct.unpack_from("<III", madt, at + 4))
        at += madt[at + 1]
    assert x2 == [(2 * vcpu, 1, vcpu) for vcpu in range(128, 130)]


def test_the_layout_follows_the_base() -> None:
    t = pvh_acpi_tables(1, base=0x1000_0000)
    assert t.tables_addr == 0x1000_0000
    assert set(walk(t)) == {b"FACP", b"APIC", b"FACS", b"DSDT"}


@pytest.mark.parametrize("vcpus", [0, -1, True, 1.5])
def test_a_bad_vcpu_count_is_refused(vcpus: object) -> None:
    with pytest.raises(ValueError, match="vcpu"):
        pvh_acpi_tables(vcpus)  # type: ignore[arg-type]


def test_an_unaligned_base_is_refused() -> None:
    with pytest.raises(ValueError, match="page aligned"):
        pvh_acpi_tables(1, base=ACPI_BASE + 16)
