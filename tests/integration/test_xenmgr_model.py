"""Random sequences of a VM's operations through xenmgr, against a model of what they do.

A hypothesis state machine drives a VM made from a template through xenmgr's DBus API on a
real supervisor (the simulated host beneath): start, shutdown, reboot, destroy, pause,
unpause, hibernate (and the start that resumes it), changes of its ``memory`` property,
nics added and deleted, disks added (a new VHD attached) and deleted (all in the database: the
next start or reboot plugs them), and the guest's
own reboot, power-off and crash (through the simulated hypervisor). The VM's disk is a VHD with
a temporary snapshot: it boots from an overlay.
The model knows the VM's state, the memory in the database, and the memory its domain was
built with: a start or a reboot through xenmgr boots the database's memory (xenmgr sends the
monitor the database's config first); a resume from hibernation the memory it was saved with,
and the database's config at the resume becomes the monitor's pending config; a guest that
reboots itself comes back with its monitor's pending config if it has one, else with what it
ran with (docs/xenmgr.md). After every step:

- the ``state`` and ``domid`` properties are the model's, and the simulated host agrees (one
  domain with the VM's uuid while it runs or is paused, paused exactly when the VM is; none
  otherwise);
- the domain has the memory, the nics and the disks the model says it was built with; the
  ``memory`` property, ``list_nics`` and ``list_disks`` are the database's;
- a shutdown or reboot of a paused VM is refused with error 102 and changes nothing;
- the domain's disk is the overlay; the overlay exists while the VM runs, is paused or
  hibernated, and is the same file from the start that made it on (xenmgr's reboot, a
  hibernation and its resume, the guest's own reboot, a SIGKILL of the supervisor keep it);
  once the VM is stopped it is gone;
- (the ``sigkill`` run) after a SIGKILL of the whole supervisor and a new one on the same
  state, all of the above still holds: the domain adopted, the database intact.

``XENMGR_MODEL_EXAMPLES`` sets how many sequences run (10; more to explore).
"""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rpc.dbus import DBusError
from tests.helpers import wait_until
from tests.integration.model_runs import run_model
from tests.integration.xenmgr_fixtures import VM, XENMGR, Xenmgr, xenmgr_dom0
from xen.hypervisor import ShutdownReason, SimBackend
from xen.xenops import name_to_devid
from xen.xenstore import XenstoreClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ON = ("running", "paused")
NIC = "com.citrix.xenclient.vmnic"
VMDISK = "com.citrix.xenclient.vmdisk"
XVDA = 51712  # the disk's device number


