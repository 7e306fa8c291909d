"""The pure simulated hypervisor: domids, memory accounting, flags, events, and the backend
values and errors of xen.hypervisor._interface."""

from __future__ import annotations

import errno
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xen.hypervisor import (
    DOMID_FIRST_RESERVED,
    ERRORS,
    SHUTDOWN_CODE_NONE,
    DomainInfo,
    DomainSpec,
    DomInfoFlag,
    HvmParam,
    Hypervisor,
    HypervisorError,
    InvalidArgument,
    NoSuchDomain,
    OutOfMemory,
    PermissionDenied,
    ShutdownReason,
    UnimplementedHypervisor,
    Unsupported,
    error_for_errno,
)
from xen.sim.hypervisor._model import (
    DomainCreated,
    DomainDying,
    DomainGone,
    DomainPaused,
    DomainShutdown,
    DomainUnpaused,
    HandleChanged,
    MaxMemChanged,
    MemoryChanged,
    SimHypervisor,
)

MIB = 1024
GIB = 1024 * MIB


def host(total_kib: int = 4 * GIB, dom0_kib: int = 512 * MIB) -> SimHypervisor:
    return SimHypervisor(total_kib, dom0_kib=dom0_kib)


def spec(memory_kib: int = 256 * MIB, **kw: object) -> DomainSpec:
    return DomainSpec(memory_kib=memory_kib, **kw)  # type: ignore[arg-type]


# --- start state, domids -----------------------------------------------------------------------


def test_dom0_exists_from_the_start_and_runs() -> None:
    hv = host()
    (dom0,) = hv.getinfolist()
    assert dom0.domid == 0 and dom0.running and not dom0.paused and not dom0.blocked
    assert dom0.tot_kib == 512 * MIB
    assert hv.physinfo().free_kib == 4 * GIB - 512 * MIB


def test_default_dom0_is_512_mib_or_a_quarter_of_a_small_host() -> None:
    assert SimHypervisor(4 * GIB).getinfo(0).tot_kib == 512 * MIB
    assert SimHypervisor(1 * GIB).getinfo(0).tot_kib == 256 * MIB


def test_host_that_cannot_hold_dom0_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="dom0 memory"):
        SimHypervisor(1 * GIB, dom0_kib=2 * GIB)


def test_domids_increase_and_are_not_reused_at_once() -> None:
    hv = host()
    a, _ = hv.create(spec(MIB))
    b, _ = hv.create(spec(MIB))
    hv.destroy(a)
    c, _ = hv.create(spec(MIB))
    assert (a, b, c) == (1, 2, 3)


def test_domid_rover_wraps_to_1_and_skips_busy_ids() -> None:
    hv = host()
    first, _ = hv.create(spec(0))  # domid 1 stays
    hv._rover = DOMID_FIRST_RESERVED - 2  # as if 0x7fee ids had been handed out
    a, _ = hv.create(spec(0))
    b, _ = hv.create(spec(0))
    assert (first, a, b) == (1, DOMID_FIRST_RESERVED - 1, 2)


def test_running_out_of_domids_is_out_of_memory() -> None:
    hv = host()
    for _ in range(DOMID_FIRST_RESERVED - 1):
        hv.create(spec(0))
    before = hv.domids()
    with pytest.raises(OutOfMemory, match="no free domain id"):
        hv.create(spec(0))
    assert hv.domids() == before


# --- memory ------------------------------------------------------------------------------------


def test_create_allocates_and_destroy_frees() -> None:
    hv = host()
    free0 = hv.physinfo().free_kib
    domid, events = hv.create(spec(1 * GIB, max_memory_kib=2 * GIB))
    info = hv.getinfo(domid)
    assert (info.tot_kib, info.max_kib) == (1 * GIB, 2 * GIB)
    assert hv.physinfo().free_kib == free0 - 1 * GIB
    assert events == [DomainCreated(domid, info.handle)]
    assert hv.destroy(domid) == [DomainDying(domid), DomainGone(domid)]
    assert hv.physinfo().free_kib == free0


