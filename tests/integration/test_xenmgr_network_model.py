"""Random sequences of operations on a network VM and a guest whose nic it serves, through
xenmgr, against a model of where the nic is served.

A hypothesis state machine drives two VMs through xenmgr's DBus API on a real supervisor (the
simulated host beneath): a PV network VM (``provides-network-backend``) and a PV guest whose
nic names it as its backend (``backend-uuid``), with or without ``track-dependencies`` (drawn
for each sequence). Each is started, shut down, destroyed, rebooted, hibernated and resumed
through xenmgr; the guest is also paused and unpaused, and reboots by itself (its monitor
restarts it), and in one run the whole supervisor is SIGKILLed and a new one started on the
same state. The model knows each VM's state and where the
guest's nic should be served (docs/xenmgr.md, "Where a nic is served"):

- a guest started (or rebooted through xenmgr, or resumed from hibernation) while the network
  VM runs: in the network VM's domain; while it does not run: in dom0;
- when the network VM reaches ``running`` (started, rebooted or resumed), a running guest's
  nic moves into its domain, the guest running on (the same domain); a paused guest's moves
  when it is unpaused (a paused guest cannot let go of its nic);
- when the network VM stops or hibernates, the nic it served is gone until it runs again, or
  until the guest reboots by itself: its monitor then serves the nic from dom0.

After every step: the ``state`` and ``domid`` properties agree with the model and the
simulated host (one domain per running VM), and the guest's vif is connected exactly in the
domain the model says (within a bound: the move is asynchronous). ``NETWORK_MODEL_EXAMPLES``
sets how many sequences run (explores, and shrinks a failure).
"""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Iterator
from typing import ClassVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from rpc.dbus import RemoteObject
from tests.helpers import wait_until
from tests.integration.model_runs import run_model
from tests.integration.xenmgr_fixtures import VM, XENMGR, Xenmgr, xenmgr_dom0
from xen.hypervisor import ShutdownReason, SimBackend

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

VMS = ("net", "guest")
ON = ("running", "paused")  # with a domain
MOVE = 20.0  # seconds a nic's move into a network VM may take (loaded machine)


