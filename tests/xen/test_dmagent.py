"""The dm-agent protocol core and the stub-domain links: pure, no xenstore."""

from __future__ import annotations

import pytest

from xen.xenops import (
    Appears,
    Becomes,
    Capability,
    DmAgentError,
    DmDevice,
    Mkdir,
    Perms,
    SetPerms,
    SetTarget,
    Transaction,
    WaitFor,
    Write,
    assign,
    capability_writes,
    dm_stop_steps,
    parse_capabilities,
    plan_dm_start,
    plan_stubdom_links,
    read_request,
    stubdom_cmdline,
    stubdom_name,
)

CAPS = {"qemu": {"drive": {"depends": "", "target": "1"},
                 "net": {"depends": "", "target": "1"},
                 "svga": {"depends": "xenmou", "target": "1"},
                 "xenmou": {"depends": ""}}}


def test_capabilities_round_trip_through_their_nodes() -> None:
    offered = [Capability("qemu", "drive"), Capability("qemu", "svga", ("xenmou",)),
               Capability("qemu", "xenmou")]
    writes = capability_writes(3, offered)
    assert Write("/local/domain/3/dm-agent/capabilities/qemu/svga/depends", "xenmou") in writes
    tree: dict[str, dict[str, dict[str, str]]] = {}
    for w in writes:
        dm, dev, key = w.path.split("/")[-3:]
        tree.setdefault(dm, {}).setdefault(dev, {})[key] = w.value
    caps = parse_capabilities(3, tree)
    assert caps.agent == 3 and set(caps.devices) == {"drive", "svga", "xenmou"}
    assert caps.devices["svga"] == Capability("qemu", "svga", ("xenmou",), True)


def test_assign_groups_devices_and_adds_dependencies() -> None:
    caps = parse_capabilities(0, CAPS)
    devs = [DmDevice("drive0", (("file", "/dev/hda"),)), DmDevice("svga"),
            DmDevice("net0", (("mac", "00:16:3e:00:00:01"),))]
    (only,) = assign(devs, [caps])
    assert (only.agent, only.dm, only.dmid) == (0, "qemu", 0)
    assert [d.name for d in only.devices] == ["drive0", "svga", "net0", "xenmou"]


def test_the_first_agent_that_offers_a_device_gets_it() -> None:
    stub = parse_capabilities(7, {"qemu": {"drive": {}}})
    dom0 = parse_capabilities(0, {"audio": {"audio": {}}})
    got = assign([DmDevice("drive0"), DmDevice("audio")], [stub, dom0])
    assert [(a.agent, a.dm, a.dmid, [d.name for d in a.devices]) for a in got] == [
        (7, "qemu", 0, ["drive0"]), (0, "audio", 1, ["audio"])]


def test_a_device_no_agent_offers_is_named_before_anything() -> None:
    caps = parse_capabilities(0, {"qemu": {"drive": {}, "svga": {"depends": "vgabios"}}})
    with pytest.raises(DmAgentError, match=r"no dm-agent offers audio, vgabios \(offered: 0: "
                                           r"drive,svga\)"):
        assign([DmDevice("drive0"), DmDevice("svga"), DmDevice("audio")], [caps])


def test_the_start_plan_is_one_transaction_then_bounded_waits() -> None:
    caps = parse_capabilities(5, CAPS)
    plan = plan_dm_start(9, assign([DmDevice("drive0", (("file", "/dev/hda"),))], [caps]), 4.0)
    tx, wait = plan.steps
    assert isinstance(tx, Transaction)
    base = "/local/domain/5/dm-agent/dms/9/0"
    assert tx.ops == (Write(f"{base}/infos/drive0/type", "drive"),
                      Write(f"{base}/infos/drive0/file", "/dev/hda"))
    assert wait == WaitFor(Becomes(f"{base}/status", "running"), 4.0,
                           "dm-agent 5 to run device model 0 of 9",
                           error=Appears(f"{base}/error"))


def test_stop_steps_ask_and_wait_for_the_tree_to_go() -> None:
    write, wait = dm_stop_steps(0, 4, 2.0)
    assert write == Write("/local/domain/0/dm-agent/dms/4/destroy", "1")
    assert isinstance(wait, WaitFor) and wait.timeout == 2.0


def test_the_agent_side_reads_a_request() -> None:
    tree = {"0": {"infos": {"drive0": {"type": "drive", "file": "/dev/hda"}}},
            "1": {"status": "running", "infos": {"svga": {"type": "svga"}}},
            "junk": "x"}
    req = read_request(2, 9, tree)
    assert req.to_start() == (0,)
    assert req.models[0][1] == (DmDevice("drive0", (("file", "/dev/hda"), ("type", "drive"))),)
    assert read_request(2, 9, {**tree, "destroy": "1"}).to_start() == ()
    assert read_request(2, 9, {"0": {}}).to_start() == ()  # no infos yet: nothing to run


def test_stub_domain_links_and_permissions() -> None:
    uuid = "11111111-2222-3333-4444-555555555555"
    tx, target = plan_stubdom_links(3, 4, uuid).steps
    assert isinstance(tx, Transaction) and target == SetTarget(4, 3)
    ops = tx.ops
    assert Write("/local/domain/3/image/device-model-domid", "4") in ops
    assert Write("/local/domain/4/target", "3") in ops
    owned = Perms(4, "n", ((3, "r"),))
    for path in ("/local/domain/0/device-model/3", "/local/domain/4/device/vfs",
                 "/local/domain/3/device-misc", "/local/domain/3/dms",
                 "/local/domain/4/dm-agent"):
        assert Mkdir(path, owned) in ops
    assert Mkdir("/local/domain/3/power-state", Perms(3, "n", ((4, "b"),))) in ops
    assert SetPerms(f"/vm/{uuid}/rtc/timeoffset", Perms(0, "n", ((3, "r"), (4, "b")))) in ops
    assert stubdom_name(3) == "stubdom-3"
    assert stubdom_cmdline("init=/init ", 3) == "init=/init guest_agent=dmagent guest_domid=3"
    assert stubdom_cmdline("", 3, qemu_dm=True).endswith("guest_domid=3 qemu-dm")
