"""One timer thread per supervisor, serving every delay, timeout and alarm.

Entries live in a heap ordered by absolute monotonic deadline.  The thread
waits on a condition until the earliest deadline (``cond.wait(deadline -
now)``), so scheduling an earlier entry or stopping wakes it at once;
nothing polls.  Callbacks are atasker's own short functions; they run on the
timer thread, outside the timer lock, one at a time, and any exception they
raise is logged.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Any, Callable, Optional

__all__ = ["Timers", "TimerHandle"]

logger = logging.getLogger("atasker.timers")


class TimerHandle:
    """A scheduled call; :meth:`cancel` makes it a no-op."""

    __slots__ = ("deadline", "fn", "args")

    def __init__(self, deadline: float, fn: Callable[..., Any],
                 args: tuple) -> None:
        self.deadline = deadline
        self.fn: Optional[Callable[..., Any]] = fn
        self.args = args

    def cancel(self) -> None:
        # Only drop the references: the heap skips a handle without fn.
        # (Assignment is atomic; the timer thread reads fn once.)
        self.fn = None
        self.args = ()


class Timers:
    """A heap of :class:`TimerHandle` served by one thread.

    Lock ``_cond`` (a Condition with its own lock) guards ``_heap``,
    ``_thread`` and ``_stopping``.  Invariant: while ``_thread`` is alive and
    not stopping, it waits no longer than until ``_heap[0].deadline``.
    Callers may schedule while holding other locks: schedule() takes only
    ``_cond`` and calls nothing out.  The thread is started lazily by
    :meth:`start`, which the owner calls, without its own lock held, before
    scheduling.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._counter = itertools.count()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    def start(self) -> None:
        """Make sure the timer thread runs (cheap when it does).

        Call it without holding other locks: it may start a thread, or wait
        for a thread that is stopping to finish.
        """
        while True:
            with self._cond:
                thread = self._thread
                if thread is None or not thread.is_alive():
                    self._stopping = False
                    thread = threading.Thread(target=self._run,
                                              name=f"{self._name}_timers",
                                              daemon=True)
                    self._thread = thread
                    break
                if not self._stopping:
                    return
            if thread is threading.current_thread():
                return      # a stopping timer's own callback: it exits next
            thread.join()   # a stopping thread exits promptly
        thread.start()

    def schedule(self, delay: float, fn: Callable[..., Any],
                 *args: Any) -> TimerHandle:
        """Call ``fn(*args)`` on the timer thread after *delay* seconds."""
        handle = TimerHandle(time.monotonic() + delay, fn, args)
        with self._cond:
            heap = self._heap
            heapq.heappush(heap, (handle.deadline, next(self._counter),
                                  handle))
            if heap[0][2] is handle:
                self._cond.notify()
        return handle

    def stop(self) -> Optional[threading.Thread]:
        """Ask the thread to exit; return it (for joining), if any.

        Entries not yet due are dropped.
        """
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify()
            return self._thread

    def _run(self) -> None:
        cond = self._cond
        heap = self._heap
        while True:
            with cond:
                while True:
                    if self._stopping:
                        return
                    if heap:
                        wait = heap[0][0] - time.monotonic()
                        if wait <= 0:
                            handle = heapq.heappop(heap)[2]
                            break
                        cond.wait(wait)
                    else:
                        cond.wait()
            fn, args = handle.fn, handle.args
            if fn is None:
                continue
            handle.fn = None
            handle.args = ()
            try:
                fn(*args)
            except Exception:  # our own callbacks: log, keep serving
                logger.exception("timer callback %r failed", fn)
