"""A self-pipe: wake a thread that blocks in ``select``/``connection.wait``.

Used by the process pool's manager, the app runner and the status server:
each blocks on file descriptors (pipes, sockets, process sentinels) and on
one of these, so that another thread -- or a signal handler, or a garbage
collector callback -- can make it look again without taking any lock.
"""

from __future__ import annotations

import os
from typing import Any


class WakePipe:
    """A non-blocking pipe: :meth:`poke` writes a byte, :meth:`drain` reads
    what is there.

    ``poke()`` never blocks and never raises: a full pipe already means a
    wake-up is due, and a closed one means nobody is waiting any more.  It
    may race with :meth:`close` and still never writes to a closed
    descriptor, whose number the next ``open()`` anywhere in the process
    may have reused: ``close()`` marks the pipe closed, and the descriptors
    are released by whoever is last, ``close()`` itself or the last
    ``poke()`` that was writing when it came.  Neither waits for the other.

    No lock: ``poke()`` is called from signal handlers and finalizers,
    which run between any two bytecodes of the thread they interrupt --
    also inside ``poke()`` or ``close()``; a lock held there would
    deadlock, or, taken by another thread that holds a lock the handler
    wants, make a cycle.  Instead the GIL orders the operations, each of
    which is atomic: ``_writers`` is a list with one item per poke between
    wanting to write and having written (``append``/``pop``), and
    ``_fds`` holds the descriptors until one ``pop()`` takes them to close.
    A poke registers itself *before* it looks at ``_closing``; ``close()``
    sets ``_closing`` *before* it looks at ``_writers``.  So a poke either
    sees ``_closing`` and does not write, or is seen by ``close()``, which
    then leaves the closing to it -- whether they run in two threads or one
    interrupts the other.

    :meth:`fileno`, :meth:`drain` and :meth:`close` belong to the waiter
    (one thread); :meth:`poke` to anybody.
    """

    __slots__ = ("_r", "_w", "_fds", "_closing", "_writers")

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._fds = [(self._r, self._w)]    # emptied by the one who closes
        self._closing = False
        self._writers: list = []

    def fileno(self) -> int:
        """The read end, to wait on."""
        return self._r

    def write_fileno(self) -> int:
        """The write end (for ``signal.set_wakeup_fd``)."""
        return self._w

    def poke(self, *_: Any) -> None:
        """Wake the waiter (from any thread or handler; never blocks)."""
        writers = self._writers
        writers.append(None)        # first: a close() from now on defers
        try:
            w = self._w
            if not self._closing and w >= 0:
                os.write(w, b"x")
        except OSError:     # full: a wake-up is due anyway
            pass
        finally:
            writers.pop()
            if self._closing and not writers:
                self._release()

    def drain(self) -> bytes:
        """Read and return what has been written (empty if nothing)."""
        try:
            return os.read(self._r, 4096)
        except (BlockingIOError, OSError):
            return b""

    def close(self) -> None:
        """Stop taking pokes and close both ends (idempotent).  Never
        waits: a poke writing at that moment closes them when done."""
        self._closing = True        # first: a poke from now on writes not
        if not self._writers:
            self._release()

    def close_after_fork(self) -> None:
        """:meth:`close` in a forked child, where a thread that was
        writing in the parent does not exist."""
        self._writers.clear()
        self.close()

    def _release(self) -> None:
        try:
            r, w = self._fds.pop()
        except IndexError:      # released already
            return
        self._r = self._w = -1
        os.close(r)
        os.close(w)
