"""A self-pipe: wake a thread that blocks in ``select``/``connection.wait``.

Used by the process pool's manager, the app runner and the status server:
each blocks on file descriptors (pipes, sockets, process sentinels) and on
one of these, so that another thread -- or a signal handler, or a garbage
collector callback -- can make it look again without taking any lock.
"""

from __future__ import annotations

import os
import threading
from typing import Any


class WakePipe:
    """A non-blocking pipe: :meth:`poke` writes a byte, :meth:`drain` reads
    what is there.

    ``poke()`` never blocks and never raises: a full pipe already means a
    wake-up is due, and a closed one means nobody is waiting any more.
    ``_close_lock`` serialises :meth:`close` with itself so the descriptors
    are closed once; ``poke()`` takes no lock (it is called from signal
    handlers and finalizers) and tolerates a closed pipe.
    """

    __slots__ = ("_r", "_w", "_close_lock")

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._close_lock = threading.Lock()

    def fileno(self) -> int:
        """The read end, to wait on."""
        return self._r

    def write_fileno(self) -> int:
        """The write end (for ``signal.set_wakeup_fd``)."""
        return self._w

    def poke(self, *_: Any) -> None:
        """Wake the waiter (from any thread or handler; never blocks)."""
        w = self._w
        if w < 0:
            return
        try:
            os.write(w, b"x")
        except OSError:     # full (a wake-up is due anyway) or closed
            pass

    def drain(self) -> bytes:
        """Read and return what has been written (empty if nothing)."""
        try:
            return os.read(self._r, 4096)
        except (BlockingIOError, OSError):
            return b""

    def close(self) -> None:
        """Close both ends (idempotent).  Call it only once nothing pokes
        any more: a descriptor number can be reused at once."""
        with self._close_lock:
            r, w = self._r, self._w
            self._r = self._w = -1
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
