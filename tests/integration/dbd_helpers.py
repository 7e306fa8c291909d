"""Helpers for the dbd integration tests: a persistence subtree in this process, a client of
com.citrix.xenclient.db, and a ``dbd`` subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pykka

import actors
from persistence import (
    DB_INTERFACE,
    DB_SERVICE,
    DbService,
    DbStatus,
    GetDbStatus,
    db_supervisor_spec,
)
from rpc.dbus import BusConnection, CallerIdentity, DBusError, RemoteObject
from supervision import Strategy, Supervisor, SupFlags

T = 10.0
SERVICE_NAME = "/persistence/service"
BIN = Path(sys.executable).parent


class Client:
    """Calls to com.citrix.xenclient.db through one connection."""

    def __init__(self, address: str) -> None:
        self.conn = BusConnection(address)
        self.obj = RemoteObject(self.conn, DB_SERVICE, "/", timeout=T)

    def __getattr__(self, member: str) -> Any:
        sigs = {"read": "s", "read_binary": "s", "dump": "s", "list": "s", "exists": "s",
                "rm": "s", "write": "ss", "inject": "ss"}

        def call(*args: Any) -> Any:
            body = self.obj.call(DB_INTERFACE, member, sigs[member], *args)
            return body[0] if body else None
        return call

    def close(self) -> None:
        self.conn.close()


class Tree:
    """A persistence subtree on the bus, with its own caller registry."""

    def __init__(self, root: Path, address: str, *, identity_service: bool = False) -> None:
        self.root = root
        self.registry = CallerIdentity()
        spec = db_supervisor_spec(str(root), address, 0.0, registry=self.registry,
                                  identity_service=identity_service)
        self.ref: pykka.ActorRef[Any] = Supervisor.start_root(
            SupFlags(Strategy.ONE_FOR_ONE, intensity=0), [spec])

    @property
    def service(self) -> DbService:
        actor = actors.actor_of(actors.resolve(SERVICE_NAME))
        assert isinstance(actor, DbService)
        return actor

    def status(self) -> DbStatus:
        status: DbStatus = actors.ask("/persistence/store", GetDbStatus(), timeout=T)
        return status

    def stop(self) -> None:
        sup = actors.actor_of(self.ref)
        sup.request_stop()
        assert sup.wait_dead(30)


class Dbd:
    """A ``dbd --foreground`` subprocess on ``address`` serving ``root``."""

    def __init__(self, root: Path, address: str, *extra: str) -> None:
        self.root = root
        self.address = address
        self.log = root.parent / f"{root.name}-dbd.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "dbd"), "--root", str(root), "--bus", address, "--foreground",
                 *extra], stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def wait_ready(self, timeout: float = T) -> None:
        """Wait until the service answers on the bus (or fail with the daemon's log)."""
        deadline = time.monotonic() + timeout
        with BusConnection(self.address) as conn:
            obj = RemoteObject(conn, DB_SERVICE, "/", timeout=timeout)
            while True:
                try:
                    obj.call(DB_INTERFACE, "exists", "s", "/")
                    return
                except DBusError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"dbd did not come up (status {self.proc.poll()}):\n"
                                         f"{self.log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.005)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(T)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(T)


def env_for(address: str) -> dict[str, str]:
    """The environment a db-cmd subprocess finds ``address`` in."""
    return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address}
