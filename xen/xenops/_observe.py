"""Reading a domain's devices back from xenstore, for teardown plans.

:func:`observe_domain` builds the :class:`~xen.xenops._teardown.ObservedDomain` a destroy plan
needs, from what xenstore says now (never from what we think we created, which a crash may
have made stale): every frontend under ``/local/domain/<d>/device/<kind>/<devid>`` with the
backend its ``backend`` link names, every backend directory
``/local/domain/<be>/backend/<kind>/<d>`` whose ``frontend`` link points back (devices whose
frontend is already gone), the ``vm``/``vss`` links, the stubdomain, qemu and dm-agents.
Missing nodes are simply absent; malformed links are skipped with a warning, and so are a
stubdomain id that no domain can have and a qemu or helper pid below 2 (which would signal a
process group or init), so a destroy plan can always be built from what is found.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from xen.hypervisor import DOMID_FIRST_RESERVED
from xen.xenops._devid import XenbusState
from xen.xenops._layout import Device, Endpoint, Kind, domain_path
from xen.xenops._teardown import ObservedDevice, ObservedDomain

if TYPE_CHECKING:
    from xen.xenstore import NodeOps

__all__ = ["observe_domain"]

logger = logging.getLogger(__name__)

_BACKEND = re.compile(r"^/local/domain/(\d+)/backend/([a-z0-9]+)/(\d+)/(\d+)$")
_KINDS = {k.value: k for k in Kind}
_MAX_PID = 1 << 22  # Linux's PID_MAX_LIMIT
_BDF = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]")


def _kind(name: str) -> Kind | None:
    return _KINDS.get(name)


def _state(xs: NodeOps, path: str) -> XenbusState | None:
    text = xs.try_read(path)
    if text is None:
        return None
    try:
        return XenbusState.parse(text)
    except ValueError:
        return None


def _frontend_devices(xs: NodeOps, domid: int) -> dict[str, ObservedDevice]:
    found: dict[str, ObservedDevice] = {}
    base = f"{domain_path(domid)}/device"
    for kind_name in _list(xs, base):
        kind = _kind(kind_name)
        if kind is None:
            continue
        for devid in _list(xs, f"{base}/{kind_name}"):
            link = xs.try_read(f"{base}/{kind_name}/{devid}/backend")
            match = _BACKEND.match(link or "")
            if match is None or int(match.group(3)) != domid or not devid.isdigit():
                logger.warning("domain %d: %s/%s has no usable backend link %r", domid,
                               kind_name, devid, link)
                continue
            be_kind = _kind(match.group(2))
            if be_kind is None:
                continue
            dev = Device(Endpoint(domid, kind, int(devid)),
                         Endpoint(int(match.group(1)), be_kind, int(match.group(4))))
            found[dev.backend_path] = ObservedDevice(
                dev, _state(xs, dev.backend_state_path),
                xs.try_read(f"{dev.backend_path}/loop-device") or None,
                _pci_bdfs(xs, dev))
    return found


def _orphan_backends(xs: NodeOps, domid: int, backend_domids: set[int],
                     found: dict[str, ObservedDevice]) -> tuple[list[str], list[ObservedDevice]]:
    dirs: list[str] = []
    orphans: list[ObservedDevice] = []
    for be in sorted(backend_domids):
        root = f"{domain_path(be)}/backend"
        for kind_name in _list(xs, root):
            kind = _kind(kind_name)
            path = f"{root}/{kind_name}/{domid}"
            devids = _list(xs, path)
            if not devids or kind is None:
                continue
            dirs.append(path)
            for devid in devids:
                bpath = f"{path}/{devid}"
                if bpath in found or not devid.isdigit():
                    continue
                fe_link = xs.try_read(f"{bpath}/frontend") or ""
                fe_kind_name = fe_link.rstrip("/").split("/")[-2] if fe_link.count("/") > 2 else ""
                fe_kind = _kind(fe_kind_name) or kind
                if not fe_link.startswith(f"{domain_path(domid)}/device/"):
                    continue
                dev = Device(Endpoint(domid, fe_kind, int(devid)), Endpoint(be, kind, int(devid)))
                orphans.append(ObservedDevice(dev, _state(xs, dev.backend_state_path),
                                              pci_bdfs=_pci_bdfs(xs, dev)))
    return dirs, orphans


def _pci_bdfs(xs: NodeOps, dev: Device) -> tuple[str, ...]:
    """The BDFs of a PCI backend's ``dev-<i>`` nodes (without any ``@slot``), i < num_devs."""
    if dev.backend.kind is not Kind.PCI:
        return ()
    count = _number(dev.frontend.domid, "pci num_devs",
                    xs.try_read(f"{dev.backend_path}/num_devs"), 0, 256) or 0
    values = (xs.try_read(f"{dev.backend_path}/dev-{i}") for i in range(count))
    return tuple(v.split("@")[0] for v in values if v and _BDF.fullmatch(v.split("@")[0]))


def _number(domid: int, what: str, text: str | None, low: int, high: int) -> int | None:
    """``text`` as an int in low..high; None when missing, else a warning when malformed."""
    if text is None:
        return None
    if text.isdigit() and low <= int(text) <= high:
        return int(text)
    logger.warning("domain %d: ignoring %s %r", domid, what, text)
    return None


def _list(xs: NodeOps, path: str) -> list[str]:
    try:
        return list(xs.directory(path))
    except Exception:  # no such node (or removed while we looked)
        return []


def observe_domain(xs: NodeOps, domid: int, *, hvm: bool = False,
                   backend_domids: tuple[int, ...] = (0,)) -> ObservedDomain:
    """What xenstore says about ``domid`` now (see the module docstring)."""
    dom = domain_path(domid)
    found = _frontend_devices(xs, domid)
    bes = set(backend_domids) | {d.device.backend.domid for d in found.values()}
    dirs, orphans = _orphan_backends(xs, domid, bes, found)
    stubdom = None
    stub = _number(domid, "stubdomain id", xs.try_read(f"{dom}/image/device-model-domid"),
                   1, DOMID_FIRST_RESERVED - 1)
    if stub is not None and stub != domid:
        stubdom = observe_domain(xs, stub, backend_domids=backend_domids)
    agents = tuple(a for a in (0, *(() if stub is None else (stub,)))
                   if xs.exists(f"{domain_path(a)}/dm-agent/dms/{domid}"))
    qemu = _number(domid, "qemu pid", xs.try_read(f"{dom}/qemu-pid"), 2, _MAX_PID)
    helpers = [_number(domid, "device-model helper pid", p, 2, _MAX_PID)
               for p in _list(xs, f"/local/domain/0/device-model/{domid}/dm-helpers")]
    return ObservedDomain(
        domid=domid, hvm=hvm, devices=(*found.values(), *orphans),
        vm_path=xs.try_read(f"{dom}/vm"), vss_path=xs.try_read(f"{dom}/vss"),
        dm_agents=agents, stubdom=stubdom, qemu_pid=qemu,
        dm_helper_pids=tuple(p for p in helpers if p is not None),
        backend_dirs=tuple(dirs),
    )
