"""The status server against slow, idle, hostile and vanished peers.

Every client is a plain socket, so a test says byte for byte what a peer
sends and sees exactly what comes back.  Nothing sleeps: a test waits for
an answer or for the server to close a connection (the dribbling client
paces its bytes with that wait), with a socket timeout as a safety net;
an exit that could hang runs in a subprocess with a hard timeout.  The
one private name used is ``atasker._http_loop.REQUEST_DEADLINE``,
patched to keep the deadline test short.
"""

from __future__ import annotations

import gc
import os
import socket
import struct
import time
import weakref

import pytest

from atasker import TaskSupervisor

from .conftest import SAFETY
from .test_lifecycle import run_script

IDLE = 200              # idle connections: beyond the server's cap (128)


@pytest.fixture
def server(sup):
    server = sup.serve_status()
    yield server
    server.stop()


def connect(server, timeout: float = SAFETY) -> socket.socket:
    return socket.create_connection((server.host, server.port),
                                    timeout=timeout)


def head(path: str = "/status", method: str = "GET",
         host: str | None = "127.0.0.1", version: str = "HTTP/1.1") -> bytes:
    """A request head; ``host=None`` sends no ``Host`` header."""
    lines = [f"{method} {path} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def parse(answer: bytes) -> tuple[int, dict, bytes]:
    """(status, headers with lower-case names, body) of a whole answer."""
    top, _, body = answer.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), answer[:200]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def exchange(server, request: bytes,
             timeout: float = SAFETY) -> tuple[int, dict, bytes]:
    """Send *request* on a new connection and read the answer to its end."""
    with connect(server, timeout) as sock:
        sock.sendall(request)
        return parse(read_to_end(sock))


def closed_by_server(sock: socket.socket) -> bool:
    """True if the server has closed *sock* (waits up to SAFETY)."""
    sock.settimeout(SAFETY)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def still_open(sock: socket.socket) -> bool:
    """True if nothing (not even the end) has come from the server yet."""
    sock.setblocking(False)
    try:
        sock.recv(1)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(SAFETY)
    return False


# -- concurrency -------------------------------------------------------------
def test_a_stalled_client_does_not_delay_another(server):
    """One byte, then silence: another client's ``/status`` is answered
    at once, while the stalled connection is still open."""
    with connect(server) as stalled:
        stalled.sendall(b"G")
        started = time.monotonic()
        code, _, body = exchange(server, head(), timeout=1.0)
        assert code == 200 and b'"supervisor"' in body
        assert time.monotonic() - started < 1.0
        assert still_open(stalled)


def test_idle_connections_neither_block_status_nor_stop(server):
    """200 idle connections: ``/status`` is still answered, the oldest
    beyond the cap are closed to make room, and ``stop()`` closes the rest
    at once."""
    idle = []
    try:
        for _ in range(IDLE):
            idle.append(connect(server))
        code, _, _ = exchange(server, head())
        assert code == 200
        assert closed_by_server(idle[0])    # the oldest made room
        assert still_open(idle[-1])
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.0
        assert closed_by_server(idle[-1])
    finally:
        for sock in idle:
            sock.close()


EXIT_SCRIPT = """
    import socket, sys, urllib.request
    import atasker

    sup = atasker.TaskSupervisor()
    server = sup.serve_status()
    idle = [socket.create_connection((server.host, server.port), timeout=10)
            for _ in range(int(sys.argv[1]))]
    with urllib.request.urlopen(server.url + "status", timeout=10) as answer:
        assert answer.status == 200
    print("ready", flush=True)
    # exit with the server and every idle connection still open
"""


def test_idle_connections_do_not_hold_interpreter_exit():
    """An app that exits with its status server serving 200 idle
    connections exits at once (it used to take about 40 s)."""
    started = time.monotonic()
    done = run_script(EXIT_SCRIPT, str(IDLE))
    assert done.stdout == "ready\n", done.stderr
    assert time.monotonic() - started < 10.0


FORK_SCRIPT = """
    import os, sys, urllib.request
    import atasker

    sup = atasker.TaskSupervisor()
    server = sup.serve_status()
    pid = os.fork()
    if pid == 0:
        sys.exit(0)     # a normal exit: the exit hooks run in the child
    os.waitpid(pid, 0)
    with urllib.request.urlopen(server.url + "status", timeout=5) as answer:
        print(answer.status, flush=True)
    server.stop()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_leaves_the_parents_server_alone():
    """A forked child shares the server's descriptors, not its thread: its
    exit must not stop the parent's server."""
    done = run_script(FORK_SCRIPT)
    assert done.stdout == "200\n", done.stderr