def test_create_fails_when_memory_runs_out_and_changes_nothing() -> None:
    hv = host(total_kib=2 * GIB, dom0_kib=512 * MIB)
    hv.create(spec(1 * GIB))
    before = (hv.domids(), hv.physinfo())
    with pytest.raises(OutOfMemory, match=r"cannot create a domain of 1048576 KiB: only 524288"):
        hv.create(spec(1 * GIB))
    assert (hv.domids(), hv.physinfo()) == before
    domid, _ = hv.create(spec(512 * MIB))  # exactly what is left
    assert hv.physinfo().free_pages == 0
    assert domid == 2


def test_memory_rounds_up_to_pages_and_maxmem_down() -> None:
    hv = host()
    domid, _ = hv.create(spec(5, max_memory_kib=9))
    assert hv.getinfo(domid).tot_pages == 2
    assert hv.getinfo(domid).max_pages == 2
    hv.setmaxmem(domid, 11)
    assert hv.getinfo(domid).max_pages == 2


def test_setmaxmem_below_current_is_allowed_but_blocks_growth() -> None:
    hv = host()
    domid, _ = hv.create(spec(256 * MIB))
    assert hv.setmaxmem(domid, 128 * MIB) == [MaxMemChanged(domid, 128 * MIB // 4)]
    assert hv.getinfo(domid).tot_kib == 256 * MIB
    with pytest.raises(InvalidArgument, match="maxmem"):
        hv.guest_set_memory(domid, 300 * MIB)
    assert hv.guest_set_memory(domid, 100 * MIB) == [MemoryChanged(domid, 100 * MIB // 4)]
    assert hv.physinfo().free_kib == 4 * GIB - 512 * MIB - 100 * MIB


def test_balloon_up_needs_free_host_memory() -> None:
    hv = host(total_kib=1 * GIB, dom0_kib=256 * MIB)
    domid, _ = hv.create(spec(256 * MIB, max_memory_kib=1 * GIB))
    with pytest.raises(OutOfMemory, match="cannot grow"):
        hv.guest_set_memory(domid, 1 * GIB)
    hv.guest_set_memory(domid, 768 * MIB)
    assert hv.physinfo().free_pages == 0


def test_held_domain_stays_dying_with_its_memory_until_released() -> None:
    hv = host()
    domid, _ = hv.create(spec(1 * GIB))
    hv.hold(domid)
    assert hv.destroy(domid) == [DomainDying(domid)]
    info = hv.getinfo(domid)
    assert info.dying and info.tot_kib == 1 * GIB and info.dead
    assert hv.physinfo().free_kib == 4 * GIB - 512 * MIB - 1 * GIB
    assert hv.destroy(domid) == []  # destroying a dying domain succeeds and does nothing
    assert hv.create(spec(0))[0] == domid + 1  # its id is still busy
    assert hv.unhold(domid) == [DomainGone(domid)]
    with pytest.raises(NoSuchDomain):
        hv.getinfo(domid)
    assert hv.physinfo().free_kib == 4 * GIB - 512 * MIB


def test_a_stub_domain_holds_its_target_until_it_is_gone() -> None:
    hv = host()
    guest, _ = hv.create(spec(64 * MIB, hvm=True))
    stub, _ = hv.create(spec(32 * MIB))
    pv, _ = hv.create(spec(32 * MIB))
    for domid, target, error, code in (
            (stub, 999, NoSuchDomain, errno.ESRCH), (stub, stub, InvalidArgument, errno.EINVAL),
            (stub, pv, HypervisorError, errno.EOPNOTSUPP), (0, guest, InvalidArgument, None)):
        with pytest.raises(error) as caught:
            hv.set_target(domid, target)
        assert code is None or caught.value.errno == code
    assert hv.set_target(stub, guest) == []
    with pytest.raises(InvalidArgument, match=f"already serves domain {guest}"):
        hv.set_target(stub, guest)
    assert hv.destroy(guest) == [DomainDying(guest)]  # kept by the stub's reference
    assert hv.getinfo(guest).dying
    assert hv.destroy(stub) == [DomainDying(stub), DomainGone(stub), DomainGone(guest)]
    assert [i.domid for i in hv.getinfolist()] == [0, pv]
    assert hv.physinfo().free_kib == 4 * GIB - 512 * MIB - 32 * MIB


# --- flags -------------------------------------------------------------------------------------


def test_new_domain_is_paused_and_unpause_makes_it_blocked_or_running() -> None:
    hv = host()
    domid, _ = hv.create(spec(max_vcpus=2, hvm=True))
    info = hv.getinfo(domid)
    assert info.paused and not info.running and not info.blocked
    assert info.hvm and info.hap and info.nr_online_vcpus == 2 and info.max_vcpu_id == 1
    assert info.shutdown_code == SHUTDOWN_CODE_NONE and info.shutdown_reason is None
    assert hv.unpause(domid) == [DomainUnpaused(domid, 0)]
    assert hv.getinfo(domid).blocked and not hv.getinfo(domid).running
    hv.guest_set_busy(domid, True)
    assert hv.getinfo(domid).running and not hv.getinfo(domid).blocked
    assert hv.getinfo(domid).flags == DomInfoFlag.HVM_GUEST | DomInfoFlag.RUNNING \
        | DomInfoFlag.HAP | SHUTDOWN_CODE_NONE << 16


def test_pause_is_counted_and_unpause_of_unpaused_fails() -> None:
    hv = host()
    domid, _ = hv.create(spec())
    assert hv.pause(domid) == [DomainPaused(domid, 2)]
    hv.unpause(domid)
    assert hv.getinfo(domid).paused
    hv.unpause(domid)
    assert not hv.getinfo(domid).paused
    with pytest.raises(InvalidArgument, match="not paused"):
        hv.unpause(domid)


def test_pause_count_caps_at_255() -> None:
    hv = host()
    domid, _ = hv.create(spec())
    for _ in range(254):
        hv.pause(domid)
    with pytest.raises(HypervisorError) as err:
        hv.pause(domid)
    assert err.value.errno == errno.EOVERFLOW


def test_shutdown_sets_flag_and_code_first_reason_sticks() -> None:
    hv = host()
    domid, _ = hv.create(spec())
    hv.unpause(domid)
    assert hv.shutdown(domid, ShutdownReason.REBOOT) == [
        DomainShutdown(domid, ShutdownReason.REBOOT, by_guest=False)]
    assert hv.shutdown(domid, ShutdownReason.POWEROFF) == []
    info = hv.getinfo(domid)
    assert info.shutdown and info.shutdown_reason is ShutdownReason.REBOOT
    assert not info.running and not info.blocked and not info.dying
    assert info.tot_kib == 256 * MIB  # stays, with its memory, until destroyed
    hv.destroy(domid)
    assert domid not in hv.domids()


def test_guest_hooks_crash_and_self_shutdown() -> None:
    hv = host()
    a, _ = hv.create(spec())
    b, _ = hv.create(spec())
    assert hv.guest_crash(a) == [DomainShutdown(a, ShutdownReason.CRASH, by_guest=True)]
    assert hv.guest_shutdown(b, ShutdownReason.HALT) == [
        DomainShutdown(b, ShutdownReason.WATCHDOG, by_guest=True)]
    assert hv.getinfo(a).shutdown_code == 3 and hv.getinfo(b).shutdown_code == 4


def test_event_kinds_say_which_raise_virq_dom_exc() -> None:
    hv = host()
    domid, created = hv.create(spec())
    evs = created + hv.pause(domid) + hv.shutdown(domid, 0) + hv.destroy(domid)
    assert [type(e).__name__ for e in evs if e.dom_exc] == [
        "DomainShutdown", "DomainDying", "DomainGone"]
    assert hv.set_handle(0, uuid.UUID(int=5)) == [HandleChanged(0, uuid.UUID(int=5))]


def test_dom0_is_protected() -> None:
    hv = host()
    for op in (hv.pause, hv.unpause, hv.destroy, hv.guest_crash):
        with pytest.raises(InvalidArgument, match="domain 0"):
            op(0)
    with pytest.raises(InvalidArgument, match="domain 0"):
        hv.shutdown(0, ShutdownReason.POWEROFF)
    assert hv.getinfo(0).running


def test_bad_arguments_are_named() -> None:
    hv = host()
    domid, _ = hv.create(spec())
    with pytest.raises(InvalidArgument, match="unknown reason 9"):
        hv.shutdown(domid, 9)
    with pytest.raises(InvalidArgument, match="bad domain id -1"):
        hv.getinfo(-1)
    with pytest.raises(NoSuchDomain, match="no domain 77"):
        hv.pause(77)
    with pytest.raises(InvalidArgument, match="bad size"):
        hv.setmaxmem(domid, -4)
    with pytest.raises(InvalidArgument, match="dying"):
        hv.hold(domid)
        hv.destroy(domid)
        hv.pause(domid)


def test_getinfolist_pages_in_domid_order_and_find_by_handle() -> None:
    hv = host()
    vm = uuid.uuid4()
    ids = [hv.create(spec(MIB, handle=vm if i % 2 else uuid.uuid4()))[0] for i in range(6)]
    assert [i.domid for i in hv.getinfolist(2, 3)] == [2, 3, 4]
    assert [i.domid for i in hv.getinfolist(5)] == [5, 6]
    assert [i.domid for i in hv.find_by_handle(vm)] == [ids[1], ids[3], ids[5]]
    assert hv.find_by_handle(uuid.UUID(int=1)) == []


# --- domain build: vcpus, shadow pool, HVM params ---------------------------------------------


def test_max_vcpus_sets_the_count_until_the_domain_first_runs() -> None:
    hv = host()
    domid, _ = hv.create(spec(max_vcpus=1))
    assert hv.max_vcpus(domid, 4) == []
    info = hv.getinfo(domid)
    assert (info.nr_online_vcpus, info.max_vcpu_id) == (4, 3)
    hv.max_vcpus(domid, 2)  # may shrink too, while it never ran
    hv.pause(domid)
    hv.unpause(domid)  # count 1: still never ran
    hv.max_vcpus(domid, 3)
    hv.unpause(domid)
    hv.pause(domid)
    hv.max_vcpus(domid, 3)  # the current count: a no-op, as XEN_DOMCTL_max_vcpus on 4.17
    with pytest.raises(InvalidArgument, match="cannot change its 3 vcpus to 2: it has run"):
        hv.max_vcpus(domid, 2)
    assert hv.getinfo(domid).nr_online_vcpus == 3


def test_max_vcpus_bounds_dom0_dying_and_missing_domains() -> None:
    hv = host()
    domid, _ = hv.create(spec())
    for bad in (0, 129, True, "2"):
        with pytest.raises(InvalidArgument, match="bad vcpu count"):
            hv.max_vcpus(domid, bad)  # type: ignore[arg-type]
    hv.max_vcpus(domid, 128)
    with pytest.raises(InvalidArgument, match="domain 0 refused"):
        hv.max_vcpus(0, 4)
    with pytest.raises(NoSuchDomain):
        hv.max_vcpus(99, 1)
    hv.hold(domid)
    hv.destroy(domid)
    with pytest.raises(InvalidArgument, match="is dying"):
        hv.max_vcpus(domid, 1)


def test_shadow_pool_comes_from_free_memory_and_returns_at_destroy() -> None:
    hv = host()
    domid, _ = hv.create(spec(256 * MIB))
    free0 = hv.physinfo().free_kib
    assert hv.shadow_allocation(domid, 8) == (8, [])
    assert hv.physinfo().free_kib == free0 - 8 * MIB
    assert hv.get_shadow_allocation(domid) == 8 and hv.shadow_pages == 8 * 256
    hv.shadow_allocation(domid, 20)
    hv.shadow_allocation(domid, 2)  # shrinking gives memory back
    assert hv.physinfo().free_kib == free0 - 2 * MIB
    assert hv.getinfo(domid).tot_kib == 256 * MIB  # the pool is not the domain's pages
    hv.hold(domid)
    hv.destroy(domid)  # domain_kill frees the pool; the zombie keeps only its own pages
    assert hv.physinfo().free_kib == free0 and hv.shadow_pages == 0
    assert hv.shadow_allocation(domid, 64) == (64, [])  # ignored on a dying domain
    assert hv.physinfo().free_kib == free0
    hv.unhold(domid)
    assert hv.physinfo().free_kib == free0 + 256 * MIB


def test_shadow_pool_that_does_not_fit_is_out_of_memory_and_changes_nothing() -> None:
    hv = host(total_kib=1 * GIB, dom0_kib=256 * MIB)
    domid, _ = hv.create(spec(512 * MIB))
    hv.shadow_allocation(domid, 100)
    with pytest.raises(OutOfMemory, match="from 100 to 257 MiB: only 159744 KiB free"):
        hv.shadow_allocation(domid, 257)
    assert hv.get_shadow_allocation(domid) == 100 and hv.free_pages == 156 * 256
    hv.shadow_allocation(domid, 256)  # exactly what is left
    assert hv.free_pages == 0
    with pytest.raises(OutOfMemory):
        hv.create(spec(4))
    for bad in (-1, 1 << 24, True):
        with pytest.raises(InvalidArgument, match="bad size in MiB"):
            hv.shadow_allocation(domid, bad)
    with pytest.raises(InvalidArgument, match="domain 0 refused"):
        hv.shadow_allocation(0, 1)


def test_hvm_params_are_stored_per_hvm_domain() -> None:
    hv = host()
    a, _ = hv.create(spec(hvm=True))
    b, _ = hv.create(spec(hvm=True))
    assert hv.get_hvm_param(a, HvmParam.HPET_ENABLED) == 1  # hpet_init's default
    assert hv.get_hvm_param(a, HvmParam.TIMER_MODE) == 0
    assert hv.set_hvm_param(a, HvmParam.TIMER_MODE, 1) == []
    hv.set_hvm_param(a, HvmParam.HPET_ENABLED, 0)
    hv.set_hvm_param(a, HvmParam.VPT_ALIGN, 1)
    hv.set_hvm_param(a, HvmParam.CALLBACK_IRQ, (1 << 64) - 1)
    hv.set_hvm_param(a, 18, 7)  # the number works as well as the member
    assert [hv.get_hvm_param(a, p) for p in (10, 11, 16, 0, HvmParam.CONSOLE_EVTCHN)] == [
        1, 0, 1, (1 << 64) - 1, 7]
    assert hv.get_hvm_param(b, HvmParam.TIMER_MODE) == 0  # per domain
    with pytest.raises(InvalidArgument, match="unknown HVM param 12"):
        hv.set_hvm_param(a, 12, 0)
    with pytest.raises(InvalidArgument, match="bad value -1"):
        hv.set_hvm_param(a, HvmParam.VPT_ALIGN, -1)


def test_hvm_params_are_refused_on_pv_domains() -> None:
    hv = host()
    pv, _ = hv.create(spec(hvm=False))
    for domid in (pv, 0):
        with pytest.raises(InvalidArgument, match="PV domain"):
            hv.set_hvm_param(domid, HvmParam.TIMER_MODE, 1)
        with pytest.raises(InvalidArgument, match="PV domain"):
            hv.get_hvm_param(domid, HvmParam.HPET_ENABLED)
    with pytest.raises(NoSuchDomain):
        hv.get_hvm_param(77, HvmParam.TIMER_MODE)


# --- xen.hypervisor values and errors ---------------------------------------------------------


def test_domaininfo_flags_roundtrip() -> None:
    for flags in (0, 0x1FF, 0x30024, 0xFF0010, DomInfoFlag.DYING | 4 << 16):
        info = DomainInfo.from_flags(flags, domid=7)
        assert info.flags == flags & 0xFF01FF
    assert DomainInfo.from_flags(0x20004, domid=1).shutdown_reason is ShutdownReason.SUSPEND
    assert DomainInfo.from_flags(0x90004, domid=1).shutdown_reason is None  # undefined code


def test_halt_is_an_alias_of_watchdog() -> None:
    assert ShutdownReason.HALT is ShutdownReason.WATCHDOG
    assert [int(r) for r in ShutdownReason] == [0, 1, 2, 3, 4, 5]


def test_shutdown_reasons_have_the_original_control_words() -> None:
    words = {r: r.control_word for r in ShutdownReason if r is not ShutdownReason.SOFT_RESET}
    assert words == {ShutdownReason.POWEROFF: "poweroff", ShutdownReason.REBOOT: "reboot",
                     ShutdownReason.SUSPEND: "suspend", ShutdownReason.CRASH: "crash",
                     ShutdownReason.HALT: "halt"}
    for reason, word in words.items():
        assert ShutdownReason.from_control_word(word) is reason
    with pytest.raises(ValueError, match="SOFT_RESET has no control/shutdown word"):
        ShutdownReason.SOFT_RESET.control_word  # noqa: B018
    for word in ("watchdog", "s3", "hibernate", "Poweroff", ""):
        with pytest.raises(ValueError, match="unknown control/shutdown word"):
            ShutdownReason.from_control_word(word)


def test_domain_spec_validates_fields() -> None:
    with pytest.raises(InvalidArgument, match="max_vcpus"):
        DomainSpec(max_vcpus=0)
    with pytest.raises(InvalidArgument, match="handle"):
        DomainSpec(handle="not-a-uuid")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="max_memory_kib"):
        DomainSpec(max_memory_kib=-1)


def test_error_for_errno_and_names() -> None:
    assert isinstance(error_for_errno(errno.ESRCH, "pause of domain 3"), NoSuchDomain)
    err = error_for_errno(errno.EACCES, "xc_interface_open")
    assert isinstance(err, PermissionDenied) and "Permission denied (EACCES)" in str(err)
    assert type(error_for_errno(errno.EBUSY, "x")) is HypervisorError
    assert all(name == cls.__name__ for name, cls in ERRORS.items())


def test_skeleton_raises_not_implemented_for_every_member() -> None:
    sk = UnimplementedHypervisor()
    assert isinstance(sk, Hypervisor)
    members = [m for m in dir(Hypervisor) if not m.startswith("_") and m != "name"]
    assert len(members) == 26  # 17, then the 8 PCI members, then set_target
    for member in members:
        fn = getattr(sk, member)
        nargs = fn.__code__.co_argcount - 1 - len(fn.__defaults__ or ())
        with pytest.raises(Unsupported, match=f"not implemented: .*{member}"):
            fn(*[0] * nargs)


# --- random operation sequences ----------------------------------------------------------------

_OPS = ("create", "pause", "unpause", "shutdown", "destroy", "crash", "hold", "unhold",
        "balloon", "setmaxmem", "vcpus", "shadow", "param")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_OPS), st.integers(0, 12), st.integers(0, 600)),
                max_size=60))
