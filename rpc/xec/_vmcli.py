"""The ``xec-vm`` console script: xec on a VM object of xenmgr, or a table of all VMs.

Behaviour (the command line itself is `rpc.xec._options`):

- ``-h`` prints the usage and exits 0 without touching the bus (the original connected
  first).
- VM selection: ``-o PATH`` is used verbatim; otherwise ``-n NAME`` > ``-u UUID`` >
  ``-d DOMID``: the VMs of ``com.citrix.xenclient.xenmgr`` ``list_vms`` (at ``/``) are looked
  at in that order and the first whose property ``name``/``uuid``/``domid`` of interface
  ``com.citrix.xenclient.xenmgr.vm``, as xec prints it, equals the argument exactly wins. The
  lookup runs in-process over the bus (the original spawned ``xec list-vms``, which also
  syslogged) and always asks xenmgr, whatever ``-s`` says (as the original). No match:
  ``xec-vm: vm '<v>' not found`` on stderr, exit 1.
- No selector: the VM table (`rpc.xec._format.format_vm_table`) from the properties
  ``domid``, ``name``, ``uuid`` and ``state`` of each VM; exit 0.
- With a VM: xec runs in this process on the argv `rpc.xec._options.xec_vm_forward_argv`
  builds (``-o <vm>[/disk/<k>|/nic/<c>]`` and the options and arguments that are not
  selectors), on the same connection; its output, errors (``xec: ...``) and exit code are
  xec-vm's, as when the original exec'd xec.
- Failures of the lookup or the table: a DBus error reply is printed to stdout as
  ``<name>: <body>`` (the original printed the name only) and a local failure to stderr as
  ``xec-vm: <message>``; both exit 1. ``--session`` applies to the lookup too (the original
  always looked up on the system bus).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rpc.xec._bus import Bus, BusFailure, Reply, ReplyError, resolve_bus_address
from rpc.xec._cli import (
    LocalError,
    exit_now,
    run_xec,
    silence_stdout,
    write_err,
    write_out,
)
from rpc.xec._options import UsageError, VmSelector, XecVmRequest, parse_xec_vm_argv

__all__ = ["VM_INTERFACE", "XENMGR", "XENMGR_INTERFACE", "find_vm", "list_vms", "main",
           "run_xec_vm", "vm_table"]

XENMGR = "com.citrix.xenclient.xenmgr"
XENMGR_INTERFACE = "com.citrix.xenclient.xenmgr"
VM_INTERFACE = "com.citrix.xenclient.xenmgr.vm"
PROPERTIES = "org.freedesktop.DBus.Properties"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xec-vm`` with ``argv``; returns the exit code.

    Without ``argv`` (the console script) the process's arguments are used and the process
    ends here through `rpc.xec._cli.exit_now`, as xec's does.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = run_xec_vm(args)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        silence_stdout()
        code = 1
    if argv is None:
        exit_now(code)
    return code


def run_xec_vm(args: Sequence[str]) -> int:
    """xec-vm's whole run on ``args`` (see the module docstring)."""
    try:
        request = parse_xec_vm_argv(args)
    except UsageError as exc:
        write_err(f"xec-vm: {exc}\n")
        return 1
    if request.help:
        from rpc.xec._options import XEC_VM_USAGE

        write_out(XEC_VM_USAGE)
        return 0
    try:
        with Bus.connect(resolve_bus_address(request.args.present("session"))) as bus:
            if request.selector is None:
                write_out(vm_table(bus))
                return 0
            path = find_vm(bus, request.selector)
            return _forward(request, path, bus)
    except ReplyError as exc:
        from rpc.xec._format import format_error

        try:
            line = format_error(exc.name, exc.body, exc.signature)
        except (TypeError, ValueError):
            line = exc.name
        write_out(line + "\n")
        return 1
    except (LocalError, BusFailure) as exc:
        write_err(f"xec-vm: {exc}\n")
        return 1


def _forward(request: XecVmRequest, path: str, bus: Bus) -> int:
    from rpc.xec._options import xec_vm_forward_argv

    return run_xec(xec_vm_forward_argv(request, path), bus=bus)


def list_vms(bus: Bus) -> list[str]:
    """The VM object paths xenmgr lists, in its order."""
    reply = bus.call(XENMGR, "/", XENMGR_INTERFACE, "list_vms")
    if reply.signature != "ao":
        raise LocalError(f"list_vms answered signature {reply.signature!r}, not 'ao'")
    return [str(p) for p in reply.body[0]]


def _properties(bus: Bus, paths: Sequence[str], names: Sequence[str]) -> list[list[Reply]]:
    """``Properties.Get`` of ``names`` on each VM, sent together; the first error raises."""
    calls = [Bus.message(XENMGR, path, PROPERTIES, "Get", "ss", (VM_INTERFACE, name))
             for path in paths for name in names]
    results = bus.call_many(calls)
    rows: list[list[Reply]] = []
    for start in range(0, len(results), len(names)):
        row: list[Reply] = []
        for result in results[start : start + len(names)]:
            if isinstance(result, ReplyError):
                raise result
            row.append(result)
        rows.append(row)
    return rows


def _shown(reply: Reply, path: str, name: str) -> str:
    """A property value as xec prints it."""
    from rpc.xec._format import format_reply

    try:
        return format_reply(reply.body, reply.signature).removesuffix("\n")
    except (TypeError, ValueError) as exc:
        raise LocalError(f"cannot show property {name} of {path}: {exc}") from None


def find_vm(bus: Bus, selector: VmSelector) -> str:
    """The object path of the VM ``selector`` names; `LocalError` if there is none."""
    if selector.kind == "object":
        return selector.value
    paths = list_vms(bus)
    # Looked at in list order; the first error reply before a match counts, as the original
    # (which asked one VM after the other) would have met it.
    results = bus.call_many([
        Bus.message(XENMGR, path, PROPERTIES, "Get", "ss", (VM_INTERFACE, selector.kind))
        for path in paths
    ])
    for path, result in zip(paths, results, strict=True):
        if isinstance(result, ReplyError):
            raise result
        if _shown(result, path, selector.kind) == selector.value:
            return path
    raise LocalError(f"vm '{selector.value}' not found")


def vm_table(bus: Bus) -> str:
    """The table of all VMs (sorted by domid, stopped VMs last)."""
    from rpc.xec._format import VmRow, format_vm_table

    paths = list_vms(bus)
    rows: list[VmRow] = []
    for path, (domid, name, uuid, state) in zip(
        paths, _properties(bus, paths, ("domid", "name", "uuid", "state")), strict=True
    ):
        number = domid.body[0][1] if domid.signature == "v" and domid.body else None
        if not isinstance(number, int) or isinstance(number, bool):
            raise LocalError(f"property domid of {path} is not an integer")
        rows.append(VmRow(number, _shown(name, path, "name"), _shown(uuid, path, "uuid"),
                          _shown(state, path, "state")))
    return format_vm_table(rows)


if __name__ == "__main__":
    main()
