"""The host's licence and the UI's plugins on ``/host`` (a mixin of the host object).

**Licence** (xenstore ``/xenmgr/license/{expiry,deviceuuid,hash}``, as the original): a host
whose hash is missing or ``local`` (what the original wrote at every start) is licensed;
otherwise it is licensed while the expiry (``YYYY-MM-DD HH:MM:SS +ZZZZ``) has not passed and
the hash is the SHA-256 (hex) of the device uuid, the licence key
(``ManagerSettings.license_key``) and the expiry text, concatenated. ``is-licensed`` reads it
(:func:`is_licensed`). ``set_license(expiry, device_uuid, hash)``: the hash ``local`` is refused
(``invalid hash``), an expiry that does not parse too (nothing written); then the three nodes
are written, and ``license_changed`` is sent on ``/host`` when the host's licensed state
changed.

**UI plugins**: ``list_ui_plugins(subdir)`` lists the entries of ``<plugins>/<subdir>``
(``ManagerSettings.ui_plugins``, ``/usr/lib/xui/plugins`` on a dom0), sorted; a missing
directory is an empty list; a subdirectory that leads outside the plugin directory (``..``, a
symlink) is refused (``bad subdirectory``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from typing import TYPE_CHECKING

from rpc.dbus import Call, dbus_method
from xen.xenmgr._errors import plain
from xen.xenmgr._host_io import xenstore
from xen.xenmgr._messages import Emit

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext
    from xen.xenmgr._settings import ManagerSettings

__all__ = ["HostExtraMethods", "is_licensed", "license_hash", "parse_expiry"]

HOST = "com.citrix.xenclient.xenmgr.host"
LICENSE = "/xenmgr/license"
EXPIRY_FORMAT = "%Y-%m-%d %H:%M:%S %z"


def parse_expiry(text: str) -> dt.datetime | None:
    """The licence's expiry, or None when it does not parse."""
    try:
        return dt.datetime.strptime(text, EXPIRY_FORMAT)
    except ValueError:
        return None


def license_hash(device_uuid: str, key: str, expiry: str) -> str:
    """The hash a licence for ``device_uuid`` until ``expiry`` carries."""
    return hashlib.sha256(f"{device_uuid}{key}{expiry}".encode()).hexdigest()


def licensed(expiry: str, device_uuid: str, hash_text: str, key: str,
             now: dt.datetime) -> bool:
    """Whether these licence nodes make the host licensed (pure; module docstring)."""
    if hash_text in ("", "local"):
        return True
    when = parse_expiry(expiry)
    return (when is not None and now <= when
            and hash_text == license_hash(device_uuid, key, expiry))


def is_licensed(settings: ManagerSettings) -> bool:
    """The host's licensed state, from xenstore (False when xenstore cannot be read)."""
    try:
        xs = xenstore(settings)
        expiry, device, hash_text = (xs.try_read(f"{LICENSE}/{n}") or ""
                                     for n in ("expiry", "deviceuuid", "hash"))
    except Exception:
        return False
    return licensed(expiry, device, hash_text, settings.license_key, dt.datetime.now(dt.UTC))


class HostExtraMethods:
    """See the module docstring (mixed into the host object)."""

    ctx: ServiceContext

    @dbus_method(HOST, "set_license")
    def set_license(self, call: Call, expiry_date: str, device_uuid: str,
                    hash_text: str) -> None:
        if hash_text == "local":
            raise plain("invalid hash")
        if parse_expiry(expiry_date) is None:
            raise plain(f"failed to parse expiry date {expiry_date!r} "
                        "(YYYY-MM-DD HH:MM:SS +ZZZZ)")
        before = is_licensed(self.ctx.settings)
        xs = xenstore(self.ctx.settings)
        for name, value in (("expiry", expiry_date), ("deviceuuid", device_uuid),
                            ("hash", hash_text)):
            xs.write(f"{LICENSE}/{name}", value)
        if is_licensed(self.ctx.settings) != before:
            self.ctx.tell_queue(Emit("/host", HOST, "license_changed"))

    @dbus_method(HOST, "list_ui_plugins")
    def list_ui_plugins(self, call: Call, subdir: str) -> list[str]:
        base = os.path.realpath(self.ctx.settings.ui_plugins)
        target = os.path.realpath(os.path.join(base, subdir))
        if not os.path.isdir(target):
            return []
        if target != base and not target.startswith(base + os.sep):
            raise plain("bad subdirectory")
        try:
            return sorted(os.listdir(target))
        except OSError as exc:
            raise plain(f"cannot list the UI plugins in {subdir!r}: {exc.strerror}") from None
