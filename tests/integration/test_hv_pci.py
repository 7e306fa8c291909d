"""PCI passthrough over the simulated hypervisor's real socket: the `PciOps` members of
`SimBackend`, the sysfs stand-in through `SimPciSysfs` and the sim host actions, errors by
name and errno, argument checks before anything is sent, and no events."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xen.hypervisor import (
    DomainSpec,
    HypervisorError,
    InvalidArgument,
    NoSuchDomain,
    SimBackend,
)
from xen.sim.hypervisor import HypervisorServer, SimHypervisor
from xen.xenops import PciBar, PciDeviceMissing, SimHostActions, SimPciSysfs, read_pci_device

pytestmark = pytest.mark.integration

USB, HIDDEN = "0000:00:14.0", "0000:04:00.0"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[HypervisorServer, SimBackend]]:
    server = HypervisorServer(tmp_path / "hv.sock", SimHypervisor(1 << 20))
    server.start()
    backend = SimBackend(tmp_path / "hv.sock", timeout=5.0)
    try:
        yield server, backend
    finally:
        backend.close()
        server.close()


def test_assign_grant_and_release_over_the_socket(
        served: tuple[HypervisorServer, SimBackend]) -> None:
    server, hv = served
    events: list[object] = []
    server.subscribe(events.append)
    domid = hv.create(DomainSpec(handle=uuid.uuid4(), memory_kib=4096))
    server.wait_delivered()
    events.clear()
    assert hv.test_assign_device(0, HIDDEN)  # dom0 may ask before a domain exists
    hv.assign_device(domid, HIDDEN)
    assert not hv.test_assign_device(domid, HIDDEN)
    hv.iomem_permission(domid, 0xF7A00, 32, True)
    hv.ioport_permission(domid, 0xD000, 0x20, True)
    assert hv.map_pirq(domid, 19) == 19
    hv.irq_permission(domid, 19, True)
    state = hv.pci_state()
    assert state["devices"][HIDDEN]["assigned"] == domid
    assert state["grants"][str(domid)] == {"iomem": [[0xF7A00, 32]], "ioport": [[0xD000, 32]],
                                           "irq": [19], "pirq": {"19": 19}}
    hv.unmap_pirq(domid, 19)
    hv.irq_permission(domid, 19, False)
    hv.iomem_permission(domid, 0xF7A00, 32, False)
    hv.ioport_permission(domid, 0xD000, 0x20, False)
    hv.deassign_device(domid, HIDDEN)
    assert hv.pci_state()["grants"] == {}
    server.wait_delivered()
    # only the simulation's own PciChanged (the host mirrors /sim/pci), one per change
    assert [type(e).__name__ for e in events] == ["PciChanged"] * 10
    assert {e.what for e in events} >= {"assign_device", "map_pirq", "deassign_device"}  # type: ignore[attr-defined]


def test_errors_come_back_by_name_and_errno(served: tuple[HypervisorServer, SimBackend]) -> None:
    _, hv = served
    with pytest.raises(NoSuchDomain):
        hv.assign_device(42, HIDDEN)
    domid = hv.create(DomainSpec(handle=uuid.uuid4(), memory_kib=4096))
    with pytest.raises(HypervisorError, match="xhci_hcd holds it, not pciback") as held:
        hv.assign_device(domid, USB)
    assert held.value.errno == errno.EBUSY
    with pytest.raises(HypervisorError) as missing:
        hv.assign_device(domid, "0000:07:00.0")
    assert missing.value.errno == errno.ENODEV
    with pytest.raises(InvalidArgument, match="control domain"):
        hv.assign_device(0, HIDDEN)
    hv.destroy(domid)
    with pytest.raises(NoSuchDomain):  # gone, with whatever it held
        hv.deassign_device(domid, HIDDEN)


@pytest.mark.parametrize("call", [
    lambda hv: hv.assign_device(1, "0000:00:14"),
    lambda hv: hv.iomem_permission(1, 0, 0, True),
    lambda hv: hv.ioport_permission(1, 0xFFFF, 2, True),
    lambda hv: hv.irq_permission(1, -1, True),
    lambda hv: hv.irq_permission(1, 16, 1),
    lambda hv: hv.map_pirq(1, 1 << 31),
    lambda hv: hv.unmap_pirq(70000, 1),
])
def test_bad_arguments_are_refused_before_anything_is_sent(tmp_path: Path, call: object) -> None:
    hv = SimBackend(tmp_path / "nobody.sock")  # would be Unavailable if it tried to send
    with pytest.raises(InvalidArgument):
        call(hv)  # type: ignore[operator]


def test_sysfs_and_host_actions_over_the_socket(
        served: tuple[HypervisorServer, SimBackend], tmp_path: Path) -> None:
    _server, hv = served
    sysfs = SimPciSysfs(hv)
    assert sysfs.driver(USB) == "xhci_hcd"
    device = read_pci_device(sysfs, USB)
    assert device.bars == (PciBar("mem", 0xF7F00000, 0x10000),) and device.irq == 16
    with pytest.raises(PciDeviceMissing):
        read_pci_device(sysfs, "0000:07:00.0")
    with pytest.raises(OSError) as busy:
        sysfs.write("drivers/pciback/bind", USB)
    assert busy.value.errno == errno.EBUSY
    host = SimHostActions(hypervisor_path=tmp_path / "hv.sock")
    try:
        host.pci_bind(USB)
        assert sysfs.driver(USB) == "pciback"
        host.pci_flr(USB)
        host.pci_flr("0000:03:00.0")  # a NIC: skipped, as the original did
        state = hv.pci_state()["devices"]
        assert state[USB]["resets"] == 1 and state["0000:03:00.0"]["resets"] == 0
        assert host.pci_device(USB).driver == "pciback"
    finally:
        host.close()


def _cli(state: Path, *args: str, pci: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    env.pop("OXT_SIMHOST_PCI", None)
    if pci is not None:
        env["OXT_SIMHOST_PCI"] = pci
    return subprocess.run([sys.executable, "-m", "xen.sim.simhost", "--state", str(state),
                           *args], env=env, capture_output=True, text=True, timeout=20)


def test_the_command_line_takes_devices_and_shows_the_bus(tmp_path: Path) -> None:
    doc = [{"bdf": "0000:0a:00.0", "class": "0x030000", "vendor": "0x10de", "device": "0x1c82",
            "irq": 11, "driver": "nouveau",
            "bars": [{"type": "mem", "start": "0xe0000000", "size": "0x1000000"}]}]
    (tmp_path / "pci.json").write_text(json.dumps(doc))
    state = tmp_path / "s"
    started = _cli(state, "--memory-mib", "512", "--pci", str(tmp_path / "pci.json"))
    assert started.returncode == 0, started.stderr
    pid = json.loads(started.stdout)["pid"]
    try:
        shown = _cli(state, "--pci-state")
        assert shown.returncode == 0, shown.stderr
        bus = json.loads(shown.stdout)
        assert list(bus["devices"]) == ["0000:0a:00.0"]
        assert bus["devices"]["0000:0a:00.0"]["driver"] == "nouveau" and bus["grants"] == {}
        assert _cli(state, "--stop").returncode == 0
    finally:
        if (state / "simhost.json").exists():
            os.kill(pid, signal.SIGKILL)


def test_a_bad_device_document_refuses_to_start(tmp_path: Path) -> None:
    done = _cli(tmp_path / "s", "--foreground", pci='[{"bdf": "0000:00:14.0", "class": 1}]')
    assert done.returncode == 2
    assert "bad PCI devices: PCI device entry 0: vendor must be a number" in done.stderr
    assert _cli(tmp_path / "none", "--pci-state").returncode == 1  # no host recorded there
