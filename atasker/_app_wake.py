"""What ``App.run()`` waits on: wake-ups, and signals counted as requests.

``run()`` blocks its thread in :meth:`AppWake.wait`; a poke or a handled
signal wakes it.  A signal is one request however many times a launcher
delivers it at once (:data:`SIGNAL_REPEAT_WINDOW`): the first request
drains the app, the second cancels queued work, the third returns.
"""

from __future__ import annotations

import logging
import math
import selectors
import signal
import time
from typing import Any, Optional

from ._wakeup import WakePipe

logger = logging.getLogger("atasker")

#: Seconds within which the signal counted last, delivered again, is the
#: same request and not a new one.  GNU ``timeout`` (without
#: ``--foreground``) and other launchers signal the app and then its whole
#: process group: the app gets the signal twice, microseconds apart (the
#: kernel merges the two only while the first is still pending), and a
#: second request would cancel queued work.  A signal is timed when run()'s
#: thread reads it from the wake-up fd, on which it waits nearly all the
#: time, so scheduling adds milliseconds; 0.25 s leaves a wide margin on a
#: loaded machine.  A person who means a second Ctrl-C reads the
#: "draining" line first and takes well over 0.25 s; taking a hasty one
#: for a repeat costs a drain that goes on (press again), never lost work.
#: The window runs from the last *counted* signal, so a held-down Ctrl-C
#: (autorepeat every ~30 ms) still escalates.
SIGNAL_REPEAT_WINDOW = 0.25


class AppWake:
    """What ``run()`` blocks on: two wake-up pipes in one selector.

    ``poke()`` (from any thread, also under the engine's lock, also after
    :meth:`close`) writes to one.  The other is the interpreter's signal
    wake-up fd while signals are handled: the C-level handler writes the
    signal number there, from whichever thread the signal interrupted, so
    ``wait()`` wakes up and records it in ``signals`` without depending on
    when the Python-level handler runs.

    ``signals`` lists the requests, in order: a handled signal is counted
    unless it is the one counted last, read again within
    :data:`SIGNAL_REPEAT_WINDOW` of it (another delivery of the same
    request).  Everything but ``poke()`` belongs to the thread that calls
    ``run()``.
    """

    def __init__(self, app_id: str = "") -> None:
        self.signals: list[int] = []
        self._app_id = app_id
        self._pokes = WakePipe()
        self._signals = WakePipe()
        self.poke = self._pokes.poke
        # a selector, not select.select(): the pipes may be numbered
        # above FD_SETSIZE (1024) in a process with many open files
        self._selector = selectors.DefaultSelector()
        for pipe in (self._pokes, self._signals):
            self._selector.register(pipe.fileno(), selectors.EVENT_READ,
                                    pipe)
        self._last_counted = (0, -math.inf)     # signal number, time read
        self._previous_fd = -1          # no wake-up fd before ours
        self._previous_handlers: dict = {}
        self._handled: frozenset = frozenset()

    def handle_signals(self, signums: tuple) -> None:
        """Catch *signums* (main thread only) until :meth:`close`."""
        self._handled = frozenset(signums)
        self._previous_fd = signal.set_wakeup_fd(
            self._signals.write_fileno(), warn_on_full_buffer=False)
        for signum in signums:
            # the wake-up fd does the work; the handler only keeps the
            # default action (exit) from happening
            self._previous_handlers[signum] = signal.signal(signum,
                                                            _ignore_signal)

    def wait(self, timeout: Optional[float]) -> None:
        """Return after a poke or signal (consumed) or *timeout* seconds."""
        for key, _ in self._selector.select(timeout):
            data = key.data.drain()
            if key.data is self._signals:
                self._count(data)

    def _count(self, signums: bytes) -> None:
        now = time.monotonic()
        last, counted_at = self._last_counted
        for signum in signums:
            if signum not in self._handled:
                continue    # other signals with Python handlers come too
            if signum == last and now - counted_at < SIGNAL_REPEAT_WINDOW:
                logger.info("app %s: %s again within %.2f s: counted once "
                            "(a launcher signals the process and its "
                            "group)", self._app_id,
                            signal.Signals(signum).name,
                            SIGNAL_REPEAT_WINDOW)
                continue
            self.signals.append(signum)
            last, counted_at = signum, now
        self._last_counted = (last, counted_at)

    def close(self) -> None:
        """Restore signal handling; close the selector and the pipes.

        A late ``poke()`` (a drain thread that outlived ``run()``, an init
        task's callback) is then a no-op, never a write to a reused
        descriptor (see :class:`WakePipe`).  The signal pipe is closed after
        the previous wake-up fd is back, as asyncio does; only a signal
        whose C-level handler runs in another thread at that very instant
        could still reach it -- the interpreter offers no way to wait for
        that handler.
        """
        if self._previous_handlers:
            for signum, handler in self._previous_handlers.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(self._previous_fd)
        self._selector.close()
        self._pokes.close()
        self._signals.close()


def _ignore_signal(signum: int, frame: Any) -> None:
    """Python-level handler of the signals ``run()`` handles: their
    numbers arrive through the wake-up fd."""
