"""Random sequences of a VM's operations through xenmgr, against a model of what they do.

A hypothesis state machine drives a VM made from a template through xenmgr's DBus API on a
real supervisor (the simulated host beneath): start, shutdown, reboot, destroy, pause,
unpause, hibernate (and the start that resumes it) and changes of its ``memory`` property.
The model knows the VM's state, the memory in the database, and the memory its domain was
built with: a start or a reboot through xenmgr boots the database's memory (xenmgr sends the
monitor the database's config first); a resume from hibernation the memory it was saved with.
After every step:

- the ``state`` and ``domid`` properties are the model's, and the simulated host agrees (one
  domain with the VM's uuid while it runs or is paused, paused exactly when the VM is; none
  otherwise);
- the domain has the memory the model says it was built with; the ``memory`` property is the
  database's;
- a shutdown or reboot of a paused VM is refused with error 102 and changes nothing;
- (the ``sigkill`` run) after a SIGKILL of the whole supervisor and a new one on the same
  state, all of the above still holds: the domain adopted, the database intact.

``XENMGR_MODEL_EXAMPLES`` sets how many sequences run (10; more to explore).
"""

from __future__ import annotations

import json
import os
import signal
import uuid as uuidlib
from collections.abc import Iterator
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rpc.dbus import DBusError
from tests.integration.xenmgr_fixtures import VM, XENMGR, Xenmgr, xenmgr_dom0
from xen.hypervisor import SimBackend

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ON = ("running", "paused")


class ManagedVm(RuleBasedStateMachine):
    """One VM made through xenmgr, and its model (see the module docstring)."""

    dom0: ClassVar[Xenmgr]
    hv: ClassVar[SimBackend]
    overhead: ClassVar[dict[str, int]] = {}  # max_pages - memory pages, learnt once
    kills: ClassVar[bool] = False  # whether the supervisor may be SIGKILLed

    def __init__(self) -> None:
        super().__init__()
        path = str(self.dom0.root().call(
            XENMGR, "create_vm_with_template_and_json", "ss", "new-vm-ndvm-pv",
            json.dumps({"config": {"memory": "64"}}))[0])
        self.path = path
        self.vm = self.dom0.obj(path)
        self.uuid = uuidlib.UUID(path.rsplit("/", 1)[1].replace("_", "-"))
        self.state = "stopped"
        self.memory = 64  # the database's
        self.booted: int | None = None  # the memory the domain was built with
        self.hibernated: int | None = None  # the memory in the hibernation image

    # ------------------------------------------------------------------ operations

    @precondition(lambda self: self.state in ("stopped", "suspended"))
    @rule()
    def start(self) -> None:
        """A start, or the resume of a hibernated VM."""
        self.vm.call(VM, "start")
        self.booted = self.hibernated if self.state == "suspended" else self.memory
        self.hibernated = None
        self.state = "running"

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
        self.booted = self.memory  # xenmgr sends the database's config first

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

    @precondition(lambda self: self.kills)
    @rule()
    def supervisor_killed(self) -> None:
        """SIGKILL of the whole supervisor, then a new one on the same state: the VM is found
        as it was (a running or paused domain adopted, a hibernated VM still hibernated), and
        every acknowledged property change is there."""
        proc = self.dom0.proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(20)
        self.dom0.close_connections()
        self.dom0.start()
        self.vm = self.dom0.obj(self.path)

    @rule(mib=st.sampled_from([64, 80, 96]))
    def set_memory(self, mib: int) -> None:
        self.vm.set(VM, "memory", "i", mib)
        self.memory = mib

    # ------------------------------------------------------------------ what must hold

    @invariant()
    def the_properties_and_the_host_agree(self) -> None:
        assert self.vm.get(VM, "state") == self.state
        assert self.vm.get(VM, "memory") == self.memory
        live = [i for i in self.hv.find_by_handle(self.uuid) if not i.dying and not i.shutdown]
        if self.state not in ON:
            assert live == [] and self.vm.get(VM, "domid") == -1
            return
        assert [i.domid for i in live] == [self.vm.get(VM, "domid")]
        assert live[0].paused is (self.state == "paused")
        assert self.booted is not None
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
    with SimBackend(str(dom0.host.hypervisor_path)) as hv:
        ManagedVm.dom0, ManagedVm.hv, ManagedVm.overhead = dom0, hv, {}
        ManagedVm.kills = kills
        run = ManagedVm.TestCase()
        run.settings = settings(
            max_examples=int(os.environ.get("XENMGR_MODEL_EXAMPLES", str(examples))),
            stateful_step_count=12, deadline=None, suppress_health_check=list(HealthCheck))
        run.runTest()
