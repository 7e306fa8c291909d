"""The delete plan: refusals, and exactly which disk files go with the VM."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xen.xenmgr._delete import DeletePlan, KeptFile, disk_paths, plan_delete, vhd_siblings
from xen.xenmgr._jsontree import TreeView, freeze
from xen.xenmgr._planerror import DeleteError

A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"
D = "/storage/disks"


def vm(*disks: dict[str, str], **top: str) -> TreeView:
    return freeze({**top, "config": {"disk": {str(i): d for i, d in enumerate(disks)}}})


def vhd(path: str, **extra: str) -> dict[str, str]:
    return {"path": path, "type": "vhd", "mode": "w", "device": "hda", **extra}


def test_siblings() -> None:
    assert vhd_siblings(f"{D}/x.vhd") == (f"{D}/x.vhd.hib", f"{D}/x.snap.tmp.vhd", f"{D}/x.snap")
    assert vhd_siblings(f"{D}/x.img") == (f"{D}/x.img.hib", f"{D}/x.img.snap.tmp.vhd",
                                          f"{D}/x.img.snap")


def test_an_owned_vhd_goes_with_its_siblings() -> None:
    plan = plan_delete(A, {A: vm(vhd(f"{D}/a.vhd"))}, running=False)
    assert plan == DeletePlan(A, False, (f"{D}/a.vhd",),
                              (f"{D}/a.vhd", *vhd_siblings(f"{D}/a.vhd")), ())
    assert plan.db_paths == (f"/vm/{A}", f"/dom-store/{A}")
    assert plan.ovf_dir == f"/storage/ovffiles/{A}"
    assert plan.xenstore_paths == (f"/state/{A}",)


def test_refusals_in_order() -> None:
    vms = {A: vm(vhd(f"{D}/a.vhd"))}
    with pytest.raises(DeleteError) as caught:
        plan_delete("junk", vms, running=True, delete_disallowed=True)
    assert str(caught.value) == "220:Action suppressed by active policy settings"
    with pytest.raises(DeleteError, match="'junk' is not a uuid"):
        plan_delete("junk", vms, running=True)
    with pytest.raises(DeleteError, match=f"^no vm with uuid {B}$"):
        plan_delete(B, vms, running=True)
    with pytest.raises(DeleteError) as caught:
        plan_delete(A, vms, running=True)
    assert (caught.value.code, str(caught.value)) == (204, "204:Cannot remove running VM")


def test_uuids_match_in_any_case() -> None:
    assert plan_delete(A.upper(), {A: vm()}, running=False).uuid == A
    assert plan_delete(A, {A.upper(): vm()}, running=False).uuid == A


@pytest.mark.parametrize(("disk", "reason"), [
    (vhd(f"{D}/a.vhd", shared="true"), "shared"),
    (vhd(f"{D}/a.vhd", shared="perhaps"), "its shared flag 'perhaps' is not a boolean"),
    ({"path": "/storage/isos/tools.iso", "type": "file"}, "not a VHD (type 'file')"),
    ({"path": f"{D}/a.vhd"}, "not a VHD (no type)"),
    (vhd("/storage/other/a.vhd"), "outside the disk directories (/storage/disks)"),
    (vhd(f"{D}/../../etc/a.vhd"), "outside the disk directories"),
    (vhd("a.vhd"), "outside the disk directories"),
    (vhd(f"{D}"), "outside the disk directories"),
    (vhd(f"{D}/sub/../a.vhd", shared="no"), None),
])
def test_which_disks_are_kept(disk: dict[str, str], reason: str | None) -> None:
    plan = plan_delete(A, {A: vm(disk)}, running=False)
    path = posixpath.normpath(disk["path"])
    if reason is None:
        assert plan.vhds == (path,) and plan.kept == ()
    else:
        assert plan.vhds == () and plan.files == ()
        assert len(plan.kept) == 1 and plan.kept[0].path == path
        assert plan.kept[0].reason.startswith(reason)


def test_a_managed_vm_deletes_no_file() -> None:
    plan = plan_delete(A, {A: vm(vhd(f"{D}/a.vhd"), backend="x")}, running=False)
    assert plan.managed and plan.files == ()
    assert plan.kept == (KeptFile(f"{D}/a.vhd", "the VM is managed (it has a backend node)"),)


def test_a_vhd_or_sibling_another_vm_uses_is_kept() -> None:
    vms = {A: vm(vhd(f"{D}/a.vhd"), vhd(f"{D}/shared-by-path.vhd")),
           B: vm(vhd(f"{D}//shared-by-path.vhd"), {"path": f"{D}/a.snap", "type": "vhd"})}
    plan = plan_delete(A, vms, running=False)
    assert plan.vhds == (f"{D}/a.vhd",)
    assert plan.files == (f"{D}/a.vhd", f"{D}/a.vhd.hib", f"{D}/a.snap.tmp.vhd")
    assert set(plan.kept) == {KeptFile(f"{D}/shared-by-path.vhd", f"also used by VM {B}"),
                              KeptFile(f"{D}/a.snap", f"also used by VM {B}")}


def test_a_path_listed_twice_is_kept_if_either_entry_says_so() -> None:
    for disks in ((vhd(f"{D}/a.vhd"), vhd(f"{D}/a.vhd", shared="true")),
                  (vhd(f"{D}/a.vhd", shared="true"), vhd(f"{D}/a.vhd"))):
        plan = plan_delete(A, {A: vm(*disks)}, running=False)
        assert plan.files == () and plan.kept == (KeptFile(f"{D}/a.vhd", "shared"),)
    plan = plan_delete(A, {A: vm(vhd(f"{D}/a.vhd"), vhd(f"{D}/a.vhd"))}, running=False)
    assert plan.vhds == (f"{D}/a.vhd",) and len(plan.files) == 4


def test_an_own_disk_that_is_a_sibling_name_follows_its_own_rule() -> None:
    plan = plan_delete(A, {A: vm(vhd(f"{D}/a.vhd"), vhd(f"{D}/a.snap", shared="true"))},
                       running=False)
    assert f"{D}/a.snap" not in plan.files
    assert KeptFile(f"{D}/a.snap", "shared") in plan.kept


def test_other_disk_dirs() -> None:
    plan = plan_delete(A, {A: vm(vhd("/srv/vms/a.vhd"))}, running=False,
                       disk_dirs=("/srv/vms/",))
    assert plan.vhds == ("/srv/vms/a.vhd",)


def test_odd_db_shapes_are_read_leniently() -> None:
    assert disk_paths(freeze({"config": "x"})) == []
    assert disk_paths(freeze({"config": {"disk": {"0": "x", "1": {"type": "vhd"},
                                                  "2": {"path": ""}}}})) == []
    assert plan_delete(A, {A: freeze({})}, running=False).files == ()


# ------------------------------------------------------------------ property

NAMES = st.sampled_from(["a", "b", "c", "a.snap", "b.vhd.hib"])
DIRS = st.sampled_from([D, "/storage/isos", f"{D}/sub"])
DISKS = st.builds(
    lambda d, n, t, s: {"path": f"{d}/{n}" if n.endswith((".snap", ".hib")) else f"{d}/{n}.vhd",
                        **({"type": t} if t else {}), **({"shared": s} if s else {})},
    DIRS, NAMES, st.sampled_from(["vhd", "vhd", "file", ""]),
    st.sampled_from(["", "", "true", "false", "odd"]))
VMS = st.dictionaries(st.sampled_from([A, B, "cccccccc-0000-4000-8000-000000000003"]),
                      st.tuples(st.lists(DISKS, max_size=4), st.booleans()),
                      min_size=1)


@settings(max_examples=300, deadline=None)
@given(VMS)
def test_no_file_another_vm_uses_or_that_is_not_an_owned_vhd_is_ever_deleted(
        spec: dict[str, tuple[list[dict[str, str]], bool]]) -> None:
    vms = {u: vm(*disks, **({"backend": "x"} if managed else {}))
           for u, (disks, managed) in spec.items()}
    target = sorted(vms)[0]
    plan = plan_delete(target, vms, running=False)
    others = {p for u, t in vms.items() if u != target for p, _ in disk_paths(t)}
    own = dict(disk_paths(vms[target]))
    assert not set(plan.files) & others
    assert len(set(plan.files)) == len(plan.files)
    for path in plan.vhds:
        disk = own[path]
        assert disk.get("type") == "vhd"
        assert disk.get("shared") in (None, "false")
        assert path.startswith(D + "/")
        assert "backend" not in vms[target]
    assert set(plan.files) == {f for p in plan.vhds for f in (p, *vhd_siblings(p))
                               if f not in others and (f not in own or f in plan.vhds)}
    assert {k.path for k in plan.kept} | set(plan.vhds) >= set(own)
