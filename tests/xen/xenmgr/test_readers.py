"""The compiled reader answers exactly what read_property answers, property by property."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from xen.xenmgr._binding import Binding, Stored
from xen.xenmgr._dbview import DbView
from xen.xenmgr._properties import BINDINGS, Target, read_property
from xen.xenmgr._readers import Reader
from xen.xenmgr._vm_properties import VM_INTERFACE, VM_UNRESTRICTED

UUID = "00000000-0000-0000-0000-0000000000aa"
VM_BINDINGS = [b for (iface, _n), b in BINDINGS.items() if iface in (VM_INTERFACE,
                                                                      VM_UNRESTRICTED)]
KEYS = sorted({b.source.key for b in VM_BINDINGS if isinstance(b.source, Stored)})
TEXTS = st.sampled_from(["", "true", "false", "yes", "0", "1", "no", "abc", "12", " 7 ",
                         "-3", "99999999999", "hvm", "pv", "svm", "pvm", "a b", "ide",
                         "windows", "seabios"])
LEAVES: st.SearchStrategy[Any] = st.one_of(TEXTS, st.integers(-5, 5), st.booleans(), st.just({}),
                   st.dictionaries(st.sampled_from(["0", "1", "x"]), TEXTS, max_size=2))


def _outcome(value: Any) -> Any:
    if isinstance(value, BaseException):
        return ("error", type(value).__name__, str(value))
    return ("value", type(value).__name__, value)


def _expected(b: Binding, view: DbView, target: Target) -> Any:
    try:
        return _outcome(read_property(b, view, target))
    except Exception as exc:
        return _outcome(exc)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), LEAVES, max_size=40))
def test_every_vm_property_reads_as_read_property(values: dict[str, Any]) -> None:
    tree: dict[str, Any] = {}
    for key, value in values.items():
        node = tree
        parts = key.split("/")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    view = DbView({"vm": {UUID: tree}})
    target = Target(UUID)
    got = Reader(VM_BINDINGS).read(view, target)
    assert [b for b, _v in got] == VM_BINDINGS
    for b, value in got:
        assert _outcome(value) == _expected(b, view, target), b.name


def test_a_missing_vm_and_a_bad_uuid_read_as_read_property() -> None:
    for view, target in ((DbView({}), Target(UUID)), (DbView({"vm": {UUID: "x"}}), Target(UUID)),
                         (DbView({"vm": {}}), Target("a/b")), (DbView({}), Target())):
        for b, value in Reader(VM_BINDINGS).read(view, target):
            assert _outcome(value) == _expected(b, view, target), b.name


def test_answers_are_remembered_only_for_the_very_same_subtree_and_nodes() -> None:
    reader = Reader(VM_BINDINGS)
    target = Target(UUID)

    def value(view: DbView, name: str) -> Any:
        return next(v for b, v in reader.read(view, target) if b.name == name)

    tree = {"description": "one"}
    assert value(DbView({"vm": {UUID: tree}}), "description") == "one"
    assert value(DbView({"vm": {UUID: tree}}), "description") == "one"  # remembered
    assert value(DbView({"vm": {UUID: {"description": "two"}}}), "description") == "two"
    pending = {"autostart-pending-vms": {"0": UUID}}
    assert value(DbView({"vm": {UUID: tree}, "xenmgr": pending}), "autostart-pending") is True
    assert value(DbView({"vm": {UUID: tree}}), "autostart-pending") is False
    assert value(DbView({"vm": {UUID: tree}}), "uuid") == UUID
    assert value(DbView({"vm": {"other": tree}}), "uuid") == UUID  # no subtree: read
