"""The ``xenops`` command's domain and host commands (the original's xenops command).

Each ``cmd_*`` takes the `Session` and the parsed arguments, prints its result on stdout and
returns the exit status; failures raise (`CliError`, `HypervisorError`, `PlanFailed`, ...)
and the caller reports them. Domain operations go through the xenops plans and the executor,
exactly as the VM monitors do (`xen/xenvm/_machine.py`); outputs follow the original:

- ``list_domains``: ``id | state | cpu_time | uuid`` (``-v``: the whole domain info), columns
  right-aligned, the state as six letters ``DSPBRH`` (dying, shutdown, paused, blocked,
  running, HVM) or blanks;
- ``create_domain``: the new domid; ``build_domain``: ``built domain: <d>``;
- ``pause_domain``/``unpause_domain``: ``paused domain: <d>`` / ``unpaused domain: <d>``;
- ``shutdown_domain``: ``shutdown domain: <d>`` once the guest acknowledged (PV), and with
  ``-sync`` ``domain <d> shut down (<reason>)`` once it is dead;
- ``destroy_domain``: ``destroyed domain: <d>``;
- ``physinfo``: ``key = value`` lines; ``getenforce``: ``Enforcing`` or ``Permissive``.

Choices: ``create_domain`` takes ``-memory`` (KiB) and ``-vcpus`` because the simulated
hypervisor allocates memory at create; ``build_domain`` works on the simulated host only (the
``xc`` backend does not bind libxenguest: refused clearly); ``getenforce`` answers only from a
backend that can ask XSM/FLASK (none does yet: the sim has no XSM, and the ``xc`` backend does
not bind xc_flask_getenforce), never a made-up answer.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import TYPE_CHECKING

from xen.hypervisor import (
    HvmParam,
    NoSuchDomain,
    PhysCap,
    ShutdownReason,
    Unsupported,
    iter_domains,
)
from xen.xenops._atomics import Plan, WaitDomain, Write
from xen.xenops._cli_env import CliError, UsageError
from xen.xenops._executor import PlanFailed, WaitTimeout
from xen.xenops._layout import domain_path
from xen.xenops._memory import MemoryModelError, build_memory
from xen.xenops._observe import observe_domain
from xen.xenops._plan import (
    BuildResult,
    DomainSpec,
    Timeouts,
    domain_create_call,
    plan_build_post,
    plan_build_pre,
    plan_domain_create,
    plan_hard_shutdown,
    plan_set_memory_target,
    plan_shutdown_request,
)
from xen.xenops._teardown import plan_domain_destroy

if TYPE_CHECKING:
    from argparse import Namespace

    from xen.hypervisor import DomainInfo
    from xen.xenops._cli_env import Session

__all__ = ["DOMAIN_COMMANDS", "domain_info", "table"]

_PAGES_PER_MIB = 256


def table(rows: list[list[str]]) -> list[str]:
    """Rows with right-aligned columns joined by `` | `` (the original's list format)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [" | ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
            for row in rows]


def _state(info: DomainInfo) -> str:
    flags = (info.dying, info.shutdown, info.paused, info.blocked, info.running, info.hvm)
    return "".join(letter if on else " " for letter, on in zip("DSPBRH", flags, strict=True))


def domain_info(s: Session, domid: int) -> DomainInfo:
    """The domain's info, or `CliError` "no such domain"."""
    try:
        return s.hv().getinfo(domid)
    except NoSuchDomain:
        raise CliError(f"no such domain: {domid}") from None


