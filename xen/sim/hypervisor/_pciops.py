"""The simulated hypervisor server's PCI requests: argument checks and dispatch to the bus
model (pure; the server calls `execute_pci` with the model lock held).

The `xen.hypervisor.PciOps` operations check their domain first: it must exist and, but for
``test_assign_device``, not be dom0; granting and assigning also need it alive, while revoking
and deassigning work on a dying domain, as a teardown needs. Then their arguments, with the
client's checks (`xen.hypervisor._pci`); then they act on `SimHypervisor.pci`.
``sysfs_read`` / ``sysfs_write`` are the dom0 sysfs stand-in and ``pci_state`` the inspection
of the whole bus; ``scsi_devices`` / ``scsi_eject`` are dom0's SCSI disks and CD drives
(`xen.sim.hypervisor._scsi`). They are the simulated host's, not the hypervisor's, and travel
on this socket only because the simulated host is one process (docs/simhost.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xen.hypervisor import (  # PCI argument checks
    InvalidArgument,
    check_allow,
    check_domid,
    check_iomem,
    check_ioport,
    check_pirq,
    parse_bdf,
)

if TYPE_CHECKING:
    from xen.hypervisor.wire import Request
    from xen.sim.hypervisor._model import SimHypervisor

__all__ = ["PCI_OPS", "execute_pci"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

PCI_OPS = frozenset({
    "test_assign_device", "assign_device", "deassign_device", "iomem_permission",
    "ioport_permission", "irq_permission", "map_pirq", "unmap_pirq", "sysfs_read",
    "sysfs_write", "pci_state", "scsi_devices", "scsi_eject",
})
_MAX_PATH = 256


def _int(req: Request, name: str) -> int:
    value = req.arg(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{req.op}: argument {name} must be an integer, got {value!r:.40}")
    return value


def _str(req: Request, name: str) -> str:
    value = req.arg(name)
    if not isinstance(value, str) or len(value) > _MAX_PATH or "\0" in value:
        raise InvalidArgument(f"{req.op}: argument {name} must be a short string, "
                              f"got {value!r:.40}")
    return value


def execute_pci(model: SimHypervisor, req: Request) -> Any:
    """Answer one request whose op is in `PCI_OPS` (see the module docstring)."""
    op = req.op
    bus = model.pci
    if op == "pci_state":
        return bus.state()
    if op == "scsi_devices":
        return model.scsi.devices()
    if op == "scsi_eject":
        model.scsi.eject(_str(req, "hctl"))
        return None
    if op == "sysfs_read":
        return bus.sysfs_read(_str(req, "path"))
    if op == "sysfs_write":
        bus.sysfs_write(_str(req, "path"), _str(req, "value"))
        return None
    domid = _int(req, "domid")
    check_domid(domid)
    if op == "test_assign_device":  # any existing domain, dom0 included (as Xen)
        model.getinfo(domid)
        return bus.test_assign(domid, str(parse_bdf(op, domid, _str(req, "bdf"))))
    granting = op in ("assign_device", "map_pirq") or (
        op.endswith("_permission") and req.arg("allow") is True)
    model.check_guest(domid, op, live=granting)
    if op in ("assign_device", "deassign_device"):
        bdf = str(parse_bdf(op, domid, _str(req, "bdf")))
        if op == "assign_device":
            bus.assign(domid, bdf)
        else:
            bus.deassign(domid, bdf)
        return None
    if op == "iomem_permission":
        first, count = _int(req, "first_mfn"), _int(req, "nr_mfns")
        check_iomem(op, domid, first, count)
        bus.iomem(domid, first, count, check_allow(op, domid, req.arg("allow")))
    elif op == "ioport_permission":
        first, count = _int(req, "first_port"), _int(req, "nr_ports")
        check_ioport(op, domid, first, count)
        bus.ioport(domid, first, count, check_allow(op, domid, req.arg("allow")))
    elif op == "irq_permission":
        pirq = check_pirq(op, domid, "pirq", _int(req, "pirq"))
        bus.irq_permission(domid, pirq, check_allow(op, domid, req.arg("allow")))
    elif op == "map_pirq":
        gsi = check_pirq(op, domid, "gsi", _int(req, "gsi"))
        want = None if req.arg("pirq") is None else check_pirq(op, domid, "pirq",
                                                               _int(req, "pirq"))
        return bus.map_pirq(domid, gsi, want)
    else:  # unmap_pirq
        bus.unmap_pirq(domid, check_pirq(op, domid, "pirq", _int(req, "pirq")))
    return None
