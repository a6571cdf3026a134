"""Serve short HTTP requests concurrently from one thread, each within a
deadline, whatever the peers do.

:class:`HttpLoop` is a ``selectors`` loop over a listening socket, a
wake-up pipe and every client socket, all non-blocking.  A connection
moves from *reading* (until the blank line that ends its head, at most
``_http.MAX_HEAD`` bytes) to *writing* (the whole answer, which the
``respond`` function makes from the head at once) to *closing* (our side
shut; what the peer still sends is read and dropped until it closes, so
closing never resets an answer still in flight).  Each connection has
one deadline, ``REQUEST_DEADLINE`` seconds after its accept, whatever its
state; ``select`` waits until the nearest one, and the connection is
closed then.  A slow or idle client thus holds a descriptor for that
long at most and never delays another.

At most ``MAX_CONNECTIONS`` clients are open: the next one accepted closes
the oldest.  An ordinary client is answered in one turn of the loop, so
the oldest are the idle or slow ones; refusing the newcomer (503) instead
would let idle connections shut out every real client.

A failure while serving one client (a reset, a ``respond`` that raises)
is logged and closes that client only.  When ``accept()`` fails (out of
descriptors), accepting pauses for ``ACCEPT_PAUSE`` seconds instead of
spinning on a listening socket that stays readable.

State: everything here belongs to the loop's thread alone, without a
lock; it is made before the thread starts and closed by that thread as it
ends -- or, in a forked child where the thread does not exist, by
:meth:`HttpLoop.close_copies_after_fork`.

Invariant: every open client socket is in ``HttpLoop.clients`` and
registered with the selector, with a deadline ``REQUEST_DEADLINE`` after
its accept; the thread blocks nowhere but in ``select`` (and in
``respond``), never past the nearest deadline.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from typing import Any, Callable, Optional

from ._http import MAX_HEAD, head_end

logger = logging.getLogger("atasker.status")

#: seconds from a connection's accept to the last byte of its answer
REQUEST_DEADLINE = 5.0
#: client connections open at once; the next one accepted closes the oldest
MAX_CONNECTIONS = 128
#: seconds without accepting after accept() failed (out of descriptors)
ACCEPT_PAUSE = 0.5

_RECV_SIZE = 4096
_READING, _WRITING, _CLOSING = "reading", "writing", "closing"


class _Client:
    """One connection and where it stands."""

    __slots__ = ("sock", "address", "deadline", "state", "received",
                 "unsent")

    def __init__(self, sock: socket.socket, address: Any,
                 deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.deadline = deadline
        self.state = _READING
        self.received = bytearray()
        self.unsent = memoryview(b"")


def _recv(sock: socket.socket) -> Optional[bytes]:
    """What has arrived (``b""`` at the peer's end), or None if nothing
    has after all."""
    try:
        return sock.recv(_RECV_SIZE)
    except (BlockingIOError, InterruptedError):
        return None


class HttpLoop:
    """Serve the clients of *listener* until *wake_fd* is readable.

    ``respond(head)`` gets each request head (up to and including its
    blank line, or the first ``MAX_HEAD`` bytes and more when it is too
    large) and returns the whole answer; the connection is closed after
    it.  :meth:`run` returns when *wake_fd* becomes readable, having
    closed every connection, the selector and *listener*.
    """

    def __init__(self, listener: socket.socket, wake_fd: int,
                 respond: Callable[[bytes], bytes]) -> None:
        self.listener = listener
        self.respond = respond
        self.clients: dict[socket.socket, _Client] = {}    # oldest first
        self.paused_until: Optional[float] = None
        self.selector = selectors.DefaultSelector()
        try:
            self.selector.register(listener, selectors.EVENT_READ)
            self.selector.register(wake_fd, selectors.EVENT_READ)
        except Exception:
            self.selector.close()
            raise

    def run(self) -> None:
        try:
            while self.turn():
                pass
        except Exception:   # our own bug, not a client's: say so and close
            logger.exception("status server loop failed")
        finally:
            self.close_all()

    def close_all(self) -> None:
        """Close every connection, the selector and the listening socket."""
        for client in list(self.clients.values()):
            self.close(client, "closed: the server stops")
        self.selector.close()
        self.listener.close()

    def close_copies_after_fork(self) -> None:
        """In a forked child (where this loop's thread does not exist):
        close this process's copies of the descriptors, and nothing that
        the parent shares (no unregistering from the shared epoll set, no
        shutdown)."""
        for client in self.clients.values():
            client.sock.close()
        self.clients.clear()
        self.selector.close()
        self.listener.close()

    def turn(self) -> bool:
        """Wait for the next event or deadline and handle it; False once
        the wake pipe is readable."""
        for key, _ in self.selector.select(self.timeout()):
            if key.data is not None:
                self.step(key.data)
            elif key.fileobj is self.listener:
                self.accept()
            else:
                return False
        self.expire()
        return True

    def timeout(self) -> Optional[float]:
        deadlines = [client.deadline for client in self.clients.values()]
        if self.paused_until is not None:
            deadlines.append(self.paused_until)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def expire(self) -> None:
        now = time.monotonic()
        for client in [c for c in self.clients.values()
                       if c.deadline <= now]:
            self.close(client, "cut at its deadline")
        if self.paused_until is not None and self.paused_until <= now:
            self.paused_until = None
            self.selector.register(self.listener, selectors.EVENT_READ)

    def accept(self) -> None:
        try:
            sock, address = self.listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:      # out of descriptors, most likely
            logger.warning("status server cannot accept (%s); trying "
                           "again in %s s", exc, ACCEPT_PAUSE)
            self.selector.unregister(self.listener)
            self.paused_until = time.monotonic() + ACCEPT_PAUSE
            return
        if len(self.clients) >= MAX_CONNECTIONS:
            self.close(next(iter(self.clients.values())),
                       "closed to make room for a new one")
        client = _Client(sock, address, time.monotonic() + REQUEST_DEADLINE)
        try:
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, client)
        except OSError:
            logger.debug("status server cannot take %s", address,
                         exc_info=True)
            sock.close()
            return
        self.clients[sock] = client

    def step(self, client: _Client) -> None:
        """Move *client* on; whatever goes wrong closes it alone."""
        try:
            if client.state == _READING:
                self.receive(client)
            elif client.state == _WRITING:
                self.send(client)
            elif _recv(client.sock) == b"":     # closing: the peer is done
                self.close(client, "answered")
        except OSError:     # reset, broken pipe: the peer's doing
            logger.debug("status server: connection from %s failed",
                         client.address, exc_info=True)
            self.close(client, "failed")
        except Exception:
            logger.exception("status server: answering %s failed",
                             client.address)
            self.close(client, "failed")

    def receive(self, client: _Client) -> None:
        chunk = _recv(client.sock)
        if chunk is None:
            return
        if not chunk:
            self.close(client, "closed before its request was complete")
            return
        # a blank line (4 bytes at most) ending in the new chunk starts
        # at most 3 bytes before it
        start = max(0, len(client.received) - 3)
        client.received += chunk
        end = head_end(client.received, start)
        if end < 0 and len(client.received) <= MAX_HEAD:
            return
        head = bytes(client.received if end < 0 else client.received[:end])
        client.state = _WRITING
        client.received = bytearray()
        client.unsent = memoryview(self.respond(head))
        self.send(client)

    def send(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.unsent)
        except (BlockingIOError, InterruptedError):
            sent = 0
        client.unsent = client.unsent[sent:]
        if client.unsent:
            self.selector.modify(client.sock, selectors.EVENT_WRITE, client)
            return
        client.sock.shutdown(socket.SHUT_WR)
        client.state = _CLOSING
        self.selector.modify(client.sock, selectors.EVENT_READ, client)

    def close(self, client: _Client, why: str) -> None:
        if self.clients.pop(client.sock, None) is None:
            return
        logger.debug("status server: %s %s (%s)", client.address, why,
                     client.state)
        try:
            self.selector.unregister(client.sock)
        finally:
            client.sock.close()
