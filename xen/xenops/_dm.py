"""Starting, commanding and stopping a domain's device model (qemu-dm, direct mode).

What a VM monitor calls; the command line comes from `xen.xenops._dmargs` and the process is
started by the host actions (`SimHostActions` runs the simulated device model
``python -m xen.sim.qemu_dm``, `Dom0HostActions` execs the configured qemu-dm-wrapper with the
same argv). The sequence is the original's:

`start_device_model(host, xs, domid, info, timeout)`:
  1. the argv (`qemu_argv`; a bad `DmInfo` raises `DmArgsError` before anything happens);
  2. stale ``device-misc/dm-ready``, ``qemu-pid``, ``console/vnc-port`` and the old
     ``command``/``state`` nodes removed; the nodes prepared for qemu written
     (`dm_prepare_writes`);
  3. the host action starts the process (the simulated one also waits for its ready line
     and reports its exit status and last log line if it dies first);
  4. wait for ``/local/domain/<d>/device-misc/dm-ready``; then ``qemu-pid`` must exist and
     name a live process; then, with VNC, wait for ``console/vnc-port``.
  Every wait shares the one ``timeout``. On any failure after the start the process is
  stopped again (bounded) and `DeviceModelError` names the step. Returns qemu's pid.

`stop_device_model(host, xs, domid, timeout)`: SIGTERM to the pid in ``qemu-pid``, a bounded
wait, SIGKILL after it; then ``qemu-pid`` and ``/local/domain/0/device-model/<d>`` removed.
Returns whether a process was stopped. (A domain destroy plan does the same through its
``kill_process`` host action.)

`device_model_command(xs, domid, command, timeout)`: write ``command`` (``parameter`` first
when given) under ``/local/domain/0/device-model/<d>`` and, for ``save`` and ``continue``,
wait for ``state`` to become ``paused`` / ``running``; `DeviceModelError` on timeout.

A host-actions object without these members raises `Unsupported` naming the action.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from xen.hypervisor import Unsupported
from xen.xenops._dmargs import DmInfo, dm_prepare_writes, qemu_argv, wants_vnc_port

if TYPE_CHECKING:
    from xen.xenops._executor import HostActions
    from xen.xenstore import XenstoreClient

__all__ = [
    "DEFAULT_QEMU_DM_PATH",
    "DeviceModelError",
    "device_model_command",
    "dm_paths",
    "start_device_model",
    "stop_device_model",
]

logger = logging.getLogger("xenops")

DEFAULT_QEMU_DM_PATH = "/opt/xensource/libexec/qemu-dm-wrapper"  # the original's add_dm
_STATE_FOR = {"save": "paused", "continue": "running"}


class DeviceModelError(RuntimeError):
    """The device model did not start, answer or stop as it should."""


def dm_paths(domid: int) -> dict[str, str]:
    """The xenstore nodes of a domain's device model, by role."""
    dom, dm = f"/local/domain/{domid}", f"/local/domain/0/device-model/{domid}"
    return {"ready": f"{dom}/device-misc/dm-ready", "pid": f"{dom}/qemu-pid",
            "vnc": f"{dom}/console/vnc-port", "dir": dm, "command": f"{dm}/command",
            "parameter": f"{dm}/parameter", "state": f"{dm}/state"}


def _member(host: HostActions, name: str) -> Callable[..., object]:
    member = getattr(host, name, None)
    if member is None:
        raise Unsupported(f"not implemented: host action {name} on {type(host).__name__}")
    return member


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[:1] != ["Z"]
    except OSError:
        return True


