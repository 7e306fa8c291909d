"""Stub domains: the xenstore side of a PV domain that runs an HVM guest's device model.

A stub domain ``stub`` serves one guest ``target``. After both domains are built, and before
the stub domain runs, :func:`plan_stubdom_links` writes (one transaction) the original's
nodes:

* ``/local/domain/<target>/image/device-model-domid`` = stub (what a destroy of the guest
  follows to the stub domain) and ``/local/domain/<stub>/target`` = target;
* created owned by the stub domain, readable by the guest: ``/local/domain/0/device-model/
  <target>``, ``/local/domain/<stub>/device/vfs``, ``/local/domain/<target>/device-misc``,
  ``/local/domain/<target>/dms``, ``/local/domain/<stub>/dm-agent`` (the agent's tree);
* ``/local/domain/<target>/power-state`` owned by the guest, writable by the stub domain;
  ``/vm/<uuid>/rtc/timeoffset`` readable by the guest and writable by the stub domain.

Then the hypervisor's ``xc_domain_set_target`` (`SetTarget`: the stub domain gets privilege
over its guest, and Xen keeps the guest until the stub domain is gone). xenstored's SET_TARGET
(the stub domain gets its guest's rights in xenstore) is a client call the caller makes after
this plan. :func:`stubdom_cmdline` is the stub kernel's command
line in dm-agent mode. Pure: no I/O.
"""

from __future__ import annotations

from xen.xenops._atomics import Mkdir, Plan, SetPerms, Transaction, Write, XsOp
from xen.xenops._calls import SetTarget
from xen.xenops._layout import Perms, domain_path

__all__ = ["STUBDOM_SSID_LABEL", "plan_stubdom_links", "stubdom_cmdline", "stubdom_name"]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

STUBDOM_SSID_LABEL = "system_u:system_r:stubdom_t"


def stubdom_name(target: int) -> str:
    """The stub domain's name: ``stubdom-<target>``."""
    return f"stubdom-{target}"


def stubdom_cmdline(base: str, target: int, *, qemu_dm: bool = False) -> str:
    """The stub kernel's command line in dm-agent mode: ``base``, then
    ``guest_agent=dmagent guest_domid=<target>`` (and ``qemu-dm`` when asked)."""
    words = [w for w in (base.strip(), "guest_agent=dmagent", f"guest_domid={target}") if w]
    if qemu_dm:
        words.append("qemu-dm")
    return " ".join(words)


def plan_stubdom_links(target: int, stub: int, vm_uuid: str) -> Plan:
    """The nodes and permissions that tie stub domain ``stub`` to guest ``target`` (see the
    module docstring)."""
    dom, sdom = domain_path(target), domain_path(stub)
    owned = Perms(stub, "n", ((target, "r"),))
    ops: list[XsOp] = [
        Write(f"{dom}/image/device-model-domid", str(stub)),
        Write(f"{sdom}/target", str(target)),
    ]
    ops += [Mkdir(path, owned) for path in (
        f"{domain_path(0)}/device-model/{target}", f"{sdom}/device/vfs",
        f"{dom}/device-misc", f"{dom}/dms", f"{sdom}/dm-agent")]
    ops += [Mkdir(f"{dom}/power-state", Perms(target, "n", ((stub, "b"),))),
            Mkdir(f"/vm/{vm_uuid}/rtc/timeoffset"),
            SetPerms(f"/vm/{vm_uuid}/rtc/timeoffset",
                     Perms(0, "n", ((target, "r"), (stub, "b"))))]
    return Plan(f"stubdom-links {target} {stub}", (Transaction(tuple(ops)),
                                                    SetTarget(stub, target)))