def cmd_list(s: Session, a: Namespace) -> int:
    if a.verbose:
        rows = [["id", "state", "shutdown code", "total MiB", "max MiB", "sif", "cpu time",
                 "vcpus online", "max vcpu id", "ssidref", "uuid"]]
    else:
        rows = [["id", "state", "cpu_time", "uuid"]]
    for info in iter_domains(s.hv()):
        if a.verbose:
            rows.append([str(info.domid), _state(info), str(info.shutdown_code),
                         str(info.tot_pages // _PAGES_PER_MIB),
                         str(info.max_pages // _PAGES_PER_MIB), str(info.shared_info_frame),
                         str(info.cpu_time), str(info.nr_online_vcpus), str(info.max_vcpu_id),
                         str(info.ssidref), str(info.handle)])
        else:
            rows.append([str(info.domid), _state(info), str(info.cpu_time), str(info.handle)])
    for line in table(rows):
        print(line)
    return 0


def cmd_create(s: Session, a: Namespace) -> int:
    try:
        vm_uuid = str(uuidlib.UUID(a.uuid)) if a.uuid else str(uuidlib.uuid4())
    except ValueError:
        raise UsageError(f"-uuid: not a UUID: {a.uuid!r}") from None
    try:
        memory = build_memory(hvm=a.hvm, vcpus=a.vcpus, static_max_kib=a.memory,
                              target_kib=a.memory)
    except MemoryModelError as exc:
        raise UsageError(str(exc)) from None
    spec = DomainSpec(uuid=vm_uuid, name=a.name or "", hvm=a.hvm)
    call = domain_create_call(spec, vcpus=a.vcpus, memory_kib=memory.target_kib,
                              max_memory_kib=memory.xen_max_kib)
    ex = s.executor()
    domid = ex.run(Plan("domain-create", (call,))).domid
    assert domid is not None
    try:
        ex.run(plan_domain_create(spec, domid))
    except Exception:
        s.hv().destroy(domid)
        raise
    print(domid)
    return 0


def cmd_build(s: Session, a: Namespace) -> int:
    if not s.sim:
        raise CliError("not implemented: build_domain on the xc backend (it takes no kernel "
                       "to load); start the VM through its monitor (xenvm-cmd <uuid> start)")
    info = domain_info(s, a.domid)
    memory_kib = a.memory if a.memory is not None else info.tot_kib
    vcpus = a.vcpus if a.vcpus is not None else max(1, info.nr_online_vcpus)
    try:
        memory = build_memory(hvm=info.hvm, vcpus=vcpus, static_max_kib=memory_kib,
                              target_kib=memory_kib)
    except MemoryModelError as exc:
        raise UsageError(str(exc)) from None
    vm = s.xs().try_read(f"{domain_path(a.domid)}/vm") or ""
    vm_uuid = vm.rsplit("/", 1)[-1] if vm.startswith("/vm/") else str(info.handle)
    ex = s.executor()
    ex.run(plan_build_pre(a.domid, memory, timeouts=Timeouts(free_memory=a.timeout)))
    base = 0x10000 + a.domid * 16  # the simulated host's made-up rings, as xenvm's SimBuilder
    built = BuildResult(store_mfn=base + 1, store_port=1, console_mfn=base + 2, console_port=2)
    ex.run(plan_build_post(a.domid, vm_uuid, memory, built))
    print(f"built domain: {a.domid}")
    return 0


def cmd_pause(s: Session, a: Namespace) -> int:
    s.hv().pause(a.domid)
    print(f"paused domain: {a.domid}")
    return 0


def cmd_unpause(s: Session, a: Namespace) -> int:
    s.hv().unpause(a.domid)
    print(f"unpaused domain: {a.domid}")
    return 0


def _hvm_shutdown_facts(s: Session, domid: int) -> tuple[bool, int, bool]:
    """(has a PV driver, ACPI S-state, power button enabled), as the original decided."""
    hv = s.hv()
    try:
        pv_driver = hv.get_hvm_param(domid, HvmParam.CALLBACK_IRQ) != 0
    except Exception:
        pv_driver = False
    try:
        s_state = hv.get_hvm_param(domid, HvmParam.ACPI_S_STATE)
    except Exception:
        s_state = 0
    button = s.xs().try_read(f"{domain_path(domid)}/control/hvm-powerbutton-enable") == "1"
    return pv_driver, s_state, button


def cmd_shutdown(s: Session, a: Namespace) -> int:
    info = domain_info(s, a.domid)
    reason = ShutdownReason.from_control_word(a.reason)
    if info.dead:
        state = "dying" if info.dying else f"shut down (code {info.shutdown_code})"
        raise CliError(f"domain {a.domid} is already {state}")
    pv_driver, s_state, button = _hvm_shutdown_facts(s, a.domid) if info.hvm else (False, 0,
                                                                                      False)
    plan = plan_shutdown_request(a.domid, reason, hvm=info.hvm, has_pv_driver=pv_driver,
                                 acpi_s_state=s_state, powerbutton_enabled=button,
                                 wait_ack=not info.hvm,
                                 timeouts=Timeouts(shutdown_ack=a.timeout))
    ex = s.executor()
    try:
        ex.run(plan)
    except PlanFailed as exc:
        if isinstance(exc.cause, WaitTimeout):
            raise CliError(f"domain {a.domid} did not acknowledge {a.reason} within "
                           f"{a.timeout:g} s") from exc
        raise
    print(f"shutdown domain: {a.domid}")
    if a.sync:
        try:
            ex.run(Plan("wait-shutdown", (WaitDomain(a.domid, "dead", a.timeout, poll=0.05),)))
        except PlanFailed as exc:
            raise CliError(f"domain {a.domid} did not shut down within {a.timeout:g} s"
                           ) from exc
        try:
            after = s.hv().getinfo(a.domid)
            why = (after.shutdown_reason.name.lower() if after.shutdown_reason is not None
                   else "dying")
        except NoSuchDomain:
            why = "gone"
        print(f"domain {a.domid} shut down ({why})")
    return 0


def cmd_hard_shutdown(s: Session, a: Namespace) -> int:
    domain_info(s, a.domid)
    s.executor().run(plan_hard_shutdown(a.domid, ShutdownReason.from_control_word(a.reason)))
    print(f"shut down domain: {a.domid}")
    return 0


def cmd_destroy(s: Session, a: Namespace) -> int:
    if a.domid == 0:
        raise UsageError("refusing to destroy domain 0")
    try:
        hvm: bool | None = s.hv().getinfo(a.domid).hvm
    except NoSuchDomain:
        hvm = None
    xs = s.xs()
    if hvm is None and not xs.exists(domain_path(a.domid)):
        raise CliError(f"no such domain: {a.domid}")
    observed = observe_domain(xs, a.domid, hvm=bool(hvm))
    timeouts = Timeouts(domain_gone=a.timeout, hotplug=a.timeout, device_close=a.timeout)
    s.executor().run(plan_domain_destroy(observed, timeouts=timeouts))
    try:
        left = s.hv().getinfo(a.domid)
    except NoSuchDomain:
        print(f"destroyed domain: {a.domid}")
        return 0
    raise CliError(f"domain {a.domid} is still there after the teardown "
                   f"({'dying' if left.dying else 'not dying'}; a backend may still hold it)")


def cmd_sysrq(s: Session, a: Namespace) -> int:
    if len(a.key) != 1:
        raise UsageError(f"-key must be one character, got {a.key!r}")
    domain_info(s, a.domid)
    s.executor().run(Plan("sysrq", (Write(f"{domain_path(a.domid)}/control/sysrq", a.key),)))
    return 0


def cmd_uuid(s: Session, a: Namespace) -> int:
    print(domain_info(s, a.domid).handle)
    return 0


def cmd_setmaxmem(s: Session, a: Namespace) -> int:
    s.hv().setmaxmem(a.domid, a.memory)
    return 0


def cmd_balloon(s: Session, a: Namespace) -> int:
    if a.memory <= 16:
        raise UsageError(f"cannot balloon a domain to 16 MiB or less: {a.memory} MiB asked")
    domain_info(s, a.domid)
    s.executor().run(plan_set_memory_target(a.domid, a.memory * 1024))
    return 0


def cmd_physinfo(s: Session, a: Namespace) -> int:
    p = s.hv().physinfo()
    caps = " ".join((flag.name or "").lower() for flag in PhysCap if flag in p.capabilities)
    for key, value in (("nr_cpus", p.nr_cpus), ("threads_per_core", p.threads_per_core),
                       ("cores_per_socket", p.cores_per_socket), ("cpu_khz", p.cpu_khz)):
        print(f"{key} = {value}")
    for key, pages in (("total_pages", p.total_pages), ("free_pages", p.free_pages),
                       ("scrub_pages", p.scrub_pages)):
        print(f"{key} = {pages} ({pages // _PAGES_PER_MIB} MiB)")
    print(f"capabilities = {caps}")
    return 0


def cmd_getenforce(s: Session, a: Namespace) -> int:
    if s.sim:
        raise Unsupported("getenforce: not supported on the sim backend (the simulated "
                          "hypervisor has no XSM/FLASK)")
    getter = getattr(s.hv(), "flask_getenforce", None)
    if getter is None:
        raise Unsupported("getenforce: not implemented: the xc backend does not bind "
                          "xc_flask_getenforce yet")
    print("Enforcing" if getter() else "Permissive")
    return 0


DOMAIN_COMMANDS = {
    "list_domains": cmd_list, "create_domain": cmd_create, "build_domain": cmd_build,
    "pause_domain": cmd_pause, "unpause_domain": cmd_unpause,
    "shutdown_domain": cmd_shutdown, "hard_shutdown_domain": cmd_hard_shutdown,
    "destroy_domain": cmd_destroy, "sysrq_domain": cmd_sysrq, "dom-uuid": cmd_uuid,
    "setmaxmem": cmd_setmaxmem, "balloon": cmd_balloon, "physinfo": cmd_physinfo,
    "getenforce": cmd_getenforce,
}