def start_device_model(
    host: HostActions, xs: XenstoreClient, domid: int, info: DmInfo, timeout: float, *,
    qemu_dm_path: str = DEFAULT_QEMU_DM_PATH, power_mgmt: int = 0, oem_features: int = 0,
    inject_sci: int = 0, host_has_battery: bool = False,
) -> int:
    """Start qemu for ``domid`` and wait until it is ready (see the module docstring)."""
    if timeout <= 0:
        raise ValueError(f"device-model timeout must be > 0, got {timeout}")
    argv = qemu_argv(qemu_dm_path, info, domid)
    start = _member(host, "start_device_model")
    paths = dm_paths(domid)
    for key in ("ready", "pid", "vnc", "command", "parameter", "state"):
        xs.rm(paths[key])
    for write in dm_prepare_writes(domid, power_mgmt=power_mgmt, oem_features=oem_features,
                                   inject_sci=inject_sci, host_has_battery=host_has_battery):
        xs.write(write.path, write.value)
    deadline = time.monotonic() + timeout
    started = start(domid, argv, timeout)
    assert isinstance(started, int)
    logger.info("domain %d: device model started (pid %d): %s", domid, started, " ".join(argv))
    try:
        _wait_ready(xs, domid, info, deadline, timeout)
        text = xs.try_read(paths["pid"])
        if text is None or not text.isdigit():
            raise DeviceModelError(f"domain {domid}: device model wrote dm-ready but "
                                   f"qemu-pid is {text!r}")
        pid = int(text)
        if not _alive(pid):
            raise DeviceModelError(f"domain {domid}: device model pid {pid} is not running")
    except Exception:
        _stop_pid(host, started, min(timeout, 5.0))
        raise
    return pid


def _wait_ready(xs: XenstoreClient, domid: int, info: DmInfo, deadline: float,
                timeout: float) -> None:
    from xen.xenstore import value_to_appear

    paths = dm_paths(domid)
    waits = [("dm-ready", paths["ready"])]
    if wants_vnc_port(info):
        waits.append(("console/vnc-port", paths["vnc"]))
    for what, path in waits:
        left = max(0.0, deadline - time.monotonic())
        if not xs.wait_until(value_to_appear(path), left, poll=min(0.5, max(left, 0.01))):
            raise DeviceModelError(f"domain {domid}: the device model did not write {what} "
                                   f"within {timeout:g} s")


def _stop_pid(host: HostActions, pid: int, timeout: float) -> None:
    stop = getattr(host, "stop_device_model", None)
    try:
        if stop is not None:
            stop(pid, timeout)
        else:
            host.kill_process(pid, timeout)
    except Exception as exc:
        logger.warning("stopping device model pid %d failed: %s", pid, exc)


def stop_device_model(host: HostActions, xs: XenstoreClient, domid: int,
                      timeout: float) -> bool:
    """Stop the device model of ``domid`` (see the module docstring)."""
    paths = dm_paths(domid)
    text = xs.try_read(paths["pid"])
    stopped = False
    if text is not None and text.isdigit():
        stop = getattr(host, "stop_device_model", None)
        if stop is not None:
            stop(int(text), timeout)
        else:
            host.kill_process(int(text), timeout)
        stopped = True
        logger.info("domain %d: device model (pid %s) stopped", domid, text)
    xs.rm(paths["pid"])
    xs.rm(paths["dir"])
    return stopped


def device_model_command(xs: XenstoreClient, domid: int, command: str, timeout: float,
                         parameter: str | Sequence[str] | None = None) -> None:
    """Send ``command`` to the device model and wait for its answer where it gives one."""
    from xen.xenstore import value_to_become

    paths = dm_paths(domid)
    if parameter is not None:
        value = parameter if isinstance(parameter, str) else ",".join(parameter)
        xs.write(paths["parameter"], value)
    xs.write(paths["command"], command)
    expected = _STATE_FOR.get(command)
    if expected is None:
        return
    if not xs.wait_until(value_to_become(paths["state"], expected), timeout,
                         poll=min(0.5, timeout)):
        raise DeviceModelError(f"domain {domid}: device model did not answer {command} "
                               f"(state {xs.try_read(paths['state'])!r}, expected {expected!r}) "
                               f"within {timeout:g} s")
