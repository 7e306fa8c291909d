"""The simulated device model: a stand-in for qemu-dm on the simulated host.

``python -m xen.sim.qemu_dm [--xenstore PATH] <domid> [<logfile>] <qemu args...>``

It takes what qemu-dm-wrapper takes (`xen.xenops._dmargs.qemu_argv` without the program
path), checks the qemu arguments strictly (`xen.sim._qemuargs`: an unknown or malformed option
exits 2 with one line on stderr naming it, so an argument-construction bug is caught in sim
mode), then behaves towards xenstore as qemu-dm does in the original's direct mode, as dom0
on the xenstored socket (``--xenstore``, else ``$XENSTORED_PATH``):

1. refuses to start (exit 1) if ``/local/domain/<d>`` does not exist or xenstored cannot be
   reached;
2. writes ``/local/domain/0/device-model/<d>/state`` = ``running``,
   ``/local/domain/<d>/qemu-pid`` = its pid, ``/local/domain/<d>/console/vnc-port`` when a VNC
   display was asked for (5900 + the ``-vnc`` display, or 5900 + domid for ``-vncunused``; no
   VNC server listens), and last ``/local/domain/<d>/device-misc/dm-ready`` = ``1``, so that
   everything is there once dm-ready is seen; then prints ``ready <pid>`` on stdout (the
   simulated host's start action waits for that line) and stops using stdout;
3. watches ``/local/domain/0/device-model/<d>/command``: ``save`` -> ``state`` = ``paused``,
   ``continue`` -> ``state`` = ``running``; ``pci-ins``/``pci-rem`` get no answer (as the
   original); anything else is logged and ignored;
4. answers the CD drive requests of the original's bsg passthrough, as OpenXT's qemu did
   (`xen.sim._bsg`): ``bsgdev-req/<a_b_c_d>/req-assign`` -> ``bsgdev/<a_b_c_d>/lock`` = ``1``,
   ``req-eject`` -> the lock removed;
5. on SIGTERM or SIGINT removes ``qemu-pid`` (if it still names this process) and exits 0; it
   also exits 0 when ``/local/domain/<d>`` is removed (the domain was torn down under it).

The logfile argument is accepted and not written (the simulated host sends stderr to its own
log). Nothing is emulated: no VNC server, no saved device state (``save`` writes no file and
``-loadvm`` is not read), no PCI hot-plug.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

from xen.sim._bsg import answer_bsg_requests, bsg_requests_path
from xen.sim._dmagent import DM_ANSWERS, DM_SILENT
from xen.sim._qemuargs import QemuArgsError, QemuConfig, parse_wrapper_argv

if TYPE_CHECKING:
    from xen.xenstore import WatchFired, XenstoreClient

__all__ = ["READY_LINE", "SimDeviceModel", "main", "vnc_port"]

log = logging.getLogger("xen.sim.qemu_dm")

READY_LINE = "ready"
_VNC_BASE = 5900


def vnc_port(config: QemuConfig) -> int | None:
    """The TCP port reported in ``console/vnc-port`` (None without VNC)."""
    if config.vnc_display is not None:
        return _VNC_BASE + config.vnc_display[1]
    if config.vnc_unused:
        return _VNC_BASE + config.domid
    return None


class SimDeviceModel:
    """The xenstore side of one simulated qemu (see the module docstring)."""

    def __init__(self, xs: XenstoreClient, config: QemuConfig, pid: int | None = None) -> None:
        self.xs = xs
        self.config = config
        self.pid = os.getpid() if pid is None else pid
        domid = config.domid
        self.dom = f"/local/domain/{domid}"
        self.dm_dir = f"/local/domain/0/device-model/{domid}"
        self.pid_path = f"{self.dom}/qemu-pid"
        self.ready_path = f"{self.dom}/device-misc/dm-ready"
        self.vnc_path = f"{self.dom}/console/vnc-port"
        self.command_path = f"{self.dm_dir}/command"
        self.state_path = f"{self.dm_dir}/state"
        self.bsg_req = bsg_requests_path(domid)
        self.gone = threading.Event()
        self._watching: list[tuple[str, str]] = []

    def start(self) -> None:
        """Publish the nodes and start answering commands; RuntimeError without a domain."""
        if not self.xs.exists(self.dom):
            raise RuntimeError(f"domain {self.config.domid} has no xenstore tree ({self.dom})")
        self.xs.write(self.state_path, "running")
        self.xs.write(self.pid_path, str(self.pid))
        port = vnc_port(self.config)
        if port is not None:
            self.xs.write(self.vnc_path, str(port))
        for path, token, target in ((self.command_path, "dm-command", self._on_command),
                                    (self.dom, "dm-domain", self._on_domain),
                                    (self.bsg_req, "dm-bsgdev", self._on_bsgdev)):
            self.xs.watch(path, token, target)
            self._watching.append((path, token))
        self.xs.write(self.ready_path, "1")
        log.info("domain %d: ready (pid %d)", self.config.domid, self.pid)

    def _on_command(self, event: WatchFired) -> None:
        command = self.xs.try_read(self.command_path)
        if not command:
            return
        answer = DM_ANSWERS.get(command)
        if answer is not None:
            if self.xs.try_read(self.state_path) != answer:
                log.info("domain %d: %s -> state %s", self.config.domid, command, answer)
                self.xs.write(self.state_path, answer)
        elif command not in DM_SILENT:
            log.warning("domain %d: unknown command %r ignored", self.config.domid, command)

    def _on_bsgdev(self, event: WatchFired) -> None:
        try:
            answer_bsg_requests(self.xs, self.config.domid)
        except Exception as exc:  # the domain is going away
            log.debug("bsgdev-req: %s", exc)

    def _on_domain(self, event: WatchFired) -> None:
        if not self.xs.exists(self.dom):
            log.info("domain %d: its xenstore tree is gone; exiting", self.config.domid)
            self.gone.set()

    def stop(self) -> None:
        """Stop watching and remove ``qemu-pid`` if it is still ours."""
        for path, token in self._watching:
            try:
                self.xs.unwatch(path, token)
            except Exception as exc:  # best effort on the way out
                log.debug("unwatch %s: %s", path, exc)
        self._watching.clear()
        if self.xs.try_read(self.pid_path) == str(self.pid):
            self.xs.rm(self.pid_path)


def _split_argv(argv: list[str]) -> tuple[str | None, list[str]]:
    """Our own leading ``--xenstore PATH`` / ``--xenstore=PATH``, then the wrapper argv."""
    if argv and argv[0].startswith("--xenstore"):
        if argv[0].startswith("--xenstore="):
            return argv[0].partition("=")[2], argv[1:]
        if len(argv) < 2:
            raise QemuArgsError("--xenstore needs a socket path")
        return argv[1], argv[2:]
    return None, argv


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s qemu-dm(sim) %(levelname)s %(message)s")
    try:
        xs_path, wrapper = _split_argv(args)
        domid, _logfile, config = parse_wrapper_argv(wrapper)
    except QemuArgsError as exc:
        print(f"qemu-dm (sim): {exc}", file=sys.stderr, flush=True)
        return 2
    from xen.xenstore import RetryPolicy, XenstoreClient, XenstoreConnectionError

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    def on_xenstored_gone(exc: Exception) -> None:  # the simulated host went away: so do we
        log.warning("domain %s: xenstored is gone (%s): exiting", domid, exc)
        stop.set()

    xs = XenstoreClient(xs_path or os.environ.get("XENSTORED_PATH"), timeout=5.0,
                        reconnect=RetryPolicy(attempts=5, max_time=3.0),
                        on_failed=on_xenstored_gone, name="qemu-dm")
    try:
        xs.connect()
    except XenstoreConnectionError as exc:
        print(f"qemu-dm (sim): cannot reach xenstored: {exc}", file=sys.stderr, flush=True)
        return 1
    model = SimDeviceModel(xs, config)
    try:
        model.start()
    except Exception as exc:
        print(f"qemu-dm (sim): domain {domid}: {exc}", file=sys.stderr, flush=True)
        xs.close()
        return 1
    print(f"{READY_LINE} {model.pid}", flush=True)
    _detach_stdout()
    try:
        while not stop.wait(0.5) and not model.gone.is_set():
            pass
    finally:
        try:
            model.stop()
        except Exception as exc:
            log.warning("domain %d: cleanup failed: %s", domid, exc)
        xs.close()
    log.info("domain %d: exiting", domid)
    return 0


def _detach_stdout() -> None:
    """Nothing more goes to stdout: the reader of the ready line may have gone."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
