"""The VM hooks: ``run-post-create``, ``run-pre-delete``, ``run-pre-boot``,
``run-insteadof-start``, ``run-on-state-change``, ``run-on-acpi-state-change``.

A hook value is a ``;``-separated list of entries, run in order (blank entries skipped):

* a script: the entry split at blanks is the program and its first arguments; the hook's own
  arguments (the VM's uuid, then the state or the ACPI state for the state hooks) follow. It
  runs with no input, its output logged (stdout at info, stderr at warning), in its own
  process group, bounded by ``hook_timeout`` seconds: past that the whole group is killed and
  the hook fails "timed out after N s". A non-zero exit fails it with the exit status and the
  last line of its stderr.
* ``rpc:`` followed by comma-separated ``key=value`` pairs: ``destination``, ``interface``,
  ``member`` (required), ``objpath`` (default ``/``); blanks around keys and values are
  stripped, values may be quoted. The hook's arguments are passed as string arguments of the
  method call, bounded by ``hook_timeout``. ``vm=<uuid>`` (a call on a guest's bus) is refused:
  we have no guest buses.

:func:`run_hooks` raises :class:`HookFailed` at the first failing entry; the caller decides
whether that is fatal (post-create, pre-delete, pre-boot, insteadof-start: the call fails with
the hook's error) or only logged (the state hooks). Scripts are short-lived children waited
for here, not daemons: they are not entered in the process ledger.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from rpc.dbus import BusConnection, DBusError, RemoteObject
from xen.xenmgr._errors import XenmgrError

__all__ = ["HookFailed", "RpcHook", "parse_hooks", "run_hooks"]

logger = logging.getLogger("xenmgr")


class HookFailed(XenmgrError):
    """A hook entry failed; the message names the hook and the entry."""

    def __init__(self, hook: str, entry: str, why: str) -> None:
        super().__init__(None, f"hook {hook} {entry!r} failed: {why}")


@dataclass(frozen=True, slots=True)
class RpcHook:
    """An ``rpc:`` entry."""

    destination: str
    interface: str
    member: str
    objpath: str = "/"


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_rpc(hook: str, entry: str) -> RpcHook:
    """An ``rpc:`` entry's fields (``HookFailed`` naming what is wrong)."""
    fields: dict[str, str] = {}
    for part in entry[len("rpc:"):].split(","):
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        if not eq:
            raise HookFailed(hook, entry, f"{part.strip()!r} is not key=value")
        fields[key.strip()] = _unquote(value)
    if "vm" in fields:
        raise HookFailed(hook, entry, "calls on a guest's bus (vm=) are not supported")
    missing = [k for k in ("destination", "interface", "member") if not fields.get(k)]
    if missing:
        raise HookFailed(hook, entry, f"missing {', '.join(missing)}")
    unknown = sorted(set(fields) - {"destination", "interface", "member", "objpath"})
    if unknown:
        raise HookFailed(hook, entry, f"unknown key(s) {', '.join(unknown)}")
    return RpcHook(fields["destination"], fields["interface"], fields["member"],
                   fields.get("objpath") or "/")


def parse_hooks(value: str) -> list[str]:
    """The entries of a hook value, in order."""
    return [e.strip() for e in value.split(";") if e.strip()]


def _run_script(hook: str, entry: str, args: Sequence[str], timeout: float) -> None:
    try:
        argv = [*shlex.split(entry), *args]
    except ValueError as exc:
        raise HookFailed(hook, entry, str(exc)) from None
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    except OSError as exc:
        raise HookFailed(hook, entry, exc.strerror or str(exc)) from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate(timeout=5)
        raise HookFailed(hook, entry, f"timed out after {timeout:g} s") from None
    for line in out.splitlines():
        logger.info("hook %s: %s", hook, line)
    for line in err.splitlines():
        logger.warning("hook %s: %s", hook, line)
    if proc.returncode != 0:
        last = err.strip().splitlines()[-1] if err.strip() else ""
        raise HookFailed(hook, entry, f"exit status {proc.returncode}"
                                      + (f": {last}" if last else ""))


def _run_rpc(hook: str, entry: str, args: Sequence[str], conn: BusConnection | None,
             timeout: float) -> None:
    target = parse_rpc(hook, entry)
    if conn is None:
        raise HookFailed(hook, entry, "no bus connection")
    try:
        RemoteObject(conn, target.destination, target.objpath, timeout=timeout).call(
            target.interface, target.member, "s" * len(args), *args)
    except DBusError as exc:
        raise HookFailed(hook, entry, f"{exc.name}: {exc.message}") from None
    except Exception as exc:  # a timeout, the bus gone
        raise HookFailed(hook, entry, str(exc) or type(exc).__name__) from None


def run_hooks(hook: str, value: str, args: Sequence[str], *, timeout: float,
              conn: BusConnection | None = None) -> int:
    """Run every entry of ``value`` (see the module docstring); the number run."""
    entries = parse_hooks(value)
    for entry in entries:
        logger.info("running hook %s: %s %s", hook, entry, " ".join(args))
        if entry.startswith("rpc:"):
            _run_rpc(hook, entry, args, conn, timeout)
        else:
            _run_script(hook, entry, args, timeout)
    return len(entries)
