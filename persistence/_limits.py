"""What a dbd client request may address and store; the error classes of the package.

Domstore confinement (:func:`confine_path`): a request from dom0 addresses the
whole tree; a request from any other domain is silently prefixed with ``/dom-store/<its
uuid>/``. The caller's identity (domid, and the uuid resolved through xenstore) is an argument:
finding it is the D-Bus layer's job. As in the original there is no other ACL here; whether a
guest may call at all is rpc-proxy's decision.

The original dbd had no limits at all ("no quotas, size limits, or value
validation anywhere"): one D-Bus call could store a value of any size, at any depth, and a name
that later could not be turned into a file. These limits close that hole. They apply to client
requests only (``write``, ``inject`` and the paths of every call); trees loaded from disk and
records replayed from the write-ahead log are never refused for size, so a database written by
the original (or by an older configuration with larger limits) always loads.

Defaults and why:

* ``max_value_bytes`` = 1 MiB: a value is one configuration string (a VM's config key, a
  certificate); 1 MiB is far above any value xenmgr writes and keeps one call from pinning
  large amounts of memory or WAL.
* ``max_path_bytes`` = 4096: PATH_MAX; longer paths are a bug or an attack.
* ``max_depth`` = 64 segments: the deepest xenmgr key is under 10 levels; 64 leaves room and
  bounds recursion everywhere (including the depth of an injected object, counted from the
  root).
* ``max_segment_bytes`` = 200: a child of ``/vm`` or ``/dom-store`` becomes the file name
  ``<name>.db``, and a damaged file is set aside as ``<name>.db.tmp.corrupt-<timestamp>``;
  200 + 32 bytes of suffix stays under the 255-byte NAME_MAX of Linux file systems.
* ``max_inject_bytes`` = 16 MiB: the JSON text of one ``inject`` (a whole VM config is a few
  KiB; a whole database a few MiB).

A name (path segment or injected object key) must be non-empty after path splitting, contain
no NUL and no ``/`` (an injected key with ``/`` could never be addressed by a path and could
not be written as a file), and be valid Unicode.

Failure behaviour: the ``check_*`` functions raise :class:`DbLimitError` or
:class:`DbNameError` with a message naming the limit, the offending size and the path; they
never modify anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DEFAULT_LIMITS",
    "Caller",
    "DbError",
    "DbLimitError",
    "DbNameError",
    "Limits",
    "check_name",
    "check_path",
    "check_subtree",
    "check_value",
    "confine_path",
    "utf8_len",
]

__pure__ = True  # a pure core: no I/O, no threads (tests/test_architecture.py)


class DbError(Exception):
    """Base of every error raised by the persistence package.

    Its ``str()`` is the message a D-Bus client sees in ``org.freedesktop.DBus.Error.Failed``.
    """


class DbLimitError(DbError):
    """A request exceeded one of the configured :class:`Limits`."""


class DbNameError(DbError):
    """A path segment or an injected object key is not a usable name."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits on client requests (see the module docstring for the reasons)."""

    max_value_bytes: int = 1 << 20
    max_path_bytes: int = 4096
    max_depth: int = 64
    max_segment_bytes: int = 200
    max_inject_bytes: int = 16 << 20


DEFAULT_LIMITS = Limits()


def utf8_len(text: str, what: str) -> int:
    """Length of ``text`` in UTF-8 bytes; :class:`DbNameError` if it is not valid Unicode."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise DbNameError(f"{what} is not valid Unicode: {exc.reason}") from None


def _show(segments: Sequence[str]) -> str:
    text = "/" + "/".join(segments)
    return text if len(text) <= 80 else text[:77] + "..."


def check_name(name: str, limits: Limits, where: Sequence[str]) -> None:
    """Check one path segment or injected key ``name`` found under ``where``."""
    if not name:
        raise DbNameError(f"empty key under {_show(where)}")
    if "/" in name or "\0" in name:
        raise DbNameError(f"key {name!r} under {_show(where)} contains '/' or NUL")
    size = utf8_len(name, f"key under {_show(where)}")
    if size > limits.max_segment_bytes:
        raise DbLimitError(
            f"name of {size} bytes under {_show(where)} exceeds the limit of "
            f"{limits.max_segment_bytes} bytes"
        )


def check_path(raw: str, segments: Sequence[str], limits: Limits) -> None:
    """Check a request path: its raw length, its depth and each segment."""
    size = utf8_len(raw, "path")
    if size > limits.max_path_bytes:
        raise DbLimitError(
            f"path of {size} bytes exceeds the limit of {limits.max_path_bytes} bytes"
        )
    if len(segments) > limits.max_depth:
        raise DbLimitError(
            f"path {_show(segments)} has {len(segments)} levels, more than the limit of "
            f"{limits.max_depth}"
        )
    for i, name in enumerate(segments):
        if "\0" in name:
            raise DbNameError(f"path segment {i + 1} contains NUL")
        seg_size = len(name.encode("utf-8"))
        if seg_size > limits.max_segment_bytes:
            raise DbLimitError(
                f"path segment {i + 1} of {seg_size} bytes exceeds the limit of "
                f"{limits.max_segment_bytes} bytes"
            )


def check_value(value: str, limits: Limits, where: Sequence[str]) -> None:
    """Check one string value to be stored at ``where``."""
    size = utf8_len(value, f"value for {_show(where)}")
    if size > limits.max_value_bytes:
        raise DbLimitError(
            f"value of {size} bytes for {_show(where)} exceeds the limit of "
            f"{limits.max_value_bytes} bytes"
        )



def check_subtree(value: Any, segments: Sequence[str], limits: Limits) -> None:
    """Check a parsed JSON value to be injected at ``segments``: every object key, every
    string that becomes a leaf (strings inside arrays are bounded by ``max_inject_bytes``),
    and the depth its objects reach below ``/``."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, tuple(segments))]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            check_value(item, limits, where)
        elif isinstance(item, dict):
            if len(where) + 1 > limits.max_depth and item:
                raise DbLimitError(
                    f"injected value reaches more than {limits.max_depth} levels below /"
                )
            for key, child in item.items():
                check_name(key, limits, where)
                stack.append((child, (*where, key)))

@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: its domid (``None`` if unknown) and, for a guest, its VM uuid."""

    domid: int | None
    uuid: str | None = None


def confine_path(path: str, caller: Caller) -> str:
    """The path a request from ``caller`` really addresses.

    dom0 (domid 0) addresses the whole tree; any other domain is confined to
    ``/dom-store/<its uuid>/`` (``..`` is an ordinary name, so there is no way out). Raises
    :class:`DbError` when the domid is unknown ("failed to get the domid given message
    sender"), the uuid could not be resolved ("failed to resolve domid N to uuid"), or the uuid
    is not a single path segment (it would widen the confinement).
    """
    if caller.domid is None:
        raise DbError("failed to get the domid given message sender")
    if caller.domid == 0:
        return path
    uuid = caller.uuid
    if not uuid:
        raise DbError(f"failed to resolve domid {caller.domid} to uuid")
    if "/" in uuid or "\0" in uuid:
        raise DbError(f"domid {caller.domid} has an unusable uuid {uuid!r}")
    return f"/dom-store/{uuid}/{path}"
