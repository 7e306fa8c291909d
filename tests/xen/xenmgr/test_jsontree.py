"""JSON trees of strings: strict bounded parsing, read-only values, the deep merge's laws."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xen.xenmgr._jsontree import (
    EMPTY_TREE,
    MAX_DEPTH,
    MAX_KEY_BYTES,
    TreeError,
    TreeView,
    check_tree,
    deep_merge,
    freeze,
    get_leaf,
    get_node,
    leaves,
    map_strings,
    parse_db_bool,
    parse_tree,
    thaw,
    tree_to_json,
    with_leaf,
)

# ------------------------------------------------------------------ parsing


def test_a_tree_parses_keeping_key_order_and_nesting() -> None:
    tree = parse_tree('{"b": "1", "a": {"z": "2", "y": {}}}', source="t")
    assert list(tree) == ["b", "a"]
    assert list(get_node(tree, "a") or {}) == ["z", "y"]
    assert thaw(tree) == {"b": "1", "a": {"z": "2", "y": {}}}


def test_bytes_are_utf8() -> None:
    assert get_leaf(parse_tree('{"n": "caf\u00e9"}'.encode(), source="t"), "n") == "caf\u00e9"
    with pytest.raises(TreeError, match=r"t: is not UTF-8 text"):
        parse_tree(b'{"n": "\xff"}', source="t")


@pytest.mark.parametrize(("text", "key", "reason"), [
    ('{"a": 1}', "a", "must be a string or an object, not a number"),
    ('{"a": {"b": true}}', "a/b", "not a boolean"),
    ('{"a": null}', "a", "not null"),
    ('{"a": ["x"]}', "a", "not an array"),
    ('{"a": 1.5}', "a", "not a fractional number"),
    ('{"": "x"}', "/", "an empty key"),
    ('{"c": {"a/b": "x"}}', "c/a/b", "cannot contain '/'"),
    ('{"a\\u0001": "x"}', "a\x01", "control characters"),
    ('{"a": "x\\u0000y"}', "a", "cannot contain NUL"),
    ('{"a": "\\ud800"}', "a", "lone surrogate"),
    ('{"\\udfff": "x"}', "\udfff", "lone surrogate"),
    ('{"a": "1", "a": "2"}', "a", "appears twice"),
    ('{"c": {"a": "1", "a": {}}}', "c/a", "appears twice"),
    ('{"k": "' + "x" * 10 + '", "' + "k" * (MAX_KEY_BYTES + 1) + '": "v"}',
     "k" * (MAX_KEY_BYTES + 1), f"at most {MAX_KEY_BYTES} bytes"),
])
def test_a_bad_value_or_key_is_named_with_its_path(text: str, key: str, reason: str) -> None:
    with pytest.raises(TreeError) as caught:
        parse_tree(text, source="/etc/x.json")
    assert caught.value.key == key
    assert caught.value.source == "/etc/x.json"
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"/etc/x.json: key {key!r}: ")


@pytest.mark.parametrize(("text", "reason"), [
    ("", "is not valid JSON"),
    ('{"a": "x"', "is not valid JSON"),
    ('{"a": NaN}', "is not valid JSON"),
    ('{"a": Infinity}', "is not valid JSON"),
    ('["a"]', "must be a JSON object at the top level, not an array"),
    ('"a"', "must be a JSON object at the top level, not a string"),
    ("null", "not null"),
])
def test_a_document_that_is_not_an_object_is_refused(text: str, reason: str) -> None:
    with pytest.raises(TreeError, match=reason) as caught:
        parse_tree(text, source="json")
    assert caught.value.key == ""


def test_size_and_depth_are_bounded() -> None:
    big = json.dumps({"a": "x" * 100})
    assert parse_tree(big, source="t", max_bytes=len(big))
    with pytest.raises(TreeError, match="more than the 50 bytes"):
        parse_tree(big, source="t", max_bytes=50)
    with pytest.raises(TreeError, match="more than the 50 bytes"):
        parse_tree(big.encode(), source="t", max_bytes=50)
    # characters count as their UTF-8 bytes
    wide = json.dumps({"a": "\u20ac" * 20}, ensure_ascii=False)
    assert len(wide) < 50
    with pytest.raises(TreeError, match="more than the 50 bytes"):
        parse_tree(wide, source="t", max_bytes=50)
    ok = "{" + '"a": {' * (MAX_DEPTH - 1) + '"b": "c"' + "}" * MAX_DEPTH
    assert get_leaf(parse_tree(ok, source="t"), "a/" * (MAX_DEPTH - 1) + "b") == "c"
    deep = "{" + '"a": {' * MAX_DEPTH + "}" * (MAX_DEPTH + 1)
    with pytest.raises(TreeError, match="nested more than"):
        parse_tree(deep, source="t")
    very_deep = '{"a": ' * 100_000 + "{}" + "}" * 100_000
    with pytest.raises(TreeError, match=r"nested more than|more than the"):
        parse_tree(very_deep, source="t", max_bytes=10_000_000)


def test_coercion_turns_integers_and_booleans_into_their_db_text() -> None:
    tree = parse_tree('{"m": 2048, "t": true, "f": false, "n": -3, "s": "x"}', source="json",
                      coerce_scalars=True)
    assert thaw(tree) == {"m": "2048", "t": "true", "f": "false", "n": "-3", "s": "x"}
    for text in ('{"a": 1.0}', '{"a": null}', '{"a": []}'):
        with pytest.raises(TreeError, match="a string, an integer, a boolean or an object"):
            parse_tree(text, source="json", coerce_scalars=True)


def test_check_tree_validates_in_memory_values_too() -> None:
    assert thaw(check_tree({"a": {"b": "c"}}, source="mem")) == {"a": {"b": "c"}}
    with pytest.raises(TreeError, match=r"key 'a/b'.*not a number"):
        check_tree({"a": {"b": 3}}, source="mem")
    with pytest.raises(TreeError, match="not a string"):
        check_tree({1: "x"}, source="mem")
    with pytest.raises(TreeError, match="top level"):
        check_tree(["x"], source="mem")


# ------------------------------------------------------------------ read-only values and paths


def test_trees_are_read_only_and_thaw_gives_an_independent_copy() -> None:
    tree = parse_tree('{"a": {"b": "c"}}', source="t")
    with pytest.raises(TypeError):
        tree["x"] = "y"  # type: ignore[index]
    inner = get_node(tree, "a")
    assert inner is not None
    with pytest.raises(TypeError):
        inner["b"] = "z"  # type: ignore[index]
    copy = thaw(tree)
    inner_copy = copy["a"]
    assert isinstance(inner_copy, dict)
    inner_copy["b"] = "z"
    assert get_leaf(tree, "a/b") == "c"
    source = {"a": {"b": "c"}}
    frozen = freeze(source)
    source["a"]["b"] = "changed"
    assert get_leaf(frozen, "a/b") == "c"


def test_paths() -> None:
    tree = freeze({"a": {"b": "c", "d": {}}, "s": "v"})
    assert get_leaf(tree, "a/b") == "c"
    assert get_leaf(tree, "/a//b/") == "c"
    assert get_leaf(tree, "a") is None
    assert get_leaf(tree, "a/b/c") is None
    assert get_leaf(tree, "") is None
    assert get_node(tree, "") == tree
    assert get_node(tree, "a/d") == {}
    assert get_node(tree, "s") is None
    assert get_node(tree, "missing/x") is None
    assert list(leaves(tree)) == [("a/b", "c"), ("s", "v")]


def test_with_leaf_writes_like_the_db() -> None:
    tree = freeze({"s": "v", "a": {"b": "c"}})
    assert thaw(with_leaf(tree, "a/x", "1")) == {"s": "v", "a": {"b": "c", "x": "1"}}
    assert thaw(with_leaf(tree, "n/m", "2")) == {"s": "v", "a": {"b": "c"}, "n": {"m": "2"}}
    assert thaw(with_leaf(tree, "s/t", "3")) == {"s": {"t": "3"}, "a": {"b": "c"}}
    assert thaw(with_leaf(tree, "a", "4")) == {"s": "v", "a": "4"}
    assert thaw(tree) == {"s": "v", "a": {"b": "c"}}  # unchanged
    with pytest.raises(ValueError, match="non-empty path"):
        with_leaf(tree, "/", "x")


def test_map_strings_and_json() -> None:
    tree = freeze({"a": "x", "b": {"c": "xy"}})
    assert thaw(map_strings(tree, str.upper)) == {"a": "X", "b": {"c": "XY"}}
    assert json.loads(tree_to_json(tree)) == {"a": "x", "b": {"c": "xy"}}
    assert tree_to_json(freeze({"n": "\u00e9"})) == '{"n": "\u00e9"}'


@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("yes", True), ("1", True), ("false", False), ("no", False), ("0", False)])
def test_db_booleans(text: str, value: bool) -> None:
    assert parse_db_bool(text, what="x") is value


@pytest.mark.parametrize("text", ["True", "y", "", " true", "2"])
def test_other_booleans_are_errors_naming_what(text: str) -> None:
    with pytest.raises(ValueError, match=r"^flag is .* not a boolean"):
        parse_db_bool(text, what="flag")


# ------------------------------------------------------------------ the deep merge

KEYS = st.sampled_from(["a", "b", "c", "config", "disk", "0", "1"])
TREES: st.SearchStrategy[TreeView] = st.recursive(
    st.dictionaries(KEYS, st.text(max_size=3), max_size=4),
    lambda inner: st.dictionaries(KEYS, st.one_of(st.text(max_size=3), inner), max_size=4),
    max_leaves=12,
).map(freeze)


def _leaf_paths(tree: TreeView) -> dict[str, str]:
    return dict(leaves(tree))


@settings(max_examples=300)
@given(TREES)
def test_merge_identities(tree: TreeView) -> None:
    assert deep_merge(tree, EMPTY_TREE) == tree
    assert deep_merge(EMPTY_TREE, tree) == tree
    assert deep_merge(tree, tree) == tree


@settings(max_examples=300)
@given(TREES, TREES)
def test_merge_is_right_biased(base: TreeView, over: TreeView) -> None:
    merged = deep_merge(base, over)
    got = _leaf_paths(merged)
    # every string of the overlay is in the result at its path
    for path, value in _leaf_paths(over).items():
        assert got[path] == value
    # every string of the base survives unless the overlay has something at or above its path
    for path, value in _leaf_paths(base).items():
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        shadowed = any(get_leaf(over, p) is not None for p in prefixes) or \
            get_node(over, path) is not None
        if not shadowed:
            assert got[path] == value
    # nothing appears that neither side had
    for path in got:
        assert path in _leaf_paths(over) or path in _leaf_paths(base)
    # keys: the base's in order, then the overlay's new ones in order
    assert list(merged) == list(base) + [k for k in over if k not in base]
    # merging the result again with the same overlay changes nothing
    assert deep_merge(merged, over) == merged


def test_merge_replaces_across_kinds_and_merges_objects() -> None:
    base = freeze({"name": "a", "config": {"memory": "1", "disk": {"0": {"path": "p"}}}})
    over = freeze({"config": {"memory": "2", "disk": {"0": {"mode": "r"}}}, "name": {"x": "y"}})
    assert thaw(deep_merge(base, over)) == {
        "name": {"x": "y"},
        "config": {"memory": "2", "disk": {"0": {"path": "p", "mode": "r"}}}}
    assert thaw(deep_merge(over, base))["name"] == "a"


def test_merge_does_not_share_the_overlays_mutable_objects() -> None:
    over: dict[str, object] = {"a": {"b": "c"}}
    merged = deep_merge(EMPTY_TREE, over)  # type: ignore[arg-type]
    inner = over["a"]
    assert isinstance(inner, dict)
    inner["b"] = "changed"
    assert get_leaf(merged, "a/b") == "c"
    assert not isinstance(merged["a"], dict)
    assert isinstance(merged["a"], Mapping)
