"""The errors xenmgr answers with, as its clients see them.

Every failure of a xenmgr call is the DBus error ``org.freedesktop.DBus.Error.Failed`` with one
string argument. Errors xenmgr defines itself render that string as ``<code>:<text>``
(``204:Cannot remove running VM``); clients (the UI, scripts parsing xec's output) match on the
code, so the codes and texts here are the original's, typos included ("Too many VMS",
"Cannot stat VM"). Other failures carry a plain message: :func:`no_vm_with_uuid`,
:func:`no_vm_with_domid`, :func:`plain`.

:class:`XenmgrError` is a :class:`rpc.dbus.DBusError` named ``Failed`` whose message is that
string, so a handler that raises it gets exactly the original's reply from our DBus framework.
``XenmgrError.code`` is ``None`` for the plain-text errors.

:data:`CODES` is the table of every code the original defines (101-107 and 199 were the texts it
made of its per-VM monitor's failures, 200-246 its own). :func:`error` builds one from a code
(codes with a variable part take it as ``detail``). :func:`from_monitor_failure` turns the
failure text of one of OUR VM monitors into the original's numbered error where the original
had one (not enough memory, an operation refused in the VM's state, a guest that did not shut
down), else into a plain error carrying the monitor's text unchanged.

Failure behaviour: asking for a code that is not in :data:`CODES` raises ``KeyError`` naming it;
a code that needs a detail and gets none raises ``ValueError``. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from rpc.dbus import FAILED, DBusError

__all__ = [
    "CODES",
    "DBUS_ERROR_NAME",
    "ErrorCode",
    "XenmgrError",
    "error",
    "from_monitor_failure",
    "no_vm_with_domid",
    "no_vm_with_uuid",
    "plain",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

#: The DBus error name of every xenmgr failure.
DBUS_ERROR_NAME = FAILED


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One numbered error: ``text`` is fixed, or a ``{}`` template filled with a detail."""

    code: int
    name: str
    text: str

    @property
    def takes_detail(self) -> bool:
        return "{}" in self.text


def _codes(*entries: tuple[int, str, str]) -> Mapping[int, ErrorCode]:
    table = {code: ErrorCode(code, name, text) for code, name, text in entries}
    assert len(table) == len(entries), "duplicate error code"
    return MappingProxyType(table)


#: Every numbered error of the original, by code. ``name`` is ours (a stable identifier for
#: code and tests); ``text`` is what clients see after ``<code>:``.
CODES: Mapping[int, ErrorCode] = _codes(
    (101, "not-enough-memory", "Not enough free memory!"),
    (102, "vm-bad-state", "VM is in unexpected state!"),
    (103, "vm-shutdown-wrong-reason", "VM didn't shutdown as expected."),
    (104, "vm-didnt-shutdown", "VM didn't shutdown!"),
    (105, "vm-already-created", "VM is already created!"),
    (106, "requires-more-capabilities", "{}"),
    (107, "disk-mount-failure", "One of VM disks failed to mount"),
    (199, "monitor-exception", "{}"),
    (200, "autostart-and-hdx", "HDX and Autostart cannot be simultaneously activated on more "
                               "than one VM."),
    (201, "hibernate-failed", "Failed to hibernate VM"),
    (202, "policy-forbids-editing", "Editing of properties is disabled by this VM's active "
                                    "policy"),
    (203, "no-such-device", "No such device"),
    (204, "cannot-remove-running", "Cannot remove running VM"),
    (205, "too-many-vms", "Too many VMS"),
    (206, "no-such-disk", "No such disk"),
    (207, "incorrect-disk-type", "Incorrect disk type"),
    (208, "incorrect-device-type", "Incorrect device type"),
    (209, "hdx-while-running", "Cannot turn HDX on/off while the VM is running"),
    (210, "hdx-without-pv-addons", "Cannot turn HDX on until XenClient PV addons are installed "
                                   "inside the guest"),
    (211, "hdx-without-vtd", "Cannot start VM with HDX because VT-d is turned off."),
    (212, "duplicate-device", "Failed to add a disk, device ID is duplicated"),
    (213, "requires-pv-addons", "Performing this action requires PV addons installed inside VM"),
    (214, "property-read-only", "Property is read-only"),
    (215, "property-write-only", "Property is write-only"),
    (216, "not-gathering-diagnostics", "Currently not gathering diagnostic information"),
    (217, "disk-sha1-mismatch", "Disk SHA1 sum does not match the expected one!"),
    (218, "too-many-hdx", "Cannot start VM - too many vms with HDX are already running"),
    (219, "amt-pt-running", "Cannot start VM - another VM with AMT passthrough is already "
                            "running"),
    (220, "suppressed-by-policy", "Action suppressed by active policy settings"),
    (221, "hibernated", "Cannot change VM property while it is in hibernated state"),
    (222, "no-such-nic", "No such NIC"),
    (223, "io-error", "IO error: {}"),
    (224, "resume-from-sleep-failed", "Failed to resume vm from sleep"),
    (225, "vm-not-ready", "Cannot complete requested action because VM is not ready - possibly "
                          "still under construction"),
    (226, "no-rpc-agent", "Guest VM is not configured to use rpc agent"),
    (227, "sleep-timeout", "Timeout waiting for guest to enter sleep state"),
    (228, "hibernate-timeout", "Timeout waiting for guest to enter hibernated state"),
    (229, "shutdown-timeout", "Timeout waiting for guest to enter shutdown state"),
    (230, "device-passed-through", "Device '{}' is currently being passed through to another "
                                   "VM."),
    (231, "gpu-not-secondary", "Graphics card cannot be passed through as secondary adapter"),
    (232, "network-domain-not-running", "Network backend domain is not running"),
    (233, "oem-acpi-running", "Cannot stat VM - another VM with oem acpi features is already "
                              "running"),
    (234, "unknown-gpu", "Unknown GPU {}"),
    (235, "sleep-in-txt", "Host sleep is disabled while in TXT measured launch"),
    (236, "unsupported-language", "Unsupported language"),
    (237, "rule-parse-error", "Rule parse error"),
    (238, "crypto-key-exists", "Encryption key already exists"),
    (239, "vhd-key-set", "VHD file already contains encryption key"),
    (240, "network-daemon-timeout", "Timeout waiting for network daemon to become ready"),
    (242, "no-such-file", "Supplied file doesn't exist"),
    (243, "network-disconnected", "Network issue detected, please check your internet "
                                  "connection"),
    (244, "invalid-case-id", "A generic error occured, please check your case ID"),
    (245, "invalid-credentials", "User unauthorized, please check your MyCitrix credentials"),
    (246, "taas-terms", "User has not agreed to the latest version of the legal terms"),
)