def test_random_sequences_keep_memory_and_domains_consistent(
    ops: list[tuple[str, int, int]],
) -> None:
    hv = SimHypervisor(2 * GIB, dom0_kib=256 * MIB)
    alive: set[int] = {0}
    for op, domid, size in ops:
        before = (hv.getinfolist(0, 10_000), hv.free_pages, hv.shadow_pages)
        try:
            if op == "create":
                new, events = hv.create(spec(size * MIB, hvm=bool(size % 2)))
                assert new not in alive and events == [DomainCreated(new, uuid.UUID(int=0))]
                alive.add(new)
            elif op == "pause":
                hv.pause(domid)
            elif op == "unpause":
                hv.unpause(domid)
            elif op == "shutdown":
                hv.shutdown(domid, size % 6)
            elif op == "crash":
                hv.guest_crash(domid)
            elif op == "destroy":
                events = hv.destroy(domid)
                if DomainGone(domid) in events:
                    alive.discard(domid)
            elif op == "hold":
                hv.hold(domid)
            elif op == "unhold":
                if DomainGone(domid) in hv.unhold(domid):
                    alive.discard(domid)
            elif op == "balloon":
                hv.guest_set_memory(domid, size * MIB)
            elif op == "setmaxmem":
                hv.setmaxmem(domid, size * MIB)
            elif op == "vcpus":
                hv.max_vcpus(domid, size % 130)
            elif op == "shadow":
                hv.shadow_allocation(domid, size)
            elif op == "param":
                hv.set_hvm_param(domid, HvmParam.TIMER_MODE, size % 5)
        except (InvalidArgument, NoSuchDomain, OutOfMemory, HypervisorError):
            # a failure changes nothing
            assert (hv.getinfolist(0, 10_000), hv.free_pages, hv.shadow_pages) == before
        assert hv.free_pages + hv.allocated_pages + hv.shadow_pages == hv.total_pages
        assert hv.free_pages >= 0
        infos = hv.getinfolist(0, 10_000)
        assert [i.domid for i in infos] == sorted(alive)
        assert sum(i.tot_pages for i in infos) == hv.allocated_pages
        assert hv.physinfo().free_pages == hv.free_pages
