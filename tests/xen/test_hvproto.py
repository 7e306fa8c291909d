"""The simulated hypervisor's wire protocol: golden frames, chunking, bounds, named errors and
the value codec (an in-memory client/server pair, no sockets)."""

from __future__ import annotations

import struct
import uuid

import msgpack
import pytest

from xen.hypervisor import DomainInfo, DomainSpec, HvmParam, PhysInfo, Version
from xen.hypervisor.wire import (
    MAX_INFOLIST,
    OPS,
    BadPayload,
    ErrorReply,
    HvClientProtocol,
    HvServerProtocol,
    LocalProtocolError,
    MalformedFrame,
    MessageTooLarge,
    OversizeFrame,
    RemoteProtocolError,
    Reply,
    Request,
    UnexpectedMessage,
    UnsupportedVersion,
    decode_dataclass,
    decode_handle,
    encode_value,
)
from xen.sim.hypervisor._model import SimHypervisor

# Written out by hand from the format in the module docstring.
GOLDEN_PAUSE = bytes.fromhex("00000015" "9501a3726571" "01" "a57061757365" "81a5646f6d696403")
GOLDEN_ERROR = bytes.fromhex(
    "00000021" "9601a3657272" "01" "ac4e6f53756368446f6d61696e" "ab6e6f20646f6d61696e2033" "03")
GOLDEN_OK = bytes.fromhex("00000007" "9401a26f6b" "01" "c0")
# The domain-build operations (new op names only: the frame format is unchanged).
GOLDEN_MAX_VCPUS = bytes.fromhex(
    "00000020" "9501a3726571" "01" "a96d61785f7663707573"
    "82" "a5646f6d6964" "03" "a57663707573" "02")
GOLDEN_SHADOW = bytes.fromhex(
    "00000028" "9501a3726571" "02" "b1736861646f775f616c6c6f636174696f6e"
    "82" "a5646f6d6964" "03" "a36d6962" "cd0100")
GOLDEN_SET_PARAM = bytes.fromhex(
    "00000033" "9501a3726571" "03" "ad7365745f68766d5f706172616d"
    "83" "a5646f6d6964" "03" "a5706172616d" "0a" "a576616c7565" "cf8000000000000000")
GOLDEN_GET_PARAM = bytes.fromhex(
    "00000024" "9501a3726571" "04" "ad6765745f68766d5f706172616d"
    "82" "a5646f6d6964" "03" "a5706172616d" "0b")
GOLDEN_OK_U64 = bytes.fromhex("0000000f" "9401a26f6b" "04" "cfffffffffffffffff")


def frame(obj: object) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def test_golden_request_bytes() -> None:
    client = HvClientProtocol()
    assert client.send(client.request("pause", domid=3)) == GOLDEN_PAUSE
    assert client.in_flight == 1


def test_golden_domain_build_requests() -> None:
    client = HvClientProtocol()
    assert client.send(client.request("max_vcpus", domid=3, vcpus=2)) == GOLDEN_MAX_VCPUS
    assert client.send(client.request("shadow_allocation", domid=3, mib=256)) == GOLDEN_SHADOW
    req = client.request("set_hvm_param", domid=3, param=HvmParam.TIMER_MODE, value=1 << 63)
    assert client.send(req) == GOLDEN_SET_PARAM
    assert client.send(client.request("get_hvm_param", domid=3, param=11)) == GOLDEN_GET_PARAM
    assert HvServerProtocol().feed(GOLDEN_SET_PARAM + GOLDEN_GET_PARAM) == [
        Request(3, "set_hvm_param", (("domid", 3), ("param", 10), ("value", 1 << 63))),
        Request(4, "get_hvm_param", (("domid", 3), ("param", 11)))]
    assert HvServerProtocol().send(Reply(4, (1 << 64) - 1)) == GOLDEN_OK_U64
    assert client.feed(GOLDEN_OK_U64) == [Reply(4, (1 << 64) - 1)]


def test_the_wire_only_grew_new_op_names() -> None:
    old = {"version": (), "physinfo": (), "create": ("spec",), "pause": ("domid",),
           "unpause": ("domid",), "shutdown": ("domid", "reason"), "destroy": ("domid",),
           "getinfolist": ("first", "max_domains"), "getinfo": ("domid",),
           "setmaxmem": ("domid", "kib"), "set_handle": ("domid", "handle"),
           "find_by_handle": ("handle",)}
    assert {op: OPS[op] for op in old} == old
    assert set(OPS) - set(old) == {"set_target", "max_vcpus", "shadow_allocation", "set_hvm_param",
                                   "get_hvm_param", "test_assign_device", "assign_device",
                                   "deassign_device", "iomem_permission", "ioport_permission",
                                   "irq_permission", "map_pirq", "unmap_pirq", "sysfs_read",
                                   "sysfs_write", "pci_state", "scsi_devices", "scsi_eject"}


