"""The database version decision at start (``_dbversion``): pure, and against a dict db."""

from __future__ import annotations

import pytest

from xen.xenmgr._dbversion import (
    DB_VERSION,
    DbVersionError,
    ensure_db_version,
    plan_db_version,
)


class _Db:
    def __init__(self, **values: str) -> None:
        self.values = {f"/{k.replace('_', '-')}": v for k, v in values.items()}

    def read(self, path: str) -> str | None:
        return self.values.get(path)

    def write(self, path: str, value: str) -> None:
        self.values[path] = value


def test_a_fresh_database_gets_the_current_version() -> None:
    assert plan_db_version(None) == "42" == str(DB_VERSION)
    assert plan_db_version("  ") == "42"
    db = _Db()
    ensure_db_version(db)
    assert db.values == {"/db-version": "42"}


def test_the_current_version_is_left_alone() -> None:
    assert plan_db_version("42") is None
    db = _Db(db_version="42")
    ensure_db_version(db)
    assert db.values == {"/db-version": "42"}


@pytest.mark.parametrize(("stored", "words"), [
    ("41", ["41", "older", "upgrade-db"]),
    ("7", ["version 7 ", "older"]),
    ("43", ["43", "newer"]),
    ("forty-two", ["'forty-two'", "not a version number"]),
    ("-1", ["'-1'", "not a version number"]),
])
def test_other_versions_are_refused_naming_them(stored: str, words: list[str]) -> None:
    db = _Db(db_version=stored)
    with pytest.raises(DbVersionError) as info:
        ensure_db_version(db)
    for word in words:
        assert word in str(info.value)
    assert db.values == {"/db-version": stored}  # nothing written
