"""The ``xenops`` command's device commands: add/del of vbds and vifs, and list_devices.

Adds build the same specs as a VM start (`VbdSpec`, `VifSpec`) and run `plan_device_add`:
one transaction writing both ends, then the waits for the hotplug script (``-timeout``, 10 s by
default, where the original waited 20 minutes). A PV domain's file-backed disk is first
attached to a loop device by the host actions (made up on the simulated host, ``losetup`` on a
dom0), as xenvm does. A failed add leaves what it wrote (remove it with ``-hard``).

Removals read the device back from xenstore (`observe_domain`) and run `plan_device_remove`:
a clean unplug by default (the backend is asked to close; a vbd waits for Closed, a vif for
the hotplug script), falling back to a hard unplug when the clean one fails, as the original's
del_vbd/del_vif did; ``-hard`` goes straight to it. A device that is not there is an error
naming it (the original hard-unplugged a device it had made up from the arguments).

Printed: ``added vbd/<devid> (<virtpath>) to domain <d>``, ``added vif/<devid> ...``,
``removed ...``; list_devices prints one line per device:
``<kind>[<devid>] frontend <state> backend dom<be> <kind>/<devid> <dev> <state>``.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

from xen.xenops._cli_domains import domain_info
from xen.xenops._cli_env import CliError, UsageError
from xen.xenops._devid import DeviceNameError, XenbusState, name_to_devid
from xen.xenops._devspec import VbdSpec, VifSpec
from xen.xenops._executor import PlanFailed
from xen.xenops._layout import Kind, LayoutError, PhysType
from xen.xenops._observe import observe_domain
from xen.xenops._plan import Timeouts, plan_device_add
from xen.xenops._teardown import plan_device_remove

if TYPE_CHECKING:
    from argparse import Namespace

    from xen.xenops._cli_env import Session
    from xen.xenops._teardown import ObservedDevice

__all__ = ["DEVICE_COMMANDS", "parse_netty"]

logger = logging.getLogger("xenops")


def parse_netty(text: str) -> str | None:
    """``bridge:<name>`` -> the backend's ``bridge`` value; ``DriverDomain`` -> none."""
    kind, sep, name = text.partition(":")
    if text == "DriverDomain":
        return None
    if kind == "bridge" and sep and name:
        return name
    raise UsageError(f"-netty: not a valid network type: {text!r} "
                     f"(expected bridge:<name> or DriverDomain)")


def _timeouts(seconds: float) -> Timeouts:
    return Timeouts(hotplug=seconds, device_close=seconds)


def cmd_add_vbd(s: Session, a: Namespace) -> int:
    info = domain_info(s, a.domid)
    phystype = PhysType(a.phystype)
    loop: str | None = None
    physical: tuple[int, int] | None = None
    try:
        name_to_devid(a.virtpath)
    except DeviceNameError as exc:
        raise UsageError(f"-virtpath: {exc}") from None
    if phystype is PhysType.FILE and not info.hvm:
        loop, major, minor = s.host().attach_file(a.physpath)
        physical = (major, minor)
    try:
        spec = VbdSpec(frontend_domid=a.domid, virtpath=a.virtpath, physpath=a.physpath,
                       phystype=phystype, mode=a.mode, device_type=a.devtype,
                       backend_domid=a.backend_domid, hvm=info.hvm,
                       physical_device=physical, loop_device=loop)
    except (LayoutError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    s.executor().run(plan_device_add(spec, _timeouts(a.timeout)))
    print(f"added vbd/{spec.devid} ({a.virtpath}) to domain {a.domid}")
    return 0


def cmd_add_vif(s: Session, a: Namespace) -> int:
    domain_info(s, a.domid)
    mac = a.mac or "00:16:3e:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))
    try:
        spec = VifSpec(frontend_domid=a.domid, devid=a.devid, mac=mac,
                       network=parse_netty(a.netty), backend_domid=a.backend_domid)
    except LayoutError as exc:
        raise UsageError(str(exc)) from None
    s.executor().run(plan_device_add(spec, _timeouts(a.timeout)))
    print(f"added vif/{a.devid} ({mac}) to domain {a.domid}")
    return 0


def _find(s: Session, domid: int, kinds: tuple[Kind, ...], devid: int, backend: int,
          hvm: bool, what: str) -> ObservedDevice:
    observed = observe_domain(s.xs(), domid, hvm=hvm, backend_domids=(0, backend))
    for obs in observed.devices:
        fe, be = obs.device.frontend, obs.device.backend
        if fe.kind in kinds and fe.devid == devid and be.domid == backend:
            return obs
    raise CliError(f"domain {domid} has no {what} with its backend in domain {backend}")


def _remove(s: Session, obs: ObservedDevice, hvm: bool, hard: bool, timeout: float) -> None:
    ex = s.executor()
    if not hard:
        try:
            ex.run(plan_device_remove(obs, "clean", hvm=hvm, timeouts=_timeouts(timeout)))
            return
        except PlanFailed as exc:
            logger.warning("clean unplug failed (%s); unplugging by force", exc)
    result = ex.run(plan_device_remove(obs, "hard", hvm=hvm, timeouts=_timeouts(timeout)))
    if not result.ok:
        steps = "; ".join(f"{step}: {error}" for step, error in result.failures)
        raise CliError(f"hard unplug left work undone: {steps}")


def _hvm_of(s: Session, domid: int) -> bool:
    try:
        return domain_info(s, domid).hvm
    except CliError:  # a dead domain's devices can still be taken apart
        return False


def cmd_del_vbd(s: Session, a: Namespace) -> int:
    try:
        devid = name_to_devid(a.virtpath)
    except DeviceNameError as exc:
        raise UsageError(f"-virtpath: {exc}") from None
    hvm = _hvm_of(s, a.domid)
    obs = _find(s, a.domid, (Kind.VBD,), devid, a.backend_domid, hvm,
                f"vbd {a.virtpath} (devid {devid})")
    _remove(s, obs, hvm, a.hard, a.timeout)
    print(f"removed vbd/{devid} ({a.virtpath}) from domain {a.domid}")
    return 0


def cmd_del_vif(s: Session, a: Namespace) -> int:
    hvm = _hvm_of(s, a.domid)
    obs = _find(s, a.domid, (Kind.VIF, Kind.VWIF), a.devid, a.backend_domid, hvm,
                f"vif {a.devid}")
    _remove(s, obs, hvm, a.hard, a.timeout)
    print(f"removed vif/{a.devid} from domain {a.domid}")
    return 0


def _state_name(text: str | None) -> str:
    if text is None:
        return "gone"
    try:
        return XenbusState.parse(text).name.capitalize()
    except ValueError:
        return f"bad({text})"


def cmd_list_devices(s: Session, a: Namespace) -> int:
    xs = s.xs()
    for obs in observe_domain(xs, a.domid, hvm=False).devices:
        dev = obs.device
        fe, be = dev.frontend, dev.backend
        name = xs.try_read(f"{dev.backend_path}/dev") or ""
        print(f"{fe.kind.value}[{fe.devid}] frontend "
              f"{_state_name(xs.try_read(f'{dev.frontend_path}/state'))} backend dom{be.domid} "
              f"{be.kind.value}/{be.devid} {name} "
              f"{_state_name(xs.try_read(dev.backend_state_path))}".replace("  ", " "))
    return 0


DEVICE_COMMANDS = {
    "add_vbd": cmd_add_vbd, "del_vbd": cmd_del_vbd, "add_vif": cmd_add_vif,
    "del_vif": cmd_del_vif, "list_devices": cmd_list_devices,
}
