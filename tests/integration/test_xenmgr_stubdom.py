"""xenmgr starts a VM made from OpenXT's default template ``new-vm`` (which asks for a stub
domain) with its stub domain on the simulated host; ``stub_domid`` follows the real one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.xenmgr_fixtures import VM, XENMGR, Xenmgr, xenmgr_dom0
from xen.xenmgr import stubdom_uuid
from xen.xenstore import XenstoreClient

pytestmark = pytest.mark.integration

UNRESTRICTED = "com.citrix.xenclient.xenmgr.vm.unrestricted"


@pytest.fixture
def dom0(tmp_path: Path) -> Iterator[Xenmgr]:
    with xenmgr_dom0(tmp_path / "x") as d:
        yield d


def test_new_vm_starts_with_its_stub_domain(dom0: Xenmgr) -> None:
    path = str(dom0.root().call(XENMGR, "create_vm_with_template", "s", "new-vm")[0])
    vm = dom0.obj(path)
    uuid = str(vm.get(VM, "uuid"))
    assert vm.get(VM, "stubdom") is True and vm.get(UNRESTRICTED, "stub_domid") == -1
    vm.call(VM, "start")
    domid, stub = int(vm.get(VM, "domid")), int(vm.get(UNRESTRICTED, "stub_domid"))
    assert domid > 0 and stub > 0 and stub != domid
    with XenstoreClient(str(dom0.state / "simhost" / "xenstored" / "socket")) as xs:
        assert xs.read(f"/local/domain/{stub}/target") == str(domid)
        assert xs.read(f"/local/domain/{domid}/image/device-model-domid") == str(stub)
        assert xs.read(f"/local/domain/{stub}/name") == f"stubdom-{domid}"
        assert xs.read(f"/local/domain/{stub}/vm") == f"/vm/{stubdom_uuid(uuid)}"
        assert xs.read(f"/local/domain/{stub}/dm-agent/dms/{domid}/0/status") == "running"
        vm.call(VM, "destroy")
        assert vm.get(UNRESTRICTED, "stub_domid") == -1
        wait_until(lambda: not xs.exists(f"/local/domain/{stub}"), timeout=10)
    vm.call(VM, "delete")
