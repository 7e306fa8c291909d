"""The errors a create or delete plan refuses with, in the form xenmgr's clients see.

A xenmgr-defined error has a numeric code and renders as ``<code>:<text>`` (the string of the
``org.freedesktop.DBus.Error.Failed`` reply); the others carry a plain message, as the
original's raw failures did (``no vm with uuid X``). The codes used by the plans, with the
original's texts: 204 "Cannot remove running VM", 205 "Too many VMS", 220 "Action suppressed by
active policy settings".

These classes stand in for the package's general xenmgr error until the two are unified; a
handler can rely on ``code`` (None for a plain message), ``text`` and ``str(error)``.
"""

from __future__ import annotations

__all__ = [
    "CANNOT_REMOVE_RUNNING",
    "POLICY_SUPPRESSED",
    "TOO_MANY_VMS",
    "CreateError",
    "DeleteError",
    "PlanError",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)

CANNOT_REMOVE_RUNNING = 204
TOO_MANY_VMS = 205
POLICY_SUPPRESSED = 220

_TEXTS = {
    CANNOT_REMOVE_RUNNING: "Cannot remove running VM",
    TOO_MANY_VMS: "Too many VMS",
    POLICY_SUPPRESSED: "Action suppressed by active policy settings",
}


class PlanError(Exception):
    """A refused plan: ``code`` (a xenmgr error code, or None for a plain message) and
    ``text``; ``str()`` is what the D-Bus client sees."""

    def __init__(self, code: int | None, text: str = "") -> None:
        self.code = code
        self.text = text or _TEXTS.get(code or 0, "")
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return self.text if self.code is None else f"{self.code}:{self.text}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.text!r})"


class CreateError(PlanError):
    """A VM creation refused before anything was written."""


class DeleteError(PlanError):
    """A VM deletion refused before anything was removed."""
