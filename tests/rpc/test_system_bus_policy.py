"""examples/dbus/oxt-toolstack.conf on a stock system bus: Debian's own system.conf (its
default policy: nobody owns a name or sends a method call unless a drop-in allows it) run by
the real dbus-daemon on a socket of the test's, with our drop-in included. root may own the
toolstack's names and call them; a name outside our prefixes stays denied. The lab runs the
same drop-in on dom0's real system bus (tests/xenlab/test_dom0_xenmgr.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from jeepney import (
    DBusAddress,
    DBusErrorResponse,
    HeaderFields,
    Message,
    MessageType,
    new_method_call,
    new_method_return,
)
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection

from supervision import die_with_parent
from tests.helpers import stop_process

DROP_IN = Path(__file__).resolve().parents[2] / "examples" / "dbus" / "oxt-toolstack.conf"
STOCK = Path("/usr/share/dbus-1/system.conf")

pytestmark = [
    pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="dbus-daemon absent"),
    pytest.mark.skipif(not STOCK.exists(), reason=f"{STOCK} absent (Debian's dbus)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the drop-in's policy is root's"),
]


def stock_config(socket: Path, drop_in: bool = True) -> str:
    """Debian's system.conf listening on ``socket``, without what needs the real system (its
    user, fork, pid file, syslog, service helper, other drop-ins), with ours included."""
    text = STOCK.read_text()
    for pattern in (r"<user>.*?</user>", r"<fork/>", r"<pidfile>.*?</pidfile>", r"<syslog/>",
                    r"<servicehelper>.*?</servicehelper>", r"<standard_system_servicedirs/>",
                    r"<includedir>.*?</includedir>", r"<include\b[^>]*>.*?</include>"):
        text = re.sub(pattern, "", text, flags=re.S)
    text = re.sub(r"<listen>.*?</listen>", f"<listen>unix:path={socket}</listen>", text)
    assert "<policy context=\"default\">" in text and "<deny own=\"*\"/>" in text
    return text.replace("</busconfig>", f"<include>{DROP_IN}</include>\n</busconfig>") \
        if drop_in else text


@pytest.fixture(params=[True], ids=["drop-in"])
def bus(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    socket = tmp_path / "system_bus_socket"
    conf = tmp_path / "system.conf"
    conf.write_text(stock_config(socket, drop_in=request.param))
    proc = subprocess.Popen(die_with_parent(["dbus-daemon", f"--config-file={conf}", "--nofork",
                                             "--nopidfile", "--print-address=1"]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address, f"dbus-daemon did not start: {proc.stderr.read() if proc.stderr else ''}"
        yield address
    finally:
        stop_process(proc)


def request_name(conn: DBusConnection, name: str) -> int:
    reply = conn.send_and_get_reply(message_bus.RequestName(name), timeout=10)
    if reply.header.message_type is MessageType.error:
        raise DBusErrorResponse(reply)
    return int(reply.body[0])


def next_non_signal(conn: DBusConnection) -> Message:
    """The next message that is not a signal (NameAcquired and the like come first)."""
    while True:
        msg = conn.receive(timeout=10)
        if msg.header.message_type is not MessageType.signal:
            return msg


def test_root_owns_and_calls_the_toolstacks_names(bus: str) -> None:
    with open_dbus_connection(bus) as server, open_dbus_connection(bus) as client:
        for name in ("com.citrix.xenclient.db", "com.citrix.xenclient.xenmgr",
                     "org.xen.vm.uuid_00000000_0000_4000_8000_00000000b001", "org.openxt.test"):
            assert request_name(server, name) == 1  # primary owner
        db = DBusAddress("/", bus_name="com.citrix.xenclient.db",
                         interface="com.citrix.xenclient.db")
        call = new_method_call(db, "read", "s", ("/vm",))
        client.send(call)
        got = next_non_signal(server)
        assert got.header.fields[HeaderFields.member] == "read"
        server.send(new_method_return(got, "s", ("ok",)))
        reply = next_non_signal(client)
        assert reply.header.message_type is MessageType.method_return and reply.body == ("ok",)


def test_a_name_outside_the_toolstacks_stays_denied(bus: str) -> None:
    with open_dbus_connection(bus) as conn:
        with pytest.raises(DBusErrorResponse, match="AccessDenied"):
            request_name(conn, "org.example.NotOurs")


@pytest.mark.parametrize("bus", [False], ids=["stock"], indirect=True)
def test_without_the_drop_in_the_stock_policy_denies_the_toolstack(bus: str) -> None:
    with open_dbus_connection(bus) as conn:
        with pytest.raises(DBusErrorResponse, match="AccessDenied"):
            request_name(conn, "com.citrix.xenclient.db")
