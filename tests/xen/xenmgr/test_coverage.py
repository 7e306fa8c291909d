"""docs/xenmgr-coverage.md is what ``python -m xen.xenmgr.coverage`` generates."""

from __future__ import annotations

from pathlib import Path

from xen.xenmgr.coverage import render

DOC = Path(__file__).resolve().parents[3] / "docs" / "xenmgr-coverage.md"


def test_the_committed_coverage_page_is_up_to_date() -> None:
    assert DOC.read_text() == render(), "run: python -m xen.xenmgr.coverage --write"


def test_every_member_is_listed_with_a_status() -> None:
    text = render()
    assert "| `create_vm` | method | real |" in text
    assert "| `list_extension_packs` | method | not implemented: " in text
    assert "| `vm_state_changed` | signal | sent: " in text