def test_golden_reply_bytes() -> None:
    server = HvServerProtocol()
    assert server.send(ErrorReply(1, "NoSuchDomain", "no domain 3", 3)) == GOLDEN_ERROR
    assert server.send(Reply(1, None)) == GOLDEN_OK


@pytest.mark.parametrize("golden", [GOLDEN_PAUSE, GOLDEN_PAUSE * 3])
def test_server_gets_the_same_requests_at_every_split(golden: bytes) -> None:
    expected = HvServerProtocol().feed(golden)
    assert expected[0] == Request(1, "pause", (("domid", 3),))
    for cut in range(len(golden) + 1):
        server = HvServerProtocol()
        got = server.feed(golden[:cut]) + server.feed(golden[cut:])
        assert got == expected, cut
        assert server.buffered == 0


def test_client_gets_the_same_replies_at_every_split() -> None:
    stream = GOLDEN_ERROR + frame([1, "ok", 2, {"a": [1, b"x"]}])
    for cut in range(len(stream) + 1):
        client = HvClientProtocol()
        client.send(client.request("pause", domid=3))
        client.send(client.request("version"))
        got = client.feed(stream[:cut]) + client.feed(stream[cut:])
        assert got == [ErrorReply(1, "NoSuchDomain", "no domain 3", 3), Reply(2, {"a": [1, b"x"]})]
        assert client.in_flight == 0


def test_byte_at_a_time() -> None:
    server = HvServerProtocol()
    got = [r for b in GOLDEN_PAUSE for r in server.feed(bytes([b]))]
    assert got == [Request(1, "pause", (("domid", 3),))]


def test_oversize_frame_raises_at_the_prefix_and_keeps_the_buffer_bounded() -> None:
    server = HvServerProtocol(max_frame=64)
    with pytest.raises(OversizeFrame, match="frame of 65 bytes announced; the limit is 64"):
        server.feed(struct.pack(">I", 65))
    assert server.buffered == 0
    with pytest.raises(RemoteProtocolError, match="unusable"):
        server.feed(GOLDEN_PAUSE)  # poisoned


def test_oversize_keeps_the_messages_before_it() -> None:
    server = HvServerProtocol(max_frame=64)
    with pytest.raises(OversizeFrame) as err:
        server.feed(GOLDEN_PAUSE + struct.pack(">I", 1 << 31) + b"x" * 100)
    assert err.value.messages == (Request(1, "pause", (("domid", 3),)),)


def test_partial_frames_never_buffer_more_than_one_frame() -> None:
    server = HvServerProtocol(max_frame=64)
    body = msgpack.packb([1, "req", 1, "version", {"pad": "x" * 40}])
    data = struct.pack(">I", len(body)) + body
    for _ in range(50):
        server.feed(data[:-1])
        assert server.buffered <= 4 + 64
        server.feed(data[-1:])
        assert server.buffered == 0


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        (b"\xc1", MalformedFrame, "not msgpack"),
        (b"", MalformedFrame, "not msgpack"),
        (msgpack.packb([1, "req", 1, "pause", {}]) + b"\x00", MalformedFrame, "not msgpack"),
        (msgpack.packb({"v": 1}), MalformedFrame, "not a \\[version"),
        (msgpack.packb([1, "req"]), MalformedFrame, "not a \\[version"),
        (msgpack.packb([2, "req", 7, "pause", {}]), UnsupportedVersion, "version 2"),
        (msgpack.packb([True, "req", 7, "pause", {}]), UnsupportedVersion, "version True"),
        (msgpack.packb([1, "req", -1, "pause", {}]), MalformedFrame, "bad request id"),
        (msgpack.packb([1, "req", "7", "pause", {}]), MalformedFrame, "bad request id"),
        (msgpack.packb([1, "req", 7, "", {}]), MalformedFrame, "bad op"),
        (msgpack.packb([1, "req", 7, "x" * 65, {}]), MalformedFrame, "bad op"),
        (msgpack.packb([1, "req", 7, "pause", []]), MalformedFrame, "not a map"),
        (msgpack.packb([1, "req", 7, "pause", {1: 2}]), MalformedFrame, "not msgpack"),
        (msgpack.packb([1, "bye", 7]), MalformedFrame, "unknown message kind"),
        (msgpack.packb([1, "ok", 7, None]), UnexpectedMessage, "client sent a Reply"),
    ],
)
def test_malformed_frames_get_named_errors(body: bytes, error: type, match: str) -> None:
    server = HvServerProtocol()
    with pytest.raises(error, match=match):
        server.feed(struct.pack(">I", len(body)) + body)
    with pytest.raises(RemoteProtocolError):
        server.feed(GOLDEN_PAUSE)