def test_a_dribbling_request_is_cut_at_its_deadline(server, monkeypatch):
    """A byte at a time, each well within any per-read limit: the
    connection is closed at its total deadline all the same."""
    monkeypatch.setattr("atasker._http_loop.REQUEST_DEADLINE", 0.5)
    endless = head()[:-2] + b"X-Slow: " + b"a" * 10_000
    with connect(server) as sock:
        started = time.monotonic()
        sock.settimeout(0.05)       # the pace: a byte per 50 ms at most
        for byte in endless:
            sock.sendall(bytes([byte]))
            try:
                answer = sock.recv(1)
            except socket.timeout:  # not closed yet: dribble on
                if time.monotonic() - started > 3.0:
                    pytest.fail("the dribbling request was never cut")
                continue
            except ConnectionResetError:
                answer = b""
            assert answer == b"", "answered an unfinished request"
            break
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 2.0, elapsed


# -- Host checks (DNS rebinding) ------------------------------------------
@pytest.mark.parametrize("host", [
    "127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "127.0.0.1",
    "localhost", "[::1]", "LocalHost:{port}"])
def test_a_loopback_host_is_accepted(server, host):
    code, _, _ = exchange(server, head(host=host.format(port=server.port)))
    assert code == 200


@pytest.mark.parametrize("host", [
    "evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}",
    "localhost.evil.example", "10.0.0.1:{port}", "localhost:port", ""])
def test_another_host_is_refused(server, host):
    code, headers, body = exchange(
        server, head(host=host.format(port=server.port)))
    assert code == 421
    assert headers["x-content-type-options"] == "nosniff"
    assert b"Host" in body


def test_a_request_without_host(server):
    """HTTP/1.0 may omit ``Host``; HTTP/1.1 must send it."""
    code, _, _ = exchange(server, head(host=None, version="HTTP/1.0"))
    assert code == 200
    code, _, _ = exchange(server, head(host=None, version="HTTP/1.1"))
    assert code == 400


def test_allow_remote_accepts_any_host(sup):
    server = sup.serve_status(host="127.0.0.1", allow_remote=True)
    try:
        code, _, _ = exchange(server, head(host="status.example:8080"))
        assert code == 200
    finally:
        server.stop()


# -- headers and bad requests -----------------------------------------------
@pytest.mark.parametrize("method, path, expected", [
    ("GET", "/status", 200), ("HEAD", "/metrics", 200), ("GET", "/", 200),
    ("GET", "/nothing", 404), ("POST", "/status", 405)])
def test_every_answer_says_nosniff_and_no_store(server, method, path,
                                                expected):
    code, headers, _ = exchange(server, head(path, method))
    assert code == expected
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert headers["connection"] == "close"
    if expected == 405:
        assert headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("request_bytes", [
    b"\x00\xff\xfe garbage\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /status HTTP/9.9\r\nHost: localhost\r\n\r\n",
    b"GET status HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET /status HTTP/1.1\r\nHost localhost\r\n\r\n",
    b"GET /status HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n",
    b"GET /status HTTP/1.1\r\nHost: localhost\r\n folded\r\n\r\n"])
def test_a_malformed_request_gets_400_and_serving_goes_on(server,
                                                         request_bytes):
    code, headers, _ = exchange(server, request_bytes)
    assert code == 400
    assert headers["x-content-type-options"] == "nosniff"
    assert exchange(server, head())[0] == 200


def test_oversize_headers_get_431_and_serving_goes_on(server):
    filler = "".join(f"X-Filler-{i}: {'a' * 1000}\r\n" for i in range(20))
    request = head()[:-2] + filler.encode() + b"\r\n"
    assert len(request) > 16 * 1024
    code, headers, _ = exchange(server, request)
    assert code == 431
    assert headers["x-content-type-options"] == "nosniff"
    assert exchange(server, head())[0] == 200


def test_a_client_that_leaves_early_does_not_hurt(server):
    """A client that sends its request and resets the connection at once
    is the server's problem only: it goes on serving."""
    for _ in range(20):
        with connect(server) as sock:
            # close with a reset instead of a FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
            sock.sendall(head())
    assert exchange(server, head())[0] == 200


# -- the supervisor behind it ------------------------------------------------
def test_a_failing_status_fails_that_request_only(sup, monkeypatch):
    server = sup.serve_status()
    try:
        def broken():
            raise RuntimeError("broken status")
        monkeypatch.setattr(sup, "status", broken)
        code, headers, _ = exchange(server, head())
        assert code == 500
        assert headers["x-content-type-options"] == "nosniff"
        monkeypatch.undo()
        assert exchange(server, head())[0] == 200
    finally:
        server.stop()


def test_a_dropped_supervisor_is_collected_while_served():
    """The server holds its supervisor weakly: once dropped, the supervisor
    is collected and the server answers 503 until stopped."""
    supervisor = TaskSupervisor()
    server = supervisor.serve_status()
    ref = weakref.ref(supervisor)
    del supervisor
    try:
        gc.collect()
        assert ref() is None, "the status server keeps its supervisor"
        code, headers, body = exchange(server, head())
        assert code == 503 and b"gone" in body
        assert headers["x-content-type-options"] == "nosniff"
        assert exchange(server, head("/"))[0] == 200    # the page itself
    finally:
        server.stop()
        survivor = ref()
        if survivor is not None:
            survivor.stop()
