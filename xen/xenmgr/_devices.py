"""A VM's disks, nics and PCI passthrough rules, read from its database subtree.

:func:`read_disks`, :func:`read_nics` and :func:`read_pci_rules` decode the maps
``config/disk``, ``config/nic`` and ``config/pci`` of a VM's subtree (a
:class:`~xen.xenmgr._dbview.DbView` rooted at ``/vm/<uuid>``) into frozen records, sorted by
id. Keys that are missing stay ``None`` (or take the schema's default where it has one:
``enable`` true, ``shared`` false, a nic's network ``/wired/0/bridged``); what the VM needs to
boot is checked by the translation (``_vmconfig``), not here, so a half-made disk can still be
listed and edited.

Ids: a disk's id is its node's name. A nic's id is its ``id`` value when set (the original
wrote it next to the other keys), else its node's name; the original read a missing ``id`` as
0, which made two nics collide. Two nics with the same id are an error.

Values as the original read them: a nic's empty ``backend-uuid`` or ``backend-name`` is unset;
a legacy bridge name as network is mapped (``brbridged`` -> ``/wired/0/bridged``...); a PCI
``bdf`` rule may carry ``@<guest slot>`` (hex).

Failure behaviour: a value that does not fit its key raises
:class:`~xen.xenmgr._codecs.SchemaError` naming the concrete key (``config/disk/3/mode``) and
the value; a child of a map that is not a numeric id likewise. Pure: no I/O.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from xen.xenmgr._codecs import SchemaError
from xen.xenmgr._dbview import DbView
from xen.xenmgr._schema import (
    CD_DEVICE,
    decode,
    default_mac,
    map_ids,
    network_path,
    vm_key,
)

__all__ = [
    "Disk",
    "Nic",
    "PciRule",
    "read_disk",
    "read_disks",
    "read_nic",
    "read_nics",
    "read_pci_rules",
    "read_value",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


def read_value(vm: DbView, path: str, pattern: str | None = None) -> str | bool | int | None:
    """The decoded value at ``path`` of a VM subtree (``pattern``: its schema key, when the
    path holds an id), or ``None`` if the node is missing. Errors name the concrete path."""
    text = vm.read(path)
    if text is None:
        return None
    key = vm_key(pattern or path)
    try:
        return decode(key, text)
    except SchemaError as exc:
        raise SchemaError(path, text, exc.reason) from None


def _str(vm: DbView, path: str, pattern: str) -> str | None:
    value = read_value(vm, path, pattern)
    assert value is None or isinstance(value, str)
    return value


def _flag(vm: DbView, path: str, pattern: str) -> bool:
    value = read_value(vm, path, pattern)
    if value is None:
        default = vm_key(pattern).default
        assert isinstance(default, bool)
        return default
    assert isinstance(value, bool)
    return value


# ----------------------------------------------------------------------------- disks


@dataclass(frozen=True, slots=True)
class Disk:
    """One ``config/disk/<id>`` entry; ``None``: the key is not set."""

    id: int
    path: str | None = None
    type: str | None = None
    mode: str | None = None
    device: str | None = None
    devtype: str | None = None
    snapshot: str | None = None
    sha1sum: str | None = None
    shared: bool = False
    managed_disktype: str = ""
    enabled: bool = True

    @property
    def is_cd(self) -> bool:
        """The original's "CD": the disk on device hdc."""
        return self.device == CD_DEVICE


def read_disk(vm: DbView, disk_id: int) -> Disk | None:
    """The disk ``disk_id`` of the VM, or ``None`` if it has none with that id."""
    base = f"config/disk/{disk_id}"
    if not vm.is_node(base):
        return None

    def s(name: str) -> str | None:
        return _str(vm, f"{base}/{name}", f"config/disk/*/{name}")

    managed = s("managed-disktype")
    return Disk(
        id=disk_id, path=s("path"), type=s("type"), mode=s("mode"), device=s("device"),
        devtype=s("devtype"), snapshot=s("snapshot"), sha1sum=s("sha1sum"),
        shared=_flag(vm, f"{base}/shared", "config/disk/*/shared"),
        managed_disktype=managed or "",
        enabled=_flag(vm, f"{base}/enable", "config/disk/*/enable"),
    )


