"""xenmgr's Argo firewall end to end: rules added through the bus, applied to the simulated
host's table (its xenstore, ``/sim/argo-firewall``) as VMs start and stop, removed again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rpc.dbus import DBusError
from tests.helpers import wait_until
from tests.integration.xenmgr_fixtures import VM, XENMGR, Xenmgr, xenmgr_dom0
from xen.xenstore import Transaction, XenstoreClient

pytestmark = pytest.mark.integration

ROOT = "/sim/argo-firewall"


@pytest.fixture(scope="module")
def dom0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xenmgr]:
    with xenmgr_dom0(tmp_path_factory.mktemp("xenmgr-argo")) as d:
        yield d


@pytest.fixture(autouse=True)
def _close(dom0: Xenmgr) -> Iterator[None]:
    yield
    dom0.close_connections()


@pytest.fixture
def xs(dom0: Xenmgr) -> Iterator[XenstoreClient]:
    assert dom0.host is not None
    with XenstoreClient(dom0.host.xenstore_path, timeout=5.0) as client:
        yield client


def rules(xs: XenstoreClient) -> set[str]:
    """The table now (one transaction: never a half-applied change)."""
    def body(t: Transaction) -> set[str]:
        return {t.read(f"{ROOT}/rules/{n}") for n in t.directory(f"{ROOT}/rules")}
    return xs.transaction(body)


def vm_named(dom0: Xenmgr, name: str) -> str:
    path = str(dom0.root().call(XENMGR, "create_vm_with_template", "s", "new-vm-linux")[0])
    dom0.obj(path).set(VM, "name", "s", name)
    return path


def test_rules_follow_the_running_vms(dom0: Xenmgr, xs: XenstoreClient) -> None:
    wait_until(lambda: xs.try_read(f"{ROOT}/policy") == "default-deny", timeout=20)
    alpha, beta = dom0.obj(vm_named(dom0, "alpha")), dom0.obj(vm_named(dom0, "beta"))
    alpha.call(VM, "add_argo_firewall_rule", "s", "myself -> 0:5556")
    alpha.call(VM, "add_argo_firewall_rule", "s", "myself -> 0:5556")  # already there
    beta.call(VM, "add_argo_firewall_rule", "s", "myself -> dom-name=alpha:4000")
    assert alpha.call(VM, "list_argo_firewall_rules")[0] == ["myself -> 0:5556"]
    with pytest.raises(DBusError) as bad:
        alpha.call(VM, "add_argo_firewall_rule", "s", "myself -> 0:http")
    assert "bad port 'http'" in bad.value.message
    assert alpha.call(VM, "list_argo_firewall_rules")[0] == ["myself -> 0:5556"]
    assert rules(xs) == set()  # nothing runs: nothing allowed

    alpha.call(VM, "start")
    a = alpha.get(VM, "domid")
    wait_until(lambda: rules(xs) == {f"{a}:* -> 0:5556", f"0:5556 -> {a}:*"}, timeout=20)
    beta.call(VM, "start")
    b = beta.get(VM, "domid")
    both = {f"{a}:* -> 0:5556", f"0:5556 -> {a}:*", f"{b}:* -> {a}:4000",
            f"{a}:4000 -> {b}:*"}
    wait_until(lambda: rules(xs) == both, timeout=20)

    alpha.call(VM, "shutdown")  # beta's rule names alpha: it goes too
    wait_until(lambda: rules(xs) == set(), timeout=20)
    alpha.call(VM, "start")
    a = alpha.get(VM, "domid")
    both = {f"{a}:* -> 0:5556", f"0:5556 -> {a}:*", f"{b}:* -> {a}:4000",
            f"{a}:4000 -> {b}:*"}
    wait_until(lambda: rules(xs) == both, timeout=20)

    beta.call(VM, "delete_argo_firewall_rule", "s", "MYSELF -> dom-name=ALPHA:4000")
    assert beta.call(VM, "list_argo_firewall_rules")[0] == []
    wait_until(lambda: rules(xs) == {f"{a}:* -> 0:5556", f"0:5556 -> {a}:*"}, timeout=20)
    with pytest.raises(DBusError) as missing:
        beta.call(VM, "delete_argo_firewall_rule", "s", "myself -> 0")
    assert "has no Argo firewall rule 'myself -> 0'" in missing.value.message

    for vm in (alpha, beta):
        vm.call(VM, "shutdown")
        vm.call(VM, "delete")
    wait_until(lambda: rules(xs) == set(), timeout=20)


def test_the_firewall_switch_resets_the_table(dom0: Xenmgr, xs: XenstoreClient) -> None:
    config = "com.citrix.xenclient.xenmgr.config"
    vm = dom0.obj(vm_named(dom0, "gamma"))
    vm.call(VM, "start")
    d = vm.get(VM, "domid")
    vm.call(VM, "add_argo_firewall_rule", "s", "myself -> 0")
    wait_until(lambda: rules(xs) == {f"{d}:* -> 0:*", f"0:* -> {d}:*"}, timeout=20)
    dom0.root().set(config, "argo-firewall", "b", False)
    vm.call(VM, "add_argo_firewall_rule", "s", "myself -> dom-type=ndvm")  # a change: recompute
    wait_until(lambda: xs.try_read(f"{ROOT}/policy") == "allow-all" and rules(xs) == set(),
               timeout=20)
    dom0.root().set(config, "argo-firewall", "b", True)
    vm.call(VM, "delete_argo_firewall_rule", "s", "myself -> dom-type=ndvm")
    wait_until(lambda: xs.try_read(f"{ROOT}/policy") == "default-deny"
               and rules(xs) == {f"{d}:* -> 0:*", f"0:* -> {d}:*"}, timeout=20)
    vm.call(VM, "shutdown")
    vm.call(VM, "delete")
