"""The template directories: shipped first, the administrator's over them; bounded reads."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from xen.xenmgr._template_store import (
    DEFAULT_ADMIN_DIR,
    TemplateStore,
    shipped_templates_dir,
)
from xen.xenmgr._templates import TemplateError, list_templates


def write(directory: Path, name: str, body: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    shipped, admin = tmp_path / "shipped", tmp_path / "admin"
    write(shipped, "new-vm.json", {"description": "shipped"})
    write(shipped, "other.json", {"description": "other"})
    return shipped, admin


def test_defaults() -> None:
    store = TemplateStore()
    assert store.directories == (shipped_templates_dir(), DEFAULT_ADMIN_DIR)
    assert shipped_templates_dir().is_dir()
    with pytest.raises(TemplateError):
        shipped_templates_dir("../x")


def test_a_missing_admin_directory_is_no_extra_templates(dirs: tuple[Path, Path]) -> None:
    shipped, admin = dirs
    assert sorted(TemplateStore(shipped=shipped, admin=admin).load().templates) == \
        ["new-vm", "other"]


def test_a_missing_shipped_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"shipped template directory .* is missing"):
        TemplateStore(shipped=tmp_path / "nope", admin=None).load()


def test_the_admin_directory_adds_and_overrides(dirs: tuple[Path, Path]) -> None:
    shipped, admin = dirs
    write(admin, "new-vm.json", {"description": "mine"})
    write(admin, "kiosk.json", {"description": "kiosk", "ui-selectable": "true"})
    ts = TemplateStore(shipped=shipped, admin=admin).load()
    assert ts.get("new-vm").description == "mine"
    assert ts.get("new-vm").source == str(admin / "new-vm.json")
    assert ts.get("other").description == "other"
    assert list_templates(ts) == ["kiosk", "new-vm", "other"]


def test_a_broken_override_shadows_the_shipped_template_and_is_logged(
        dirs: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    shipped, admin = dirs
    write(admin, "new-vm.json", '{"config": {"memory": 1024}}')
    with caplog.at_level(logging.WARNING, logger="xen.xenmgr._template_store"):
        ts = TemplateStore(shipped=shipped, admin=admin).load()
    with pytest.raises(TemplateError, match=r"new-vm.json: key 'config/memory'"):
        ts.get("new-vm")
    assert "new-vm" in list_templates(ts)
    assert any("template new-vm unusable" in r.getMessage() for r in caplog.records)


def test_only_template_files_are_read(dirs: tuple[Path, Path]) -> None:
    shipped, admin = dirs
    for name in ("README", "new-vm.json~", ".hidden.json", "x y.json", "notes.txt",
                 "new-vm.json.bak"):
        write(admin, name, "not json at all")
    ts = TemplateStore(shipped=shipped, admin=admin).load()
    assert sorted(ts.names()) == ["new-vm", "other"]
    assert dict(ts.problems) == {}


def test_each_load_reads_the_files_again(dirs: tuple[Path, Path]) -> None:
    shipped, admin = dirs
    store = TemplateStore(shipped=shipped, admin=admin)
    assert "late" not in store.load().templates
    write(admin, "late.json", {"description": "v1"})
    assert store.load().get("late").description == "v1"
    write(admin, "late.json", {"description": "v2"})
    assert store.load().get("late").description == "v2"
    (admin / "late.json").unlink()
    assert "late" not in store.load().names()


def test_a_file_over_the_size_bound_is_a_problem(dirs: tuple[Path, Path]) -> None:
    shipped, admin = dirs
    write(admin, "big.json", {"description": "x" * 500})
    write(admin, "small.json", {"description": "x"})
    ts = TemplateStore(shipped=shipped, admin=admin, max_bytes=200).load()
    assert "small" in ts.templates
    with pytest.raises(TemplateError, match="larger than 200 bytes"):
        ts.get("big")


def test_a_fifo_or_directory_is_not_read(dirs: tuple[Path, Path]) -> None:
    shipped, admin = dirs
    admin.mkdir()
    os.mkfifo(admin / "fifo.json")  # opening it for reading must not block the caller
    (admin / "dir.json").mkdir()
    ts = TemplateStore(shipped=shipped, admin=admin).load()
    with pytest.raises(TemplateError, match="not a regular file"):
        ts.get("fifo")
    with pytest.raises(TemplateError, match="cannot read"):
        ts.get("dir")


def test_an_unreadable_file_is_a_problem(dirs: tuple[Path, Path]) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    shipped, admin = dirs
    path = write(admin, "secret.json", {})
    path.chmod(0)
    ts = TemplateStore(shipped=shipped, admin=admin).load()
    with pytest.raises(TemplateError, match=r"cannot read .*secret.json: Permission denied"):
        ts.get("secret")


def test_the_number_of_files_is_bounded(dirs: tuple[Path, Path]) -> None:
    shipped, admin = dirs
    for i in range(5):
        write(admin, f"t{i}.json", {})
    ts = TemplateStore(shipped=shipped, admin=admin, max_files=3).load()
    assert sorted(ts.templates) == ["new-vm", "other", "t0", "t1", "t2"]
    with pytest.raises(TemplateError, match="more than 3 template files"):
        ts.get("t4")


def test_a_symlinked_template_is_followed(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    shipped, admin = dirs
    target = write(tmp_path / "elsewhere", "real.json", {"description": "linked"})
    admin.mkdir()
    (admin / "linked.json").symlink_to(target)
    assert TemplateStore(shipped=shipped, admin=admin).load().get("linked").description == \
        "linked"
