"""The one daemon runner: how every long-running program of this project lives and stops.

``oxt-supervisor`` and ``dbd`` (and the ``xenmgr`` and ``rpc-proxy`` daemons) run their tree
through :func:`run_daemon` with a :class:`DaemonConfig` and a start function. The runner owns,
in this order:

1. **Logging**: stderr (or syslog when daemonized, or when asked) with each logger mapped to
   its original daemon's syslog ident (``idents``: logger-name prefix -> ident).
2. **Readiness plumbing**: ``$NOTIFY_SOCKET`` is taken out of the environment at once (as
   sd_notify's ``unset_environment``), so the processes the tree starts (dbus-daemon reads it
   too) never send readiness in our name.
3. **The state directory** (when given): a lock (``<state>/run/lock``, ``flock``) so that two
   instances never share one state directory (the second exits 1 naming the first's pid), then
   the process ledger (`supervision._processes`): owned processes a SIGKILLed predecessor left
   running are stopped before anything starts.
4. **Signals**: SIGTERM and SIGINT ask for an orderly stop; SIGHUP calls the reload hook
   (with ``RELOADING=1`` / ``READY=1`` around it); a failing hook is logged, the daemon goes on.
5. **Start**: ``start(on_escalate)`` builds and starts the tree and returns a :class:`Started`
   (the root and what the ready file says). A start that raises ends the run with status 1.
6. **Ready**: the pidfile and the ready file (JSON, written atomically) and ``READY=1``. (Stale
   ones, left by a killed predecessor, are removed before the start.)
7. **Stop**: ``STOPPING=1``; after an escalation of the root (the tree gave up) the status is
   1 and nothing is left to stop; else the root is asked to stop and waited for, within
   ``stop_timeout`` (status 1 if it does not stop in time). Then every owned process still in
   the ledger is stopped (an orderly stop leaves nothing running), the pidfile and the ready
   file are removed, the lock is released.

Exit status: 0 after an orderly stop; 1 when the start failed, the tree escalated or the stop
timed out. (2, bad arguments or configuration, is the caller's, before it calls the runner.)

``daemonize``: fork; the command waits (bounded) until the daemon is ready and exits 0, or
prints why it could not start and exits 1; the daemon detaches (``setsid``, ``/`` as working
directory, standard streams on ``/dev/null``) and logs to syslog.
"""

from __future__ import annotations

import fcntl
import json
import logging
import logging.handlers
import os
import select
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pykka

from actors import stop
from supervision._processes import ProcessLedger

__all__ = ["DaemonConfig", "Started", "run_daemon", "sd_notify", "setup_logging",
           "write_atomically"]

logger = logging.getLogger(__name__)

_READY_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """How a daemon runs (see the module docstring)."""

    name: str
    idents: tuple[tuple[str, str], ...] = ()
    log_level: str = "info"
    syslog: bool = False
    state_dir: Path | None = None
    pidfile: Path | None = None
    ready_file: Path | None = None
    stop_timeout: float = 120.0
    daemonize: bool = False


@dataclass(frozen=True, slots=True)
class Started:
    """What a start function returns: the root of the tree and what "ready" reports."""

    root: pykka.ActorRef[Any]
    info: Mapping[str, Any] = field(default_factory=dict)
    banner: str = ""


StartFunction = Callable[[Callable[[object], None]], Started]


# ------------------------------------------------------------------ logging


class _Ident(logging.Filter):
    """Adds ``record.ident``: the original daemon's syslog ident for the logger."""

    def __init__(self, default: str, idents: tuple[tuple[str, str], ...]) -> None:
        super().__init__()
        self.default = default
        self.idents = idents

    def filter(self, record: logging.LogRecord) -> bool:
        record.ident = next((ident for prefix, ident in self.idents
                             if record.name == prefix or record.name.startswith(prefix + ".")),
                            self.default)
        return True


def setup_logging(config: DaemonConfig, *, to_syslog: bool | None = None) -> None:
    """stderr (unless daemonized) and syslog (``/dev/log``) when asked, with idents."""
    root = logging.getLogger()
    root.setLevel(getattr(logging, config.log_level.upper(), logging.INFO))
    for handler in list(root.handlers):
        root.removeHandler(handler)
    ident = _Ident(config.name, config.idents)
    use_syslog = (config.syslog if to_syslog is None else to_syslog) and os.path.exists("/dev/log")
    if not config.daemonize or not use_syslog:
        # a daemonized process without syslog logs to the command's stderr until it is ready
        err = logging.StreamHandler(sys.stderr)
        err.addFilter(ident)
        err.setFormatter(logging.Formatter(
            "%(ident)s: %(levelname)s %(name)s: %(message)s" if config.daemonize
            else "%(asctime)s %(ident)s: %(levelname)s %(message)s"))
        root.addHandler(err)
    if use_syslog:
        try:
            sys_handler = logging.handlers.SysLogHandler(address="/dev/log")
        except OSError:
            return
        sys_handler.addFilter(ident)
        sys_handler.setFormatter(logging.Formatter("%(ident)s[%(process)d]: %(message)s"))
        root.addHandler(sys_handler)


# ------------------------------------------------------------------ readiness


class _Notifier:
    """``$NOTIFY_SOCKET``, taken from the environment once."""

    def __init__(self) -> None:
        self.target = os.environ.pop("NOTIFY_SOCKET", None)

    def send(self, state: str) -> bool:
        if not self.target:
            return False
        addr = "\0" + self.target[1:] if self.target.startswith("@") else self.target
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(state.encode(), addr)
            except OSError as exc:
                logger.warning("sd_notify to %s failed: %s", self.target, exc)
                return False
        return True


_notifier: list[_Notifier] = []