class NetworkAndGuest(RuleBasedStateMachine):
    """A network VM and a guest it serves, and the model (see the module docstring)."""

    dom0: ClassVar[Xenmgr]
    hv: ClassVar[SimBackend]
    kills: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        net_path = self.create({"provides-network-backend": "true",
                                "config": {"virt-type": "pv", "memory": "64",
                                           "nic": {"0": {"enable": "false"}}}})
        net_uuid = net_path.rsplit("/", 1)[1].replace("_", "-")
        guest_path = self.create({"config": {"virt-type": "pv", "memory": "64",
                                             "nic": {"0": {"backend-uuid": net_uuid}}}})
        self.paths = {"net": net_path, "guest": guest_path}
        self.vms: dict[str, RemoteObject] = {}
        self.connect()
        self.state = {"net": "stopped", "guest": "stopped"}
        self.served_in: str | None = None  # "net", "dom0" or None (unplugged): the guest's nic
        self.track = False  # the guest's track-dependencies

    @initialize(track=st.booleans())
    def tracking(self, track: bool) -> None:
        """With ``track-dependencies`` the guest's start (and resume) starts a stopped network
        VM first (a hibernated one counts as running, as in the original: not resumed)."""
        self.track = track
        self.vms["guest"].set(VM, "track-dependencies", "b", track)

    def create(self, doc: dict[str, object]) -> str:
        return str(self.dom0.root().call(XENMGR, "create_vm_with_template_and_json", "ss",
                                         "new-vm-linux", json.dumps(doc))[0])

    def connect(self) -> None:
        self.vms = {name: self.dom0.obj(path) for name, path in self.paths.items()}

    def domid(self, name: str) -> int:
        return int(self.vms[name].get(VM, "domid"))

    # ------------------------------------------------------------------ operations

    @rule(name=st.sampled_from(VMS))
    def start(self, name: str) -> None:
        """A start, or the resume of a hibernated VM: either way the guest's nic is served
        where its backend runs, else by dom0."""
        if self.state[name] not in ("stopped", "suspended"):
            return
        self.vms[name].call(VM, "start", timeout=60)
        if name == "guest" and self.track and self.state["net"] == "stopped":
            self.state["net"] = "running"  # started first
        self.state[name] = "running"
        if name == "guest":
            self.served_in = "net" if self.state["net"] == "running" else "dom0"
        else:
            self.network_vm_came()

    def network_vm_came(self) -> None:
        """The network VM reached running: a running guest's nic moves in; a paused guest's
        cannot (a paused guest cannot close its frontend) and moves when it is unpaused."""
        if self.state["guest"] == "running":
            self.served_in = "net"

    @rule(name=st.sampled_from(VMS), how=st.sampled_from(["shutdown", "destroy"]))
    def stop(self, name: str, how: str) -> None:
        if not (self.state[name] == "running"
                or (self.state[name] in ("suspended", "paused") and how == "destroy")):
            return
        self.vms[name].call(VM, how, timeout=60)
        self.state[name] = "stopped"
        if name == "guest":
            self.served_in = None
        elif self.served_in == "net":
            self.served_in = None  # gone with the network VM's netback

    @rule(name=st.sampled_from(VMS))
    def reboot(self, name: str) -> None:
        """xenmgr's reboot: the backends are worked out afresh."""
        if self.state[name] != "running":
            return
        self.vms[name].call(VM, "reboot", timeout=60)
        if name == "guest":
            self.served_in = "net" if self.state["net"] == "running" else "dom0"
        else:
            if self.served_in == "net":
                self.served_in = None  # gone with the old domain
            self.network_vm_came()  # moved into the new one

    @rule(name=st.sampled_from(VMS))
    def hibernate(self, name: str) -> None:
        if self.state[name] != "running":
            return
        self.vms[name].call(VM, "hibernate", timeout=60)
        self.state[name] = "suspended"
        if name == "guest" or self.served_in == "net":
            self.served_in = None  # with the guest, or with the network VM's netback

    @precondition(lambda self: self.state["guest"] == "running")
    @rule()
    def pause_guest(self) -> None:
        self.vms["guest"].call(VM, "pause", timeout=60)
        self.state["guest"] = "paused"

    @precondition(lambda self: self.state["guest"] == "paused")
    @rule()
    def unpause_guest(self) -> None:
        """Running again: its nic moves into the network VM if that runs and has it not."""
        self.vms["guest"].call(VM, "unpause", timeout=60)
        self.state["guest"] = "running"
        if self.state["net"] == "running":
            self.served_in = "net"

    @precondition(lambda self: self.state["guest"] == "running")
    @rule()
    def guest_reboots_itself(self) -> None:
        """Its monitor restarts it with the config of its last start, or of the nic's last
        move (a move re-plugs the nic through the monitor, which keeps it in its config); a
        nic whose backend domain is gone since is served by dom0."""
        domid = self.domid("guest")
        self.hv.shutdown(domid, ShutdownReason.REBOOT)
        # the new domid first: read after it, "running" is the new domain's state (read the
        # other way round, "running" may still be the old domain's, a moment before it died)
        wait_until(lambda: self.domid("guest") not in (-1, domid)
                   and self.vms["guest"].get(VM, "state") == "running", timeout=30)
        if self.served_in is None:  # its network VM stopped: the config names a domain gone
            self.served_in = "dom0"

    @precondition(lambda self: self.kills)
    @rule()
    def supervisor_killed(self) -> None:
        self.dom0.sigkill_and_restart()
        self.connect()

    # ------------------------------------------------------------------ what must hold

    @invariant()
    def states_domains_and_the_nic_agree(self) -> None:
        domids = {}
        for name, vm in self.vms.items():
            assert vm.get(VM, "state") == self.state[name], name
            uuid = uuidlib.UUID(self.paths[name].rsplit("/", 1)[1].replace("_", "-"))
            live = [i.domid for i in self.hv.find_by_handle(uuid)
                    if not i.dying and not i.shutdown]
            if self.state[name] not in ON:
                assert live == [] and self.domid(name) == -1, name
            else:
                assert live == [self.domid(name)], name
                domids[name] = live[0]
        if self.state["guest"] not in ON:
            return
        host = self.dom0.host
        assert host is not None
        vif = ("vif", domids["guest"], 0)
        where = {"net": domids.get("net"), "dom0": 0, None: None}[self.served_in]
        if where is not None:
            wait_until(lambda: vif in host.backends_connected(where), timeout=MOVE)
        others = [d for d in (0, domids.get("net")) if d is not None and d != where]
        for domid in others:
            assert vif not in host.backends_connected(domid), (self.served_in, domid)

    def teardown(self) -> None:
        for name in ("guest", "net"):
            if self.state[name] != "stopped":
                self.vms[name].call(VM, "destroy", timeout=60)
            self.vms[name].call(VM, "delete", timeout=60)
        self.dom0.close_connections()


@pytest.fixture(scope="module")
def dom0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xenmgr]:
    with xenmgr_dom0(tmp_path_factory.mktemp("xenmgr-network-model")) as d:
        yield d


@pytest.mark.parametrize(("kills", "examples"), [(False, 6), (True, 5)],
                         ids=["alive", "sigkill"])
def test_random_operations_on_a_network_vm_and_its_guest_follow_the_model(
        dom0: Xenmgr, kills: bool, examples: int) -> None:
    assert dom0.host is not None
    with SimBackend(str(dom0.host.hypervisor_path)) as hv:
        NetworkAndGuest.dom0, NetworkAndGuest.hv, NetworkAndGuest.kills = dom0, hv, kills
        run_model(NetworkAndGuest, examples=examples, steps=12,
                  explore="NETWORK_MODEL_EXAMPLES")
