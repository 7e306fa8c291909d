"""A VM's PCI passthrough against the host: the checks before anything is touched, and the
plug and unplug of a PCI group into a running domain.

:func:`check_pci` is what a start (and a ``pci-add`` into a running domain) asks before its
first side effect; it raises ``TaskError`` naming the first device that cannot be passed
through, and touches nothing:

* a BDF listed twice in the config;
* a BDF the host does not have ("no PCI device 0000:07:00.0 on this host");
* a device bound to a dom0 driver other than pciback when no entry of its group asks to bind
  (``<group>,bind,<bdf>``: a group binds all its devices, as the original);
* a device assigned to another domain (the hypervisor's ``test_assign_device``; the holder is
  named when a PCI backend in xenstore says which domain has it). A device held by the VM's
  own domain (``own_domid``: a preserved dead domain about to be destroyed, or the running
  domain a group is re-plugged into) is fine.
* an HVM guest on a host without the ``directio`` capability (xc_physinfo: no IOMMU), as the
  original checked;
* a host that cannot do PCI at all (a backend or host actions without PCI): "PCI passthrough
  is not available here: ...".

:func:`replug_group` plugs a PCI group of the config into a running domain, after taking out
the same group if the domain already has it (a device added to an existing group re-plugs
the group); :func:`unplug_group` takes a group out (``plan_pci_remove``: release, both ends,
FLR) and plugs back what the new config still has in it. A guest with a stub domain has each
group twice: its own and the stub's copy (not assigned, no reset); both follow, the copy
taken out first and plugged last. An HVM guest's device model is told (``pci-rem`` before a
group goes, ``pci-ins`` after it is plugged, the group's BDFs as the parameter).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from xen.hypervisor import HypervisorError, Unsupported
from xen.xenops import (
    PCIBACK,
    Kind,
    device_model_command,
    observe_domain,
    plan_device_add,
    plan_pci_remove,
)
from xen.xenvm._prune import prune_device_dirs
from xen.xenvm._specs import pci_specs, stub_pci_specs
from xen.xenvm._tasks import TaskError

if TYPE_CHECKING:
    from xen.xenops import ObservedDevice
    from xen.xenstore import NodeOps
    from xen.xenvm._config import VmConfig
    from xen.xenvm._env import XenEnv

__all__ = ["check_pci", "pci_holders", "replug_group", "unplug_group"]

logger = logging.getLogger("xenvm")

_PCI_BACKENDS = "/local/domain/0/backend/pci"
_MAX_DEVS = 256  # dev-<i> nodes read per backend at most (a PCI bus has 256 functions)


def pci_holders(env: XenEnv) -> dict[str, int]:
    """BDF -> the frontend domain of every PCI backend in xenstore (a stub domain's copies,
    never assigned, are left out: its guest's backend names the holder)."""
    xs = env.xenstore()
    found: dict[str, int] = {}
    for fe in _listing(xs, _PCI_BACKENDS):
        if xs.exists(f"/local/domain/{fe}/target"):
            continue
        for devid in _listing(xs, f"{_PCI_BACKENDS}/{fe}"):
            base = f"{_PCI_BACKENDS}/{fe}/{devid}"
            count = xs.try_read(f"{base}/num_devs") or "0"
            for i in range(min(int(count), _MAX_DEVS) if count.isdigit() else 0):
                value = xs.try_read(f"{base}/dev-{i}")
                if value and fe.isdigit():
                    found[value.split("@")[0]] = int(fe)
    return found


def _listing(xs: NodeOps, path: str) -> list[str]:
    try:
        return list(xs.directory(path)) if xs.exists(path) else []
    except Exception:  # removed while we looked
        return []


def check_pci(env: XenEnv, cfg: VmConfig, *, own_domid: int = -1,
              groups: frozenset[int] | None = None) -> None:
    """Refuse (``TaskError``) a config whose PCI devices cannot be passed through now (see
    the module docstring); ``groups``: only those groups' devices."""
    entries = [p for p in cfg.pcis if groups is None or p.group in groups]
    if not entries:
        return
    seen: set[str] = set()
    binds: set[int] = set()
    for pci in cfg.pcis:
        if pci.bdf in seen:
            raise TaskError(f"pci {pci.bdf} is listed twice in the config")
        seen.add(pci.bdf)
        if pci.bind:
            binds.add(pci.group)
    try:
        hv = env.hypervisor()
        if cfg.hvm and not hv.physinfo().directio:
            raise TaskError("an HVM guest with PCI devices needs the directio capability "
                            "(an IOMMU), which this host does not have")
        holders: dict[str, int] | None = None
        for pci in entries:
            try:
                device = env.host_actions.pci_device(pci.bdf)
            except OSError as exc:
                raise TaskError(f"pci {pci.bdf}: {exc.strerror or exc}") from None
            if device.driver != PCIBACK and pci.group not in binds:
                raise TaskError(
                    f"pci {pci.bdf} is bound to the dom0 driver {device.driver or '(none)'}, "
                    f"not {PCIBACK}, and no entry of its group asks to bind "
                    f"({pci.group},bind,{pci.bdf})")
            if hv.test_assign_device(max(own_domid, 0), pci.bdf):
                continue
            holders = pci_holders(env) if holders is None else holders
            holder = holders.get(pci.bdf)
            if holder is not None and holder == own_domid:
                continue
            raise TaskError(f"pci {pci.bdf} is assigned to another domain"
                            + (f" (domain {holder})" if holder is not None else ""))
    except Unsupported as exc:
        raise TaskError(f"PCI passthrough is not available here: {exc}") from None
    except HypervisorError as exc:
        raise TaskError(f"pci: {exc}") from None


def _plugged_groups(env: XenEnv, domid: int, hvm: bool) -> dict[int, ObservedDevice]:
    return {d.device.frontend.devid: d for d in observe_domain(env.xenstore(), domid, hvm=hvm)
            .devices if d.device.backend.kind is Kind.PCI}


def _stub_of(env: XenEnv, domid: int) -> int:
    text = env.xenstore().try_read(f"/local/domain/{domid}/image/device-model-domid")
    return int(text) if text is not None and text.isdigit() else -1


def _remove_group(env: XenEnv, domid: int, group: int, cfg: VmConfig) -> None:
    """Take ``group`` out of ``domid`` (its device model told first) and out of its stub
    domain (that copy first); the domain's last group leaves no empty directory."""
    hvm = cfg.hvm
    observed = _plugged_groups(env, domid, hvm).get(group)
    if observed is not None:
        _tell_device_model(env, domid, cfg, "pci-rem", list(observed.pci_bdfs))
    stub = _stub_of(env, domid)
    copy = _plugged_groups(env, stub, False).get(group) if stub >= 0 else None
    if copy is not None:
        env.executor().run(plan_pci_remove(copy, hvm=False, stub_copy=True))
        prune_device_dirs(env.xenstore(), copy.device)
    if observed is not None:
        env.executor().run(plan_pci_remove(observed, hvm=hvm))
        prune_device_dirs(env.xenstore(), observed.device)


def _tell_device_model(env: XenEnv, domid: int, cfg: VmConfig, command: str,
                       bdfs: list[str]) -> None:
    """An HVM guest's device model (any mode) hears of a hot-plugged group: ``pci-ins`` or
    ``pci-rem`` with the group's BDFs (comma-separated), no answer awaited (the original's)."""
    if cfg.hvm and bdfs and env.xenstore().exists(f"/local/domain/0/device-model/{domid}/state"):
        device_model_command(env.xenstore(), domid, command, float(cfg.qemu_dm_timeout),
                             parameter=bdfs)


def unplug_group(env: XenEnv, domid: int, group: int, cfg: VmConfig) -> None:
    """Take PCI group ``group`` out of ``domid`` (and its stub domain); plug back what ``cfg``
    still has in it."""
    _remove_group(env, domid, group, cfg)
    if any(p.group == group for p in cfg.pcis):
        replug_group(env, domid, group, cfg)


def replug_group(env: XenEnv, domid: int, group: int, cfg: VmConfig) -> None:
    """Plug PCI group ``group`` of ``cfg`` into ``domid`` (re-plugging it when present), and
    its copy into the domain's stub domain."""
    check_pci(env, cfg, own_domid=domid, groups=frozenset({group}))
    logger.info("domain %d: plugging pci group %d", domid, group)
    _remove_group(env, domid, group, cfg)
    spec = next(s for s in pci_specs(cfg, domid) if s.devid == group)
    env.executor().run(plan_device_add(spec, env.timeouts))
    stub = _stub_of(env, domid)
    if stub >= 0:
        copy = next(s for s in stub_pci_specs(cfg, domid, stub) if s.devid == group)
        env.executor().run(plan_device_add(copy, env.timeouts))
    _tell_device_model(env, domid, cfg, "pci-ins", [p.bdf for p in cfg.pcis if p.group == group])