def sd_notify(state: str) -> bool:
    """Send ``state`` (``READY=1`` ...) to the service manager; True if sent. The first call
    takes ``$NOTIFY_SOCKET`` out of the environment."""
    if not _notifier:
        _notifier.append(_Notifier())
    return _notifier[0].send(state)


def write_atomically(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file and a rename (its presence means complete)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------ the state directory


class _StateLock:
    """``<state>/run/lock``, held for the life of the daemon."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "run" / "lock"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = None

    def acquire(self) -> str | None:
        """None when locked, else why not."""
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            return f"the state directory {self.path.parent.parent} is in use by pid {holder}"
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return None

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# ------------------------------------------------------------------ the run


class _Run:
    def __init__(self, config: DaemonConfig, start: StartFunction,
                 reload: Callable[[], None] | None, ready: Callable[[str | None], None]
                 ) -> None:
        self.config = config
        self.start = start
        self.reload_hook = reload
        self.report_ready = ready
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.escalated = threading.Event()
        self.wake = threading.Event()
        self.lock: _StateLock | None = None
        self.ledger: ProcessLedger | None = None

    def on_signal(self, signum: int, _frame: object) -> None:
        (self.reload_requested if signum == signal.SIGHUP else self.stop_requested).set()
        self.wake.set()

    def on_escalate(self, reason: object) -> None:
        logger.error("the root supervisor gave up: %s", getattr(reason, "error", reason))
        self.escalated.set()
        self.stop_requested.set()
        self.wake.set()

    def run(self) -> int:
        sd_notify("STATUS=starting")
        failure = self._prepare_state()
        if not failure:
            for path in (self.config.pidfile, self.config.ready_file):
                if path is not None:
                    path.unlink(missing_ok=True)  # a killed predecessor's: not ready yet
        if failure:
            logger.error("%s", failure)
            self.report_ready(failure)
            return 1
        try:
            return self._serve()
        finally:
            self._cleanup()

    def _prepare_state(self) -> str | None:
        state = self.config.state_dir
        if state is None:
            return None
        state.mkdir(parents=True, exist_ok=True)
        self.lock = _StateLock(state)
        refused = self.lock.acquire()
        if refused:
            self.lock = None
            return refused
        self.ledger = ProcessLedger.of_state(state)
        self.ledger.reap()
        return None

    def _serve(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self.on_signal)
        try:
            started = self.start(self.on_escalate)
        except Exception as exc:
            logger.error("%s did not start: %s", self.config.name, exc)
            self.report_ready(str(exc))
            return 1
        self._announce(started)
        while not self.stop_requested.is_set():
            self.wake.wait(1.0)
            self.wake.clear()
            if self.reload_requested.is_set() and not self.stop_requested.is_set():
                self.reload_requested.clear()
                self._reload()
        sd_notify("STOPPING=1")
        if self.escalated.is_set():
            return 1
        if not stop(started.root, self.config.stop_timeout):
            logger.error("the tree did not stop within %.0f s", self.config.stop_timeout)
            return 1
        logger.info("stopped")
        return 0

    def _announce(self, started: Started) -> None:
        if self.config.pidfile is not None:
            write_atomically(self.config.pidfile, f"{os.getpid()}\n")
        info = {"pid": os.getpid(), **started.info}
        if self.config.ready_file is not None:
            write_atomically(self.config.ready_file, json.dumps(info) + "\n")
        sd_notify("READY=1")
        logger.info("ready: %s", json.dumps(info))
        self.report_ready(None)
        if started.banner:
            print(started.banner, file=sys.stderr, flush=True)

    def _reload(self) -> None:
        if self.reload_hook is None:
            return
        sd_notify("RELOADING=1")
        try:
            self.reload_hook()
        except Exception:
            logger.exception("reload failed (the daemon goes on as it was)")
        sd_notify("READY=1")

    def _cleanup(self) -> None:
        if self.ledger is not None:
            for rec in self.ledger.records():
                if rec.kind == "owned" and rec.owner_pid == os.getpid():
                    logger.warning("%s (pid %d) still runs after the stop; stopping it",
                                   rec.name, rec.pid)
                    self.ledger.stop(rec.name)
        for path in (self.config.pidfile, self.config.ready_file):
            if path is not None:
                path.unlink(missing_ok=True)
        if self.lock is not None:
            self.lock.release()


def run_daemon(config: DaemonConfig, start: StartFunction, *,
               reload: Callable[[], None] | None = None) -> int:
    """Run a daemon (see the module docstring); returns its exit status."""
    if config.daemonize:
        return _daemonize(config, start, reload)
    setup_logging(config)
    return _Run(config, start, reload, lambda _reason: None).run()


def _daemonize(config: DaemonConfig, start: StartFunction,
               reload: Callable[[], None] | None) -> int:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid > 0:  # the command: wait for the daemon's word
        os.close(write_fd)
        chunks: list[bytes] = []
        while True:
            readable, _, _ = select.select([read_fd], [], [], _READY_TIMEOUT)
            chunk = os.read(read_fd, 4096) if readable else b""
            if not chunk:
                break
            chunks.append(chunk)
        os.close(read_fd)
        answer = b"".join(chunks).decode(errors="replace")
        if answer == "ok":
            return 0
        sys.stderr.write(f"{config.name}: {answer or 'the daemon died before it was ready'}\n")
        return 1
    os.close(read_fd)
    os.setsid()
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    setup_logging(config, to_syslog=True)

    def ready(reason: str | None) -> None:
        try:
            os.write(write_fd, b"ok" if reason is None else reason.encode())
            os.close(write_fd)
        except OSError:
            pass
        os.dup2(null, 1)
        os.dup2(null, 2)

    return _Run(config, start, reload, ready).run()