def read_disks(vm: DbView) -> tuple[Disk, ...]:
    """Every disk of the VM, by id."""
    ids = sorted(map_ids(vm.children("config/disk"), "config/disk"))
    disks = (read_disk(vm, i) for i in ids)
    return tuple(d for d in disks if d is not None)


# ------------------------------------------------------------------------------ nics


@dataclass(frozen=True, slots=True)
class Nic:
    """One ``config/nic/<node>`` entry."""

    id: int
    node: str
    network: str = "/wired/0/bridged"
    backend_uuid: str | None = None
    backend_name: str | None = None
    enabled: bool = True
    wireless: bool = False
    mac: str | None = None
    model: str | None = None

    def actual_mac(self, vm_uuid: str) -> str:
        """The MAC the guest gets: the configured one, else the derived default."""
        return self.mac if self.mac is not None else default_mac(self.id, vm_uuid)


def _read_nic(vm: DbView, node: str) -> Nic:
    base = f"config/nic/{node}"

    def s(name: str) -> str | None:
        return _str(vm, f"{base}/{name}", f"config/nic/*/{name}")

    stored_id = vm.read(f"{base}/id")
    if stored_id is None or stored_id == "":
        nic_id = map_ids([node], "config/nic")[0]
    else:
        value = read_value(vm, f"{base}/id", "config/nic/*/id")
        assert isinstance(value, int)
        if value < 0:
            raise SchemaError(f"{base}/id", stored_id, "is a negative nic id")
        nic_id = value
    return Nic(
        id=nic_id, node=node,
        network=network_path(vm.read(f"{base}/network")),
        backend_uuid=s("backend-uuid") if vm.read(f"{base}/backend-uuid") else None,
        backend_name=vm.read(f"{base}/backend-name") or None,
        enabled=_flag(vm, f"{base}/enable", "config/nic/*/enable"),
        wireless=_flag(vm, f"{base}/wireless-driver", "config/nic/*/wireless-driver"),
        mac=s("mac"), model=s("model"),
    )


def read_nics(vm: DbView) -> tuple[Nic, ...]:
    """Every nic of the VM, by id; two nics with one id are an error."""
    nics = sorted((_read_nic(vm, node) for node in vm.children("config/nic")),
                  key=lambda nic: nic.id)
    for left, right in itertools.pairwise(nics):
        if left.id == right.id:
            raise SchemaError(f"config/nic/{right.node}/id", str(right.id),
                              f"is also the id of config/nic/{left.node}")
    return tuple(nics)


def read_nic(vm: DbView, nic_id: int) -> Nic | None:
    """The nic with id ``nic_id``, or ``None``."""
    for nic in read_nics(vm):
        if nic.id == nic_id:
            return nic
    return None


# ------------------------------------------------------------------------------- pci


@dataclass(frozen=True, slots=True)
class PciRule:
    """One ``config/pci/<id>`` rule: a device address (``bdf``, with an optional guest slot),
    or a match on class/vendor/device (each ``None``: any)."""

    id: int
    bdf: str | None = None
    guest_slot: int | None = None
    pci_class: int | None = None
    vendor: int | None = None
    device: int | None = None
    force_slot: bool = False


def read_pci_rules(vm: DbView) -> tuple[PciRule, ...]:
    """Every PCI rule of the VM, by id."""
    rules = []
    for rule_id in sorted(map_ids(vm.children("config/pci"), "config/pci")):
        base = f"config/pci/{rule_id}"

        def s(name: str, base: str = base) -> str | None:
            return _str(vm, f"{base}/{name}", f"config/pci/*/{name}")

        def hex16(name: str) -> int | None:
            text = s(name)
            return None if text is None else int(text, 16)

        bdf = s("bdf")
        slot = None
        if bdf is not None and "@" in bdf:
            bdf, slot_text = bdf.split("@", 1)
            slot = int(slot_text, 16)
        rules.append(PciRule(
            id=rule_id, bdf=bdf, guest_slot=slot, pci_class=hex16("class"),
            vendor=hex16("vendor"), device=hex16("device"),
            force_slot=_flag(vm, f"{base}/force-slot", "config/pci/*/force-slot"),
        ))
    return tuple(rules)
