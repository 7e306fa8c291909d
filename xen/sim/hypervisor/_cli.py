"""Command line: run the simulated hypervisor in the foreground until SIGTERM or SIGINT.

``python -m xen.sim.hypervisor --socket PATH [--memory-mib N] [--dom0-mib N] [--cpus N] [-v]``

Serves a `SimHypervisor` of N MiB (default 8192) on PATH. With ``-v`` every model event is
logged. Exits 0 after a signal-driven shutdown, 1 if the socket cannot be opened, 2 for bad
arguments (the reason is logged).
"""

from __future__ import annotations

import argparse
import logging
import sys

from xen.hypervisor import HypervisorError
from xen.sim._serving import serve_in_foreground
from xen.sim.hypervisor._model import SimHypervisor
from xen.sim.hypervisor._server import HypervisorServer

__all__ = ["main"]

log = logging.getLogger("xen.sim.hypervisor")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xen.sim.hypervisor",
        description="Simulated Xen hypervisor on a unix socket.")
    parser.add_argument("--socket", required=True, help="unix socket path to listen on")
    parser.add_argument("--memory-mib", type=int, default=8192, help="host memory (MiB)")
    parser.add_argument("--dom0-mib", type=int, default=None,
                        help="dom0 memory (MiB; default 512 or a quarter of the host)")
    parser.add_argument("--cpus", type=int, default=4, help="host cpus")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    levels = (logging.WARNING, logging.INFO, logging.DEBUG)
    logging.basicConfig(
        level=levels[min(args.verbose, 2)],
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        model = SimHypervisor(
            args.memory_mib * 1024,
            dom0_kib=None if args.dom0_mib is None else args.dom0_mib * 1024,
            nr_cpus=args.cpus)
    except HypervisorError as exc:
        log.error("bad host: %s", exc)
        return 2
    server = HypervisorServer(args.socket, model)
    server.subscribe(lambda event: log.info("%s", event))
    return serve_in_foreground(server, "hypervisor", args.socket, log)


if __name__ == "__main__":
    sys.exit(main())
