"""A real browser through the rpc-proxy: headless Chromium loads a page (served by the test on
loopback) that opens a WebSocket to a ``--websockets-in`` proxy, says Hello, writes and reads a
dbd key, makes a denied call (and gets nothing within a bounded wait) and receives a signal it
subscribed to; the page posts its results back to the test's HTTP server.

Skipped when no Chromium is installed (Debian: ``apt-get install chromium``). The browser runs
in its own session; at the end every process of that session is killed and reaped."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal as signals
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rpc.dbus import BusConnection, signal
from tests.integration.proxy_fixtures import (
    host,  # noqa: F401  (fixture)
    make_world,
)
from xen.sim import SimHost

pytestmark = pytest.mark.integration

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PAGE_TIMEOUT = 90.0  # Chromium's start is slow on a loaded 2-core machine

PAGE = """<!doctype html>
<html><head><title>rpc-proxy test</title></head><body><script>
const results = {};
const report = (path, body) => fetch(path, {method: "POST", body: JSON.stringify(body)});
window.onerror = (msg) => { report("/result", {error: String(msg)}); };
const sleep = (ms, value) => new Promise(r => setTimeout(() => r(value), ms));
const pending = {};
let nextId = 0, onSignal = null;
const ws = new WebSocket("ws://127.0.0.1:%(port)d/");
ws.onmessage = (event) => {
  const m = JSON.parse(event.data);
  if (m["response-to"] !== undefined && pending[m["response-to"]]) {
    pending[m["response-to"]](m); delete pending[m["response-to"]];
  } else if (m.type === "signal" && m.interface === "org.test.Browser" && onSignal) {
    onSignal(m);
  }
};
function call(destination, path, iface, method, args) {
  const id = ++nextId;
  return new Promise(resolve => {
    pending[String(id)] = resolve;
    ws.send(JSON.stringify({id: id, type: "request", destination: destination, path: path,
                            interface: iface, method: method, args: args}));
  });
}
const bus = (method, args) => call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                   "org.freedesktop.DBus", method, args);
const db = (method, args) => call("com.citrix.xenclient.db", "/", "com.citrix.xenclient.db",
                                  method, args);
async function main() {
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  results.hello = (await bus("Hello", [])).args[0];
  results.write = (await db("write", ["/browser", "from the page"])).type;
  results.read = (await db("read", ["/browser"])).args[0];
  results.denied = await Promise.race([db("rm", ["/browser"]).then(m => m.type),
                                       sleep(1000, "nothing")]);
  results.match = (await bus("AddMatch", ["type='signal',interface='org.test.Browser'"])).type;
  const got = new Promise(resolve => { onSignal = resolve; });
  await report("/ready", {});
  const sig = await Promise.race([got, sleep(20000, null)]);
  results.signal = sig && {member: sig.member, args: sig.args};
  await report("/result", results);
}
main().catch(e => report("/result", {error: String(e)}));
</script></body></html>
"""


def _browser() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Page:
    """The test's HTTP server: serves the page, records what the page posts."""

    def __init__(self, proxy_port: int) -> None:
        self.ready = threading.Event()
        self.done = threading.Event()
        self.result: dict[str, Any] = {}
        page = (PAGE % {"port": proxy_port}).encode()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(200, page, "text/html")

            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), 1 << 16)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/ready":
                    outer.ready.set()
                elif self.path == "/result" and not outer.done.is_set():
                    outer.result = body
                    outer.done.set()
                self._answer(200, b"ok", "text/plain")

            def _answer(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def _session_pids(sid: int) -> list[int]:
    """Every process whose session is ``sid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid:  # after ")": state ppid pgrp session
            out.append(int(entry))
    return out


@contextlib.contextmanager
def _chromium(url: str, profile: Path) -> Iterator[subprocess.Popen[bytes]]:
    exe = _browser()
    assert exe is not None
    args = [exe, "--headless=new", f"--user-data-dir={profile}", "--no-first-run",
            "--no-default-browser-check", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-extensions", "--disable-background-networking", url]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        for sig in (signals.SIGTERM, signals.SIGKILL):
            for pid in _session_pids(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                continue
            deadline = time.monotonic() + 5
            while _session_pids(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _session_pids(proc.pid):
                break
        assert proc.poll() is not None
        assert _session_pids(proc.pid) == [], "chromium left processes behind"


@pytest.mark.timeout(PAGE_TIMEOUT + 60)
@pytest.mark.skipif(_browser() is None,
                    reason="no chromium found (Debian: apt-get install chromium)")
def test_a_browser_page_talks_to_dbd_through_the_websocket_proxy(
        tmp_path: Path, bus_address: str, host: SimHost) -> None:  # noqa: F811
    proxy_port = _free_port()
    page = _Page(proxy_port)
    world = make_world(tmp_path, bus_address, host,
                       ["-d", "5", "-i", f"tcp:{proxy_port}", "--websockets-in",
                        "--allow-origin", page.origin])
    try:
        with _chromium(f"{page.origin}/", tmp_path / "profile"):
            assert page.ready.wait(PAGE_TIMEOUT), "the page did not get as far as subscribing"
            with BusConnection(bus_address) as root:
                root.send(signal("/org/test", "org.test.Browser", "poked", "si", ("hi", 3)))
                assert page.done.wait(30), "the page reported no result"
        result = page.result
        assert "error" not in result, result
        assert result["hello"].startswith(":")
        assert (result["write"], result["read"]) == ("response", "from the page")
        assert result["denied"] == "nothing"
        assert result["match"] == "response"
        assert result["signal"] == {"member": "poked", "args": ["hi", 3]}
    finally:
        world.stop()
        page.close()
