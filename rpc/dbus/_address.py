"""Which bus to talk to.

Order (the same for every client and service here): an explicit address; else
``DBUS_SYSTEM_BUS_ADDRESS``; else the address file of the embedded default
(``<state dir>/dbus/address``, state dir from ``OXT_STATE_DIR`` or ``./state``); else the
system bus at ``/var/run/dbus/system_bus_socket``. ``session=True`` uses
``DBUS_SESSION_BUS_ADDRESS`` instead.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SYSTEM_BUS", "address_file", "default_state_dir", "resolve_address", "socket_path"]

SYSTEM_BUS = "unix:path=/var/run/dbus/system_bus_socket"


def default_state_dir() -> Path:
    """``$OXT_STATE_DIR`` or ``./state``."""
    return Path(os.environ.get("OXT_STATE_DIR") or "state")


def address_file(state_dir: Path | None = None) -> Path:
    """Where the embedded default's bus writes its address."""
    return (state_dir or default_state_dir()) / "dbus" / "address"


def resolve_address(explicit: str | None = None, *, session: bool = False,
                    state_dir: Path | None = None) -> str:
    """The bus address to connect to (see the module docstring)."""
    if explicit:
        return explicit
    if session:
        addr = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
        if not addr:
            raise ValueError("--session given but DBUS_SESSION_BUS_ADDRESS is not set")
        return addr
    addr = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    if addr:
        return addr
    try:
        text = address_file(state_dir).read_text().strip()
    except OSError:
        text = ""
    return text or SYSTEM_BUS


def socket_path(address: str) -> str:
    """The socket path of a ``unix:path=...`` or ``unix:abstract=...`` address."""
    for part in address.split(";"):
        transport, _, params = part.partition(":")
        if transport != "unix":
            continue
        kv = dict(p.split("=", 1) for p in params.split(",") if "=" in p)
        if "path" in kv:
            return kv["path"]
        if "abstract" in kv:
            return "\0" + kv["abstract"]
    raise ValueError(f"no unix transport in bus address {address!r}")
