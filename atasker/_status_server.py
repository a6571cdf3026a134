"""The status server: ``/status`` (JSON), ``/metrics`` (Prometheus text)
and ``/`` (a self-contained HTML page that refreshes itself from
``/status``).

A :class:`StatusServer` is a listening socket and a thread running an
:class:`~atasker._http_loop.HttpLoop` on it: every client is served at
once, each connection within ``REQUEST_DEADLINE`` seconds, and none can
delay another (see that module).  This module decides what to answer
(:func:`_respond`) and when the server stops.

It is read-only: ``GET``/``HEAD``, any other method gets 405.  Unless
``allow_remote``, a request's ``Host`` must name the loopback
(``_http.is_loopback_host``), else 421: a page of another site must not
read the status through a name of its own pointed at 127.0.0.1 (DNS
rebinding).  A request without ``Host`` (HTTP/1.0) is served.

The server holds its supervisor weakly: a dropped supervisor is
collected, and ``/status`` and ``/metrics`` answer 503 until the server
is stopped.

State
-----
``StatusServer._stop_lock`` guards ``_stopping`` and the wake pipe: the
first :meth:`StatusServer.stop` pokes it (the only poke), and it is
closed only once the thread has ended, so a poke never hits a closed
descriptor.  ``_live_lock`` guards ``_live_servers``, the servers not yet
stopped, which interpreter exit stops.  A forked child forgets them: it
closes its copies of their descriptors and never pokes a wake pipe it
shares with the parent (that would stop the parent's server).

Invariant: a server in ``_live_servers`` has a thread that has not been
seen to end; ``stop()`` and exit wait ``STOP_WAIT`` seconds at most.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
import weakref
from typing import Any, Callable

from ._atexit import before_threads_join
from ._http import (BadRequest, answer, is_loopback_host, is_loopback_name,
                    parse_head)
from ._http_loop import MAX_CONNECTIONS, HttpLoop
from ._status import render_metrics
from ._wakeup import WakePipe

logger = logging.getLogger("atasker.status")

#: seconds stop() (and interpreter exit) waits for the server's thread
STOP_WAIT = 2.0


def check_address(port: int, host: str, allow_remote: bool) -> None:
    """``ValueError`` for a bad port, or a non-loopback *host* without
    *allow_remote*."""
    if isinstance(port, bool) or not isinstance(port, int) or \
            not 0 <= port <= 65535:
        raise ValueError(f"port must be an int in 0..65535, got {port!r}")
    if not allow_remote and not is_loopback_name(host):
        raise ValueError(
            f"host {host!r} is not a loopback address; the status "
            f"server has no authentication: pass allow_remote=True to "
            f"serve it there")


_NOT_HOST = (b"unexpected Host header: this status server answers to "
             b"localhost, 127.0.0.1 and [::1] only (serve it with "
             b"allow_remote=True to answer to any name)\n")


def _respond(supervisor: Callable[[], Any], check_host: bool,
             head: bytes) -> bytes:
    """The whole answer to the request in *head*; *supervisor* is a weak
    reference."""
    try:
        request = parse_head(head)
    except BadRequest as exc:
        return answer(exc.code, exc.message.encode() + b"\n")
    with_body = request.method != "HEAD"
    if check_host and request.host is not None and \
            not is_loopback_host(request.host):
        return answer(421, _NOT_HOST, with_body=with_body)
    if request.method not in ("GET", "HEAD"):
        return answer(405, b"read-only: GET or HEAD only\n",
                      extra=("Allow: GET, HEAD",))
    if request.path in ("/", "/index.html"):
        return answer(200, PAGE.encode(), "text/html; charset=utf-8",
                      with_body=with_body)
    if request.path not in ("/status", "/metrics"):
        return answer(404, b"not found: try /, /status or /metrics\n",
                      with_body=with_body)
    target = supervisor()
    if target is None:
        return answer(503, b"the supervisor is gone\n", with_body=with_body)
    try:
        if request.path == "/status":
            body = json.dumps(target.status()).encode()
            kind = "application/json"
        else:
            body = render_metrics(target.status()).encode()
            kind = "text/plain; version=0.0.4; charset=utf-8"
    except Exception:
        logger.exception("status server: %s of %r failed", request.path,
                         target)
        return answer(500, b"the status could not be read\n",
                      with_body=with_body)
    return answer(200, body, kind, with_body=with_body)


_live_lock = threading.Lock()
_live_servers: set[StatusServer] = set()


class StatusServer:
    """A running status server (see :meth:`TaskSupervisor.serve_status`).

    Attributes: ``host``, ``port`` (the bound port), ``url`` (of ``/``).
    It serves until :meth:`stop` or interpreter exit, whether this object
    is kept or not; it does not keep its supervisor alive.
    """

    def __init__(self, supervisor: Any, host: str, port: int, *,
                 allow_remote: bool = False) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        wake = None
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(MAX_CONNECTIONS)
            listener.setblocking(False)
            self.port: int = listener.getsockname()[1]
            wake = WakePipe()
            loop = HttpLoop(listener, wake.fileno(), functools.partial(
                _respond, weakref.ref(supervisor), not allow_remote))
        except Exception:
            listener.close()
            if wake is not None:
                wake.close()
            raise
        self.host = host
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.url = f"http://{shown}:{self.port}/"
        self._wake = wake
        self._loop = loop
        self._stop_lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(
            target=loop.run, name=f"atasker_{supervisor.id}_status",
            daemon=True)
        with _live_lock:
            _live_servers.add(self)
        try:
            self._thread.start()
        except Exception:
            with _live_lock:
                _live_servers.discard(self)
            loop.close_all()
            wake.close()
            raise

    def __repr__(self) -> str:
        return f"<StatusServer {self.url}>"

    def stop(self) -> None:
        """Close the server and every connection it has open, and wait for
        its thread (``STOP_WAIT`` seconds at most; it never waits for a
        client).  Idempotent."""
        self._request_stop()
        self._wait(time.monotonic() + STOP_WAIT)

    def _request_stop(self) -> None:
        with self._stop_lock:
            if not self._stopping:
                self._stopping = True
                self._wake.poke()

    def _wait(self, deadline: float) -> None:
        if self._thread is threading.current_thread():
            return      # the loop ends after this turn; exit closes the rest
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            logger.warning("status server %s: its thread has not ended in "
                           "time", self.url)
            return
        with self._stop_lock:
            self._wake.close()
        with _live_lock:
            _live_servers.discard(self)

    def _forget_after_fork(self) -> None:
        """In a forked child: the thread is the parent's, and so is the
        other end of the wake pipe; never poke it, close the copies."""
        self._stop_lock = threading.Lock()
        self._stopping = True
        self._loop.close_copies_after_fork()
        self._wake.close_after_fork()


def _stop_all_servers() -> None:
    """Stop every status server (at interpreter exit), against one
    deadline."""
    with _live_lock:
        servers = list(_live_servers)
    for server in servers:
        server._request_stop()
    deadline = time.monotonic() + STOP_WAIT
    for server in servers:
        server._wait(deadline)


def _forget_all_after_fork() -> None:
    """In a forked child, the parent's servers are not ours to stop."""
    global _live_lock
    _live_lock = threading.Lock()
    servers = list(_live_servers)
    _live_servers.clear()
    for server in servers:
        server._forget_after_fork()


before_threads_join(_stop_all_servers)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all_after_fork)


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
