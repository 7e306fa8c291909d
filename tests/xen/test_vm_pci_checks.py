"""The VM monitor's PCI checks before a start, against recording fakes (no simulated host):
each refusal names the device and touches nothing; a host without PCI says so."""

from __future__ import annotations

import pytest

from tests.xen.recording import RecordingHypervisor, RecordingXenstore, config, env
from xen.hypervisor import PhysCap, PhysInfo
from xen.xenops import HostActions, PciHostDevice
from xen.xenvm._pcihost import check_pci
from xen.xenvm._tasks import TaskError

BDF = "0000:04:00.0"


class Host(HostActions):
    """Knows one device, bound to ``driver``; records nothing else."""

    def __init__(self, driver: str | None = "pciback") -> None:
        self.driver = driver

    def pci_device(self, bdf: str) -> PciHostDevice:
        if bdf != BDF:
            raise OSError(19, f"no PCI device {bdf} on this host")
        return PciHostDevice(BDF, 0x020000, 0x8086, 0x10D3, 19, (), self.driver)


class Hv(RecordingHypervisor):
    def __init__(self, *, directio: bool = True, assignable: bool = True) -> None:
        super().__init__()
        self.directio, self.assignable = directio, assignable

    def physinfo(self) -> PhysInfo:
        caps = PhysCap.HVM | PhysCap.PV | (PhysCap.DIRECTIO if self.directio else PhysCap(0))
        return PhysInfo(threads_per_core=1, cores_per_socket=1, nr_cpus=1, max_cpu_id=0,
                        nr_nodes=1, max_node_id=0, cpu_khz=1000, capabilities=caps,
                        total_pages=1024, free_pages=512, scrub_pages=0, max_mfn=1023)

    def test_assign_device(self, domid: int, bdf: str) -> bool:
        return self.assignable


def test_a_device_that_passes_every_check() -> None:
    hv = Hv()
    check_pci(env(hv, RecordingXenstore(), host=Host()), config(pci=f"0,{BDF}"))
    assert hv.calls == []  # checks change nothing


@pytest.mark.parametrize(("hv", "host", "cfg", "message"), [
    (Hv(directio=False), Host(), config(pci=f"0,{BDF}", hvm="true"),
     "needs the directio capability"),
    (Hv(), Host(), config(pci="0,0000:05:00.0"), "pci 0000:05:00.0: no PCI device"),
    (Hv(), Host(driver="e1000e"), config(pci=f"0,{BDF}"), "bound to the dom0 driver e1000e"),
    (Hv(), Host(driver=None), config(pci=f"0,{BDF}"), r"dom0 driver \(none\)"),
    (Hv(assignable=False), Host(), config(pci=f"0,{BDF}"),
     f"pci {BDF} is assigned to another domain$"),
    (Hv(), HostActions(), config(pci=f"0,{BDF}"), "PCI passthrough is not available here"),
], ids=["directio", "missing", "driver", "unbound", "assigned", "no-pci-host"])
def test_each_refusal_names_the_device(hv: Hv, host: HostActions, cfg: object,
                                       message: str) -> None:
    with pytest.raises(TaskError, match=message):
        check_pci(env(hv, RecordingXenstore(), host=host), cfg)  # type: ignore[arg-type]
    assert hv.calls == []


def test_a_pv_guest_needs_no_directio_and_bind_lifts_the_driver_check() -> None:
    check_pci(env(Hv(directio=False), RecordingXenstore(), host=Host(driver="e1000e")),
              config(pci=f"0,bind,{BDF}"))
