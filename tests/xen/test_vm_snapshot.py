"""What a VM monitor persists: the view's snapshot encoding (version 2, version 1 still read)
and the save file's header."""

from __future__ import annotations

from typing import Any

import pytest

from actors import decode, encode
from xen.xenvm import config_to_dict, parse_config, set_field
from xen.xenvm._config_values import Action
from xen.xenvm._image import IMAGE_MAGIC, ImageError, decode_header, encode_header
from xen.xenvm._lifecycle import DeathCause, DomainPreserved, DomainRebooted, DomainReleased
from xen.xenvm._lifecycle import State as S
from xen.xenvm._snapshot import (
    SNAPSHOT_VERSION,
    Destroying,
    Operation,
    PendingAction,
    Rebooting,
    Restoring,
    ShuttingDown,
    SnapshotError,
    Starting,
    Suspending,
    VmView,
    decode_snapshot,
    encode_snapshot,
)

UUID = "00000000-0000-4000-8000-000000000001"
CFG = parse_config("name = snap\nmemory = 64\nkernel = /boot/vmlinuz\nnic = id=0,bridge=b0\n")
OPS: list[Operation | None] = [
    None, Starting(paused=True), ShuttingDown(force=True), Rebooting(auto_start=False),
    Destroying(), Suspending("/srv/x.img", written=True), Restoring("/srv/x.img"),
    Restoring("/srv/x.img", paused=True)]


def _view(op: Operation | None, pending: PendingAction | None = None) -> VmView:
    return VmView(UUID, S.REBOOTING, 7, -1, CFG, set_field(CFG, "memory", "96"), op, pending)


@pytest.mark.parametrize("op", OPS, ids=lambda op: type(op).__name__)
def test_round_trip_through_msgpack(op: Operation | None) -> None:
    for pending in (None, PendingAction(7, DeathCause.CRASH, Action.RESTART, DomainRebooted()),
                    PendingAction(7, DeathCause.DESTROYED, None, DomainReleased())):
        view = _view(op, pending)
        data = decode(encode(encode_snapshot(view)))  # what the snapshot store gives back
        assert data["v"] == SNAPSHOT_VERSION == 2
        assert decode_snapshot(data) == view


def _v1(op: dict[str, Any] | None, pending: dict[str, Any] | None) -> dict[str, Any]:
    """A snapshot exactly as version 1 wrote it."""
    return {"v": 1, "uuid": UUID, "state": "rebooting", "domid": 7, "stubdom_domid": -1,
            "config": config_to_dict(CFG),
            "next_config": config_to_dict(set_field(CFG, "memory", "96")),
            "op": op, "pending_action": pending}


@pytest.mark.parametrize(("raw", "op"), [
    (None, None),
    ({"name": "start", "paused": True}, Starting(paused=True)),
    ({"name": "shutdown", "force": True, "auto_start": True}, ShuttingDown(force=True)),
    ({"name": "reboot", "force": False, "auto_start": False}, Rebooting(auto_start=False)),
    ({"name": "destroy"}, Destroying()),
    ({"name": "suspend", "file": "/srv/x.img", "written": True},
     Suspending("/srv/x.img", written=True)),
    # it does not say whether the restore was to leave the guest paused: read as paused
    ({"name": "restore", "file": "/srv/x.img"}, Restoring("/srv/x.img", paused=True)),
])
def test_version_1_operations_are_read(raw: dict[str, Any] | None,
                                       op: Operation | None) -> None:
    assert decode_snapshot(decode(encode(_v1(raw, None)))) == _view(op)


@pytest.mark.parametrize(("raw", "pending"), [
    ({"domid": 7, "cause": "crash", "action": "restart", "event": "DomainRebooted"},
     PendingAction(7, DeathCause.CRASH, Action.RESTART, DomainRebooted())),
    ({"domid": 7, "cause": "crash", "action": "preserve", "event": "DomainPreserved"},
     PendingAction(7, DeathCause.CRASH, Action.PRESERVE, DomainPreserved())),
    ({"domid": 7, "cause": "destroyed", "action": "none", "event": "DomainReleased"},
     PendingAction(7, DeathCause.DESTROYED, None, DomainReleased())),
])
def test_version_1_pending_actions_are_read(raw: dict[str, Any],
                                            pending: PendingAction) -> None:
    assert decode_snapshot(_v1(None, raw)) == _view(None, pending)


@pytest.mark.parametrize(("change", "error"), [
    ({"v": 3}, "unknown snapshot version 3"),
    ({"v": None}, "unknown snapshot version None"),
    ({"state": "sleeping"}, "bad snapshot"),
    ({"config": {"format": "nope"}}, "bad snapshot"),
    ({"domid": "7"}, "domid must be int"),
    ({"domid": True}, "domid must be int"),
    ({"op": {"kind": "fly"}}, "unknown operation 'fly'"),
    ({"op": {"kind": "start", "paused": "yes"}}, "paused must be bool"),
    ({"op": {"kind": "suspend"}}, "missing file"),
    ({"op": ["start"]}, "expected a map"),
    ({"pending_action": {"domid": 7, "cause": "crash", "action": None, "event": "gone"}},
     "unknown death event 'gone'"),
    ({"pending_action": {"domid": 7, "cause": "boredom", "action": None,
                         "event": "released"}}, "bad pending action"),
])
def test_bad_snapshots_are_refused_with_the_reason(change: dict[str, Any], error: str) -> None:
    data = {**encode_snapshot(_view(Starting())), **change}
    with pytest.raises(SnapshotError, match=error):
        decode_snapshot(data)


def test_a_snapshot_without_uuid_is_refused() -> None:
    uuidless = {k: v for k, v in encode_snapshot(_view(None)).items() if k != "uuid"}
    with pytest.raises(SnapshotError, match="missing uuid"):
        decode_snapshot(uuidless)


# ------------------------------------------------------------------ the save file's header


def test_header_round_trip_and_the_memory_section_after_it() -> None:
    header = encode_header(UUID, CFG)
    assert header.startswith(IMAGE_MAGIC)
    for section in (b"", b"\x00" * 100 + b"guest memory"):
        cfg, offset = decode_header(header + section, UUID, "f.img")
        assert cfg == CFG and offset == len(header)


def test_an_image_of_the_first_version_reads_the_same() -> None:
    """Version 1 wrote the magic and the record only: the same bytes, an empty section."""
    old = IMAGE_MAGIC + encode({"v": 1, "uuid": UUID, "config": config_to_dict(CFG)})
    assert decode_header(old, UUID, "old.img") == (CFG, len(old))
    assert encode_header(UUID, CFG) == old


@pytest.mark.parametrize(("data", "error"), [
    (b"nonsense", "not a saved domain image"),
    (IMAGE_MAGIC, "damaged: truncated header"),
    (IMAGE_MAGIC + encode_header(UUID, CFG)[len(IMAGE_MAGIC):-3], "truncated header"),
    (IMAGE_MAGIC + encode({"v": 2, "uuid": UUID}), "unknown image version"),
    (IMAGE_MAGIC + encode(["not", "a", "map"]), "unknown image version"),
    (IMAGE_MAGIC + b"\xc1", "damaged"),
    (IMAGE_MAGIC + encode({"v": 1, "uuid": UUID, "config": {}}), "damaged"),
    (encode_header("00000000-0000-4000-8000-000000000002", CFG), "holds VM .*0002, not"),
])
def test_bad_headers_are_refused_naming_the_file(data: bytes, error: str) -> None:
    with pytest.raises(ImageError, match=error) as info:
        decode_header(data, UUID, "/srv/f.img")
    assert "/srv/f.img" in str(info.value)
