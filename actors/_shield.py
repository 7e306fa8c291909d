"""Sections an actor kill does not interrupt: `uninterruptible`, and `interrupt` for the killer.

`Actor.kill` stops a busy actor by raising an exception inside its thread. Raised at an
arbitrary point, that exception can leave shared state half changed: a lock taken and never
released, a connection's read role never handed back, so that every other user of a shared
client (the xenstore connection, the simulated hypervisor's) waits until its timeout. Code that
holds such state runs its critical part as ``with uninterruptible(): ...``; a kill that finds
the thread inside one is delivered when the outermost section ends (or at once by the next
section that starts), never in the middle.

How the two sides agree without a lock (a lock taken by the dying thread could itself be left
held): each thread has a `_Guard` with the depth of its open sections and the kill to deliver.
The killer writes the kill and then reads the depth; a section writes the depth and then reads
the kill (on entry after raising it, on leaving after lowering it). Under the interpreter lock
these steps are ordered, so at least one side sees the other: either the killer sees no open
section and raises the exception in the thread at once (any section entered after that raises
on entry, before it touches anything), or the section sees the kill and raises it itself at its
boundary. Both may happen; the thread is dying either way.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable
from types import TracebackType
from typing import ParamSpec, TypeVar

__all__ = ["Guard", "current_guard", "install_guard", "interrupt", "shielded",
           "uninterruptible"]

_local = threading.local()
P = ParamSpec("P")
R = TypeVar("R")


class Guard:
    """One thread's open uninterruptible sections and the kill waiting for their end."""

    __slots__ = ("depth", "kill")

    def __init__(self) -> None:
        self.depth = 0
        self.kill: type[BaseException] | None = None


def current_guard() -> Guard:
    """The calling thread's guard (made on first use; it dies with the thread)."""
    guard: Guard | None = getattr(_local, "guard", None)
    if guard is None:
        guard = _local.guard = Guard()
    return guard


def install_guard(guard: Guard) -> None:
    """Make ``guard`` the calling thread's (an actor's thread, with the guard its actor keeps
    for `interrupt`)."""
    _local.guard = guard


class uninterruptible:
    """A section that a kill of the running actor does not cut (see the module docstring).

    Keep it to code that ends by itself within a bound (a request with its deadline): a
    killed actor's thread stays until the section ends.
    """

    __slots__ = ("_guard",)

    def __enter__(self) -> None:
        self._guard = _enter(current_guard())

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _leave(self._guard, exc_type is None)


def _enter(guard: Guard) -> Guard:
    """Open a section on ``guard``: refused (the kill raised) if the actor was killed already."""
    guard.depth += 1
    kill = guard.kill
    if kill is not None:
        guard.depth -= 1
        raise kill()
    return guard


def _leave(guard: Guard, ended_normally: bool) -> None:
    """Close a section: a kill that came during it is raised at the outermost end, unless an
    exception is already on its way out."""
    guard.depth -= 1
    if guard.depth == 0 and ended_normally:
        kill = guard.kill
        if kill is not None:
            raise kill()


def shielded(function: Callable[P, R]) -> Callable[P, R]:
    """Decorator: every call of ``function`` runs as an `uninterruptible` section.

    The section's two steps called directly (no section object per call: the xenstore and
    hypervisor clients' requests are shielded, and this is on their hot path); the same steps
    as `uninterruptible`'s ``__enter__`` and ``__exit__``.
    """
    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        guard = _enter(current_guard())
        try:
            result = function(*args, **kwargs)
        except BaseException:
            _leave(guard, False)
            raise
        _leave(guard, True)
        return result
    return run


def interrupt(thread: threading.Thread, guard: Guard, kill: type[BaseException]) -> None:
    """Raise ``kill`` in ``thread`` (whose guard is ``guard``): now, or at the end of the
    uninterruptible section it is in."""
    guard.kill = kill
    if guard.depth == 0 and thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                   ctypes.py_object(kill))
