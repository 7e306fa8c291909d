"""Hook values: entries split at ';', rpc: entries parsed and checked (no I/O here)."""

from __future__ import annotations

import pytest

from xen.xenmgr import BINDINGS, COMPUTED, Computed, HookFailed, parse_hooks
from xen.xenmgr._hooks import RpcHook, parse_rpc


def test_entries() -> None:
    assert parse_hooks(" /bin/a x ; ;rpc:destination=d,interface=i,member=m; ") == [
        "/bin/a x", "rpc:destination=d,interface=i,member=m"]
    assert parse_hooks("") == []


def test_rpc_entries() -> None:
    assert parse_rpc("h", "rpc: destination = 'com.x' , interface=\"i.j\",member=m") == \
        RpcHook("com.x", "i.j", "m", "/")
    assert parse_rpc("h", "rpc:destination=d,interface=i,member=m,objpath=/o").objpath == "/o"
    with pytest.raises(HookFailed, match="missing member"):
        parse_rpc("h", "rpc:destination=d,interface=i")
    with pytest.raises(HookFailed, match="vm="):
        parse_rpc("h", "rpc:destination=d,interface=i,member=m,vm=x")
    with pytest.raises(HookFailed, match="unknown key"):
        parse_rpc("h", "rpc:destination=d,interface=i,member=m,colour=red")
    with pytest.raises(HookFailed, match="not key=value"):
        parse_rpc("h", "rpc:destination")


def test_every_computed_property_has_a_value() -> None:
    names = {b.name for b in BINDINGS.values() if isinstance(b.source, Computed)}
    assert names - set(COMPUTED) == set()
