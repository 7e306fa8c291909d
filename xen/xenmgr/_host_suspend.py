"""Host sleep (S3) and hibernation (S4): each VM handled by its ``s3-mode`` / ``s4-mode``, as
the original's power management did, inside a host transition (``_host_power.transition``:
one at a time, ``/xenmgr/host-state`` and ``state_changed``, back to ``idle`` on a failure).

**Sleep** (``going-to-sleep`` / ``sleeping``):

1. the running VMs are put to sleep in two stages, the VMs of a stage in parallel: first the
   guests (``type`` ``svm``), then the other VMs whose ``s3-mode`` is ``restart``. By mode:
   ``ignore`` nothing; ``pv`` the VM's own S3 (``VmFlows.sleep``; our VM monitors cannot put a
   guest in S3 yet, so this fails naming that); ``restart`` the VM is shut down; ``snapshot``
   is refused (the original never implemented it). A failure stops the sequence: the VMs
   already handled are resumed, the host goes back to ``idle``, the call fails with the VM's
   error;
2. the host's own suspend (``_host_power.power_action("suspend")``: the simulated host records
   it and wakes at once; a dom0 runs ``systemctl suspend``);
3. the host is ``idle`` again, then the VMs are resumed one by one, in the order they slept:
   ``restart`` ones are started again (``pv`` ones would be resumed from S3). A VM that does not
   come back is logged (naming it) and the others still are; the call then fails with 224.

**Hibernate** (``going-to-hibernate`` / ``hibernating``): every running guest in parallel, by
its ``s4-mode``: ``ignore`` nothing; ``pv`` needs ``pv-addons-installed`` (else 213), then the
VM is hibernated (saved to its image, ``hibernated`` set; its next start restores it);
``restart`` the VM is shut down and ``hibernated`` set (its next boot is a fresh start);
``snapshot`` refused. Any failure: error 201, the host back to ``idle`` (the cause is logged).
Then db ``/platform/hibernated`` = ``true``, every other VM shut down by priority group, and
the host powers off (``poweroff``), as the original, whose dom0 did not hibernate itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from xen.xenmgr._errors import XenmgrError, error, plain
from xen.xenmgr._host_power import (
    is_stopped,
    power_action,
    set_host_state,
    stop_all_vms,
    transition,
)
from xen.xenmgr._jsontree import parse_db_bool

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["hibernate_host", "sleep_host"]

logger = logging.getLogger("xenmgr")

GUEST_TYPES = ("svm", "pvm")


def _mode(tree: dict[str, Any], key: str) -> str:
    return str(tree.get(key) or "pv")


def _is_guest(tree: dict[str, Any]) -> bool:
    return str(tree.get("type") or "svm") in GUEST_TYPES


def _flag(tree: dict[str, Any], key: str) -> bool:
    try:
        return parse_db_bool(str(tree.get(key) or "false"), what=key)
    except ValueError:
        return False


def _parallel(uuids: list[str],
              one: Callable[[str], bool]) -> tuple[list[str], BaseException | None]:
    """Run ``one`` on every VM in parallel: the VMs it returned True for, the first failure."""
    if not uuids:
        return [], None
    with ThreadPoolExecutor(max_workers=len(uuids), thread_name_prefix="host-pm") as pool:
        futures = [(u, pool.submit(one, u)) for u in uuids]
        done = [(u, f.exception()) for u, f in futures]
    handled = [u for (u, exc), (_, f) in zip(done, futures, strict=True)
               if exc is None and f.result()]
    failures = [exc for _, exc in done if exc is not None]
    return handled, failures[0] if failures else None


def _unsupported_mode(uuid: str, key: str, mode: str) -> XenmgrError:
    return plain(f"VM {uuid}: {key} {mode!r} is not implemented (nor was it in the original)")


def _put_to_sleep(ctx: ServiceContext, uuid: str) -> bool:
    """S3 for one VM by its mode; True when it must be resumed afterwards."""
    if is_stopped(uuid):
        return False
    mode = _mode(ctx.flows.tree(uuid), "s3-mode")
    if mode == "ignore":
        return False
    if mode == "pv":
        logger.info("host sleep: putting VM %s to sleep", uuid)
        ctx.flows.sleep(uuid)
        return True
    if mode == "restart":
        logger.info("host sleep: shutting VM %s down (s3-mode restart)", uuid)
        ctx.flows.shutdown(uuid, ctx.settings.vm_shutdown_timeout)
        return True
    raise _unsupported_mode(uuid, "s3-mode", mode)


def _wake(ctx: ServiceContext, uuids: list[str]) -> list[str]:
    """Resume the VMs (module docstring); the ones that did not come back."""
    failed = []
    for uuid in uuids:
        try:
            if _mode(ctx.flows.tree(uuid), "s3-mode") == "restart":
                ctx.flows.start(uuid)
            else:
                ctx.flows.resume(uuid)
        except Exception as exc:
            logger.error("host sleep: VM %s did not resume: %s", uuid, exc)
            failed.append(uuid)
    return failed


def sleep_host(ctx: ServiceContext) -> None:
    """Host sleep (module docstring)."""
    failed: list[str] = []

    def body() -> None:
        vms: dict[str, Any] = ctx.db.vms()
        stages = [sorted(u for u, t in vms.items() if _is_guest(t)),
                  sorted(u for u, t in vms.items()
                         if not _is_guest(t) and _mode(t, "s3-mode") == "restart")]
        slept: list[str] = []
        for stage in stages:
            handled, exc = _parallel(stage, lambda u: _put_to_sleep(ctx, u))
            slept += handled
            if exc is not None:
                _wake(ctx, slept)
                raise exc
        power_action(ctx, "suspend")
        set_host_state(ctx, "idle")
        failed.extend(_wake(ctx, slept))
    transition(ctx, "sleep", body)
    if failed:
        raise error(224)


def _hibernate_one(ctx: ServiceContext, uuid: str) -> bool:
    if is_stopped(uuid):
        return False
    tree = ctx.flows.tree(uuid)
    mode = _mode(tree, "s4-mode")
    if mode == "ignore":
        return False
    if mode == "pv":
        if not _flag(tree, "pv-addons-installed"):
            raise error(213)
        logger.info("host hibernate: hibernating VM %s", uuid)
        ctx.flows.hibernate(uuid)
        return True
    if mode == "restart":
        logger.info("host hibernate: shutting VM %s down (s4-mode restart)", uuid)
        ctx.flows.shutdown(uuid, ctx.settings.vm_shutdown_timeout)
        ctx.db.write(f"/vm/{uuid}/hibernated", "true")
        return True
    raise _unsupported_mode(uuid, "s4-mode", mode)


def hibernate_host(ctx: ServiceContext) -> None:
    """Host hibernation (module docstring)."""
    def body() -> None:
        vms: dict[str, Any] = ctx.db.vms()
        guests = sorted(u for u, t in vms.items() if _is_guest(t))
        _handled, exc = _parallel(guests, lambda u: _hibernate_one(ctx, u))
        if exc is not None:
            logger.error("host hibernate: a VM failed: %s", exc)
            raise error(201) from exc
        ctx.db.write("/platform/hibernated", "true")
        stop_all_vms(ctx, "hibernate")
        power_action(ctx, "poweroff")
    transition(ctx, "hibernate", body)
