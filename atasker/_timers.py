"""One timer thread per supervisor, serving every delay, timeout and alarm.

Entries live in a heap ordered by absolute monotonic deadline.  The thread
waits on a condition until the earliest deadline (``cond.wait(deadline -
now)``), so scheduling an earlier entry or closing wakes it at once;
nothing polls.  Callbacks are atasker's own short functions; they run on
the timer thread, outside the timer lock, one at a time, and anything they
raise -- even ``SystemExit`` from user code further down -- is logged and
the thread goes on.

State
-----
``_cond`` (a condition with its own lock) guards ``_heap``, ``_thread``,
``_live`` and ``_open``.  Invariant: ``_thread`` is the one live timer thread, or
``None``; it is started by :meth:`schedule` under ``_cond`` when there is
none, so two callers can never make two threads.  A thread exits once
it is no longer ``_thread`` (after :meth:`close`), so a restart never
waits for the old one; ``_live`` holds every timer thread that has not
returned yet (one that was closed may still be finishing a callback).
Callers may hold other locks -- the engine's, when it schedules -- so the
first :meth:`schedule` starts the thread under them: a thread start takes
none of our locks, and it happens once per start of the supervisor.
Nothing else here calls out while holding ``_cond``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Any, Callable, Optional

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
    """A heap of :class:`TimerHandle` served by one lazily started thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._counter = itertools.count()
        self._thread: Optional[threading.Thread] = None
        self._live: set[threading.Thread] = set()
        self._open = True

    def open(self) -> None:
        """Accept entries again after :meth:`close`."""
        with self._cond:
            self._open = True

    def schedule(self, delay: float, fn: Callable[..., Any],
                 *args: Any) -> TimerHandle:
        """Call ``fn(*args)`` on the timer thread after *delay* seconds.

        On closed timers the handle is returned already canceled.
        """
        handle = TimerHandle(time.monotonic() + delay, fn, args)
        with self._cond:
            if not self._open:
                handle.cancel()
                return handle
            heap = self._heap
            heapq.heappush(heap, (handle.deadline, next(self._counter),
                                  handle))
            if self._thread is None:
                # started under _cond: the only way to get a timer thread
                thread = threading.Thread(target=self._run,
                                          name=f"{self._name}_timers",
                                          daemon=True)
                self._thread = thread
                self._live.add(thread)
                thread.start()
            elif heap[0][2] is handle:
                self._cond.notify()
        return handle

    def close(self) -> Optional[threading.Thread]:
        """Drop every entry and let the thread exit; return it (to join).

        Until :meth:`open`, :meth:`schedule` accepts nothing.
        """
        with self._cond:
            self._open = False
            self._heap.clear()
            thread, self._thread = self._thread, None
            self._cond.notify_all()
            return thread

    def owns(self, thread: threading.Thread) -> bool:
        """Whether *thread* is a timer thread (also one closed and still
        finishing its last callback)."""
        return thread in self._live

    def reset_after_fork(self) -> None:
        """In a forked child: no timer thread exists there."""
        self._cond = threading.Condition(threading.Lock())
        self._heap = []
        self._thread = None
        self._live = set()

    def _run(self) -> None:
        cond = self._cond
        heap = self._heap
        me = threading.current_thread()
        while True:
            with cond:
                while True:
                    if self._thread is not me:
                        self._live.discard(me)
                        return
                    if heap:
                        wait = heap[0][0] - time.monotonic()
                        if wait <= 0:
                            handle = heapq.heappop(heap)[2]
                            break
                        cond.wait(min(wait, threading.TIMEOUT_MAX))
                    else:
                        cond.wait()
            fn, args = handle.fn, handle.args
            if fn is None:
                continue
            handle.fn = None
            handle.args = ()
            try:
                fn(*args)
            except BaseException:  # noqa: B036 -- the thread must go on
                logger.exception("timer callback %r failed", fn)
            del fn, args, handle
