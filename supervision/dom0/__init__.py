"""The dom0 application: the composition root that wires the whole toolstack into one tree.

This is the only package that knows every part: the database (`persistence`), the bus and the
identity service (`rpc`), the Xen subtree and the VM monitors (`xen`). It turns a TOML
configuration (`Dom0Config`, `load_config`) into child specs (`build_specs`), adds the ``vm.*``
operations to the control socket, and runs the tree as the ``oxt-supervisor`` daemon (`main`).
See docs/supervisor.md and docs/architecture.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from supervision.dom0._config import (
        Dom0Config,
        Dom0ConfigError,
        ProxySpec,
        VmEntry,
        load_config,
        parse_config,
    )
    from supervision.dom0._main import (
        main,
    )
    from supervision.dom0._tree import (
        build_specs,
        bus_address,
        make_env,
        sim_sockets,
        vm_operations,
    )

__all__ = [
    "Dom0Config",
    "Dom0ConfigError",
    "ProxySpec",
    "VmEntry",
    "build_specs",
    "bus_address",
    "load_config",
    "main",
    "make_env",
    "parse_config",
    "sim_sockets",
    "vm_operations",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "Dom0Config": "supervision.dom0._config",
    "Dom0ConfigError": "supervision.dom0._config",
    "ProxySpec": "supervision.dom0._config",
    "VmEntry": "supervision.dom0._config",
    "build_specs": "supervision.dom0._tree",
    "bus_address": "supervision.dom0._tree",
    "load_config": "supervision.dom0._config",
    "main": "supervision.dom0._main",
    "make_env": "supervision.dom0._tree",
    "parse_config": "supervision.dom0._config",
    "sim_sockets": "supervision.dom0._tree",
    "vm_operations": "supervision.dom0._tree",
})
