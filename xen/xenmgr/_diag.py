"""``com.citrix.xenclient.xenmgr.diag``: gathering diagnostics and status reports (a mixin of
the root object).

* ``save(mode)``: sends ``gather_request(mode)`` so that other services contribute, collects
  what they hand in with ``gather(name, data)`` for ``ManagerSettings.diag_wait`` seconds (2 s),
  then writes a directory under ``ManagerSettings.diag_dir``, ``<mode>-<UTC time>/``:
  ``gathered/<name>`` (each contribution), ``vms.txt`` (uuid, name, state, domid of every VM)
  and ``db.json`` (the whole configuration database); answers its path. One gathering at a
  time (a second ``save`` meanwhile is refused); ``mode`` is a word.
* ``gather(name, data)``: a contribution to the gathering in progress (an error when none is;
  at most 64 contributions of at most 1 MiB each; ``name`` is a word).
* ``create_status_report(screenshots, guest_info, summary, description, repro_steps,
  ticket)``: a ``save("status-report")`` plus ``report.txt`` (the four texts, and what was not
  included: screenshots need the UI's display, which this host does not have), and with
  ``guest_info`` each VM's monitor view (``guests/<uuid>.txt``); packed as
  ``status-report-<UTC time>.tar.gz`` in ``diag_dir``; answers the archive's path.

Uploading reports (``taas_*``) and the UI's report screen are deliberately not supported
(``NotSupported`` naming what they need: Citrix's upload service and the UI).
"""

from __future__ import annotations

import json
import re
import tarfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rpc.dbus import Call, dbus_method
from xen.xenmgr._errors import plain
from xen.xenmgr._messages import Emit
from xen.xenmgr._monitors import monitor_view
from xen.xenmgr._unsupported import not_supported

if TYPE_CHECKING:
    from xen.xenmgr._context import ServiceContext

__all__ = ["DiagMethods", "Gathering"]

DIAG = "com.citrix.xenclient.xenmgr.diag"
_WORD = re.compile(r"[A-Za-z0-9_.-]+")
MAX_ITEMS = 64
MAX_ITEM_BYTES = 1 << 20


class Gathering:
    """The contributions of one ``save`` (thread-safe; one at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, str] | None = None

    def begin(self) -> None:
        """Start collecting; an error when a gathering is already running."""
        with self._lock:
            if self._items is not None:
                raise plain("a diagnostics gathering is already running")
            self._items = {}

    def add(self, name: str, data: str) -> None:
        """One contribution (module docstring)."""
        if not _WORD.fullmatch(name) or name in (".", ".."):
            raise plain(f"gather: {name!r} is not a word")
        if len(data.encode("utf-8", "surrogateescape")) > MAX_ITEM_BYTES:
            raise plain(f"gather: {name!r} is over {MAX_ITEM_BYTES} bytes")
        with self._lock:
            if self._items is None:
                raise plain("gather: no diagnostics gathering is in progress")
            if name not in self._items and len(self._items) >= MAX_ITEMS:
                raise plain(f"gather: more than {MAX_ITEMS} contributions")
            self._items[name] = data

    def end(self) -> dict[str, str]:
        """Stop collecting; what was handed in."""
        with self._lock:
            items, self._items = self._items or {}, None
        return items


_NO_UPLOAD = ("uploading reports needs Citrix's upload service (TaaS), which this host "
              "cannot reach; reports are saved under diag_dir instead")


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


class DiagMethods:
    """See the module docstring (mixed into the root object)."""

    ctx: ServiceContext

    def _save(self, mode: str) -> Path:
        if not _WORD.fullmatch(mode) or mode in (".", ".."):
            raise plain(f"save: mode {mode!r} is not a word")
        settings = self.ctx.settings
        gathering = self.ctx.gathering
        gathering.begin()
        try:
            self.ctx.tell_queue(Emit("/", DIAG, "gather_request", (mode,)))
            time.sleep(settings.diag_wait)
        finally:
            items = gathering.end()
        out = Path(settings.diag_dir) / f"{mode}-{_stamp()}"
        try:
            (out / "gathered").mkdir(parents=True)
            for name, data in items.items():
                (out / "gathered" / name).write_text(data, encoding="utf-8",
                                                     errors="surrogateescape")
            rows = []
            for uuid, tree in sorted(self.ctx.db.vms().items()):
                view = monitor_view(uuid)
                rows.append(f"{uuid}\t{tree.get('name', '')}\t"
                            f"{view.state.value if view else 'no monitor'}\t"
                            f"{view.domid if view else -1}")
            (out / "vms.txt").write_text("".join(r + "\n" for r in rows))
            (out / "db.json").write_text(json.dumps(self.ctx.db.tree("/"), indent=1,
                                                    sort_keys=True))
        except OSError as exc:
            raise plain(f"save: cannot write {out}: {exc.strerror}") from None
        return out

    taas_agree_terms = not_supported(DIAG, "taas_agree_terms", _NO_UPLOAD)
    taas_authenticate_credentials = not_supported(DIAG, "taas_authenticate_credentials",
                                                  _NO_UPLOAD)
    taas_upload = not_supported(DIAG, "taas_upload", _NO_UPLOAD)
    status_report_screen = not_supported(
        DIAG, "status_report_screen", "the report screen is the UI's (a UI VM's), which "
        "this host does not run")

    @dbus_method(DIAG, "save")
    def save(self, call: Call, mode: str) -> str:
        return str(self._save(mode))

    @dbus_method(DIAG, "gather")
    def gather(self, call: Call, name: str, data_: str) -> None:
        self.ctx.gathering.add(name, data_)

    @dbus_method(DIAG, "create_status_report")
    def create_status_report(self, call: Call, screenshots: bool, guest_info: bool,
                             summary: str, description: str, repro_steps: str,
                             ticket: str) -> str:
        out = self._save("status-report")
        notes = ["screenshots: not included (this host has no UI display to capture)"
                 if screenshots else "screenshots: not asked for"]
        try:
            if guest_info:
                (out / "guests").mkdir()
                for uuid in self.ctx.vm_uuids():
                    view = monitor_view(uuid)
                    (out / "guests" / f"{uuid}.txt").write_text(
                        repr(view) if view is not None else "no monitor\n")
            (out / "report.txt").write_text(
                f"summary: {summary}\nticket: {ticket}\n\ndescription:\n{description}\n\n"
                f"steps to reproduce:\n{repro_steps}\n\n" + "\n".join(notes) + "\n")
            archive = out.parent / f"status-report-{_stamp()}.tar.gz"
            with tarfile.open(archive, "w:gz") as tar:
                tar.add(out, arcname=out.name)
        except OSError as exc:
            raise plain(f"create_status_report: cannot write under {out.parent}: "
                        f"{exc.strerror}") from None
        return str(archive)
