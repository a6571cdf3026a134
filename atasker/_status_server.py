"""The status server: ``/status`` (JSON), ``/metrics`` (Prometheus text)
and ``/`` (a self-contained HTML page that refreshes itself from
``/status``).

It is read-only: ``GET``/``HEAD`` only, any other method gets 405.  It
handles one request at a time in its own thread, which waits on the
listening socket and a wake-up pipe (no polling); each connection has a
5-second time limit.

State
-----
``StatusServer._stop_lock`` serialises :meth:`StatusServer.stop` so the
socket and the pipe are closed once.  ``_live_servers`` (a weak set) lists
the open servers, closed at interpreter exit.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import logging
import selectors
import socket
import threading
import weakref
from typing import Any

from ._atexit import before_threads_join
from ._status import render_metrics
from ._wakeup import WakePipe

logger = logging.getLogger("atasker.status")


def check_address(port: int, host: str, allow_remote: bool) -> None:
    """``ValueError`` for a bad port, or a non-loopback *host* without
    *allow_remote*."""
    if isinstance(port, bool) or not isinstance(port, int) or \
            not 0 <= port <= 65535:
        raise ValueError(f"port must be an int in 0..65535, got {port!r}")
    if not allow_remote and not _is_loopback(host):
        raise ValueError(
            f"host {host!r} is not a loopback address; the status "
            f"server has no authentication: pass allow_remote=True to "
            f"serve it there")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_live_servers: "weakref.WeakSet[StatusServer]" = weakref.WeakSet()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Any
    timeout = 5                 # seconds per connection
    server_version = "atasker-status"

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _refuse(self) -> None:
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _answer(self, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        supervisor = self.server.supervisor
        if path == "/status":
            body = json.dumps(supervisor.status()).encode()
            kind = "application/json"
        elif path == "/metrics":
            body = render_metrics(supervisor.status()).encode()
            kind = "text/plain; version=0.0.4; charset=utf-8"
        elif path in ("/", "/index.html"):
            body = PAGE.encode()
            kind = "text/html; charset=utf-8"
        else:
            self.send_error(404, "not found: try /, /status or /metrics")
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


class StatusServer:
    """A running status server (see :meth:`TaskSupervisor.serve_status`).

    Attributes: ``host``, ``port`` (the bound port), ``url`` (of ``/``).
    """

    def __init__(self, supervisor: Any, host: str, port: int) -> None:
        self.supervisor = supervisor
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,
                                    1)
            self._socket.bind((host, port))
            self._socket.listen(16)
        except OSError:
            self._socket.close()
            raise
        self._socket.setblocking(False)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.url = f"http://{shown}:{self.port}/"
        self._wake = WakePipe()
        # serialises stop(): the wake pipe is closed only once
        self._stop_lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(
            target=self._serve, name=f"atasker_{supervisor.id}_status",
            daemon=True)
        self._thread.start()
        _live_servers.add(self)

    def __repr__(self) -> str:
        return f"<StatusServer {self.url}>"

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._socket, selectors.EVENT_READ)
            selector.register(self._wake.fileno(), selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj == self._wake.fileno():
                        return
                    try:
                        conn, address = self._socket.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    self._handle(conn, address)

    def _handle(self, conn: socket.socket, address: Any) -> None:
        conn.setblocking(True)
        try:
            _Handler(conn, address, self)  # type: ignore[arg-type]
        except Exception:   # a broken client must not end the server
            logger.debug("status request from %s failed", address,
                         exc_info=True)
        finally:
            conn.close()

    def stop(self) -> None:
        """Close the server and wait for its thread (idempotent)."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            self._wake.poke()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._socket.close()
        self._wake.close()
        _live_servers.discard(self)


def _stop_all_servers() -> None:
    """Close every status server (at interpreter exit)."""
    for server in list(_live_servers):
        server.stop()


before_threads_join(_stop_all_servers)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>atasker status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222;
       background: #fafafa }
h1 { font-size: 1.3em; margin: 0 0 .2em }
h2 { font-size: 1.05em; margin: 1.2em 0 .4em }
.meta { color: #666 }
.cards { display: flex; gap: 1em; flex-wrap: wrap }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px;
        padding: .6em 1em; min-width: 8em }
.card b { display: block; font-size: 1.6em }
table { border-collapse: collapse; background: #fff }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: right }
th { background: #f0f0f0 }
td:first-child, th:first-child, td.text { text-align: left }
.failed b, .err { color: #b00 }
</style></head><body>
<h1>atasker <span id="supervisor">…</span></h1>
<div class="meta">state <span id="state">…</span>
 · up <span id="uptime">…</span> s
 · refreshed <span id="refreshed">never</span>
 <span id="error" class="err"></span></div>
<div class="cards">
<div class="card">completed<b id="completed">…</b></div>
<div class="card failed">failed<b id="failed">…</b></div>
<div class="card">canceled<b id="canceled">…</b></div>
<div class="card">running<b id="running-count">…</b></div>
<div class="card">delayed<b id="delayed">…</b></div>
</div>
<h2>Pools</h2>
<table><thead><tr><th>pool</th><th>size</th><th>+normal</th>
<th>+high</th><th>running</th><th>queued</th><th>critical</th><th>high</th>
<th>normal</th><th>low</th><th>threads / processes</th></tr></thead>
<tbody id="pools"></tbody></table>
<h2>Workers</h2>
<table><thead><tr><th>name</th><th>kind</th><th>active</th></tr></thead>
<tbody id="workers"></tbody></table>
<h2>Longest-running tasks</h2>
<table><thead><tr><th>task</th><th>name</th><th>type</th>
<th>priority</th><th>age, s</th></tr></thead>
<tbody id="running"></tbody></table>
<script>
"use strict";
function cell(row, text, id) {
  const td = document.createElement("td"); td.textContent = text;
  if (typeof text === "string") td.className = "text";
  if (id) td.id = id; row.appendChild(td);
}
function fill(id, rows) {
  const body = document.getElementById(id); body.replaceChildren();
  for (const cells of rows) {
    const tr = document.createElement("tr");
    for (const [text, cellId] of cells) cell(tr, text, cellId);
    body.appendChild(tr);
  }
}
function set(id, value) { document.getElementById(id).textContent = value; }
function show(s) {
  set("supervisor", s.supervisor); set("state", s.state);
  set("uptime", s.uptime === null ? "-" : s.uptime.toFixed(1));
  for (const k of ["completed", "failed", "canceled"]) set(k, s.totals[k]);
  set("running-count", s.running_count); set("delayed", s.delayed);
  fill("pools", ["thread", "process"].map(name => {
    const p = s.pools[name], q = p.queued_by_band;
    return [[name], [p.size], [p.reserve_normal], [p.reserve_high],
      [p.running, name + "-running"], [p.queued, name + "-queued"],
      [q.critical], [q.high], [q.normal], [q.low],
      [name === "thread" ? p.threads : p.processes]];
  }));
  fill("workers", s.workers.map(
    w => [[w.name], [w.kind], [w.active ? "yes" : "no"]]));
  fill("running", s.running.map(
    t => [[t.id], [t.name], [t.tt], [t.priority], [t.age.toFixed(1)]]));
  set("refreshed", new Date().toLocaleTimeString()); set("error", "");
}
async function refresh() {
  try {
    const answer = await fetch("status", {cache: "no-store"});
    show(await answer.json());
  } catch (e) { set("error", "(cannot reach the app: " + e + ")"); }
  setTimeout(refresh, 1000);
}
refresh();
</script></body></html>
"""
