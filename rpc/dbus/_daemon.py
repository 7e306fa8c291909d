"""The private bus of the embedded default: a supervised ``dbus-daemon``.

:class:`BusDaemon` writes a bus configuration (:func:`bus_config`), starts the real
``dbus-daemon`` on a unix socket under ``<state>/dbus/``, waits until it prints its address,
and writes that address to ``<state>/dbus/address`` (where clients find it). A watcher thread
waits on the process; if the daemon dies the actor crashes, and its supervisor restarts it on
the same socket path (with ``rest_for_one``, the services started after it reconnect).
On stop the daemon gets SIGTERM, then SIGKILL after a bound.

No bus daemon outlives its owner: it is started with a parent-death signal (it gets SIGKILL
when the thread that started it, or the whole process, dies) and recorded as ``dbus-daemon``
in the state directory's process ledger (`supervision.ProcessLedger`), so a start after a
SIGKILL of the owner stops a leftover one before starting its own; a bus daemon of another
live process on the same state directory is an error, never shared or killed.

Policy: any local user may connect; our services may own ``com.citrix.xenclient.*``,
``org.xen.vm.*`` and ``org.openxt.*`` (plus extra prefixes); messages flow freely (the
firewall is the proxies' job, as on OpenXT).
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from actors import Actor, handles
from supervision import ProcessLedger, die_with_parent

__all__ = ["DEFAULT_OWN_PREFIXES", "BusDaemon", "BusDaemonError", "bus_config", "start_bus"]

logger = logging.getLogger(__name__)

DEFAULT_OWN_PREFIXES = ("com.citrix.xenclient", "org.xen.vm", "org.openxt")
_LEDGER_NAME = "dbus-daemon"


class BusDaemonError(RuntimeError):
    """dbus-daemon could not be started (missing binary, bad config, no address)."""


def bus_config(socket_path: Path, own_prefixes: Sequence[str] = DEFAULT_OWN_PREFIXES) -> str:
    """The configuration file text for a bus listening on ``socket_path``."""
    owns = "\n".join(f"    <allow own_prefix={quoteattr(p)}/>" for p in own_prefixes)
    return f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket_path}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
{owns}
  </policy>
  <limit name="max_replies_per_connection">4096</limit>
  <limit name="reply_timeout">300000</limit>
</busconfig>
"""


def start_bus(directory: Path, own_prefixes: Sequence[str] = DEFAULT_OWN_PREFIXES,
              timeout: float = 10.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``dbus-daemon`` with its socket and config in ``directory``; wait for it.

    The daemon dies with the thread that calls this (a parent-death signal): call it from a
    thread that lives as long as the bus should. Returns the process and its address. Raises
    :class:`BusDaemonError`.
    """
    binary = shutil.which("dbus-daemon")
    if binary is None:
        raise BusDaemonError("dbus-daemon not found: install the Debian package 'dbus'")
    directory.mkdir(parents=True, exist_ok=True)
    sock = directory / "system_bus_socket"
    sock.unlink(missing_ok=True)
    conf = directory / "bus.conf"
    conf.write_text(bus_config(sock, own_prefixes))
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            die_with_parent([binary, f"--config-file={conf}", "--nofork", "--nopidfile",
                             f"--print-address={write_fd}"]),
            pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True)
    finally:
        os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], timeout)
        line = os.read(read_fd, 4096).decode().strip() if ready else ""
    finally:
        os.close(read_fd)
    if not line:
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise BusDaemonError(f"dbus-daemon did not start: {err.decode(errors='replace').strip()}")
    return proc, line.splitlines()[0]


@dataclass(frozen=True, slots=True)
class _DaemonDied:
    returncode: int


class BusDaemon(Actor):
    """Runs and watches ``dbus-daemon`` (see the module docstring)."""

    def __init__(self, state_dir: Path | str,
                 own_prefixes: Sequence[str] = DEFAULT_OWN_PREFIXES) -> None:
        super().__init__()
        self.directory = Path(state_dir) / "dbus"
        self.ledger = ProcessLedger.of_state(state_dir)
        self.own_prefixes = tuple(own_prefixes)
        self.address = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._watcher: threading.Thread | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        """The daemon's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def on_start(self) -> None:
        """Stop a bus daemon left by a previous instance, start ours, publish its address."""
        self._stop_leftover()
        self._proc, self.address = start_bus(self.directory, self.own_prefixes)
        self.ledger.record(_LEDGER_NAME, self._proc.pid,
                           ["dbus-daemon", f"--config-file={self.directory}/bus.conf"])
        tmp = self.directory / "address.tmp"
        tmp.write_text(self.address + "\n")
        os.replace(tmp, self.directory / "address")
        proc = self._proc
        self._watcher = threading.Thread(target=self._watch, args=(proc,),
                                         name="dbus-daemon-watch", daemon=True)
        self._watcher.start()
        logger.info("dbus-daemon %d listening on %s", proc.pid, self.address)

    def _stop_leftover(self) -> None:
        old = self.ledger.get(_LEDGER_NAME)
        if old is None or not old.alive:
            self.ledger.forget(_LEDGER_NAME)
            return
        if old.owner_alive and old.owner_pid != os.getpid():
            raise BusDaemonError(f"the bus daemon of {self.directory} (pid {old.pid}) belongs to "
                                 f"process {old.owner_pid}, which still runs")
        logger.warning("stopping the bus daemon (pid %d) left by a previous instance", old.pid)
        if not self.ledger.stop(_LEDGER_NAME):
            raise BusDaemonError(f"the leftover bus daemon (pid {old.pid}) did not stop")

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        returncode = proc.wait()
        if not self._stopping:
            self._tell_self(_DaemonDied(returncode))

    @handles(_DaemonDied)
    def _died(self, msg: _DaemonDied) -> None:
        raise BusDaemonError(f"dbus-daemon exited with status {msg.returncode}")

    def snapshot(self) -> dict[str, object]:
        """Address and pid, for inspection."""
        return {"address": self.address, "pid": self.pid}

    def _shutdown(self) -> None:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(2.0)
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        if self._watcher is not None:
            self._watcher.join(2.0)
        if proc is not None and proc.poll() is not None:
            self.ledger.forget(_LEDGER_NAME)
        (self.directory / "address").unlink(missing_ok=True)

    def on_stop(self) -> None:
        """Stop the daemon."""
        self._shutdown()

    def on_failure(self, *_exc: object) -> None:
        """Make sure no daemon is left behind."""
        self._shutdown()


