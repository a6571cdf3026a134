"""The queue worker: one run of the executor per item put.

Its items wait in a ``queue`` module queue of the chosen order; the
worker's ``_lock`` guards ``_idle`` (free consumers) and
``_space_waiters`` too (see ``_worker``).
"""

from __future__ import annotations

import asyncio
import logging
import queue
from typing import Any, Optional

from ._validation import check_seconds
from ._worker import _STARTED, BackgroundWorker

logger = logging.getLogger("atasker.workers")


class BackgroundQueueWorker(BackgroundWorker):
    """Runs its executor once for every item put into its queue.

    The item is the executor's first argument.  ``q=True`` (or ``queue=``)
    is a FIFO queue; a class -- ``queue.PriorityQueue``,
    ``queue.LifoQueue`` or their ``asyncio`` namesakes -- picks that order.
    ``workers=N`` runs up to N items at once; ``maxsize=`` bounds the items
    waiting: :meth:`put` then blocks while the queue is full (``timeout=``
    raises ``queue.Full``) and :meth:`aput` awaits.  Items left when the
    worker stops stay queued for the next start.  Guarded by ``_lock`` too:
    ``_idle`` (free consumers) and ``_space_waiters``.
    """

    def __init__(self, *args: Any, q: Any = True, queue: Any = None,
                 workers: int = 1, maxsize: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(workers, bool) or not isinstance(workers, int) or \
                workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or \
                maxsize < 0:
            raise ValueError(f"maxsize must be an int >= 0, got {maxsize!r}")
        self.workers = workers
        self._queue = _make_queue(queue if queue is not None else q, maxsize)
        self._idle = 0
        self._space_waiters: list[tuple[Any, Any]] = []

    def put(self, item: Any, timeout: Optional[float] = None) -> None:
        """Queue *item* (thread-safe).  Blocks while the queue is full;
        raises ``queue.Full`` after *timeout* seconds."""
        check_seconds("timeout", timeout)
        self._queue.put(item, timeout=timeout)
        self._dispatch(quiet=False)

    put_threadsafe = put

    async def aput(self, item: Any) -> None:
        """Queue *item* from a coroutine, awaiting room if it is full."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                try:
                    self._queue.put_nowait(item)
                    break
                except queue.Full:
                    room: asyncio.Future = loop.create_future()
                    self._space_waiters.append((loop, room))
            await room
        self._dispatch(quiet=False)

    def qsize(self) -> int:
        """Items waiting for a consumer."""
        return self._queue.qsize()

    def _on_start_locked(self) -> None:
        self._idle = self.workers
        self._take_locked()

    def _on_stop_locked(self) -> None:
        self._idle = 0

    def _dispatch(self, quiet: bool) -> None:
        with self._lock:
            self._take_locked()
        self._submit_due(quiet)

    def _take_locked(self) -> None:
        while self._state == _STARTED and self._idle > 0:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            self._idle -= 1
            self._wake_space_waiters_locked()
            self._run_locked(item)

    def _wake_space_waiters_locked(self) -> None:
        waiters, self._space_waiters = self._space_waiters, []
        for loop, room in waiters:
            try:
                loop.call_soon_threadsafe(_set_if_pending, room)
            except RuntimeError:        # that loop is closed
                pass

    def _after_run_locked(self) -> None:
        self._idle += 1
        self._take_locked()

    def _run_failed_locked(self, extra: tuple) -> None:
        # the item goes back (at the end of the queue): nothing is lost
        self._idle += 1
        try:
            self._queue.put_nowait(extra[0])
        except queue.Full:
            logger.error("worker %s: item %r lost: its run was not "
                         "submitted and the queue is full", self.name,
                         extra[0])


def _set_if_pending(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _make_queue(kind: Any, maxsize: int) -> queue.Queue:
    if kind is True or kind is None:
        return queue.Queue(maxsize)
    if isinstance(kind, type):
        if issubclass(kind, (queue.PriorityQueue, asyncio.PriorityQueue)):
            return queue.PriorityQueue(maxsize)
        if issubclass(kind, (queue.LifoQueue, asyncio.LifoQueue)):
            return queue.LifoQueue(maxsize)
        if issubclass(kind, (queue.Queue, asyncio.Queue)):
            return queue.Queue(maxsize)
    raise TypeError(f"q must be True or a queue class, got {kind!r}")