class XenmgrError(DBusError):
    """A failed xenmgr call: DBus ``Failed`` with ``message`` as its one string argument.

    ``code`` and ``text`` are set for numbered errors (``message == f"{code}:{text}"``);
    plain errors have ``code is None`` and ``text == message``.
    """

    def __init__(self, code: int | None, text: str) -> None:
        message = text if code is None else f"{code}:{text}"
        super().__init__(DBUS_ERROR_NAME, message)
        self.code = code
        self.text = text

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"XenmgrError({self.code!r}, {self.text!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, XenmgrError)
                and (self.code, self.text) == (other.code, other.text))

    def __hash__(self) -> int:
        return hash((self.code, self.text))


def error(code: int, detail: str | None = None) -> XenmgrError:
    """The numbered error ``code``; ``detail`` fills the variable part of the codes that have one
    (106, 199, 223 "IO error: <detail>", 230, 234)."""
    try:
        entry = CODES[code]
    except KeyError:
        raise KeyError(f"no xenmgr error code {code}") from None
    if entry.takes_detail:
        if detail is None:
            raise ValueError(f"xenmgr error {code} ({entry.name}) needs a detail")
        return XenmgrError(code, entry.text.replace("{}", detail))
    if detail is not None:
        raise ValueError(f"xenmgr error {code} ({entry.name}) takes no detail")
    return XenmgrError(code, entry.text)


def plain(text: str) -> XenmgrError:
    """A failure without a code: the text is the whole message."""
    return XenmgrError(None, text)


def no_vm_with_uuid(uuid: str) -> XenmgrError:
    """``find_vm_by_uuid`` (and every per-VM call) for a uuid no VM has."""
    return plain(f"no vm with uuid {uuid}")


def no_vm_with_domid(domid: int) -> XenmgrError:
    """``find_vm_by_domid`` for a domid no VM has."""
    return plain(f"no vm with domid {domid}")


#: Failures of OUR VM monitor (xen.xenvm) that the original reported with a number: a regular
#: expression searched in the monitor's failure text, and the code. The original did the same
#: with the failures of its own per-VM monitor; these patterns are written for ours.
_MONITOR_FAILURES: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"\bnot enough memory\b", re.I), 101),
    (re.compile(r"\bis not allowed in state\b"), 102),
    (re.compile(r"\bthe VM is \w+: its guest cannot\b"), 102),  # paused: cannot answer
    (re.compile(r"\bguest did not (shut down|reboot)\b"), 104),
)


def from_monitor_failure(text: str) -> XenmgrError:
    """The xenmgr error for a failure answered by one of our VM monitors (``text``)."""
    for pattern, code in _MONITOR_FAILURES:
        if pattern.search(text):
            return error(code)
    return plain(text)
