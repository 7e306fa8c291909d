"""CD media and the vTPM on a VM monitor with the simulated host: cd-insert-file,
cd-insert-real and cd-eject change the drive's backend (one transaction) and the config; a
locked tray refuses; with a stub domain, an inserted medium re-plugs the
stub's read-only copy of the drive; a vtpm-instance plugs a vTPM that goes with the domain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
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


STUB = "5e1f0c0e-3b8a-4c1d-9a57-0d7f8f2b1c11"
STUBBED = ("hvm = true\nqemu-dm-timeout = 10\nstubdom-memory = 32\n"
           f"stubdom = {STUB}\n"
           "disk = /dev/null:phy:hda:w:disk:none\n"
           "disk = /srv/first.iso:file:hdc:r:cdrom:none\n")


def test_a_stub_domains_copy_of_the_drive_is_replugged_with_a_new_medium(
        env: tuple[XenTree, Any]) -> None:
    tree, _host = env
    vm = tree.add_vm(vm_config("stubcd") + STUBBED)
    tree.task(vm, "start")
    domid, stub = int(tree.task(vm, "get-domid")), int(tree.task(vm, "get-stubdomid"))
    hdc = name_to_devid("hdc")
    own = tree.xs.read(f"/local/domain/{domid}/device/vbd/{hdc}/backend")
    copy = f"/local/domain/0/backend/vbd/{stub}/{hdc}"
    assert tree.xs.read(f"{copy}/mode") == "r" and tree.xs.read(f"{copy}/type") == "phy"
    wait_until(lambda: tree.xs.try_read(f"{copy}/state") == "4", timeout=5)
    tree.xs.write(f"{copy}/marker", "before")  # gone once the copy is plugged again
    tree.task(vm, "cd-insert-file", virtpath="hdc", physpath="/srv/second.iso")
    assert (tree.xs.read(f"{own}/type"), tree.xs.read(f"{own}/params")) == ("file",
                                                                           "/srv/second.iso")
    assert not tree.xs.exists(f"{copy}/marker")
    assert tree.xs.read(f"{copy}/mode") == "r"
    assert tree.xs.read(f"/local/domain/{stub}/device/vbd/{hdc}/device-type") == "cdrom"
    wait_until(lambda: tree.xs.try_read(f"{copy}/state") == "4"
               and tree.xs.try_read(f"/local/domain/{stub}/device/vbd/{hdc}/state") == "4",
               timeout=5)
    # an eject empties the guest's drive and leaves the stub's copy alone (as the original)
    tree.xs.write(f"{copy}/marker", "kept")
    tree.task(vm, "cd-eject", virtpath="hdc")
    assert tree.xs.read(f"{own}/params") == "" and tree.xs.read(f"{copy}/marker") == "kept"
    # a locked tray: refused before the stub's copy is touched
    tree.xs.write(f"{own}/locked", "true")
    with pytest.raises(TaskError, match="locked by the guest"):
        tree.task(vm, "cd-insert-real", virtpath="hdc", physpath="/dev/sr0")
    assert tree.xs.read(f"{copy}/marker") == "kept"
    tree.task(vm, "destroy")
    wait_until(lambda: [i.domid for i in tree.hv.getinfolist()] == [0], timeout=10)
    for d in (domid, stub):
        assert not tree.xs.exists(f"/local/domain/0/backend/vbd/{d}")
        assert not tree.xs.exists(f"/local/domain/{d}")


def test_media_and_device_changes_outlive_a_reboot_with_a_pending_config(
        env: tuple[XenTree, Any]) -> None:
    """A `set` while the VM runs makes a pending config for the next start; a medium changed
    or a disk removed afterwards is in it too, so the reboot keeps them."""
    tree, _host = env
    vm = tree.add_vm(vm_config("pending") + DEVICES + "disk = /dev/null:phy:xvdb:w:disk:none\n")
    tree.task(vm, "start")
    tree.task(vm, "set", field="memory", value="96")  # pending: the next start takes it
    tree.task(vm, "cd-insert-file", virtpath="xvdc", physpath="/srv/second.iso")
    tree.task(vm, "disk-del", device="xvdb")
    tree.task(vm, "reboot")
    domid = int(tree.task(vm, "get-domid"))
    assert tree.xs.read(f"{backend(tree, domid)}/params") == "/srv/second.iso"
    vbds = tree.xs.directory(f"/local/domain/{domid}/device/vbd")
    assert str(name_to_devid("xvdb")) not in vbds and len(vbds) == 2
    cfg = tree.task(vm, "get-config")
    assert "memory = 96" in cfg and "xvdb" not in cfg and "/srv/second.iso" in cfg
    tree.task(vm, "destroy")


def test_a_refused_media_change_leaves_the_config_as_it_was(env: tuple[XenTree, Any]) -> None:
    tree, _host = env
    vm = tree.add_vm(vm_config("refused") + DEVICES)
    tree.task(vm, "start")
    domid = int(tree.task(vm, "get-domid"))
    tree.task(vm, "set", field="memory", value="96")
    tree.xs.write(f"{backend(tree, domid)}/locked", "true")
    before = tree.task(vm, "get-config")
    with pytest.raises(TaskError, match="locked by the guest"):
        tree.task(vm, "cd-insert-file", virtpath="xvdc", physpath="/srv/second.iso")
    assert tree.task(vm, "get-config") == before
    tree.task(vm, "reboot")
    assert "/srv/first.iso" in tree.task(vm, "get-config")
    tree.task(vm, "destroy")
