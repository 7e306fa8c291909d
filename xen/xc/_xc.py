"""`XcBackend`: the `xen.hypervisor.Hypervisor` interface on real Xen, through libxenctrl.

cffi in ABI mode: the declarations of `xen.xc._cdefs` and ``ffi.dlopen`` of libxenctrl by its
4.17 soname (the dynamic loader finds it; no compiler at run time). This module is the only
place that imports cffi.

Opening (the constructor) fails with one `Unavailable` naming what is missing, never a cffi
traceback:
- no ``/dev/xen/privcmd``: this is not a Xen dom0 (or the privcmd driver is not loaded); the
  message also names libxenctrl.so.4.17 when that cannot be loaded either;
- libxenctrl.so.4.17 cannot be loaded: the message names it and the loader's reason;
- xc_interface_open fails (e.g. EACCES when not root): errno and libxenctrl's last error.
libxenctrl's own logging to stderr is silenced (a stdio logger that logs nothing); its errors
reach us through errno and xc_get_last_error and go into our exceptions.

Calls: version, physinfo, getinfolist, getinfo (getinfolist(domid, 1) and a domid check, as the
original did), pause, unpause, shutdown, destroy, setmaxmem, set_handle, set_target, find_by_handle
(a walk over getinfolist), and the domain-build steps: max_vcpus (xc_domain_max_vcpus; on
4.17 the count must be the one the domain was created with), shadow_allocation
(xc_shadow_control with XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION; returns the pool Xen reports
back, which may be rounded up), set_hvm_param / get_hvm_param (xc_hvm_param_set/get, 64-bit).
Arguments are checked before any call (`InvalidArgument`): a vcpu count 1..2**32-1, a pool
0..`MAX_SHADOW_MIB` MiB (Xen would wrap a larger one), an `HvmParam`, a 64-bit value. A failing
call raises the `xen.hypervisor` error for its errno (`error_for_errno`), naming the call and
domain. `create` is xc_domain_create with a ``struct
xen_domctl_createdomain`` filled as libxl does for Xen 4.17: the handle, ssidref and vcpu count
of the spec; flags none for PV, ``hvm`` (+ ``hap``) otherwise; 1023 event channels; the
hypervisor's default grant and maptrack frames (-1); the highest grant-table version the host
offers (``XEN_SYSCTL_PHYSCAP_gnttab_v2``, else v1); emulation: none for PV, the local APIC
only for HVM (a PVH container: there is no device model on this backend). Then the initial
maxmem (xc_domain_setmaxmem, ``spec.max_pages``); a failure there destroys the new domain.
The domain's memory is populated later by the builder: `build_guest` (libxenguest's
``xc_dom_*``, see `xen.xc._guest`) loads a PV (or PVH) kernel and ramdisk into it and returns
its rings.

Thread safety: calls are serialised by a lock (errno and libxenctrl's last error are read in
the same critical section as the call). After `close` every call raises `Unavailable`.
"""

from __future__ import annotations

import errno
import os
import threading
import uuid
from typing import TYPE_CHECKING, Any

from cffi import FFI

from xen.hypervisor import (  # PCI argument checks
    DOMID_FIRST_RESERVED,
    MAX_SHADOW_MIB,
    DomainInfo,
    DomainSpec,
    HvmParam,
    InvalidArgument,
    NoSuchDomain,
    PhysCap,
    PhysInfo,
    ShutdownReason,
    Unavailable,
    Version,
    check_allow,
    check_domid,
    check_hvm_param,
    check_iomem,
    check_ioport,
    check_pirq,
    check_range,
    error_for_errno,
    iter_domains,
    parse_bdf,
)
from xen.xc._cdefs import (
    CDEFS,
    LIBXENCTRL,
    LIBXENGUEST,
    LIBXENTOOLLOG,
    PACKED_CDEFS,
    PRIVCMD,
    XEN_DOMCTL_CDF_HAP,
    XEN_DOMCTL_CDF_HVM,
    XEN_DOMCTL_DEV_RDM_RELAXED,
    XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION,
    XEN_EXTRAVERSION_LEN,
    XEN_X86_EMU_LAPIC,
    XENVER_EXTRAVERSION,
    XENVER_VERSION,
    XTL_NUM_LEVELS,
    XTL_STDIOSTREAM_PROGRESS_NO_CR,
)
from xen.xc._guest import GuestImage, GuestRings, build_image

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["XcBackend", "ffi"]

