"""The ``xenops`` command: low-level domain and device operations, as the original's xenops.

``xenops [global options] <command> [flags]``; the command may also come from the program's
name (a link called ``list_domains`` runs that command), as in the original. Commands, their
aliases and flags follow the original (flags are single-dash, double-dash works
too; ``xenops help [command]`` lists them):

=====================================  ===================================================
list_domains, list, li                 -v
list_devices                           -domid
create_domain, init                    [-hvm] [-uuid U] [-name N] [-memory KiB] [-vcpus N]
build_domain, build                    -domid [-memory KiB] [-vcpus N]   (simulated host)
destroy_domain, destroy, del           -domid
pause_domain, pause / unpause_domain   -domid
shutdown_domain, shutdown              -domid -poweroff|-reboot|-suspend|-halt [-sync]
hard_shutdown_domain                   -domid -poweroff|-reboot|-suspend|-halt|-crash
sysrq_domain, sysrq                    -domid -key K
add_vbd, disk-add                      -domid -virtpath -physpath -phystype [-mode r|w]
                                       [-devtype disk|cdrom] [-backend-domid D]
del_vbd                                -domid -virtpath [-backend-domid D] [-hard]
add_vif                                -domid [-devid N] [-mac M] [-netty bridge:<name>]
                                       [-backend-domid D]
del_vif                                -domid [-devid N] [-backend-domid D] [-hard]
add_pci / del_pci                      -domid -pci BDF[,BDF] [-devid N] [-bind] / -domid [-devid]
bind_pci, pci-bind                     -pci BDF[,BDF]
dom-uuid, getuuid_domain / setmaxmem   -domid / -domid -memory KiB
balloon                                -domid -memory MiB
physinfo, getenforce, help [command]
=====================================  ===================================================

Global options (before or after the command): ``--backend sim|xc``, ``--state DIR``,
``--hypervisor-socket PATH``, ``--xenstore-socket PATH`` (how they are chosen when not given:
`xen.xenops._cli_env`), ``--request-timeout S`` (each hypervisor/xenstore request, 5 s),
``-debug`` (log every plan step on stderr). Commands that wait take ``-timeout S`` (hotplug
and close waits 10 s, shutdown 30 s).

Exit status: 0 done; 1 the operation failed (``error: ...`` on stderr, naming what and why:
no such domain, a hotplug that never reported, a guest that did not acknowledge, the
simulated host not running, an operation the backend cannot do); 2 a bad command line. Domain
and device operations run the xenops plans through `PlanExecutor`, as the VM monitors do; the
command starts no actors and no supervision tree.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xen.hypervisor import HypervisorError
from xen.xenops._cli_devices import DEVICE_COMMANDS
from xen.xenops._cli_domains import DOMAIN_COMMANDS
from xen.xenops._cli_env import CliError, Session, UsageError, choose_target
from xen.xenops._cli_pci import PCI_COMMANDS
from xen.xenops._executor import PlanFailed

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, Callable[[Session, argparse.Namespace], int]] = {
    **DOMAIN_COMMANDS, **DEVICE_COMMANDS, **PCI_COMMANDS,
}
ALIASES = {
    "list_domains": ["list", "li"], "create_domain": ["init"], "build_domain": ["build"],
    "destroy_domain": ["destroy", "del"], "pause_domain": ["pause"],
    "unpause_domain": ["unpause"], "shutdown_domain": ["shutdown"],
    "sysrq_domain": ["sysrq"], "add_vbd": ["disk-add"], "dom-uuid": ["getuuid_domain"],
    "bind_pci": ["pci-bind"],
}
HELP = {
    "list_domains": "list domains (flags D dying, S shutdown, P paused, B blocked, R running, "
                    "H hvm)",
    "list_devices": "list a domain's devices and their xenbus states",
    "create_domain": "create a domain and its xenstore tree; prints the domid",
    "build_domain": "build a created domain (simulated host: rings and xenstore keys, "
                    "introduce)",
    "destroy_domain": "destroy a domain and everything around it",
    "pause_domain": "pause a domain", "unpause_domain": "unpause a domain",
    "shutdown_domain": "ask the guest to shut down (clean); -sync waits for it",
    "hard_shutdown_domain": "shut the domain down by hypercall",
    "sysrq_domain": "send a sysrq key to the guest", "dom-uuid": "print the domain's handle",
    "setmaxmem": "set the domain's maximum memory (KiB)",
    "balloon": "set the domain's memory target (MiB)",
    "add_vbd": "add a virtual disk", "del_vbd": "remove a virtual disk",
    "add_vif": "add a network interface", "del_vif": "remove a network interface",
    "add_pci": "pass PCI devices through (one group)", "del_pci": "take a PCI group out",
    "bind_pci": "give PCI devices to pciback",
    "physinfo": "host cpus, memory and capabilities",
    "getenforce": "XSM/FLASK mode (Enforcing or Permissive)",
    "help": "list the commands, or the flags of one",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors exit 2 with one clear line
        self.print_usage(sys.stderr)
        raise SystemExit(f"xenops: error: {message}") from None


def _flag(group: argparse._ActionsContainer, name: str, **kw: Any) -> None:
    group.add_argument(f"-{name}", f"--{name}", dest=name.replace("-", "_"), **kw)


def _domid(text: str) -> int:
    if not text.isdigit() or int(text) >= 0x7FF0:
        raise argparse.ArgumentTypeError(f"not a domain id: {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def _globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    group = parser.add_argument_group("global options")
    group.add_argument("--backend", choices=("sim", "xc"), **default)
    group.add_argument("--state", metavar="DIR", **default)
    group.add_argument("--hypervisor-socket", metavar="PATH", **default)
    group.add_argument("--xenstore-socket", metavar="PATH", **default)
    group.add_argument("--request-timeout", type=_seconds, metavar="S",
                       **(default or {"default": 5.0}))
    group.add_argument("-debug", "--debug", action="store_true", **default)


def _reason(group: argparse._ActionsContainer, reasons: tuple[str, ...]) -> None:
    choice = group.add_mutually_exclusive_group(required=True)
    for reason in reasons:
        choice.add_argument(f"-{reason}", f"--{reason}", dest="reason", action="store_const",
                            const=reason)


def _flags(name: str, p: argparse.ArgumentParser) -> None:
    if name not in ("list_domains", "physinfo", "getenforce", "create_domain", "help",
                    "bind_pci"):
        _flag(p, "domid", type=_domid, required=True, help="the domain")
    waits = {"build_domain": 64.0, "destroy_domain": 10.0, "shutdown_domain": 30.0,
             "add_vbd": 10.0, "del_vbd": 10.0, "add_vif": 10.0, "del_vif": 10.0,
             "add_pci": 10.0}
    if name in waits:
        _flag(p, "timeout", type=_seconds, default=waits[name], help="bound of each wait (s)")
    if name in ("add_vbd", "del_vbd", "add_vif", "del_vif"):
        _flag(p, "backend-domid", type=_domid, default=0, help="backend domain (0)")
    if name in ("del_vbd", "del_vif"):
        _flag(p, "hard", action="store_true", help="unplug by force, without asking")
    if name == "list_domains":
        p.add_argument("-v", "--verbose", action="store_true", help="the whole domain info")
    elif name == "create_domain":
        _flag(p, "hvm", action="store_true", help="an HVM domain")
        _flag(p, "uuid", help="the VM UUID (default: a random one)")
        _flag(p, "name", help="the domain name (default Domain-<domid>)")
        _flag(p, "memory", type=int, default=262144, help="memory in KiB (262144)")
        _flag(p, "vcpus", type=int, default=1, help="vcpus (1)")
    elif name == "build_domain":
        _flag(p, "memory", type=int, help="memory in KiB (default: what the domain holds)")
        _flag(p, "vcpus", type=int, help="vcpus (default: the domain's)")
    elif name == "shutdown_domain":
        _reason(p, ("poweroff", "reboot", "suspend", "halt"))
        _flag(p, "sync", action="store_true", help="wait for the domain to shut down")
    elif name == "hard_shutdown_domain":
        _reason(p, ("poweroff", "reboot", "suspend", "halt", "crash"))
    elif name == "sysrq_domain":
        _flag(p, "key", required=True, help="the sysrq key")
    elif name in ("setmaxmem", "balloon"):
        unit = "KiB" if name == "setmaxmem" else "MiB"
        _flag(p, "memory", type=int, required=True, help=f"memory in {unit}")
    elif name in ("add_vbd", "del_vbd"):
        _flag(p, "virtpath", required=True, help="guest device name (xvda, hdc, 51712)")
        if name == "add_vbd":
            _flag(p, "physpath", required=True, help="the image or device")
            _flag(p, "phystype", required=True, choices=("phy", "file", "qcow", "vhd", "aio"))
            _flag(p, "mode", choices=("r", "w"), default="w", help="r or w (w)")
            _flag(p, "devtype", choices=("disk", "cdrom"), default="disk")
        else:
            _flag(p, "phystype", choices=("phy", "file", "qcow", "vhd", "aio"),
                  help="accepted for compatibility; the device is found in xenstore")
    elif name in ("add_vif", "del_vif"):
        _flag(p, "devid", type=int, default=0, help="interface number (0)")
        if name == "add_vif":
            _flag(p, "mac", help="MAC address (default: a random 00:16:3e:xx:xx:xx)")
            _flag(p, "netty", default="bridge:xenbr0",
                  help="bridge:<name> or DriverDomain (bridge:xenbr0)")
    elif name in ("add_pci", "del_pci", "bind_pci"):
        if name != "del_pci":
            _flag(p, "pci", required=True, help="PCI addresses DDDD:BB:SS.F[,...]")
        if name != "bind_pci":
            _flag(p, "devid", type=int, default=0, help="the PCI group (0)")
        if name == "add_pci":
            _flag(p, "bind", action="store_true", help="bind the devices to pciback first")
    elif name == "help":
        p.add_argument("topic", nargs="?", help="a command")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (global options also accepted after the command)."""
    parser = _Parser(prog="xenops", allow_abbrev=False,
                     description="Low-level Xen domain and device operations.")
    _globals(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    for name in [*COMMANDS, "help"]:
        p = sub.add_parser(name, aliases=ALIASES.get(name, []), help=HELP.get(name, ""),
                           allow_abbrev=False, description=HELP.get(name, ""))
        _globals(p, suppress=True)
        _flags(name, p)
        p.set_defaults(command=name)
    return parser


def _help(parser: argparse.ArgumentParser, topic: str | None) -> int:
    if topic is None:
        parser.print_help()
        return 0
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    chosen = sub.choices.get(topic)
    if chosen is None:
        print(f"xenops: no such command: {topic}", file=sys.stderr)
        return 2
    chosen.print_help()
    return 0


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
        called = Path(sys.argv[0]).name
        if called in COMMANDS or any(called in names for names in ALIASES.values()):
            argv = [called, *argv]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        return int(exc.code or 0)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="xenops: %(message)s")
    if args.debug:
        logging.getLogger("xenops").setLevel(logging.DEBUG)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("xenops: error: no command given (xenops help lists them)", file=sys.stderr)
        return 2
    if args.command == "help":
        return _help(parser, args.topic)
    session: Session | None = None
    try:
        target = choose_target(args.backend, args.state, args.hypervisor_socket,
                               args.xenstore_socket)
        logging.getLogger("xenops").info("backend %s (%s)", target.backend, target.reason)
        session = Session(target, timeout=args.request_timeout)
        return COMMANDS[args.command](session, args)
    except UsageError as exc:
        print(f"xenops: error: {exc}", file=sys.stderr)
        return 2
    except (CliError, HypervisorError, PlanFailed, OSError, RuntimeError, ValueError) as exc:
        print(f"xenops: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # xenstore errors and anything unforeseen: one line, no trace
        logging.getLogger("xenops").debug("failure", exc_info=True)
        print(f"xenops: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if session is not None:
            session.close()


if __name__ == "__main__":
    sys.exit(main())
