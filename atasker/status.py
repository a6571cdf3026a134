"""Live observability: ``status()``, ``serve_status()`` and its HTTP server.

The server is read-only: ``GET``/``HEAD`` of ``/status`` (JSON),
``/metrics`` (Prometheus text format) and ``/`` (a self-contained HTML page
that refreshes itself from ``/status``).  Any other method gets 405.  It
handles one request at a time in its own thread, which waits on the
listening socket and a wake-up pipe (no polling); each connection has a
5-second time limit.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import logging
import os
import selectors
import socket
import threading
import time
import weakref
from typing import Any, Optional

from .constants import (BAND_NAMES, FINAL_STATUSES, TASK_STATUS_DELAYED,
                        TASK_STATUS_QUEUED, TASK_STATUS_STARTED,
                        TT_COROUTINE, TT_MP, TT_NAMES, TT_THREAD,
                        priority_band)
from .dispatcher import Dispatcher

__all__ = ["StatusMixin", "StatusServer", "render_metrics"]

logger = logging.getLogger("atasker.status")

#: running tasks listed in a snapshot, longest-running first
RUNNING_SHOWN = 50


class StatusMixin:
    """``status()`` and ``serve_status()`` of
    :class:`~atasker.TaskSupervisor`."""

    # provided by TaskSupervisor
    id: str
    _lock: threading.Lock
    _state: str
    _started_at: Optional[float]
    _totals: dict
    _tasks: dict
    _dispatcher: Any
    _pool: Any
    _mp_pool: Any
    _schedulers: list
    _aloops: dict
    _mp_limits_locked: Any

    def status(self) -> dict:
        """A JSON-ready snapshot of what the supervisor is doing.

        Keys: ``supervisor``, ``state``, ``uptime`` (seconds since the last
        start, else ``None``), ``time`` (``time.time()``), ``pools``
        (``thread`` and ``process``: ``size``, ``reserve_normal``,
        ``reserve_high``, ``running``, ``running_by_band``,
        ``queued``, ``queued_by_band``, ``queued_by_priority`` and
        ``threads``/``idle_threads`` or ``processes``), ``coroutines``
        (``running``, ``queued``), ``delayed``, ``running`` (up to 50
        running tasks, longest-running first: ``id``, ``name``, ``tt``,
        ``priority``, ``band``, ``age``), ``running_count``, ``workers``
        (``name``, ``kind``, ``active``), ``aloops`` (``name``,
        ``active``) and ``totals`` (``completed``/``failed``/``canceled``
        overall and ``by_tt``).
        """
        now_wall, now = time.time(), time.monotonic()
        with self._lock:
            state = self._state
            started_at = self._started_at
            totals = {tt: list(values) for tt, values in self._totals.items()}
            records = list(self._tasks.values())
            dispatcher = self._dispatcher
            pools = {
                "thread": _pool_status(
                    (dispatcher.pool_size, dispatcher.reserve_normal,
                     dispatcher.reserve_high), dispatcher),
                # a process pool not made yet has nothing queued
                "process": _pool_status(
                    self._mp_limits_locked(),
                    Dispatcher() if self._mp_pool is None
                    else self._mp_pool.dispatcher)}
            pools["thread"].update(threads=self._pool.thread_count,
                                   idle_threads=self._pool.idle_count)
            pools["process"]["processes"] = 0 if self._mp_pool is None \
                else self._mp_pool.process_count
            workers = list(self._schedulers)
            aloops = list(self._aloops.values())
        # the records are live: read outside the lock, a field at a time
        running = []
        running_by_band = {TT_THREAD: dict.fromkeys(BAND_NAMES, 0),
                           TT_MP: dict.fromkeys(BAND_NAMES, 0)}
        coroutines = {"running": 0, "queued": 0}
        delayed = 0
        for record in records:
            status = record.status
            if status in FINAL_STATUSES:
                continue
            if status == TASK_STATUS_DELAYED:
                delayed += 1
            elif record.tt == TT_COROUTINE:
                if status == TASK_STATUS_QUEUED:
                    coroutines["queued"] += 1
                elif status == TASK_STATUS_STARTED:
                    coroutines["running"] += 1
            if status != TASK_STATUS_STARTED:
                continue
            band = BAND_NAMES[priority_band(record.priority)]
            if record.tt in running_by_band:
                running_by_band[record.tt][band] += 1
            started = record.time_started or now_wall
            running.append({
                "id": record.id, "name": record.name,
                "tt": TT_NAMES.get(record.tt, str(record.tt)),
                "priority": record.priority, "band": band,
                "age": max(0.0, now_wall - started)})
        pools["thread"]["running_by_band"] = running_by_band[TT_THREAD]
        pools["process"]["running_by_band"] = running_by_band[TT_MP]
        running.sort(key=lambda item: -item["age"])
        names = ("completed", "failed", "canceled")
        return {
            "supervisor": self.id,
            "state": state,
            "uptime": None if started_at is None else now - started_at,
            "time": now_wall,
            "pools": pools,
            "coroutines": coroutines,
            "delayed": delayed,
            "running": running[:RUNNING_SHOWN],
            "running_count": len(running),
            "workers": [{"name": getattr(w, "name", repr(w)),
                         "kind": type(w).__name__,
                         "active": bool(w.is_active())} for w in workers],
            "aloops": [{"name": a.name, "active": bool(a.is_active())}
                       for a in aloops],
            "totals": {
                **{name: sum(values[i] for values in totals.values())
                   for i, name in enumerate(names)},
                "by_tt": {TT_NAMES[tt]: dict(zip(names, values))
                          for tt, values in totals.items()}},
        }

    def serve_status(self, port: int = 0, host: str = "127.0.0.1", *,
                     allow_remote: bool = False) -> "StatusServer":
        """Serve this supervisor's status over HTTP from a thread.

        ``port=0`` picks a free port (see the returned server's ``port``
        and ``url``).  The server listens on loopback unless *host* is
        another address *and* ``allow_remote=True``: it has no
        authentication.  Call ``stop()`` on the returned
        :class:`StatusServer` to close it (it is closed at interpreter exit
        in any case).

        Raises:
            ValueError: a non-loopback *host* without ``allow_remote``, or
                a bad port.
            OSError: the address cannot be bound.
        """
        if isinstance(port, bool) or not isinstance(port, int) or \
                not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535, got {port!r}")
        if not allow_remote and not _is_loopback(host):
            raise ValueError(
                f"host {host!r} is not a loopback address; the status "
                f"server has no authentication: pass allow_remote=True to "
                f"serve it there")
        return StatusServer(self, host, port)


def _pool_status(numbers: tuple[int, int, int], dispatcher: Any) -> dict:
    """A pool's part of the snapshot (the lock of *dispatcher* held).
    ``running_by_band`` is filled in from the task records."""
    size, normal, high = numbers
    return {"size": size, "reserve_normal": normal, "reserve_high": high,
            "running": dispatcher.running,
            "queued": dispatcher.queued(),
            "queued_by_band": {name: dispatcher.queued(band)
                               for band, name in enumerate(BAND_NAMES)},
            "queued_by_priority": {
                str(priority): count for priority, count in
                sorted(dispatcher.queued_by_priority().items())}}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- Prometheus text format ---------------------------------------------------
def _labels(**labels: Any) -> str:
    return "{" + ",".join(f'{key}="{_escape(str(value))}"'
                          for key, value in labels.items()) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace(
        '"', '\\"')


def render_metrics(snapshot: dict) -> str:
    """The Prometheus text exposition of a :meth:`StatusMixin.status`
    snapshot: ``atasker_*`` counters and gauges labelled by supervisor,
    task type (``tt``), band and status."""
    sup = snapshot["supervisor"]
    pools = {"thread": snapshot["pools"]["thread"],
             "mp": snapshot["pools"]["process"]}
    # name -> (type, help, [(labels, value)])
    families: dict[str, tuple[str, str, list[tuple[dict, Any]]]] = {
        "atasker_tasks_total": (
            "counter", "Tasks that reached a final status.",
            [({"tt": tt, "status": status}, value)
             for tt, counts in snapshot["totals"]["by_tt"].items()
             for status, value in counts.items()]),
        "atasker_tasks_running": (
            "gauge", "Tasks running now, by task type and priority band.",
            [({"tt": tt, "band": band}, value)
             for tt, pool in pools.items()
             for band, value in pool["running_by_band"].items()]
            + [({"tt": "coroutine", "band": "all"},
                snapshot["coroutines"]["running"])]),
        "atasker_tasks_queued": (
            "gauge", "Tasks waiting for a pool slot, by task type and "
            "priority band.",
            [({"tt": tt, "band": band}, value)
             for tt, pool in pools.items()
             for band, value in pool["queued_by_band"].items()]
            + [({"tt": "coroutine", "band": "all"},
                snapshot["coroutines"]["queued"])]),
        "atasker_tasks_delayed": (
            "gauge", "Tasks waiting for their delay to pass.",
            [({}, snapshot["delayed"])]),
        "atasker_pool_size": (
            "gauge", "Pool size (the slots of low-priority tasks).",
            [({"tt": tt}, pool["size"]) for tt, pool in pools.items()]),
        "atasker_pool_threads": (
            "gauge", "Live thread-pool threads.",
            [({}, pools["thread"]["threads"])]),
        "atasker_pool_processes": (
            "gauge", "Live worker processes.",
            [({}, pools["mp"]["processes"])]),
        "atasker_workers_active": (
            "gauge", "Workers that are started.",
            [({}, sum(1 for w in snapshot["workers"] if w["active"]))]),
        "atasker_uptime_seconds": (
            "gauge", "Seconds since the supervisor started.",
            [({}, round(snapshot["uptime"] or 0.0, 3))]),
    }
    lines: list[str] = []
    for name, (kind, text, samples) in families.items():
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{_labels(supervisor=sup, **labels)} "
                         f"{value}")
    return "\n".join(lines) + "\n"


# -- the server ---------------------------------------------------------------
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
    """A running status server (see :meth:`StatusMixin.serve_status`).

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
        self._wake_r, self._wake_w = os.pipe()
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
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj == self._wake_r:
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
            os.write(self._wake_w, b"x")
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._socket.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        _live_servers.discard(self)


def stop_all_servers() -> None:
    """Close every status server (at interpreter exit)."""
    for server in list(_live_servers):
        server.stop()


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
