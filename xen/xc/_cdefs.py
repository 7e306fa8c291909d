"""The C declarations the xc backend gives cffi (ABI mode), written from Xen 4.17's headers.

Only what `xen.xc._xc` and `xen.xc._guest` call is declared: libxenctrl's interface
open/close, xc_version, xc_physinfo, xc_domain_create, xc_domain_getinfolist,
pause/unpause/shutdown/destroy, setmaxmem, sethandle, set_target, max_vcpus, xc_shadow_control,
xc_hvm_param_set/get, xc_evtchn_alloc_unbound, the PCI passthrough calls
(xc_test_assign_device, xc_assign_device, xc_deassign_device, xc_domain_iomem_permission,
xc_domain_ioport_permission, xc_domain_irq_permission, xc_physdev_map_pirq/unmap_pirq) and
the last-error record; libxenguest's
``xc_dom_*`` domain builder (allocate, kernel/module files, boot_xen_init, parse_image,
mem_init, boot_mem_init, build_image, boot_image, gnttab_init, translated, release) and
xc_cpuid_apply_policy; and
libxentoollog's stdio logger (used to silence libxenctrl's own stderr logging; its errors
reach us through errno and xc_get_last_error instead). `FUNCTIONS` names every function by
library; `CONSTANTS` the header macros we copy.

Struct layouts are ABI: `xc_domaininfo_t` is ``struct xen_domctl_getdomaininfo`` of
XEN_DOMCTL_INTERFACE_VERSION 0x15 (Xen 4.17, 112 bytes on x86-64, the x86 arch_config last);
`xc_physinfo_t` is ``struct xen_sysctl_physinfo`` (XEN_SYSCTL_INTERFACE_VERSION 0x15, 112
bytes); ``struct xen_domctl_createdomain`` is that of XEN_DOMCTL_INTERFACE_VERSION 0x15 (64
bytes, the x86 arch config last). ``struct xc_dom_image`` (libxenguest's build state, 1952
bytes in 4.17) is allocated and freed by libxenguest: we declare only the fields we read or
set, at their exact offsets, with ``_pad*`` byte arrays between them (the gcc test checks
every declared field and the total size). Field names follow the headers, so
tests/xen/test_xc_layout.py can compare every field's offset and size with what gcc computes
from Debian's libxen-dev (and every prototype and constant with the header's). Another Xen release
may change them: the backend loads only the 4.17 soname.

Pure data: no cffi import here.
"""

from __future__ import annotations

