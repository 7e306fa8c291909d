"""Random sequences of a VM's operations against a model of what they should do.

A hypothesis state machine drives one VM monitor on the simulated host (its guests and backends
answer) through random sequences of start (running or paused; also of a suspended VM),
shutdown, destroy, pause, unpause, reboot, the guest's own reboot, power-off and crash, suspend
and restore, ``set memory``, ``set-config``, disk, nic and PCI hot-plug, CD media changes and
monitor crashes. A small model says what each does to the VM's state, its applied config and
its pending config (changes made while a domain exists wait for the next start; a restore runs
the config it was saved with). After every step:

- the monitor's state is the model's, and the world agrees: a state with a domain has exactly
  one domain with the VM's uuid (paused unless running), any other state none, and no domain
  a VM had leaves anything in xenstore;
- a paused guest's device removal is refused (it could not release the device), and so is a
  shutdown, reboot or suspend of a guest that does not run (paused, or created);
- a running or paused domain has exactly the disks and nics of the applied config plugged
  (frontends in xenstore), the memory of the applied config, and the CD medium the config has;
- ``get memory`` and ``disk-list``/``nic-list`` say what the model says.

``VM_MODEL_EXAMPLES`` sets how many sequences run (40; a few hundred to explore). It found the
defects of a paused start turning paused, a pending config dropped by a device it had, two
disks on one guest device, and removals from a paused guest waiting out their timeout.
"""

from __future__ import annotations

import dataclasses
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import actors
from supervision import TerminateChild
from tests.helpers import wait_until
from tests.integration.model_runs import run_model
from tests.integration.xen_fixtures import XenTree, sim_tree, vm_config
from xen.hypervisor import ShutdownReason
from xen.xenops import name_to_devid
from xen.xenvm import TaskError, vm_task

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FIRST, SECOND = "/srv/first.iso", "/srv/second.iso"
PCI = "0000:04:00.0"  # a NIC of the simulated host, bound to pciback
PCI_ADDRESS = {"domain": "0", "bus": "4", "slot": "0", "func": "0"}
BASE = (f"disk = /dev/null:phy:xvda:w:disk:none\ndisk = {FIRST}:file:xvdc:r:cdrom:none\n"
        "nic = id=0,bridge=xenbr0\n")
EXTRA_DISKS = ("xvdb", "xvdd")
EXTRA_NICS = (1, 2)
WITH_DOMAIN = ("running", "paused", "created")


@dataclasses.dataclass(frozen=True)
class Config:
    """What the model knows of a config: memory, disks (guest names), nic ids, CD medium."""

    memory: int
    disks: frozenset[str]
    nics: frozenset[int]
    medium: str
    pcis: frozenset[str] = frozenset()