def test_unsupported_version_carries_the_request_id() -> None:
    with pytest.raises(UnsupportedVersion) as err:
        HvServerProtocol().feed(frame([9, "req", 42, "pause", {}]))
    assert err.value.req_id == 42


def test_client_rejects_unsolicited_replies_and_requests() -> None:
    with pytest.raises(UnexpectedMessage, match="not in flight"):
        HvClientProtocol().feed(GOLDEN_OK)
    client = HvClientProtocol()
    client.send(client.request("version"))
    with pytest.raises(UnexpectedMessage, match="server sent a request"):
        client.feed(frame([1, "req", 1, "pause", {}]))
    client = HvClientProtocol()
    client.send(client.request("version"))
    with pytest.raises(MalformedFrame, match="bad name, message or errno"):
        client.feed(frame([1, "err", 1, "X", "y", "z"]))


def test_client_refuses_to_send_what_the_protocol_forbids() -> None:
    client = HvClientProtocol(max_frame=32)
    with pytest.raises(LocalProtocolError, match="unknown operation"):
        client.request("reboot_host")
    with pytest.raises(LocalProtocolError, match="takes arguments"):
        client.request("pause", dom=1)
    with pytest.raises(MessageTooLarge, match="frame limit is 32"):
        client.send(client.request("find_by_handle", handle=b"x" * 40))
    assert client.in_flight == 0
    req = client.request("version")
    client.send(req)
    with pytest.raises(LocalProtocolError, match="already in flight"):
        client.send(req)
    with pytest.raises(LocalProtocolError, match="cannot encode"):
        HvServerProtocol().send(Reply(1, object()))


def test_every_op_round_trips() -> None:
    client, server = HvClientProtocol(), HvServerProtocol()
    for op, names in OPS.items():
        req = client.request(op, **{n: 1 for n in names})
        (got,) = server.feed(client.send(req))
        assert got == req
        assert [name for name, _ in got.args] == list(names)
    with pytest.raises(BadPayload, match="lacks argument 'domid'"):
        Request(1, "pause").arg("domid")


# --- values ------------------------------------------------------------------------------------


def test_backend_values_round_trip() -> None:
    hv = SimHypervisor(1 << 22)
    vm = uuid.uuid4()
    hv.create(DomainSpec(handle=vm, memory_kib=4096, hvm=True))
    for info in hv.getinfolist():
        assert decode_dataclass(DomainInfo, encode_value(info)) == info
    assert decode_dataclass(PhysInfo, encode_value(hv.physinfo())) == hv.physinfo()
    assert decode_dataclass(Version, encode_value(hv.version())) == hv.version()
    spec = DomainSpec(handle=vm, max_memory_kib=None, max_vcpus=3)
    assert decode_dataclass(DomainSpec, encode_value(spec)) == spec
    assert decode_handle(encode_value(vm)) == vm


def test_largest_infolist_reply_fits_a_frame() -> None:
    hv = SimHypervisor(1 << 30)
    for _ in range(MAX_INFOLIST):
        hv.create(DomainSpec(handle=uuid.uuid4(), memory_kib=4))
    infos = hv.getinfolist(0, MAX_INFOLIST)
    data = HvServerProtocol().send(Reply(1, encode_value(infos)))
    assert len(data) < 1 << 20


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([], "must be a map"),
        ({"major": 4, "minor": 17}, "lacks field 'extra'"),
        ({"major": 4, "minor": 17, "extra": "", "x": 1}, "unknown fields \\['x'\\]"),
        ({"major": 4, "minor": 17, "x": 1}, "unknown fields \\['x'\\]"),  # before the missing
        ({"major": "4", "minor": 17, "extra": ""}, "Version.major must be int"),
        ({"major": True, "minor": 17, "extra": ""}, "Version.major must be int"),
    ],
)
def test_bad_values_are_named(obj: object, match: str) -> None:
    with pytest.raises(BadPayload, match=match):
        decode_dataclass(Version, obj)


def test_bad_spec_and_handle_are_named() -> None:
    spec = encode_value(DomainSpec())
    with pytest.raises(BadPayload, match="max_vcpus"):
        decode_dataclass(DomainSpec, {**spec, "max_vcpus": 0})
    with pytest.raises(BadPayload, match="handle is 16 bytes"):
        decode_dataclass(DomainSpec, {**spec, "handle": b"short"})
    with pytest.raises(BadPayload, match=r"DomainSpec\.hvm must be bool"):
        decode_dataclass(DomainSpec, {**spec, "hvm": 1})
    with pytest.raises(LocalProtocolError):
        decode_dataclass(dict, {})
