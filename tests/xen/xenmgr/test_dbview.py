"""The read-only view of database trees, with dbd's read semantics."""

from __future__ import annotations

import pytest

from xen.xenmgr import DbView, DbViewError

TREE = {
    "vm": {"u": {"name": "vm1", "config": {"memory": "512", "disk": {"1": {}, "0": {}}}}},
    "n": 5, "t": True, "f": 0.5, "e": None, "a": ["x"], "s": "",
}


def test_read_follows_dbd() -> None:
    db = DbView(TREE)
    assert db.read("/vm/u/name") == "vm1"
    assert db.read("vm//u/config/memory/") == "512"
    assert db.read("/vm/u/config") == ""  # an interior node reads ""
    assert db.read("/n") == "5"
    assert db.read("/t") == "true"
    assert db.read("/f") == "0.500000"
    assert db.read("/e") == ""  # an empty node exists and reads ""
    assert db.read("/a") == ""  # so does an array
    assert db.read("/s") == ""
    assert db.read("/missing") is None
    assert db.read("/vm/u/name/deeper") is None


def test_exists_children_sub() -> None:
    db = DbView(TREE)
    assert db.exists("/") and db.exists("/e") and not db.exists("/x")
    assert db.children("/vm/u/config/disk") == ["1", "0"]  # the database's order
    assert db.children("/vm/u/name") == [] and db.children("/nope") == []
    assert db.is_node("/vm/u") and not db.is_node("/vm/u/name") and not db.is_node("/x")
    sub = db.sub("/vm/u")
    assert sub.read("config/memory") == "512"
    assert db.sub("/nowhere").children() == []


def test_walk_lists_every_leaf() -> None:
    sub = DbView(TREE).sub("vm/u")
    assert list(sub.walk()) == [("name", "vm1"), ("config/memory", "512")]
    assert list(DbView(TREE).walk("/nowhere")) == []


def test_from_values_builds_the_tree() -> None:
    db = DbView.from_values({"/xenmgr/isos": "/isos", "/vm/u/name": "a", "/vm/u/x": None,
                             "/a": "leaf", "/a/b": "below"})
    assert db.read("/xenmgr/isos") == "/isos"
    assert db.read("/vm/u/name") == "a"
    assert not db.exists("/vm/u/x")
    assert db.read("/a/b") == "below"
    with pytest.raises(DbViewError):
        DbView.from_values({"/": "x"})


@pytest.mark.parametrize("bad", [{"k": object()}, {"k": {1: "x"}}, {"k": [b"x"]}, b"x"])
def test_trees_that_are_not_database_trees_are_refused(bad: object) -> None:
    with pytest.raises(DbViewError, match=r"/k|holds a bytes"):
        DbView(bad)
