"""200 VMs started concurrently through their monitors."""

from __future__ import annotations

import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import actors
from supervision import StartChild
from tests.integration.xen_fixtures import vm_config, xen_tree
from xen.xenvm import VmStart, vm_task

pytestmark = pytest.mark.integration
N = 200


def test_200_vms_start_concurrently(tmp_path: Path) -> None:
    with xen_tree(tmp_path, memory_mib=N * 40 + 1024) as tree:
        vms = [str(uuidlib.UUID(int=i + 1)) for i in range(N)]
        for i, vm in enumerate(vms):
            actors.ask("/vms", StartChild(vm, (VmStart(vm, vm_config(f"vm{i}", memory=32)),)),
                       timeout=30)
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda vm: vm_task(vm, "start", timeout=120), vms))
        statuses = {vm_task(vm, "get-status") for vm in vms}
        assert statuses == {"running"}
        domids = {int(vm_task(vm, "get-domid")) for vm in vms}
        assert len(domids) == N
        infos = [i for i in tree.hv.getinfolist() if i.domid != 0]
        assert len(infos) == N and {str(i.uuid) for i in infos} == set(vms)
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda vm: vm_task(vm, "destroy", timeout=120), vms))
        assert [i.domid for i in tree.hv.getinfolist() if not i.dying] == [0]
