"""What a mixin of the VM object (``_vm_argo``, ``_vm_product``) may use of it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["VmMixin"]


class VmMixin:
    """Declares, for type checkers, the VM object's members its mixins call."""

    ctx: ServiceContext

    if TYPE_CHECKING:
        @property
        def uuid(self) -> str:
            """The VM's uuid."""
            ...

        def tree(self) -> dict[str, Any]:
            """The VM's db subtree (an error when the VM is gone)."""
            ...

        def changed(self) -> None:
            """Queue ``vm_config_changed`` for the VM."""
            ...
