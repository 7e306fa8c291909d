"""CD media and the vTPM on a VM monitor with the simulated host: cd-insert-file,
cd-insert-real and cd-eject change the drive's backend (one transaction) and the config; a
locked tray refuses; a vtpm-instance plugs a vTPM that goes with the domain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.xen_fixtures import XenTree, sim_tree, vm_config
from xen.xenops import name_to_devid
from xen.xenvm._tasks import TaskError

pytestmark = pytest.mark.integration

DEVICES = ("disk = /dev/null:phy:xvda:w:disk:none\n"
           "disk = /srv/first.iso:file:xvdc:r:cdrom:none\n")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[XenTree, Any]]:
    with sim_tree(tmp_path) as pair:
        yield pair


def backend(tree: XenTree, domid: int) -> str:
    return tree.xs.read(f"/local/domain/{domid}/device/vbd/{name_to_devid('xvdc')}/backend")


def test_insert_eject_and_a_locked_tray(env: tuple[XenTree, Any]) -> None:
    tree, _host = env
    vm = tree.add_vm(vm_config("media") + DEVICES)
    tree.task(vm, "cd-insert-file", virtpath="xvdc", physpath="/srv/stopped.iso")  # config only
    assert "/srv/stopped.iso:file:xvdc" in tree.task(vm, "get-config")
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    be = backend(tree, domid)
    assert tree.xs.read(f"{be}/params").endswith("/srv/stopped.iso")
    tree.task(vm, "cd-insert-file", virtpath="xvdc", physpath="/srv/second.iso")
    assert (tree.xs.read(f"{be}/type"), tree.xs.read(f"{be}/params")) == ("file",
                                                                          "/srv/second.iso")
    tree.task(vm, "cd-insert-real", virtpath="xvdc", physpath="/dev/sr0")
    assert (tree.xs.read(f"{be}/type"), tree.xs.read(f"{be}/params")) == ("phy", "/dev/sr0")
    tree.task(vm, "cd-eject", virtpath="xvdc")
    assert (tree.xs.read(f"{be}/type"), tree.xs.read(f"{be}/params")) == ("", "")
    assert ":phy:xvdc:r:cdrom" in tree.task(vm, "get-config")  # ejected: no path
    tree.xs.write(f"{be}/locked", "true")  # the guest locked the tray
    with pytest.raises(TaskError, match="locked by the guest"):
        tree.task(vm, "cd-insert-file", virtpath="xvdc", physpath="/srv/third.iso")
    assert tree.xs.read(f"{be}/params") == "" and "third" not in tree.task(vm, "get-config")
    for bad, why in ((dict(virtpath="xvda", physpath="/srv/x.iso"), "no CD drive 'xvda'"),
                     (dict(virtpath="xvdz", physpath="/srv/x.iso"), "no CD drive 'xvdz'"),
                     (dict(virtpath="xvdc", physpath="a:b"), "bad medium path")):
        with pytest.raises(TaskError, match=why):
            tree.task(vm, "cd-insert-file", **bad)
    tree.task(vm, "destroy")


def test_a_vtpm_is_plugged_and_goes_with_the_domain(env: tuple[XenTree, Any]) -> None:
    tree, _host = env
    vm = tree.add_vm(vm_config("tpm") + "vtpm-instance = 3\n")
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    back = f"/local/domain/0/backend/vtpm/{domid}/0"
    assert tree.xs.read(f"/local/domain/{domid}/device/vtpm/0/backend") == back
    values = {k: tree.xs.read(f"{back}/{k}")
              for k in ("frontend-id", "pref_instance", "resume", "uuid", "domain")}
    assert values == {"frontend-id": str(domid), "pref_instance": "3", "resume": "False",
                      "uuid": vm, "domain": "tpm"}
    tree.task(vm, "destroy")
    assert not tree.xs.exists(f"/local/domain/0/backend/vtpm/{domid}")
    assert not tree.xs.exists(f"/local/domain/{domid}")


def test_no_vtpm_without_an_instance(env: tuple[XenTree, Any]) -> None:
    tree, _host = env
    vm = tree.add_vm(vm_config("plain"))
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    assert not tree.xs.exists(f"/local/domain/{domid}/device/vtpm")
    tree.task(vm, "destroy")