class VmModel(RuleBasedStateMachine):
    """One VM and its model (see the module docstring)."""

    tree: ClassVar[XenTree]
    host: ClassVar[Any]  # the simulated host (its PCI bus)
    images: ClassVar[Path]
    overhead: ClassVar[dict[str, int]] = {}  # max_pages - memory pages, learnt once
    extra: ClassVar[str] = ""  # more config lines

    def __init__(self) -> None:
        super().__init__()
        self.vm = self.tree.add_vm(vm_config("model", memory=32, on_reboot="restart",
                                             on_poweroff="destroy", on_crash="destroy")
                                   + BASE + self.extra)
        self.state = "shutdown"
        self.applied = Config(32, frozenset({"xvda", "xvdc"}), frozenset({0}), FIRST)
        self.pending: Config | None = None
        self.saved: Config | None = None  # the config in the suspend image
        self.domids: set[int] = set()
        self.image = self.images / f"{self.vm}.img"

    # ------------------------------------------------------------------ helpers

    def task(self, name: str, **params: str) -> str:
        return vm_task(self.vm, name, params, timeout=30)

    @property
    def wanted(self) -> Config:
        """The config the next start boots."""
        return self.pending or self.applied

    def change(self, **fields: Any) -> None:
        """A config change: pending while a domain exists, else applied."""
        if self.state in WITH_DOMAIN:
            self.pending = dataclasses.replace(self.wanted, **fields)
        else:
            self.applied, self.pending = dataclasses.replace(self.wanted, **fields), None

    def device_change(self, field: str, *, add: Any = None, remove: Any = None,
                      value: Any = None) -> None:
        """A device or medium change: to the applied config, and to the pending one too (its
        own set of devices: one it lists already stays listed once)."""
        def edit(cfg: Config) -> Config:
            if value is not None:
                return dataclasses.replace(cfg, **{field: value})
            items = getattr(cfg, field)
            items = items | {add} if add is not None else items - {remove}
            return dataclasses.replace(cfg, **{field: items})
        self.applied = edit(self.applied)
        if self.pending is not None:
            self.pending = edit(self.pending)

    def booted(self) -> None:
        """A start: the pending config becomes the applied one."""
        self.applied, self.pending = self.wanted, None

    def domid(self) -> int:
        domid = int(self.task("get-domid"))
        self.domids.add(domid)
        return domid

    def wait_state(self, state: str, *, new_domain_after: int | None = None) -> None:
        def reached() -> bool:
            if self.task("get-status") != state:
                return False
            return new_domain_after is None or int(self.task("get-domid")) != new_domain_after
        wait_until(reached, timeout=20)

    # ------------------------------------------------------------------ lifecycle

    @precondition(lambda self: self.state in ("shutdown", "suspended"))
    @rule(paused=st.booleans())
    def start(self, paused: bool) -> None:
        """A start (a suspended VM's boots afresh, its image left alone)."""
        self.task("start", paused=str(paused).lower())
        self.booted()
        self.state = "created" if paused else "running"
        self.domid()

    def refused_while_halted(self, name: str, **params: str) -> bool:
        """A guest that does not run cannot answer a stop: refused (True)."""
        if self.state not in ("paused", "created"):
            return False
        why = rf"(the VM is {self.state}: its guest cannot|not allowed in state {self.state})"
        with pytest.raises(TaskError, match=why):
            self.task(name, **params)
        return True

    @precondition(lambda self: self.state in WITH_DOMAIN)
    @rule()
    def shutdown(self) -> None:
        if not self.refused_while_halted("shutdown"):
            self.task("shutdown")
            self.state = "shutdown"

    @precondition(lambda self: self.state in (*WITH_DOMAIN, "suspended"))
    @rule()
    def destroy(self) -> None:
        self.task("destroy")
        self.state = "shutdown"

    @precondition(lambda self: self.state == "running")
    @rule()
    def pause(self) -> None:
        self.task("pause")
        self.state = "paused"

    @precondition(lambda self: self.state in ("paused", "created"))
    @rule()
    def unpause(self) -> None:
        self.task("unpause")
        self.state = "running"

    @precondition(lambda self: self.state in WITH_DOMAIN)
    @rule()
    def reboot(self) -> None:
        if not self.refused_while_halted("reboot"):
            self.task("reboot")
            self.booted()
            self.domid()

    @precondition(lambda self: self.state == "running")
    @rule(reason=st.sampled_from(["reboot", "poweroff", "crash"]))
    def guest_dies(self, reason: str) -> None:
        """The guest reboots (on_reboot = restart), powers off or crashes (both: destroy)."""
        domid = self.domid()
        hypervisor = self.tree.hypervisor
        if reason == "crash":
            hypervisor.crash(domid)
        else:
            hypervisor.guest_shutdown(domid, ShutdownReason[reason.upper()])
        if reason == "reboot":
            self.wait_state("running", new_domain_after=domid)
            self.booted()
            self.domid()
        else:
            self.wait_state("shutdown")
            self.state = "shutdown"

    @precondition(lambda self: self.state in WITH_DOMAIN)
    @rule()
    def suspend(self) -> None:
        if not self.refused_while_halted("suspend", file=str(self.image)):
            self.task("suspend", file=str(self.image))
            self.saved = self.applied
            self.state = "suspended"

    @precondition(lambda self: self.state == "suspended" and self.image.exists())
    @rule()
    def restore(self) -> None:
        assert self.saved is not None
        self.task("restore", file=str(self.image))
        wanted = self.wanted
        self.applied = self.saved
        self.pending = wanted if wanted != self.saved else None
        self.state = "running"
        self.domid()

    @rule()
    def monitor_crashes(self) -> None:
        """The monitor crashes and its replacement resumes from the snapshot."""
        seq = self.tree.events.last_seq
        actors.tell(f"/vms/{self.vm}", actors.InjectCrash())
        event = self.tree.events.wait_for(
            lambda e: e.kind == "restarted" and e.path == f"/vms/{self.vm}", 10, since=seq)
        assert event is not None

    # ------------------------------------------------------------------ config and devices

    @rule(mib=st.sampled_from([32, 40, 48]), disks=st.sets(st.sampled_from(EXTRA_DISKS)),
          nics=st.sets(st.sampled_from(EXTRA_NICS)), medium=st.sampled_from([FIRST, SECOND, ""]),
          pci=st.booleans())
    def set_config(self, mib: int, disks: set[str], nics: set[int], medium: str,
                   pci: bool) -> None:
        """The whole config replaced (as xenmgr does before each start)."""
        cfg = Config(mib, frozenset({"xvda", "xvdc", *disks}), frozenset({0, *nics}), medium,
                     frozenset({PCI} if pci else ()))
        text = vm_config("model", memory=mib, on_reboot="restart", on_poweroff="destroy",
                         on_crash="destroy")
        text += f"disk = /dev/null:phy:xvda:w:disk:none\ndisk = {medium}:file:xvdc:r:cdrom:none\n"
        text += "".join(f"disk = /dev/null:phy:{d}:w:disk:none\n" for d in sorted(disks))
        text += "".join(f"nic = id={n},bridge=xenbr0\n" for n in sorted({0, *nics}))
        text += f"pci = 0,{PCI}\n" if pci else ""
        self.task("set-config", config=text + self.extra)
        self.change(**dataclasses.asdict(cfg))

    @rule(mib=st.sampled_from([32, 40, 48]))
    def set_memory(self, mib: int) -> None:
        self.task("set", field="memory", value=str(mib))
        self.change(memory=mib)

    def refused_while_paused(self, name: str, **params: str) -> bool:
        """A paused guest cannot release a device: its removal is refused (True)."""
        if self.state != "paused":
            return False
        with pytest.raises(TaskError, match="the VM is paused"):
            self.task(name, **params)
        return True

    @rule(name=st.sampled_from(EXTRA_DISKS))
    def disk_add_or_del(self, name: str) -> None:
        if name in self.applied.disks:
            if not self.refused_while_paused("disk-del", device=name):
                self.task("disk-del", device=name)
                self.device_change("disks", remove=name)
        else:
            self.task("disk-add", path="/dev/null", device=name)
            self.device_change("disks", add=name)

    @rule(nic=st.sampled_from(EXTRA_NICS))
    def nic_add_or_del(self, nic: int) -> None:
        if nic in self.applied.nics:
            if not self.refused_while_paused("nic-del", id=str(nic)):
                self.task("nic-del", id=str(nic))
                self.device_change("nics", remove=nic)
        else:
            self.task("nic-add", bridge="xenbr0", id=str(nic))
            self.device_change("nics", add=nic)

    @rule()
    def pci_add_or_del(self) -> None:
        """The simulated host's NIC at 0000:04:00.0 passed through, or taken back."""
        if PCI in self.applied.pcis:
            if not self.refused_while_paused("pci-del", **PCI_ADDRESS):
                self.task("pci-del", **PCI_ADDRESS)
                self.device_change("pcis", remove=PCI)
        else:
            self.task("pci-add", id="0", **PCI_ADDRESS)
            self.device_change("pcis", add=PCI)

    @rule(medium=st.sampled_from([FIRST, SECOND, ""]))
    def cd(self, medium: str) -> None:
        if medium:
            self.task("cd-insert-file", virtpath="xvdc", physpath=medium)
        else:
            self.task("cd-eject", virtpath="xvdc")
        self.device_change("medium", value=medium)

    # ------------------------------------------------------------------ what must hold

    @invariant()
    def the_state_and_the_world_agree(self) -> None:
        assert self.task("get-status") == self.state
        live = [i for i in self.tree.hv.find_by_handle(uuidlib.UUID(self.vm))
                if not i.dying and not i.shutdown]
        if self.state not in WITH_DOMAIN:
            assert live == []
            xs = self.tree.xs
            for domid in self.domids:  # nothing left of the domains it had
                assert not xs.exists(f"/local/domain/{domid}"), domid
                assert not xs.exists(f"/local/domain/0/backend/vbd/{domid}"), domid
                assert not xs.exists(f"/local/domain/0/backend/vif/{domid}"), domid
            return
        domid = self.domid()
        assert [i.domid for i in live] == [domid]
        assert live[0].paused is (self.state != "running")

    @invariant()
    def a_pci_device_is_passed_through_only_while_listed(self) -> None:
        assigned = self.host.pci_state()["devices"][PCI]["assigned"]
        if self.state in WITH_DOMAIN and PCI in self.applied.pcis:
            assert assigned == int(self.task("get-domid"))
        else:
            assert assigned is None

    @invariant()
    def the_configs_are_the_models(self) -> None:
        assert self.task("get", field="memory") == str(self.wanted.memory)
        disks = {line.split(" ")[0]: line for line in self.task("disk-list").splitlines()}
        assert set(disks) == self.applied.disks
        assert f"file:{self.applied.medium} " in disks["xvdc"] or (
            not self.applied.medium and disks["xvdc"].split(" ")[1].endswith(":"))
        assert {int(line.split(" ")[0]) for line in self.task("nic-list").splitlines()} \
            == self.applied.nics
        assert {line.split(" ")[1] for line in self.task("pci-list").splitlines()} \
            == self.applied.pcis

    @invariant()
    def a_domain_has_the_applied_config(self) -> None:
        if self.state not in WITH_DOMAIN:
            return
        domid = int(self.task("get-domid"))
        xs = self.tree.xs
        vbds = set(xs.directory(f"/local/domain/{domid}/device/vbd"))
        assert vbds == {str(name_to_devid(d)) for d in self.applied.disks}
        vifs = set(xs.directory(f"/local/domain/{domid}/device/vif"))
        assert vifs == {str(n) for n in self.applied.nics}
        backend = xs.read(f"/local/domain/{domid}/device/vbd/{name_to_devid('xvdc')}/backend")
        assert xs.read(f"{backend}/params") == self.applied.medium
        pages = self.tree.hv.getinfo(domid).max_pages - self.applied.memory * 256
        assert self.overhead.setdefault("pages", pages) == pages

    def teardown(self) -> None:
        if self.task("get-status") != "shutdown":
            self.task("destroy")
        actors.ask("/vms", TerminateChild(self.vm), timeout=30)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[XenTree, Any]]:
    with sim_tree(tmp_path / "host", intensity=10_000, backoff=None) as pair:
        yield pair


STUB = "5f5f5f5f-1111-4222-8333-444444444444"  # the stub domain's uuid


class StubVmModel(VmModel):
    """The same, for an HVM guest whose device model runs in a stub domain."""

    extra = f"hvm = true\nqemu-dm-timeout = 10\nstubdom-memory = 32\nstubdom = {STUB}\n"

    @invariant()
    def its_stub_domain_lives_with_it(self) -> None:
        stubs = [i.domid for i in self.tree.hv.find_by_handle(uuidlib.UUID(STUB))
                 if not i.dying and not i.shutdown]
        assert len(stubs) == (self.state in WITH_DOMAIN), stubs
        if stubs:
            assert self.task("get-stubdomid") == str(stubs[0])


@pytest.mark.parametrize(("model", "examples"), [(VmModel, 40), (StubVmModel, 8)],
                         ids=["pv", "hvm-stubdom"])
def test_random_operations_follow_the_model(host: tuple[XenTree, Any], tmp_path: Path,
                                            model: type[VmModel], examples: int) -> None:
    (model.tree, model.host), model.images = host, tmp_path
    model.overhead = {}
    run_model(model, examples=examples, steps=15, explore="VM_MODEL_EXAMPLES")
