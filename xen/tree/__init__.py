"""The Xen part of the dom0 supervision tree: the hypervisor owner, the domain watcher, and
the child specs of the "xen" and "vms" supervisors."""

from __future__ import annotations

from xen.tree._hvactor import HypervisorActor
from xen.tree._specs import vms_spec, xen_spec
from xen.tree._watcher import DomainWatcher

__all__ = ["DomainWatcher", "HypervisorActor", "vms_spec", "xen_spec"]
