"""The storage check's signal logic (pure) and the free-space reading."""

from __future__ import annotations

from pathlib import Path

from xen.xenmgr._storage_watch import HYSTERESIS, percent_free, space_transition


def test_sent_once_per_fall_with_hysteresis() -> None:
    low, sends = False, []
    for percent in (50, 9, 8, 10, 11, 9, 12, 9, 5):
        low, send = space_transition(low, percent, 10)
        sends.append(send)
    # falls at 9 (sent), 8 and 10..11 stay low (under 10 + 2), 9 again not sent, 12 clears,
    # 9 sent again, 5 not
    assert sends == [False, True, False, False, False, False, False, True, False]
    assert HYSTERESIS == 2


def test_percent_free_of_a_real_file_system(tmp_path: Path) -> None:
    assert 0 <= percent_free(str(tmp_path)) <= 100


def test_a_directory_not_made_yet_reads_its_parent_file_system(tmp_path: Path) -> None:
    assert percent_free(str(tmp_path / "not" / "yet")) == percent_free(str(tmp_path))