__all__ = [
    "CDEFS",
    "CONSTANTS",
    "E820_ACPI",
    "E820_RAM",
    "E820_RESERVED",
    "FUNCTIONS",
    "LIBXENCTRL",
    "LIBXENGUEST",
    "LIBXENTOOLLOG",
    "PACKED_CDEFS",
    "PRIVCMD",
    "STRUCTS",
    "X86_HVM_END_SPECIAL_REGION",
    "X86_HVM_NR_SPECIAL_PAGES",
    "XC_DOM_HVM_CONTAINER",
    "XC_DOM_PV_CONTAINER",
    "XENVER_EXTRAVERSION",
    "XENVER_VERSION",
    "XEN_DOMCTL_CDF_HAP",
    "XEN_DOMCTL_CDF_HVM",
    "XEN_DOMCTL_DEV_RDM_RELAXED",
    "XEN_DOMCTL_INTERFACE_VERSION",
    "XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION",
    "XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION",
    "XEN_EXTRAVERSION_LEN",
    "XEN_X86_EMU_LAPIC",
    "XTL_NUM_LEVELS",
    "XTL_STDIOSTREAM_PROGRESS_NO_CR",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: The sonames loaded (the struct layouts below are those of this release).
LIBXENCTRL = "libxenctrl.so.4.17"
LIBXENGUEST = "libxenguest.so.4.17"
LIBXENTOOLLOG = "libxentoollog.so.1"
#: The device xc_interface_open needs (through libxencall).
PRIVCMD = "/dev/xen/privcmd"

XENVER_VERSION = 0
XENVER_EXTRAVERSION = 1
XEN_EXTRAVERSION_LEN = 16
#: A stdio logger with this minimum level logs nothing (enum xentoollog_level's sentinel).
XTL_NUM_LEVELS = 10
#: xtl_createlogger_stdiostream flag: never ask isatty(fileno(f)).
XTL_STDIOSTREAM_PROGRESS_NO_CR = 0o20

#: xc_shadow_control ``sop`` values (public/domctl.h): read / set the shadow or HAP pool, MiB.
XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION = 30
XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION = 31
#: xc_assign_device ``flag``: reserved device memory conflicts are warnings (libxl's default).
XEN_DOMCTL_DEV_RDM_RELAXED = 1

#: The domctl interface whose struct layouts are declared here.
XEN_DOMCTL_INTERFACE_VERSION = 0x15
#: xen_domctl_createdomain.flags bits (public/domctl.h).
XEN_DOMCTL_CDF_HVM = 1 << 0
XEN_DOMCTL_CDF_HAP = 1 << 1
#: xen_arch_domainconfig.emulation_flags: the local APIC only (what a PVH domain gets).
XEN_X86_EMU_LAPIC = 1 << 0
#: xc_dom_image.container_type values.
XC_DOM_PV_CONTAINER = 0
XC_DOM_HVM_CONTAINER = 1
#: The HVM "special pages" (xenstore, console, ...: libxenguest puts them just below this pfn).
X86_HVM_END_SPECIAL_REGION = 0xFF000
X86_HVM_NR_SPECIAL_PAGES = 8
#: struct e820entry types.
E820_RAM = 1
E820_RESERVED = 2
E820_ACPI = 3

#: Struct type names whose layout the gcc test checks.
STRUCTS = ("xc_domaininfo_t", "xc_physinfo_t", "xc_error", "struct xen_domctl_createdomain",
           "struct xc_dom_image", "struct e820entry", "struct xc_hvm_firmware_module")

#: Header macro -> the value copied here (the gcc test compares each; the HVM_PARAM_* numbers
#: are those of `xen.hypervisor.HvmParam`, checked by the same test).
CONSTANTS = {
    "XENVER_version": XENVER_VERSION,
    "XENVER_extraversion": XENVER_EXTRAVERSION,
    "XEN_EXTRAVERSION_LEN": XEN_EXTRAVERSION_LEN,
    "XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION": XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION,
    "XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION": XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION,
    "XEN_DOMCTL_DEV_RDM_RELAXED": XEN_DOMCTL_DEV_RDM_RELAXED,
    "XTL_NUM_LEVELS": XTL_NUM_LEVELS,
    "XTL_STDIOSTREAM_PROGRESS_NO_CR": XTL_STDIOSTREAM_PROGRESS_NO_CR,
    "XEN_DOMCTL_INTERFACE_VERSION": XEN_DOMCTL_INTERFACE_VERSION,
    "XEN_DOMCTL_CDF_hvm": XEN_DOMCTL_CDF_HVM,
    "XEN_DOMCTL_CDF_hap": XEN_DOMCTL_CDF_HAP,
    "XEN_X86_EMU_LAPIC": XEN_X86_EMU_LAPIC,
    "XC_DOM_PV_CONTAINER": XC_DOM_PV_CONTAINER,
    "XC_DOM_HVM_CONTAINER": XC_DOM_HVM_CONTAINER,
    "X86_HVM_END_SPECIAL_REGION": X86_HVM_END_SPECIAL_REGION,
    "X86_HVM_NR_SPECIAL_PAGES": X86_HVM_NR_SPECIAL_PAGES,
    "E820_RAM": E820_RAM,
    "E820_RESERVED": E820_RESERVED,
    "E820_ACPI": E820_ACPI,
}

#: Every function declared below, by the library that exports it.
FUNCTIONS = {
    LIBXENTOOLLOG: ("xtl_createlogger_stdiostream", "xtl_logger_destroy"),
    LIBXENCTRL: (
        "xc_interface_open", "xc_interface_close", "xc_get_last_error", "xc_clear_last_error",
        "xc_version", "xc_physinfo", "xc_domain_getinfolist", "xc_domain_pause",
        "xc_domain_unpause", "xc_domain_shutdown", "xc_domain_destroy", "xc_domain_setmaxmem",
        "xc_domain_sethandle", "xc_domain_max_vcpus", "xc_shadow_control", "xc_hvm_param_set",
        "xc_hvm_param_get", "xc_test_assign_device", "xc_assign_device", "xc_deassign_device",
        "xc_domain_iomem_permission", "xc_domain_ioport_permission", "xc_domain_irq_permission",
        "xc_physdev_map_pirq", "xc_physdev_unmap_pirq", "xc_domain_create",
        "xc_evtchn_alloc_unbound", "xc_domain_set_memory_map", "xc_domain_set_target",
    ),
    LIBXENGUEST: (
        "xc_dom_allocate", "xc_dom_release", "xc_dom_kernel_file", "xc_dom_module_file",
        "xc_dom_boot_xen_init", "xc_dom_parse_image", "xc_dom_mem_init", "xc_dom_boot_mem_init",
        "xc_dom_build_image", "xc_dom_boot_image", "xc_dom_gnttab_init", "xc_dom_translated",
        "xc_cpuid_apply_policy",
    ),
}

#: Declarations cffi must lay out packed (``__attribute__((packed))`` in the headers).
PACKED_CDEFS = """
struct e820entry {                  /* 20 bytes */
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};
"""

CDEFS = """
typedef struct xc_interface_core xc_interface;
typedef struct xentoollog_logger xentoollog_logger;
typedef struct xentoollog_logger_stdiostream xentoollog_logger_stdiostream;

/* libxentoollog */
typedef enum xentoollog_level {
    XTL_NONE, XTL_DEBUG, XTL_VERBOSE, XTL_DETAIL, XTL_PROGRESS, XTL_INFO, XTL_NOTICE, XTL_WARN,
    XTL_ERROR, XTL_CRITICAL, XTL_NUM_LEVELS
} xentoollog_level;
xentoollog_logger_stdiostream *xtl_createlogger_stdiostream(FILE *f, xentoollog_level min_level,
                                                            unsigned flags);
void xtl_logger_destroy(xentoollog_logger *logger);

/* libxenctrl: interface */
xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger,
                                unsigned open_flags);
int xc_interface_close(xc_interface *xch);

typedef struct xc_error {
    int code;                       /* enum xc_error_code */
    char message[1024];             /* XC_MAX_ERROR_MSG_LEN */
} xc_error;
const xc_error *xc_get_last_error(xc_interface *handle);
void xc_clear_last_error(xc_interface *xch);

/* host */
int xc_version(xc_interface *xch, int cmd, void *arg);

typedef struct xen_sysctl_physinfo {
    uint32_t threads_per_core;
    uint32_t cores_per_socket;
    uint32_t nr_cpus;
    uint32_t max_cpu_id;
    uint32_t nr_nodes;
    uint32_t max_node_id;
    uint32_t cpu_khz;
    uint32_t capabilities;
    uint32_t arch_capabilities;
    uint32_t pad;
    uint64_t total_pages;
    uint64_t free_pages;
    uint64_t scrub_pages;
    uint64_t outstanding_pages;
    uint64_t max_mfn;
    uint32_t hw_cap[8];
} xc_physinfo_t;
int xc_physinfo(xc_interface *xch, xc_physinfo_t *info);

/* domains */
struct xen_arch_domainconfig {      /* x86 */
    uint32_t emulation_flags;
    uint32_t misc_flags;
};

typedef struct xen_domctl_getdomaininfo {
    uint16_t domain;
    uint16_t pad1;
    uint32_t flags;
    uint64_t tot_pages;
    uint64_t max_pages;
    uint64_t outstanding_pages;
    uint64_t shr_pages;
    uint64_t paged_pages;
    uint64_t shared_info_frame;
    uint64_t cpu_time;
    uint32_t nr_online_vcpus;
    uint32_t max_vcpu_id;
    uint32_t ssidref;
    uint8_t handle[16];
    uint32_t cpupool;
    uint8_t gpaddr_bits;
    uint8_t pad2[7];
    struct xen_arch_domainconfig arch_config;
} xc_domaininfo_t;

int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain, unsigned int max_domains,
                          xc_domaininfo_t *info);
int xc_domain_pause(xc_interface *xch, uint32_t domid);
int xc_domain_unpause(xc_interface *xch, uint32_t domid);
int xc_domain_shutdown(xc_interface *xch, uint32_t domid, int reason);
int xc_domain_destroy(xc_interface *xch, uint32_t domid);
int xc_domain_setmaxmem(xc_interface *xch, uint32_t domid, uint64_t max_memkb);
int xc_domain_sethandle(xc_interface *xch, uint32_t domid, uint8_t handle[16]);
int xc_domain_set_target(xc_interface *xch, uint32_t domid, uint32_t target);

/* domain build */
int xc_domain_max_vcpus(xc_interface *xch, uint32_t domid, unsigned int max);
int xc_shadow_control(xc_interface *xch, uint32_t domid, unsigned int sop, unsigned int *mb,
                      unsigned int mode);
int xc_hvm_param_set(xc_interface *handle, uint32_t dom, uint32_t param, uint64_t value);
int xc_hvm_param_get(xc_interface *handle, uint32_t dom, uint32_t param, uint64_t *value);

/* PCI passthrough and I/O-space grants */
int xc_test_assign_device(xc_interface *xch, uint32_t domid, uint32_t machine_sbdf);
int xc_assign_device(xc_interface *xch, uint32_t domid, uint32_t machine_sbdf, uint32_t flag);
int xc_deassign_device(xc_interface *xch, uint32_t domid, uint32_t machine_sbdf);
int xc_domain_iomem_permission(xc_interface *xch, uint32_t domid, unsigned long first_mfn,
                               unsigned long nr_mfns, uint8_t allow_access);
int xc_domain_ioport_permission(xc_interface *xch, uint32_t domid, uint32_t first_port,
                                uint32_t nr_ports, uint32_t allow_access);
int xc_domain_irq_permission(xc_interface *xch, uint32_t domid, uint32_t pirq,
                             bool allow_access);
int xc_physdev_map_pirq(xc_interface *xch, uint32_t domid, int index, int *pirq);
int xc_physdev_unmap_pirq(xc_interface *xch, uint32_t domid, int pirq);
struct xen_domctl_createdomain {
    uint32_t ssidref;
    uint8_t handle[16];             /* xen_domain_handle_t */
    uint32_t flags;                 /* XEN_DOMCTL_CDF_* */
    uint32_t iommu_opts;
    uint32_t max_vcpus;
    uint32_t max_evtchn_port;
    int32_t max_grant_frames;       /* < 0: the hypervisor's default */
    int32_t max_maptrack_frames;
    uint32_t grant_opts;            /* XEN_DOMCTL_GRANT_version(v) in the low 4 bits */
    uint32_t vmtrace_size;
    uint32_t cpupool_id;
    struct xen_arch_domainconfig arch;
};
int xc_domain_create(xc_interface *xch, uint32_t *pdomid,
                     struct xen_domctl_createdomain *config);
int xc_evtchn_alloc_unbound(xc_interface *xch, uint32_t dom, uint32_t remote_dom);

int xc_domain_set_memory_map(xc_interface *xch, uint32_t domid, struct e820entry entries[],
                             uint32_t nr_entries);

/* libxenguest: the domain builder (xen_pfn_t is unsigned long on x86) */
struct xc_hvm_firmware_module {     /* a blob libxenguest loads into an HVM container */
    uint8_t *data;
    uint32_t length;
    uint64_t guest_addr_out;
};
struct xc_dom_image {
    uint8_t _pad0[384];
    unsigned long console_pfn;
    unsigned long xenstore_pfn;
    uint8_t _pad1[80];
    unsigned long *pv_p2m;
    uint8_t _pad2[16];
    unsigned long total_pages;
    uint8_t _pad3[48];
    unsigned long flags;
    unsigned int console_evtchn;
    unsigned int xenstore_evtchn;
    uint32_t console_domid;
    uint32_t xenstore_domid;
    uint8_t _pad4[20];
    int claim_enabled;
    uint8_t _pad5[1104];
    int container_type;             /* XC_DOM_PV_CONTAINER / XC_DOM_HVM_CONTAINER */
    uint8_t _pad6[4];
    unsigned long target_pages;
    uint64_t mmio_start;
    uint64_t mmio_size;
    uint64_t lowmem_end;
    uint64_t highmem_end;
    unsigned long vga_hole_size;
    _Bool device_model;
    uint8_t _pad7[31];
    struct xc_hvm_firmware_module acpi_modules[4];  /* PVH: [0] is the RSDP */
    uint8_t _pad7b[24];
    struct e820entry *e820;
    unsigned int e820_entries;
    uint8_t _pad8[4];
    unsigned long vuart_gfn;
    unsigned int max_vcpus;
    uint8_t _pad9[4];
};
struct xc_dom_image *xc_dom_allocate(xc_interface *xch, const char *cmdline,
                                     const char *features);
void xc_dom_release(struct xc_dom_image *dom);
int xc_dom_kernel_file(struct xc_dom_image *dom, const char *filename);
int xc_dom_module_file(struct xc_dom_image *dom, const char *filename, const char *cmdline);
int xc_dom_boot_xen_init(struct xc_dom_image *dom, xc_interface *xch, uint32_t domid);
int xc_dom_parse_image(struct xc_dom_image *dom);
int xc_dom_mem_init(struct xc_dom_image *dom, unsigned int mem_mb);
int xc_dom_boot_mem_init(struct xc_dom_image *dom);
int xc_dom_build_image(struct xc_dom_image *dom);
int xc_dom_boot_image(struct xc_dom_image *dom);
int xc_dom_gnttab_init(struct xc_dom_image *dom);
_Bool xc_dom_translated(const struct xc_dom_image *dom);
/* the domain's CPUID policy as libxl sets it for a new domain (opaque: we pass NULL) */
struct xc_xend_cpuid;
struct xc_msr;
int xc_cpuid_apply_policy(xc_interface *xch, uint32_t domid, _Bool restore,
                          const uint32_t *featureset, unsigned int nr_features, _Bool pae,
                          _Bool itsc, _Bool nested_virt, const struct xc_xend_cpuid *xend,
                          const struct xc_msr *msr);
"""