def file_identity(path: Path) -> tuple[int, int] | None:
    """Which file is at ``path`` (a new file made there has a new change time); None: none."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_ctime_ns


class ManagedVm(RuleBasedStateMachine):
    """One VM made through xenmgr, and its model (see the module docstring)."""

    dom0: ClassVar[Xenmgr]
    hv: ClassVar[SimBackend]
    xs: ClassVar[XenstoreClient]
    overhead: ClassVar[dict[str, int]] = {}  # max_pages - memory pages, learnt once
    kills: ClassVar[bool] = False  # whether the supervisor may be SIGKILLed

    def __init__(self) -> None:
        super().__init__()
        root = self.dom0.root()
        vhd = str(root.call(XENMGR, "create_vhd", "i", 8)[0])
        disk = {"path": vhd, "type": "vhd", "mode": "w", "device": "xvda", "devtype": "disk",
                "snapshot": "temporary"}
        path = str(root.call(
            XENMGR, "create_vm_with_template_and_json", "ss", "new-vm-ndvm-pv",
            json.dumps({"config": {"memory": "64", "disk": {"0": disk}}}))[0])
        self.overlay = Path(vhd).parent / f"snap_{Path(vhd).name}.snap.tmp.qcow2"
        self.overlay_file: tuple[int, int] | None = None  # the overlay the guest runs on
        self.path = path
        self.vm = self.dom0.obj(path)
        self.uuid = uuidlib.UUID(path.rsplit("/", 1)[1].replace("_", "-"))
        self.state = "stopped"
        self.memory = 64  # the database's
        self.booted: int | None = None  # the memory the domain was built with
        self.hibernated: int | None = None  # the memory in the hibernation image
        self.nics = self.listed_nics()  # the database's nic ids
        self.booted_nics: frozenset[int] = frozenset()  # the domain's
        self.hibernated_nics: frozenset[int] = frozenset()
        self.disks = self.listed_disks()  # the database's disks: guest device names
        self.booted_disks: frozenset[str] = frozenset()  # the domain's
        self.hibernated_disks: frozenset[str] = frozenset()
        # the monitor's next config: memory, nics, disks
        self.pending: tuple[int, frozenset[int], frozenset[str]] | None = None

    # ------------------------------------------------------------------ operations

    @precondition(lambda self: self.state in ("stopped", "suspended"))
    @rule()
    def start(self) -> None:
        """A start, or the resume of a hibernated VM."""
        self.vm.call(VM, "start")
        resumed = self.state == "suspended"
        self.booted = self.hibernated if resumed else self.memory
        self.booted_nics = self.hibernated_nics if resumed else self.nics
        self.booted_disks = self.hibernated_disks if resumed else self.disks
        self.pending = (self.memory, self.nics, self.disks) if resumed else None
        self.hibernated = None
        self.state = "running"
        if not resumed:
            self.overlay_file = file_identity(self.overlay)
            assert self.overlay_file is not None

    @precondition(lambda self: self.state in ON)
    @rule()
    def shutdown(self) -> None:
        if self.refused_while_paused("shutdown"):
            return
        self.vm.call(VM, "shutdown")
        self.state = "stopped"

    @precondition(lambda self: self.state in ON)
    @rule()
    def reboot(self) -> None:
        if self.refused_while_paused("reboot"):
            return
        self.vm.call(VM, "reboot")
        self.booted, self.booted_nics = self.memory, self.nics  # the database's config first
        self.booted_disks, self.pending = self.disks, None

    def refused_while_paused(self, method: str) -> bool:
        if self.state != "paused":
            return False
        with pytest.raises(DBusError) as refused:
            self.vm.call(VM, method)
        assert refused.value.message.startswith("102:"), refused.value.message
        return True

    @precondition(lambda self: self.state != "stopped")
    @rule()
    def destroy(self) -> None:
        self.vm.call(VM, "destroy")  # a hibernated VM's image goes too
        self.state, self.hibernated = "stopped", None

    @precondition(lambda self: self.state == "running")
    @rule()
    def pause(self) -> None:
        self.vm.call(VM, "pause")
        self.state = "paused"

    @precondition(lambda self: self.state == "paused")
    @rule()
    def unpause(self) -> None:
        self.vm.call(VM, "unpause")
        self.state = "running"

    @precondition(lambda self: self.state == "running")
    @rule()
    def hibernate(self) -> None:
        self.vm.call(VM, "hibernate")
        self.hibernated, self.state = self.booted, "suspended"
        self.hibernated_nics, self.hibernated_disks = self.booted_nics, self.booted_disks

    @precondition(lambda self: self.state == "running")
    @rule(reason=st.sampled_from(["reboot", "poweroff", "crash"]))
    def guest_dies(self, reason: str) -> None:
        """The guest reboots (its monitor restarts it), powers off or crashes (on_crash is
        destroy): no call through xenmgr."""
        domid = self.vm.get(VM, "domid")
        self.hv.shutdown(domid, ShutdownReason[reason.upper()])
        if reason == "reboot":
            # the new domid first: read after it, "running" is the new domain's state
            wait_until(lambda: self.vm.get(VM, "domid") not in (-1, domid)
                       and self.vm.get(VM, "state") == "running", timeout=20)
            if self.pending is not None:
                (self.booted, self.booted_nics, self.booted_disks) = self.pending
                self.pending = None
        else:
            wait_until(lambda: self.vm.get(VM, "state") == "stopped", timeout=20)
            self.state = "stopped"

    @precondition(lambda self: self.kills)
    @rule()
    def supervisor_killed(self) -> None:
        """SIGKILL of the whole supervisor, then a new one on the same state: the VM is found
        as it was (a running or paused domain adopted, a hibernated VM still hibernated), and
        every acknowledged property change is there."""
        self.dom0.sigkill_and_restart()
        self.vm = self.dom0.obj(self.path)

    def listed_nics(self) -> frozenset[int]:
        return frozenset(int(p.rsplit("/", 1)[1]) for p in self.vm.call(VM, "list_nics")[0])

    @precondition(lambda self: len(self.nics) < 3)
    @rule()
    def add_nic(self) -> None:
        """A nic in the database: the next start or reboot plugs it."""
        path = str(self.vm.call(VM, "add_nic")[0])
        self.nics = self.nics | {int(path.rsplit("/", 1)[1])}

    @precondition(lambda self: self.nics)
    @rule(data=st.data())
    def delete_nic(self, data: st.DataObject) -> None:
        ident = data.draw(st.sampled_from(sorted(self.nics)))
        self.dom0.obj(f"{self.path}/nic/{ident}").call(NIC, "delete")
        self.nics = self.nics - {ident}

    def listed_disks(self) -> frozenset[str]:
        return frozenset(str(self.dom0.obj(path).get(VMDISK, "virt-path"))
                         for path in self.vm.call(VM, "list_disks")[0])

    @precondition(lambda self: len(self.disks) < 3)
    @rule()
    def add_disk(self) -> None:
        """A new VHD attached to a new disk of the VM (in the database: the next start or
        reboot plugs it)."""
        disk = self.dom0.obj(str(self.vm.call(VM, "add_disk")[0]))
        disk.call(VMDISK, "attach_vhd", "s",
                  str(self.dom0.root().call(XENMGR, "create_vhd", "i", 8)[0]))
        self.disks = self.disks | {str(disk.get(VMDISK, "virt-path"))}

    @precondition(lambda self: len(self.disks) > 1)
    @rule(data=st.data())
    def delete_disk(self, data: st.DataObject) -> None:
        """A disk but the first (its temporary snapshot is the model's) out of the database."""
        device = data.draw(st.sampled_from(sorted(self.disks - {"xvda"})))
        path = next(p for p in self.vm.call(VM, "list_disks")[0]
                    if self.dom0.obj(p).get(VMDISK, "virt-path") == device)
        self.dom0.obj(path).call(VMDISK, "delete")
        self.disks = self.disks - {device}

    @rule(mib=st.sampled_from([64, 80, 96]))
    def set_memory(self, mib: int) -> None:
        self.vm.set(VM, "memory", "i", mib)
        self.memory = mib

    # ------------------------------------------------------------------ what must hold

    @invariant()
    def the_properties_and_the_host_agree(self) -> None:
        assert self.vm.get(VM, "state") == self.state
        assert self.vm.get(VM, "memory") == self.memory
        assert self.listed_nics() == self.nics
        assert self.listed_disks() == self.disks
        live = [i for i in self.hv.find_by_handle(self.uuid) if not i.dying and not i.shutdown]
        if self.state == "stopped":  # xenmgr deletes the overlay once it sees the VM stop
            wait_until(lambda: not self.overlay.exists(), timeout=10)
        else:
            assert file_identity(self.overlay) == self.overlay_file
        if self.state not in ON:
            assert live == [] and self.vm.get(VM, "domid") == -1
            return
        disk = f"/local/domain/0/backend/tap/{live[0].domid}/{XVDA}/params"
        assert self.xs.read(disk) == f"qcow:{self.overlay}"
        assert [i.domid for i in live] == [self.vm.get(VM, "domid")]
        assert live[0].paused is (self.state == "paused")
        assert self.booted is not None
        where = f"/local/domain/{live[0].domid}/device/vif"
        vifs = self.xs.directory(where) if self.xs.exists(where) else []
        assert {int(v) for v in vifs} == self.booted_nics
        where = f"/local/domain/{live[0].domid}/device/vbd"
        vbds = self.xs.directory(where) if self.xs.exists(where) else []
        assert {int(v) for v in vbds} == {name_to_devid(d) for d in self.booted_disks}
        pages = live[0].max_pages - self.booted * 256
        assert self.overhead.setdefault("pages", pages) == pages, (self.booted, pages)

    def teardown(self) -> None:
        if self.state != "stopped":
            self.vm.call(VM, "destroy")
        self.vm.call(VM, "delete")
        self.dom0.close_connections()


@pytest.fixture(scope="module")
def dom0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xenmgr]:
    with xenmgr_dom0(tmp_path_factory.mktemp("xenmgr-model")) as d:
        yield d


@pytest.mark.parametrize(("kills", "examples"), [(False, 10), (True, 8)],
                         ids=["alive", "sigkill"])
def test_random_operations_through_xenmgr_follow_the_model(dom0: Xenmgr, kills: bool,
                                                           examples: int) -> None:
    assert dom0.host is not None
    with SimBackend(str(dom0.host.hypervisor_path)) as hv, XenstoreClient(
            dom0.host.xenstore_path, timeout=10.0) as xs:
        ManagedVm.dom0, ManagedVm.hv, ManagedVm.xs, ManagedVm.overhead = dom0, hv, xs, {}
        ManagedVm.kills = kills
        run_model(ManagedVm, examples=examples, steps=12, explore="XENMGR_MODEL_EXAMPLES")
