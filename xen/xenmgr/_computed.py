"""The values of computed properties: what only the running service knows.

VM properties come from the VM's monitor (state, domid, stub domain) and the database view the
caller loaded (``hibernated``, ``virt-type``, ``crypto-user``...), ``dependencies`` from every
VM's subtree (``_vm_deps``); host figures from the hypervisor the tree publishes
(``/xen/hypervisor``); disk figures from the disk's file (a VHD's virtual size from its
footer) and ``encryption-key-set`` from the key directories (``_vm_extras``). Facts this
host cannot know yet (the hardware description, licences, flag files of services we do not
run) have fixed answers, listed in docs/xenmgr-coverage.md: ``""``, ``false``, ``0`` or an
empty list; ``language`` is ``en-us``.

Failure behaviour: a figure that cannot be had (no hypervisor running, a missing file) reads as
0; nothing here raises for a missing source (``dependencies`` raises for a dependency cycle,
naming it; ``GetAll`` then answers an empty list for it). Unknown names raise ``KeyError``
(a binding without a value here is a bug, caught by a test).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from actors import ActorDeadError, NoSuchActor, ServiceUnavailable, service
from xen.hypervisor import Hypervisor, HypervisorError
from xen.xenmgr._binding import Binding, Scope, Value
from xen.xenmgr._codecs import decode_bool
from xen.xenmgr._dbview import DbView
from xen.xenmgr._devices import read_disk, read_disks
from xen.xenmgr._flows import internal_state
from xen.xenmgr._host_extras import is_licensed
from xen.xenmgr._host_power import host_state_node
from xen.xenmgr._monitors import monitor_view
from xen.xenmgr._properties import Target, portica_enabled, seamless_traffic
from xen.xenmgr._states import (
    acpi_state,
    crypto_mount_point,
    host_public_state,
    is_running,
    login_required,
    mounted_paths,
    public_state,
)
from xen.xenmgr._vm_deps import dependency_paths
from xen.xenmgr._vm_extras import KEY_SIZES, PLATFORM_KEY_DIRS, disk_key_dirs, key_file_name

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["COMPUTED", "computed_value", "vhd_virtual_size"]

Getter = Callable[["ServiceContext", DbView, Target], Value]


def _vm(target: Target) -> str:
    return f"/vm/{target.uuid}"


def _flag(view: DbView, path: str, default: bool = False) -> bool:
    text = view.read(path)
    if text is None:
        return default
    try:
        return decode_bool(path, text)
    except Exception:
        return default


def _state(ctx: ServiceContext, view: DbView, t: Target) -> Value:
    state = internal_state(t.uuid or "")
    user = view.read(f"{_vm(t)}/crypto-user") or None
    locked = False
    if user is not None:
        try:
            with open("/proc/mounts") as f:
                locked = login_required(user, mounted_paths(f.read()))
        except OSError:
            locked = not os.path.ismount(crypto_mount_point(user))
    return public_state(state, login_required=locked)


def _domid(ctx: ServiceContext, view: DbView, t: Target) -> Value:
    monitor = monitor_view(t.uuid or "")
    return monitor.domid if monitor is not None else -1


def _stub_domid(ctx: ServiceContext, view: DbView, t: Target) -> Value:
    monitor = monitor_view(t.uuid or "")
    return monitor.stubdom_domid if monitor is not None else -1


def _acpi(ctx: ServiceContext, view: DbView, t: Target) -> Value:
    virt = view.read(f"{_vm(t)}/config/virt-type") or "pv"
    return acpi_state(internal_state(t.uuid or ""), pv=virt == "pv",
                      hibernated=_flag(view, f"{_vm(t)}/hibernated"))


def _memory_target(ctx: ServiceContext, view: DbView, t: Target) -> Value:
    if not is_running(internal_state(t.uuid or "")):
        return 0
    text = view.read(f"{_vm(t)}/config/memory") or "0"
    return int(text) if text.strip().lstrip("-").isdigit() else 0


def _seamless(ctx: ServiceContext, view: DbView, t: Target) -> Value:
    stored = view.read(f"{_vm(t)}/seamless-traffic")
    return seamless_traffic(view.read(f"{_vm(t)}/type") or "svm",
                            None if stored is None else _flag(view, f"{_vm(t)}/seamless-traffic"),
                            False)


def _portica(ctx: ServiceContext, view: DbView, t: Target) -> Value:
    return portica_enabled(_flag(view, f"{_vm(t)}/portica-installed"),
                           _flag(view, f"{_vm(t)}/portica-enabled"),
                           bool(_seamless(ctx, view, t)))


def _private_space(ctx: ServiceContext, view: DbView, t: Target) -> Value:
    total = 0
    for disk in read_disks(view.sub(_vm(t))):
        if disk.path and disk.devtype != "cdrom":
            try:
                total += os.stat(disk.path).st_size
            except OSError:
                pass
    return total // (1 << 20)


def _hv() -> Hypervisor | None:
    try:
        return service("/xen/hypervisor", Hypervisor)
    except (NoSuchActor, ServiceUnavailable, ActorDeadError):
        return None


def _host_mib(which: str) -> Getter:
    def get(ctx: ServiceContext, view: DbView, t: Target) -> Value:
        hv = _hv()
        if hv is None:
            return 0
        try:
            info = hv.physinfo()
        except (HypervisorError, OSError):
            return 0
        kib = info.total_kib if which == "total" else info.free_kib
        return kib // 1024
    return get


def _cpu_count(ctx: ServiceContext, view: DbView, t: Target) -> Value:
    hv = _hv()
    try:
        return hv.physinfo().nr_cpus if hv is not None else (os.cpu_count() or 0)
    except (HypervisorError, OSError):
        return os.cpu_count() or 0


def _storage(which: str) -> Getter:
    def get(ctx: ServiceContext, view: DbView, t: Target) -> Value:
        try:
            st = os.statvfs(ctx.settings.storage_dir)
        except OSError:
            return 0
        blocks = st.f_blocks if which == "total" else st.f_bavail
        return blocks * st.f_frsize // (1 << 20)
    return get


def vhd_virtual_size(path: str) -> int:
    """The virtual size in bytes of a VHD (its footer's current size; 0 if not a VHD)."""
    try:
        with open(path, "rb") as f:
            f.seek(-512, os.SEEK_END)
            footer = f.read(512)
    except OSError:
        return 0
    if len(footer) < 512 or not footer.startswith(b"conectix"):
        return 0
    return int(struct.unpack(">Q", footer[48:56])[0])


def _disk_file(view: DbView, t: Target) -> str | None:
    disk = read_disk(view.sub(_vm(t)), t.disk if t.disk is not None else -1)
    return disk.path if disk is not None else None


def _utilization(ctx: ServiceContext, view: DbView, t: Target) -> Value:
    path = _disk_file(view, t)
    try:
        return os.stat(path).st_blocks * 512 if path else 0
    except OSError:
        return 0


def _virtual_size(ctx: ServiceContext, view: DbView, t: Target) -> Value:
    path = _disk_file(view, t)
    return vhd_virtual_size(path) // (1 << 20) if path else 0


def _key_set(ctx: ServiceContext, view: DbView, t: Target) -> Value:
    """A key for the disk's VHD exists in the VM's or the platform's key directories."""
    path = _disk_file(view, t)
    if not path:
        return False
    dirs = disk_key_dirs(ctx.db.read(PLATFORM_KEY_DIRS), view.read(f"{_vm(t)}/crypto-key-dirs"))
    return any(os.path.isfile(os.path.join(d, key_file_name(path, size)))
               for d in dirs for size in KEY_SIZES)


def _const(value: Value) -> Getter:
    return lambda ctx, view, t: value


#: Computed property name -> its getter (one per computed binding; a test checks it).
COMPUTED: dict[str, Getter] = {
    "state": _state, "domid": _domid, "stub_domid": _stub_domid, "acpi-state": _acpi,
    "memory-target": _memory_target, "seamless-traffic": _seamless,
    "portica-enabled": _portica, "private-space": _private_space,
    "dependencies": lambda ctx, view, t: dependency_paths(ctx.db, t.uuid or ""),
    "seamless-mouse-left": _const(-1),
    "seamless-mouse-right": _const(-1),
    "configurable-save-changes-across-reboots": _const(False),
    "enable-argo-ssh": _const(False), "enable-dom0-networking": _const(True),
    "enable-ssh": _const(False), "secondary-gpu-pt": _const(False),
    "language": _const("en-us"), "supported-languages": _const(["en-us"]),
    "amt-capable": _const(False), "avail-mem": _host_mib("free"),
    "free-mem": _host_mib("free"), "total-mem": _host_mib("total"),
    "cpu-count": _cpu_count, "bios-revision": _const(""), "build-info": _const({}),
    "eth0-mac": _const(""), "eth0-model": _const(""), "free-storage": _storage("free"),
    "total-storage": _storage("total"), "laptop": _const(False),
    "is-licensed": lambda ctx, view, t: is_licensed(ctx.settings),
    "measured-boot-enabled": _const(False), "measured-boot-successful": _const(False),
    "model": _const(""), "physical-cpu-model": _const(""), "physical-gpu-model": _const(""),
    "safe-graphics": _const(False), "serial": _const(""),
    "system-amt-pt": _const(False), "ui-ready": _const(False), "vendor": _const(""),
    "wireless-mac": _const(""), "wireless-model": _const(""),
    "encryption-key-set": _key_set, "utilization-bytes": _utilization,
    "virtual-size-mb": _virtual_size,
}


def computed_value(ctx: ServiceContext, b: Binding, view: DbView, target: Target) -> Any:
    """The value of computed property ``b`` (see the module docstring)."""
    if b.name == "state" and b.scope is Scope.HOST:
        return host_public_state(host_state_node(ctx))
    return COMPUTED[b.name](ctx, view, target)
