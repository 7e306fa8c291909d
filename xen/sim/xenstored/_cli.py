"""Command line: run the simulated xenstored in the foreground until SIGTERM or SIGINT.

``python -m xen.sim.xenstored --socket PATH [--seed-dom0] [--no-domain-sockets] [-v]``

Exits 0 after a signal-driven shutdown, 1 if the socket cannot be opened (the reason is
logged, e.g. another server already listening there).
"""

from __future__ import annotations

import argparse
import logging
import sys

from xen.sim._serving import serve_in_foreground
from xen.sim.xenstored._server import XenstoredServer

__all__ = ["main"]

log = logging.getLogger("xen.sim.xenstored")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xen.sim.xenstored", description="Simulated xenstored on a unix socket."
    )
    parser.add_argument("--socket", required=True, help="unix socket path to listen on")
    parser.add_argument(
        "--seed-dom0", action="store_true", help="write /local/domain/0/{domid,name} at start"
    )
    parser.add_argument(
        "--no-domain-sockets",
        action="store_true",
        help="do not open a <socket>.dom<domid> socket per introduced domain",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    levels = (logging.WARNING, logging.INFO, logging.DEBUG)
    logging.basicConfig(
        level=levels[min(args.verbose, 2)],
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    server = XenstoredServer(
        args.socket, seed_dom0=args.seed_dom0, domain_sockets=not args.no_domain_sockets
    )
    return serve_in_foreground(server, "xenstored", args.socket, log)


if __name__ == "__main__":
    sys.exit(main())