ffi = FFI()
ffi.cdef(PACKED_CDEFS, packed=True)  # struct e820entry is __attribute__((packed))
ffi.cdef(CDEFS)
ffi.cdef("extern FILE *stderr;")  # libc's, for the silent logger


_U32_MAX = (1 << 32) - 1
#: Event channels a created domain may use (libxl's default ``event_channels``).
MAX_EVTCHN_PORT = 1023
_U64_MAX = (1 << 64) - 1

_OPEN_HINTS = {
    errno.ENOENT: " (not a Xen dom0, or the xen privcmd driver is not loaded)",
    errno.EACCES: " (run as root)",
    errno.EPERM: " (run as root in dom0)",
}


def _load(library: str) -> tuple[Any, str | None]:
    """(the library, None) or (None, why it cannot be loaded)."""
    try:
        return ffi.dlopen(library), None
    except OSError as exc:
        return None, str(exc)


class XcBackend:
    """libxenctrl on this host; see the module docstring.

    ``privcmd`` is the device checked before opening (libxencall itself always opens
    /dev/xen/privcmd; tests point the check elsewhere to reach the open failure).
    ``open_flags`` is passed to xc_interface_open (1 = XC_OPENFLAG_DUMMY: no hypervisor
    connection, for tests of the plumbing only)."""

    name = "xc"

    def __init__(
        self, *, library: str = LIBXENCTRL, privcmd: str = PRIVCMD, open_flags: int = 0
    ) -> None:
        self._lock = threading.Lock()
        self._xch: Any = ffi.NULL
        self._logger: Any = ffi.NULL
        have_privcmd = os.path.exists(privcmd)
        lib, why = _load(library)
        if not have_privcmd and not open_flags:
            also = f"; {library} cannot be loaded either ({why})" if lib is None else ""
            raise Unavailable(
                f"no Xen here: {privcmd} does not exist (not a Xen dom0, or the xen privcmd "
                f"driver is not loaded){also}")
        if lib is None:
            raise Unavailable(
                f"cannot load {library}, needed to drive Xen through {PRIVCMD}: {why} "
                f"(Debian package libxenctrl4.17)")
        self._lib = lib
        self._guest: Any = None  # libxenguest, loaded on the first build
        self._xtl, _ = _load(LIBXENTOOLLOG)
        if self._xtl is not None:
            libc = ffi.dlopen(None)
            self._logger = self._xtl.xtl_createlogger_stdiostream(
                libc.stderr, XTL_NUM_LEVELS, XTL_STDIOSTREAM_PROGRESS_NO_CR)
        logger = ffi.cast("xentoollog_logger *", self._logger)
        xch = lib.xc_interface_open(logger, logger, open_flags)
        if xch == ffi.NULL:
            err = ffi.errno
            self._destroy_logger()
            hint = _OPEN_HINTS.get(err, "")
            raise Unavailable(
                f"cannot open Xen control through {PRIVCMD}: "
                f"{error_for_errno(err, 'xc_interface_open')}{hint}", errno=err)
        self._xch = xch

    # --- host ----------------------------------------------------------------------------------

    def version(self) -> Version:
        with self._lock:
            xch = self._handle("version")
            v = self._lib.xc_version(xch, XENVER_VERSION, ffi.NULL)
            self._check(v, "xc_version(XENVER_version)")
            extra = ffi.new("char[]", XEN_EXTRAVERSION_LEN)
            self._check(self._lib.xc_version(xch, XENVER_EXTRAVERSION, extra),
                        "xc_version(XENVER_extraversion)")
        return Version(v >> 16, v & 0xFFFF, ffi.string(extra, XEN_EXTRAVERSION_LEN).decode(
            "ascii", "replace"))

    def physinfo(self) -> PhysInfo:
        info = ffi.new("xc_physinfo_t *")
        with self._lock:
            self._check(self._lib.xc_physinfo(self._handle("physinfo"), info), "xc_physinfo")
        return PhysInfo(
            threads_per_core=info.threads_per_core,
            cores_per_socket=info.cores_per_socket,
            nr_cpus=info.nr_cpus,
            max_cpu_id=info.max_cpu_id,
            nr_nodes=info.nr_nodes,
            max_node_id=info.max_node_id,
            cpu_khz=info.cpu_khz,
            capabilities=PhysCap(info.capabilities),
            arch_capabilities=info.arch_capabilities,
            total_pages=info.total_pages,
            free_pages=info.free_pages,
            scrub_pages=info.scrub_pages,
            outstanding_pages=info.outstanding_pages,
            max_mfn=info.max_mfn,
        )

    # --- domains -------------------------------------------------------------------------------

    def create(self, spec: DomainSpec) -> int:
        if not isinstance(spec, DomainSpec):
            raise InvalidArgument(f"create: {spec!r} is not a DomainSpec")
        grant_version = 2 if PhysCap.GNTTAB_V2 in self.physinfo().capabilities else 1
        config = ffi.new("struct xen_domctl_createdomain *")
        config.ssidref = spec.ssidref
        config.handle = list(spec.handle.bytes)
        config.flags = (XEN_DOMCTL_CDF_HVM | (XEN_DOMCTL_CDF_HAP if spec.hap else 0)
                        if spec.hvm else 0)
        config.max_vcpus = spec.max_vcpus
        config.max_evtchn_port = MAX_EVTCHN_PORT
        config.max_grant_frames = -1
        config.max_maptrack_frames = -1
        config.grant_opts = grant_version
        config.arch.emulation_flags = XEN_X86_EMU_LAPIC if spec.hvm else 0
        domid = ffi.new("uint32_t *", 0)  # 0: Xen picks the domid
        kind = ("hvm" + ("+hap" if spec.hap else "")) if spec.hvm else "pv"
        with self._lock:
            rc = self._lib.xc_domain_create(self._handle("create"), domid, config)
            self._check(rc, f"xc_domain_create({kind}, {spec.max_vcpus} vcpus, "
                            f"handle {spec.handle})")
        new = int(domid[0])
        try:
            self.setmaxmem(new, spec.max_pages * 4)
        except BaseException:
            self.destroy(new)
            raise
        return new

    def pause(self, domid: int) -> None:
        self._domain_call("xc_domain_pause", domid)

    def unpause(self, domid: int) -> None:
        self._domain_call("xc_domain_unpause", domid)

    def shutdown(self, domid: int, reason: ShutdownReason) -> None:
        try:
            code = ShutdownReason(reason)
        except ValueError:
            raise InvalidArgument(
                f"shutdown of domain {domid}: unknown reason {reason!r} (expected 0..5)"
            ) from None
        self._domain_call("xc_domain_shutdown", domid, int(code), what=f"reason {code.name}")

    def destroy(self, domid: int) -> None:
        self._domain_call("xc_domain_destroy", domid)

    def getinfolist(self, first: int = 0, max_domains: int = 1024) -> list[DomainInfo]:
        for name, value in (("first", first), ("max_domains", max_domains)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(f"getinfolist: {name} must be an integer >= 0, got {value!r}")
        if first >= DOMID_FIRST_RESERVED or max_domains == 0:
            return []
        count = min(max_domains, DOMID_FIRST_RESERVED)
        buf = ffi.new("xc_domaininfo_t[]", count)
        with self._lock:
            n = self._lib.xc_domain_getinfolist(self._handle("getinfolist"), first, count, buf)
            self._check(n, f"xc_domain_getinfolist(first={first}, max={count})")
        return [_domaininfo(buf[i]) for i in range(n)]

    def getinfo(self, domid: int) -> DomainInfo:
        check_domid(domid)
        found = self.getinfolist(domid, 1)
        if not found or found[0].domid != domid:
            raise NoSuchDomain(f"no domain {domid}")
        return found[0]

    def setmaxmem(self, domid: int, kib: int) -> None:
        if isinstance(kib, bool) or not isinstance(kib, int) or not 0 <= kib < 1 << 64:
            raise InvalidArgument(f"setmaxmem of domain {domid}: bad size {kib!r} KiB")
        self._domain_call("xc_domain_setmaxmem", domid, kib, what=f"{kib} KiB")

    def set_handle(self, domid: int, handle: uuid.UUID) -> None:
        if not isinstance(handle, uuid.UUID):
            raise InvalidArgument(f"set_handle of domain {domid}: {handle!r} is not a UUID")
        raw = ffi.new("uint8_t[16]", list(handle.bytes))
        self._domain_call("xc_domain_sethandle", domid, raw, what=str(handle))

    def set_target(self, domid: int, target: int) -> None:
        check_domid(target)
        self._domain_call("xc_domain_set_target", domid, target, what=f"target {target}")

    def find_by_handle(self, handle: uuid.UUID) -> list[DomainInfo]:
        return [info for info in iter_domains(self) if info.handle == handle]

    # --- domain build --------------------------------------------------------------------------

    def max_vcpus(self, domid: int, vcpus: int) -> None:
        check_range(f"max_vcpus of domain {domid}", "vcpu count", vcpus, 1, _U32_MAX)
        self._domain_call("xc_domain_max_vcpus", domid, vcpus, what=f"{vcpus} vcpus")

    def shadow_allocation(self, domid: int, mib: int) -> int:
        check_range(f"shadow_allocation of domain {domid}", "size in MiB", mib, 0,
                    MAX_SHADOW_MIB)
        held = ffi.new("unsigned int *", mib)
        self._domain_call("xc_shadow_control", domid, XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION,
                          held, 0, what=f"SET_ALLOCATION {mib} MiB")
        return int(held[0])

    def set_hvm_param(self, domid: int, param: HvmParam, value: int) -> None:
        what = f"set_hvm_param of domain {domid}"
        index = check_hvm_param(what, param)
        check_range(f"{what}, {index.name}", "value", value, 0, _U64_MAX)
        self._domain_call("xc_hvm_param_set", domid, int(index), value,
                          what=f"HVM_PARAM_{index.name}={value:#x}")

    def get_hvm_param(self, domid: int, param: HvmParam) -> int:
        index = check_hvm_param(f"get_hvm_param of domain {domid}", param)
        value = ffi.new("uint64_t *")
        self._domain_call("xc_hvm_param_get", domid, int(index), value,
                          what=f"HVM_PARAM_{index.name}")
        return int(value[0])

    # --- PCI passthrough (not proven: needs a host with an IOMMU and a device to give) --------

    def test_assign_device(self, domid: int, bdf: str) -> bool:
        sbdf = parse_bdf("test_assign_device", domid, bdf).sbdf
        with self._lock:
            rc = self._lib.xc_test_assign_device(self._handle("test_assign_device"), domid, sbdf)
            if rc < 0 and ffi.errno == errno.EBUSY:
                return False
            self._check(rc, f"xc_test_assign_device(domain {domid}, {bdf})")
        return True

    def assign_device(self, domid: int, bdf: str) -> None:
        sbdf = parse_bdf("assign_device", domid, bdf).sbdf
        self._domain_call("xc_assign_device", domid, sbdf, XEN_DOMCTL_DEV_RDM_RELAXED,
                          what=bdf)

    def deassign_device(self, domid: int, bdf: str) -> None:
        sbdf = parse_bdf("deassign_device", domid, bdf).sbdf
        self._domain_call("xc_deassign_device", domid, sbdf, what=bdf)

    def iomem_permission(self, domid: int, first_mfn: int, nr_mfns: int,
                         allow: bool) -> None:
        check_iomem("iomem_permission", domid, first_mfn, nr_mfns)
        grant = check_allow("iomem_permission", domid, allow)
        self._domain_call("xc_domain_iomem_permission", domid, first_mfn, nr_mfns, int(grant),
                          what=f"mfn {first_mfn:#x}+{nr_mfns}, allow={grant}")

    def ioport_permission(self, domid: int, first_port: int, nr_ports: int,
                          allow: bool) -> None:
        check_ioport("ioport_permission", domid, first_port, nr_ports)
        grant = check_allow("ioport_permission", domid, allow)
        self._domain_call("xc_domain_ioport_permission", domid, first_port, nr_ports,
                          int(grant), what=f"port {first_port:#x}+{nr_ports}, allow={grant}")

    def irq_permission(self, domid: int, pirq: int, allow: bool) -> None:
        check_pirq("irq_permission", domid, "pirq", pirq)
        grant = check_allow("irq_permission", domid, allow)
        self._domain_call("xc_domain_irq_permission", domid, pirq, grant,
                          what=f"pirq {pirq}, allow={grant}")

    def map_pirq(self, domid: int, gsi: int, pirq: int | None = None) -> int:
        check_pirq("map_pirq", domid, "gsi", gsi)
        if pirq is not None:
            check_pirq("map_pirq", domid, "pirq", pirq)
        out = ffi.new("int *", -1 if pirq is None else pirq)
        self._domain_call("xc_physdev_map_pirq", domid, gsi, out, what=f"GSI {gsi}")
        return int(out[0])

    def unmap_pirq(self, domid: int, pirq: int) -> None:
        check_pirq("unmap_pirq", domid, "pirq", pirq)
        self._domain_call("xc_physdev_unmap_pirq", domid, pirq, what=f"pirq {pirq}")
    def build_guest(self, domid: int, image: GuestImage) -> GuestRings:
        """Load the PV (with ``image.pvh``: PVH) guest ``image`` into the created, sized
        domain ``domid`` with libxenguest (`xen.xc._guest.build_image`); its xenstore and
        console rings. `Unavailable` when libxenguest 4.17 cannot be loaded."""
        check_domid(domid)
        if not isinstance(image, GuestImage):
            raise InvalidArgument(f"build_guest of domain {domid}: {image!r} is not a GuestImage")
        guest = self._guest_library()
        with self._lock:
            return build_image(ffi, self._lib, guest, self._handle("build_guest"), domid, image,
                            self._check)

    def _guest_library(self) -> Any:
        if self._guest is None:
            lib, why = _load(LIBXENGUEST)
            if lib is None:
                raise Unavailable(f"cannot load {LIBXENGUEST}, needed to build domains: {why} "
                                  f"(Debian package libxenmisc4.17)")
            self._guest = lib
        return self._guest

    # --- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the libxenctrl handle (idempotent)."""
        with self._lock:
            if self._xch != ffi.NULL:
                self._lib.xc_interface_close(self._xch)
                self._xch = ffi.NULL
            self._destroy_logger()

    def __enter__(self) -> XcBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------------

    def _handle(self, what: str) -> Any:
        if self._xch == ffi.NULL:
            raise Unavailable(f"{what}: the xc interface is closed")
        return self._xch

    def _check(self, rc: int, what: str) -> None:
        """Raise the error for errno when ``rc`` < 0 (call with the lock held)."""
        if rc >= 0:
            return
        err = ffi.errno
        last = self._lib.xc_get_last_error(self._xch)
        detail = ""
        if last != ffi.NULL and last.code != 0:
            detail = ffi.string(last.message).decode("utf-8", "replace").strip()
            self._lib.xc_clear_last_error(self._xch)
        raise error_for_errno(err, what, detail)

    def _domain_call(self, fn: str, domid: int, *args: Any, what: str = "") -> None:
        check_domid(domid)
        label = f"{fn}(domain {domid}{', ' + what if what else ''})"
        with self._lock:
            rc = getattr(self._lib, fn)(self._handle(fn), domid, *args)
            self._check(rc, label)

    def _destroy_logger(self) -> None:
        if self._logger != ffi.NULL and self._xtl is not None:
            self._xtl.xtl_logger_destroy(ffi.cast("xentoollog_logger *", self._logger))
        self._logger = ffi.NULL


def _domaininfo(d: Any) -> DomainInfo:
    return DomainInfo.from_flags(
        d.flags,
        domid=d.domain,
        handle=uuid.UUID(bytes=bytes(ffi.buffer(d.handle))),
        tot_pages=d.tot_pages,
        max_pages=d.max_pages,
        outstanding_pages=d.outstanding_pages,
        shr_pages=d.shr_pages,
        paged_pages=d.paged_pages,
        shared_info_frame=d.shared_info_frame,
        cpu_time=d.cpu_time,
        nr_online_vcpus=d.nr_online_vcpus,
        max_vcpu_id=d.max_vcpu_id,
        ssidref=d.ssidref,
        cpupool=d.cpupool,
    )
