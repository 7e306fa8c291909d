"""The hypervisor interface and its client side: what the toolstack calls to talk to Xen.

* the interface: `Hypervisor` (`HostOps` + `DomainOps` + `PciOps` + `close`),
  `UnimplementedHypervisor` (the template for a new backend), `iter_domains`;
* its values (`DomainInfo`, `PhysInfo`, `Version`, `DomainSpec`, `ShutdownReason`, `HvmParam`,
  ...) and argument checks, and its errors (`HypervisorError` and subclasses);
* `SimBackend`, the client of the simulated hypervisor's socket (the real backend is
  `xen.xc`, the only package that imports cffi; `xen.xenops.open_backend` picks one by name);
* `xen.hypervisor.wire`: the sans-I/O protocol of the simulated hypervisor's socket, shared by
  the client here and the server in `xen.sim.hypervisor`.

Nothing here imports the simulator. See docs/hypervisor.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from xen.hypervisor._errors import (
        ERRORS,
        HypervisorError,
        HypervisorTimeout,
        InvalidArgument,
        NoSuchDomain,
        OutOfMemory,
        PermissionDenied,
        Unavailable,
        Unsupported,
        error_for_errno,
    )
    from xen.hypervisor._interface import (
        DomainOps,
        HostOps,
        Hypervisor,
        PciOps,
        UnimplementedHypervisor,
        iter_domains,
    )
    from xen.hypervisor._pci import (
        MAX_PIRQ,
        PciAddress,
        check_allow,
        check_iomem,
        check_ioport,
        check_pirq,
        parse_bdf,
    )
    from xen.hypervisor._simclient import (
        SimBackend,
    )
    from xen.hypervisor._values import (
        DOMID_FIRST_RESERVED,
        INVALID_MAX_VCPU_ID,
        MAX_SHADOW_MIB,
        NULL_HANDLE,
        PAGE_KIB,
        SHUTDOWN_CODE_NONE,
        DomainInfo,
        DomainSpec,
        DomInfoFlag,
        HvmParam,
        PhysCap,
        PhysInfo,
        ShutdownReason,
        Version,
        check_domid,
        check_hvm_param,
        check_range,
    )

__all__ = [
    "DOMID_FIRST_RESERVED",
    "ERRORS",
    "INVALID_MAX_VCPU_ID",
    "MAX_PIRQ",
    "MAX_SHADOW_MIB",
    "NULL_HANDLE",
    "PAGE_KIB",
    "SHUTDOWN_CODE_NONE",
    "DomInfoFlag",
    "DomainInfo",
    "DomainOps",
    "DomainSpec",
    "HostOps",
    "HvmParam",
    "Hypervisor",
    "HypervisorError",
    "HypervisorTimeout",
    "InvalidArgument",
    "NoSuchDomain",
    "OutOfMemory",
    "PciAddress",
    "PciOps",
    "PermissionDenied",
    "PhysCap",
    "PhysInfo",
    "ShutdownReason",
    "SimBackend",
    "Unavailable",
    "UnimplementedHypervisor",
    "Unsupported",
    "Version",
    "check_allow",
    "check_domid",
    "check_hvm_param",
    "check_iomem",
    "check_ioport",
    "check_pirq",
    "check_range",
    "error_for_errno",
    "iter_domains",
    "parse_bdf",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "MAX_PIRQ": "xen.hypervisor._pci",
    "check_allow": "xen.hypervisor._pci",
    "check_iomem": "xen.hypervisor._pci",
    "check_ioport": "xen.hypervisor._pci",
    "check_pirq": "xen.hypervisor._pci",
    "parse_bdf": "xen.hypervisor._pci",
    "DOMID_FIRST_RESERVED": "xen.hypervisor._values",
    "DomInfoFlag": "xen.hypervisor._values",
    "DomainInfo": "xen.hypervisor._values",
    "DomainOps": "xen.hypervisor._interface",
    "DomainSpec": "xen.hypervisor._values",
    "ERRORS": "xen.hypervisor._errors",
    "HostOps": "xen.hypervisor._interface",
    "HvmParam": "xen.hypervisor._values",
    "Hypervisor": "xen.hypervisor._interface",
    "HypervisorError": "xen.hypervisor._errors",
    "HypervisorTimeout": "xen.hypervisor._errors",
    "INVALID_MAX_VCPU_ID": "xen.hypervisor._values",
    "InvalidArgument": "xen.hypervisor._errors",
    "MAX_SHADOW_MIB": "xen.hypervisor._values",
    "NULL_HANDLE": "xen.hypervisor._values",
    "NoSuchDomain": "xen.hypervisor._errors",
    "OutOfMemory": "xen.hypervisor._errors",
    "PAGE_KIB": "xen.hypervisor._values",
    "PciAddress": "xen.hypervisor._pci",
    "PciOps": "xen.hypervisor._interface",
    "PermissionDenied": "xen.hypervisor._errors",
    "PhysCap": "xen.hypervisor._values",
    "PhysInfo": "xen.hypervisor._values",
    "SHUTDOWN_CODE_NONE": "xen.hypervisor._values",
    "ShutdownReason": "xen.hypervisor._values",
    "SimBackend": "xen.hypervisor._simclient",
    "Unavailable": "xen.hypervisor._errors",
    "UnimplementedHypervisor": "xen.hypervisor._interface",
    "Unsupported": "xen.hypervisor._errors",
    "Version": "xen.hypervisor._values",
    "check_domid": "xen.hypervisor._values",
    "check_hvm_param": "xen.hypervisor._values",
    "check_range": "xen.hypervisor._values",
    "error_for_errno": "xen.hypervisor._errors",
    "iter_domains": "xen.hypervisor._interface",
})
