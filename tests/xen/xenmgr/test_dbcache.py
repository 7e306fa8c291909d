"""The VM subtree cache keeps copies only while dbd's change signals say they are current."""

from __future__ import annotations

from jeepney.low_level import HeaderFields, Message

from rpc.dbus._messages import signal
from xen.xenmgr._dbcache import CHANGES_INTERFACE, VmTreeCache, match_rules
from xen.xenmgr._dbclient import DbClient

U1, U2 = "u-1", "u-2"


def changed(path: str, seq: int, sender: str = ":1.7") -> Message:
    msg = signal("/", CHANGES_INTERFACE, "changed", "st", (path, seq))
    msg.header.fields[HeaderFields.sender] = sender
    return msg


def owner_changed(name: str) -> Message:
    bus = "org.freedesktop.DBus"
    return signal("/org/freedesktop/DBus", bus, "NameOwnerChanged", "sss", (name, ":1.7", ""))


def filled(cache: VmTreeCache) -> VmTreeCache:
    for uuid in (U1, U2):
        cache.put(uuid, {"name": uuid}, cache.token())
    return cache


def test_nothing_is_kept_before_the_database_has_signalled() -> None:
    cache = filled(VmTreeCache())
    assert not cache.active and cache.get(U1) is None
    cache.on_signal(changed("/xenmgr/x", 1))
    assert cache.active
    assert filled(cache).get(U1) == {"name": U1}


def test_a_path_drops_its_vm_or_everything() -> None:
    cache = VmTreeCache()
    cache.on_signal(changed("/other", 1))
    filled(cache)
    cache.on_signal(changed("/xenmgr/x", 2))
    assert cache.get(U1) and cache.get(U2)
    cache.on_signal(changed(f"/vm//{U1}/config/memory", 3))
    assert cache.get(U1) is None and cache.get(U2)
    filled(cache).on_signal(changed("/vm", 4))
    assert cache.get(U1) is None and cache.get(U2) is None
    filled(cache).on_signal(changed("/", 5))
    assert cache.get(U2) is None and cache.active


def test_a_lost_signal_or_a_new_database_drops_everything() -> None:
    cache = VmTreeCache()
    cache.on_signal(changed("/x", 1))
    filled(cache).on_signal(changed("/x", 3))  # 2 was lost
    assert cache.get(U1) is None and cache.active
    filled(cache).on_signal(changed("/x", 4, sender=":1.99"))  # another connection
    assert cache.get(U1) is None and cache.active
    filled(cache).on_signal(owner_changed("com.citrix.xenclient.db"))
    assert not cache.active and cache.get(U1) is None
    cache.on_signal(owner_changed("org.other"))
    cache.on_signal(changed("/x", 1, sender=":1.100"))
    assert cache.active


def test_a_dump_that_raced_a_change_is_not_kept() -> None:
    cache = VmTreeCache()
    cache.on_signal(changed("/x", 1))
    token = cache.token()
    cache.on_signal(changed(f"/vm/{U1}/name", 2))  # arrives while the dump is on its way
    cache.put(U1, {"name": "old"}, token)
    assert cache.get(U1) is None
    cache.put(U1, {"name": "new"}, cache.token())
    assert cache.get(U1) == {"name": "new"}


def test_a_malformed_signal_stops_the_copies() -> None:
    cache = VmTreeCache()
    cache.on_signal(changed("/x", 1))
    filled(cache)
    bad = signal("/", CHANGES_INTERFACE, "changed", "ss", ("/x", "2"))
    cache.on_signal(bad)
    assert not cache.active and cache.get(U1) is None


def test_the_rules_name_the_database() -> None:
    assert all("com.citrix.xenclient.db" in rule for rule in match_rules())


def test_the_copy_of_every_vm_goes_with_any_vm_change() -> None:
    cache = VmTreeCache()
    everything = {U1: {"name": U1}, U2: {"name": U2}}
    cache.put_all(everything, cache.token())
    assert cache.get_all() is None  # not before the database signalled
    cache.on_signal(changed("/xenmgr/x", 1))
    token = cache.token()
    cache.put_all(everything, token)
    assert cache.get_all() == everything
    cache.on_signal(changed("/xenmgr/y", 2))  # not a VM: kept
    assert cache.get_all() == everything
    cache.on_signal(changed(f"/vm/{U2}/name", 3))  # any VM: dropped
    assert cache.get_all() is None
    cache.put_all(everything, token)  # a dump that raced that change: not kept
    assert cache.get_all() is None


class _CountingDb(DbClient):
    """DbClient whose database is a dict (no bus): counts the dumps."""

    def __init__(self, trees: dict[str, dict[str, object]], cache: VmTreeCache) -> None:
        self.cache = cache
        self.trees = trees
        self.dumps = 0

    def vm_tree(self, uuid: str) -> dict[str, object]:
        self.dumps += 1
        return self.trees.get(uuid, {})


def test_cached_vm_tree_reads_once_while_current_and_never_keeps_a_malformed_tree() -> None:
    cache = VmTreeCache()
    db = _CountingDb({U1: {"keep-alive": "true"}, U2: {"bad": {"x": b"?"}}}, cache)
    assert db.cached_vm_tree(U1) == {"keep-alive": "true"} and db.dumps == 1
    assert db.cached_vm_tree(U1) and db.dumps == 2  # nothing kept before dbd signalled
    cache.on_signal(changed("/xenmgr/x", 1))
    db.cached_vm_tree(U1)
    db.cached_vm_tree(U1)
    assert db.dumps == 3  # one dump, then the copy
    db.trees[U1] = {"keep-alive": "false"}
    cache.on_signal(changed(f"/vm/{U1}/keep-alive", 2))
    assert db.cached_vm_tree(U1) == {"keep-alive": "false"} and db.dumps == 4
    assert db.cached_vm_tree(U2) == db.cached_vm_tree(U2) == {"bad": {"x": b"?"}}
    assert db.dumps == 6 and cache.get(U2) is None  # used as read, never kept
