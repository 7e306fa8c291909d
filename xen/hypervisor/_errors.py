"""Errors of the hypervisor interface (re-exported by `xen.hypervisor`; import them from there).

Every failure is a `HypervisorError` with a message naming the operation and the domain, and
an ``errno`` where one applies. `error_for_errno` picks the class for an errno; `ERRORS` maps
class names to classes (the simulated hypervisor's wire carries the name). Pure: no I/O.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Mapping
from typing import ClassVar

__all__ = [
    "ERRORS",
    "HypervisorError",
    "HypervisorTimeout",
    "InvalidArgument",
    "NoSuchDomain",
    "OutOfMemory",
    "PermissionDenied",
    "Unavailable",
    "Unsupported",
    "error_for_errno",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


class HypervisorError(Exception):
    """A hypervisor operation failed. ``errno`` is the Xen/OS error number when there is one."""

    ERRNO: ClassVar[int | None] = None

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno if errno is not None else self.ERRNO


class NoSuchDomain(HypervisorError):
    """No domain has that id (ESRCH)."""

    ERRNO = _errno.ESRCH


class OutOfMemory(HypervisorError):
    """The host has not enough free memory, or no free domain id (ENOMEM)."""

    ERRNO = _errno.ENOMEM


class InvalidArgument(HypervisorError, ValueError):
    """The request is malformed or not allowed on that domain (EINVAL)."""

    ERRNO = _errno.EINVAL


class PermissionDenied(HypervisorError):
    """The caller may not do this (EPERM, EACCES: not root, XSM/FLASK refusal)."""

    ERRNO = _errno.EPERM


class Unsupported(HypervisorError, NotImplementedError):
    """This backend does not implement the member (the message names it)."""

    ERRNO = _errno.ENOSYS


class Unavailable(HypervisorError):
    """The hypervisor cannot be reached: no Xen here, no socket, or the connection died.

    When raised by a request in flight, whether the request took effect is unknown."""


class HypervisorTimeout(Unavailable):
    """A request got no answer within its timeout; the connection was dropped."""

    ERRNO = _errno.ETIMEDOUT


#: Wire names of the error classes (the class name), for backends that carry errors by name.
ERRORS: Mapping[str, type[HypervisorError]] = {
    cls.__name__: cls
    for cls in (HypervisorError, NoSuchDomain, OutOfMemory, InvalidArgument, PermissionDenied,
                Unsupported, Unavailable, HypervisorTimeout)
}

_BY_ERRNO: Mapping[int, type[HypervisorError]] = {
    _errno.ESRCH: NoSuchDomain,
    _errno.ENOMEM: OutOfMemory,
    _errno.EINVAL: InvalidArgument,
    _errno.EPERM: PermissionDenied,
    _errno.EACCES: PermissionDenied,
    _errno.ENOSYS: Unsupported,
}


def error_for_errno(errnum: int, what: str, detail: str = "") -> HypervisorError:
    """The error for ``errnum`` after operation ``what`` failed (message: what, strerror and
    ``detail`` when given)."""
    cls = _BY_ERRNO.get(errnum, HypervisorError)
    name = _errno.errorcode.get(errnum, str(errnum))
    message = f"{what} failed: {os.strerror(errnum)} ({name})"
    return cls(f"{message}: {detail}" if detail else message, errno=errnum)
