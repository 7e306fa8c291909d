"""The dbd tree: reference §3.2 case by case, file reporting, confinement, limits, a model test."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistence._jsonfmt import JsonFormatError, dumps_pretty
from persistence._limits import (
    Caller,
    DbError,
    DbLimitError,
    DbNameError,
    Limits,
    confine_path,
)
from persistence._tree import (
    Binary,
    DbBinaryNodeError,
    DbInteriorWriteError,
    DbNotBinaryError,
    DbTree,
    InjectOp,
    InteriorWrite,
    RmOp,
    WriteOp,
    split_path,
)


def tree_of(text: str, **kwargs: Any) -> DbTree:
    tree = DbTree(**kwargs)
    tree.inject("/", text)
    return tree


# ---------------------------------------------------------------------------- paths


def test_split_path_ignores_empty_segments_only() -> None:
    assert split_path("a//b/") == ("a", "b")
    assert split_path("/") == ()
    assert split_path("") == ()
    assert split_path("/a/../b/.") == ("a", "..", "b", ".")


def test_empty_segments_address_the_same_node() -> None:
    tree = DbTree()
    tree.write("a//b/", "v")
    assert tree.read("/a/b") == "v"
    assert tree.list("//a") == ["b"]


def test_dot_dot_is_an_ordinary_name() -> None:
    tree = DbTree()
    tree.write("/a/../b", "v")
    assert tree.list("/a") == [".."]
    assert tree.read("/b") == ""


# ---------------------------------------------------------------------------- read


@pytest.mark.parametrize(
    ("json_value", "expected"),
    [
        ('"plain"', "plain"),
        ('"with \\/ slash and \\" quote"', 'with / slash and " quote'),
        ("5", "5"),
        ("-12", "-12"),
        ("true", "true"),
        ("false", "false"),
        ("1.5", "1.500000"),
        ("[1, 2]", ""),
        ("[]", ""),
        ("{}", ""),
        ('{"x": "1"}', ""),
        ("null", ""),
    ],
)
def test_read_renders_leaf_values(json_value: str, expected: str) -> None:
    tree = DbTree()
    tree.inject("/k", json_value)
    assert tree.read("/k") == expected


def test_read_missing_is_empty_string() -> None:
    tree = tree_of('{"a": {"b": "1"}}')
    assert tree.read("/nope") == ""
    assert tree.read("/a/b/c") == ""  # below a leaf
    assert tree.read("/") == ""  # interior root


def test_read_binary_node_gives_file_path(tmp_path: Any) -> None:
    file = tmp_path / "blob"
    file.write_bytes(b"\x00\x01data")
    tree = DbTree({"vm": {"u": {"blob": Binary(str(file))}}})
    assert tree.read("/vm/u/blob") == f"file:{file}"
    assert tree.read_binary("/vm/u/blob") == b"\x00\x01data"
    assert tree.binary_file("/vm/u/blob") == str(file)


def test_read_binary_on_other_nodes_fails() -> None:
    tree = tree_of('{"a": "1"}')
    for path in ("/a", "/missing", "/"):
        with pytest.raises(DbNotBinaryError, match="not a binary node"):
            tree.read_binary(path)


def test_read_binary_missing_file_fails_clearly(tmp_path: Any) -> None:
    tree = DbTree({"b": Binary(str(tmp_path / "gone"))})
    with pytest.raises(DbError, match="input error"):
        tree.read_binary("/b")


# ---------------------------------------------------------------------------- write


def test_write_creates_intermediate_nodes_after_existing_siblings() -> None:
    tree = tree_of('{"z": "1", "a": "2"}')
    tree.write("/m/n/o", "v")
    assert tree.list("/") == ["z", "a", "m"]
    assert tree.list("/m") == ["n"]
    assert tree.read("/m/n/o") == "v"


def test_write_replaces_a_leaf_in_place() -> None:
    tree = tree_of('{"a": "1", "b": 7, "c": "3"}')
    tree.write("/b", "new")
    assert tree.list("/") == ["a", "b", "c"]
    assert tree.read("/b") == "new"
    assert tree.dump("/b") == '"new"\n'  # always stored as a JSON string


def test_write_below_a_leaf_replaces_it_by_a_node_in_place() -> None:
    tree = tree_of('{"a": "1", "b": "2", "c": "3"}')
    tree.write("/b/x", "v")
    assert tree.list("/") == ["a", "b", "c"]
    assert tree.list("/b") == ["x"]
    assert tree.read("/b") == ""


def test_write_below_an_empty_node() -> None:
    tree = tree_of('{"a": null}')
    tree.write("/a/x", "v")
    assert tree.read("/a/x") == "v"


@pytest.mark.parametrize("target", ['{"x": "1"}', "{}"])
def test_write_to_an_interior_node_is_silently_ignored(target: str) -> None:
    tree = DbTree()
    tree.inject("/a", target)
    before = tree.dump("/")
    change = tree.write("/a", "v")
    assert change.op is None and not change.files
    assert tree.dump("/") == before


def test_write_to_an_interior_node_can_be_rejected() -> None:
    tree = DbTree(interior_write=InteriorWrite.REJECT)
    tree.inject("/a", "{}")
    with pytest.raises(DbInteriorWriteError, match="/a"):
        tree.write("/a", "v")
    assert tree.dump("/a") == "{ }\n"
    # replay of a logged write never raises for this
    assert tree.apply(WriteOp(("a",), "v")).op is None


def test_write_on_root() -> None:
    tree = tree_of('{"a": "1"}')
    assert tree.write("/", "v").op is None  # root is an interior node
    tree.rm("/")
    tree.write("/", "v")  # an empty database becomes a leaf
    assert tree.read("/") == "v"
    assert tree.dump("/") == '"v"\n'
    tree.write("/a", "w")  # and a node again
    assert tree.list("/") == ["a"]


def test_write_same_value_changes_nothing() -> None:
    tree = tree_of('{"a": "1"}')
    assert tree.write("/a", "1").op is None
    assert tree.write("/a", "2").op == WriteOp(("a",), "2")


def test_write_to_or_below_a_binary_node_fails_and_changes_nothing(tmp_path: Any) -> None:
    tree = DbTree({"vm": {"u": {"bin": Binary("/x/bin")}}})
    for path in ("/vm/u/bin", "/vm/u/bin/below"):
        with pytest.raises(DbBinaryNodeError, match="cannot overwrite binary file nodes"):
            tree.write(path, "v")
    assert tree.root == {"vm": {"u": {"bin": Binary("/x/bin")}}}


# ---------------------------------------------------------------------------- inject


def test_inject_maps_json_to_nodes_keeping_key_order() -> None:
    tree = DbTree()
    tree.inject("/x", '{"b": "1", "a": {"d": 2, "c": null}, "e": [1, {"f": "g"}], "h": true}')
    assert tree.list("/x") == ["b", "a", "e", "h"]
    assert tree.list("/x/a") == ["d", "c"]
    assert tree.exists("/x/a/c") and tree.read("/x/a/c") == ""
    assert tree.list("/x/e") == []  # arrays are leaves
    assert tree.read("/x/h") == "true"


def test_inject_replaces_the_whole_subtree() -> None:
    tree = tree_of('{"a": {"old": "1", "keep": "2"}, "b": "3"}')
    tree.inject("/a", '{"new": "4"}')
    assert tree.list("/a") == ["new"]
    assert tree.list("/") == ["a", "b"]


def test_inject_root_replaces_the_database() -> None:
    tree = tree_of('{"a": "1"}')
    tree.inject("/", '{"z": "2"}')
    assert tree.list("/") == ["z"]
    tree.inject("/", "null")
    assert tree.dump("/") == "null\n"


def test_inject_below_a_leaf() -> None:
    tree = tree_of('{"a": "1"}')
    tree.inject("/a/b", '"2"')
    assert tree.read("/a/b") == "2"


def test_inject_on_a_binary_node_fails() -> None:
    tree = DbTree({"b": Binary("/f")})
    with pytest.raises(DbBinaryNodeError):
        tree.inject("/b", '"x"')
    with pytest.raises(DbBinaryNodeError):
        tree.inject("/b/c", '"x"')


def test_inject_malformed_json_is_a_clear_error() -> None:
    tree = tree_of('{"a": "1"}')
    with pytest.raises(JsonFormatError) as info:
        tree.inject("/a", '{\n  "x": tru\n}')
    assert info.value.line == 2
    assert "line 2" in str(info.value)
    assert tree.read("/a") == "1"


def test_inject_keeps_the_logged_value_apart_from_the_tree() -> None:
    tree = DbTree()
    change = tree.inject("/a", '{"b": "1"}')
    tree.write("/a/c", "2")
    assert change.op == InjectOp(("a",), {"b": "1"})


# ---------------------------------------------------------------------------- dump / list / exists


def test_dump_cases() -> None:
    tree = DbTree({"a": {"b": "x", "e": {}, "n": None, "bin": Binary("/f")}})
    assert tree.dump("/a") == (
        '{\n  "b": "x",\n  "e": { },\n  "n": null,\n  "bin": null\n}\n'
    )
    assert tree.dump("/missing") == "null\n"
    assert tree.dump("/a/bin") == "null\n"
    assert tree.dump("/a/e") == "{ }\n"
    assert tree.dump("/a/b") == '"x"\n'


def test_list_cases() -> None:
    tree = tree_of('{"c": "1", "a": {"z": "1", "y": "2"}, "b": []}')
    assert tree.list("/") == ["c", "a", "b"]
    assert tree.list("/a") == ["z", "y"]
    assert tree.list("/c") == []
    assert tree.list("/b") == []
    assert tree.list("/missing") == []


def test_exists_cases() -> None:
    tree = tree_of('{"a": {"b": "1"}, "e": {}, "n": null}')
    assert tree.exists("/")
    assert tree.exists("/a") and tree.exists("/a/b")
    assert tree.exists("/e") and tree.exists("/n")
    assert not tree.exists("/a/b/c")
    assert not tree.exists("/x")
    tree.rm("/")
    assert tree.exists("/")


# ---------------------------------------------------------------------------- rm


def test_rm_removes_a_subtree_and_leaves_an_empty_parent() -> None:
    tree = tree_of('{"a": {"b": {"c": "1"}}}')
    tree.rm("/a/b")
    assert tree.list("/a") == []
    assert tree.exists("/a")
    assert tree.dump("/a") == "{ }\n"


def test_rm_prunes_empty_nodes_on_the_way() -> None:
    tree = tree_of('{"m": null, "a": {"n": null, "x": "1", "e": {}}, "k": "2"}')
    tree.rm("/a/x")
    assert tree.list("/") == ["a", "k"]  # /m pruned
    assert tree.list("/a") == ["e"]  # /a/n pruned, {} kept


def test_rm_missing_path_still_prunes_on_the_existing_prefix() -> None:
    tree = tree_of('{"m": null, "a": "1"}')
    change = tree.rm("/nope/deeper")
    assert tree.list("/") == ["a"]
    assert change.op == RmOp(("nope", "deeper"))


def test_rm_missing_changes_nothing_when_nothing_to_prune() -> None:
    tree = tree_of('{"a": "1"}')
    assert tree.rm("/nope").op is None
    assert tree.rm("/a/below").op is None  # below a leaf: unchanged
    assert tree.read("/a") == "1"


def test_rm_root_empties_the_database() -> None:
    tree = tree_of('{"a": "1"}')
    tree.rm("/")
    assert tree.list("/") == []
    assert tree.dump("/") == "null\n"
    assert tree.rm("/").op is None


def test_rm_binary_fails_but_its_parent_can_go() -> None:
    tree = DbTree({"vm": {"u": {"bin": Binary("/f"), "x": "1"}}})
    for path in ("/vm/u/bin", "/vm/u/bin/x"):
        with pytest.raises(DbBinaryNodeError, match="cannot remove binary file nodes"):
            tree.rm(path)
    assert tree.list("/vm/u") == ["bin", "x"]
    tree.rm("/vm/u")
    assert tree.list("/vm") == []


# ---------------------------------------------------------------------------- files touched


def test_changes_name_the_files_they_dirty() -> None:
    tree = DbTree()
    assert tree.write("/a/b", "1").dirty == {"db"}
    assert tree.write("/vm/u1/name", "x").dirty == {"vms/u1.db"}
    assert tree.write("/vm/u2/name", "y").dirty == {"vms/u2.db"}
    assert tree.write("/dom-store/u1/k", "v").dirty == {"dom-store/u1.db"}
    change = tree.rm("/vm/u1")
    assert change.dirty == set() and change.removed == {"vms/u1.db"}
    change = tree.rm("/vm/u2")  # /vm left empty: it moves into `db`
    assert change.dirty == {"db"} and change.removed == {"vms/u2.db"}


def test_root_operations_touch_every_file() -> None:
    tree = DbTree()
    tree.write("/vm/u1/name", "x")
    tree.write("/dom-store/d/k", "v")
    change = tree.inject("/", '{"vm": {"u9": {"name": "z"}}}')
    assert change.dirty == {"db", "vms/u9.db"}
    assert change.removed == {"vms/u1.db", "dom-store/d.db"}
    change = tree.rm("/")
    assert change.dirty == {"db"} and change.removed == {"vms/u9.db"}


def test_pruned_empty_vm_removes_its_file() -> None:
    tree = DbTree()
    tree.inject("/vm", '{"gone": null, "u": {"a": "1"}}')
    change = tree.rm("/vm/u/a")
    assert "vms/gone.db" in change.removed
    assert tree.list("/vm") == ["u"]


def test_render_files_in_the_original_layout() -> None:
    tree = DbTree()
    tree.write("/a", "1")
    tree.write("/vm/u1/name", "x")
    assert tree.file_keys() == {"db", "vms/u1.db"}
    files = tree.render_files(tree.file_keys())
    assert files["db"] == b'{\n  "a": "1"\n}\n'
    assert files["vms/u1.db"] == b'{\n  "name": "x"\n}\n'
    tree.rm("/vm/u1")
    assert tree.render_files(["db", "vms/u1.db"]) == {
        "db": b'{\n  "a": "1",\n  "vm": { }\n}\n',
        "vms/u1.db": None,
    }


def test_binary_children_have_no_file() -> None:
    tree = DbTree({"vm": {"b": Binary("/f"), "u": {}}})
    assert tree.file_keys() == {"db", "vms/u.db"}
    assert tree.render_file("vms/b.db") is None


# ---------------------------------------------------------------------------- domstore


def test_confinement() -> None:
    assert confine_path("/a/b", Caller(0)) == "/a/b"
    assert confine_path("a", Caller(3, "u-1")) == "/dom-store/u-1/a"
    with pytest.raises(DbError, match="failed to get the domid"):
        confine_path("/a", Caller(None))
    with pytest.raises(DbError, match="failed to resolve domid 4 to uuid"):
        confine_path("/a", Caller(4, None))
    with pytest.raises(DbError, match="unusable uuid"):
        confine_path("/a", Caller(4, "/"))


def test_a_guest_cannot_leave_its_domstore() -> None:
    tree = DbTree()
    tree.write("/secret", "s")
    guest = Caller(7, "u7")
    tree.write(confine_path("/../../secret", guest), "mine")
    assert tree.read("/secret") == "s"
    assert tree.read(confine_path("/../../secret", guest)) == "mine"
    assert tree.list("/dom-store/u7") == [".."]


# ---------------------------------------------------------------------------- limits


def test_value_size_limit() -> None:
    tree = DbTree(limits=Limits(max_value_bytes=4))
    tree.write("/a", "1234")
    with pytest.raises(DbLimitError, match="value of 5 bytes for /a exceeds the limit of 4"):
        tree.write("/a", "12345")
    with pytest.raises(DbLimitError, match="exceeds the limit of 4"):
        tree.inject("/a", '{"x": "12345"}')
    assert tree.read("/a") == "1234"


def test_path_limits() -> None:
    tree = DbTree(limits=Limits(max_path_bytes=20, max_depth=3, max_segment_bytes=5))
    with pytest.raises(DbLimitError, match="path of 21 bytes"):
        tree.read("/" + "a/" * 10)
    with pytest.raises(DbLimitError, match="4 levels, more than the limit of 3"):
        tree.write("/a/b/c/d", "v")
    with pytest.raises(DbLimitError, match="segment 1 of 6 bytes"):
        tree.exists("/abcdef")
    with pytest.raises(DbLimitError, match="more than 3 levels"):
        tree.inject("/a/b", '{"c": {"d": "1"}}')
    tree.inject("/a/b", '{"c": "1"}')


def test_inject_size_and_key_rules() -> None:
    tree = DbTree(limits=Limits(max_inject_bytes=10))
    with pytest.raises(DbLimitError, match="inject text of 11 bytes"):
        tree.inject("/a", '"123456789"')
    tree = DbTree()
    for bad in ('{"": "1"}', '{"a/b": "1"}', '{"a\\u0000": "1"}'):
        with pytest.raises(DbNameError):
            tree.inject("/a", bad)
    with pytest.raises(DbNameError, match="NUL"):
        tree.write("/a\0b", "v")
    assert tree.dump("/") == "null\n"


def test_limits_do_not_apply_to_replay() -> None:
    tree = DbTree(limits=Limits(max_value_bytes=1, max_depth=1))
    tree.apply(WriteOp(("a", "b", "c"), "long value"))
    assert tree.root == {"a": {"b": {"c": "long value"}}}


# ---------------------------------------------------------------------------- model test
#
# The model is a second, deliberately naive implementation of §3.2: immutable tuples of
# (name, subtree) pairs, rebuilt on every operation, as the original's functional code did.

EMPTY: tuple[str] = ("empty",)


def m_from_json(value: Any) -> Any:
    if value is None:
        return EMPTY
    if isinstance(value, dict):
        return ("nodes", tuple((k, m_from_json(v)) for k, v in value.items()))
    return ("leaf", value)


def m_to_json(tree: Any) -> Any:
    if tree[0] == "empty":
        return None
    if tree[0] == "leaf":
        return tree[1]
    return {k: m_to_json(v) for k, v in tree[1]}


def m_get(tree: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        if tree[0] != "nodes":
            return None
        found = [sub for k, sub in tree[1] if k == name]
        if not found:
            return None
        tree = found[0]
    return tree


def m_put(tree: Any, path: tuple[str, ...], value: Any, write: bool) -> Any:
    if not path:
        return tree if (write and tree[0] == "nodes") else value
    head, rest = path[0], path[1:]
    if tree[0] != "nodes":
        return ("nodes", ((head, m_put(EMPTY, rest, value, write)),))
    if head not in [k for k, _ in tree[1]]:
        return ("nodes", (*tree[1], (head, m_put(EMPTY, rest, value, write))))
    children = tuple((k, m_put(v, rest, value, write) if k == head else v) for k, v in tree[1])
    return ("nodes", children)


def m_rm(tree: Any, path: tuple[str, ...]) -> Any:
    if not path:
        return EMPTY
    if tree[0] != "nodes":
        return tree
    head, rest = path[0], path[1:]
    children = tuple((k, m_rm(v, rest) if k == head else v) for k, v in tree[1])
    return ("nodes", tuple((k, v) for k, v in children if v != EMPTY))


def m_read(tree: Any, path: tuple[str, ...]) -> str:
    node = m_get(tree, path)
    if node is None or node[0] != "leaf":
        return ""
    value = node[1]
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "%f" % value  # noqa: UP031
    return ""


SEGMENTS = st.sampled_from(["a", "b", "vm", "dom-store", "u1"])
PATHS = st.lists(SEGMENTS, max_size=3).map(tuple)
SEPARATORS = st.sampled_from(["/", "//"])
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.sampled_from([0.5, -2.25, 1000.0])
    | st.text(alphabet="ab/\"\\é\n", max_size=4),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "b", "u1", "vm"]), children, max_size=3),
    max_leaves=8,
)


@st.composite
def raw_paths(draw: st.DrawFn) -> str:
    path = draw(PATHS)
    sep = draw(SEPARATORS)
    return sep + sep.join(path) + draw(st.sampled_from(["", "/"]))


OPS = st.one_of(
    st.tuples(st.just("write"), raw_paths(), st.text(alphabet="xy/\"é", max_size=3)),
    st.tuples(st.just("inject"), raw_paths(), JSON_VALUES.map(json.dumps)),
    st.tuples(st.just("rm"), raw_paths(), st.none()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(OPS, max_size=25))
def test_tree_matches_the_model(ops: list[tuple[str, str, str | None]]) -> None:
    tree = DbTree()
    model: Any = EMPTY
    probes = [(), ("a",), ("a", "b"), ("vm",), ("vm", "u1"), ("dom-store", "u1", "a")]
    for kind, path, arg in ops:
        segs = split_path(path)
        if kind == "write":
            assert arg is not None
            tree.write(path, arg)
            model = m_put(model, segs, ("leaf", arg), write=True)
        elif kind == "inject":
            assert arg is not None
            tree.inject(path, arg)
            model = m_put(model, segs, m_from_json(json.loads(arg)), write=False)
        else:
            tree.rm(path)
            model = m_rm(model, segs)
        for probe in probes:
            text = "/" + "/".join(probe)
            node = m_get(model, probe)
            assert tree.read(text) == m_read(model, probe)
            assert tree.exists(text) == (node is not None)
            names = [k for k, _ in node[1]] if node and node[0] == "nodes" else []
            assert tree.list(text) == names
        assert tree.dump("/") == dumps_pretty(m_to_json(model))
