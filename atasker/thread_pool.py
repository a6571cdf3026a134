"""Reusable worker threads fed by the dispatcher.

A finishing worker takes its next task itself: in one acquisition of the
supervisor's lock it records the outcome, frees its slot and pops the next
startable task.  Only when nothing may start does it park on its own wake
lock, on a LIFO stack of idle workers; a submission then hands the task to
the most recently parked worker directly.  Workers that stay idle for
``host.idle_thread_timeout`` seconds exit, so the pool shrinks back after a
burst.  Nothing polls.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Optional, Protocol

from .dispatcher import Dispatcher
from .spin import acquire_contended

__all__ = ["ThreadPool"]


class PoolHost(Protocol):
    """What the pool needs from its owner (the supervisor)."""

    idle_thread_timeout: float

    def _run(self, record: Any) -> tuple[bool, Any]:
        """Run the task's code; called without the lock."""

    def _finish_locked(self, record: Any, outcome: tuple[bool, Any]) -> bool:
        """Record the outcome (lock held); True if ``_after`` is due."""

    def _start_locked(self, record: Any) -> None:
        """Mark the record started (lock held)."""

    def _after(self, record: Any) -> None:
        """Callbacks and logging of a finished record; called without lock."""


class _Worker:
    __slots__ = ("wake", "task", "thread")

    def __init__(self) -> None:
        # Held while the worker is busy or idle; a hand-off stores the task
        # in ``task`` and releases it (under the supervisor's lock).
        self.wake = threading.Lock()
        self.wake.acquire()
        self.task: Any = None
        self.thread: Optional[threading.Thread] = None


class ThreadPool:
    """Worker threads for one supervisor.

    Every attribute is guarded by the supervisor's lock ``lock`` (passed in,
    shared with the dispatcher and the task registry): ``_idle`` (parked
    workers, LIFO), ``_threads`` (every live worker thread) and
    ``_shutdown``.  Invariant: a worker is in ``_idle`` iff it is parked with
    ``task is None``; and after any locked operation either the dispatcher
    has nothing startable or it has been handed to workers (``kick_locked``).
    """

    def __init__(self, lock: threading.Lock, dispatcher: Dispatcher,
                 host: PoolHost, name: str) -> None:
        self._lock = lock
        self.dispatcher = dispatcher
        self._host = host
        self._name = name
        self._idle: list[_Worker] = []
        self._threads: set[threading.Thread] = set()
        self._shutdown = False
        self._counter = itertools.count(1)

    # -- called with the lock held -----------------------------------------
    def kick_locked(self) -> Optional[list]:
        """Hand startable tasks to idle workers.

        Returns the tasks that need a new thread (pass them to
        :meth:`spawn` after releasing the lock), or ``None``.
        """
        dispatcher = self.dispatcher
        spawn = None
        while True:
            record = dispatcher.pop()
            if record is None:
                return spawn
            self._host._start_locked(record)
            if self._idle:
                worker = self._idle.pop()
                worker.task = record
                worker.wake.release()
            elif spawn is None:
                spawn = [record]
            else:
                spawn.append(record)

    def shutdown_locked(self, shutdown: bool = True) -> set[threading.Thread]:
        """Let workers exit once nothing is startable; return live threads.

        With ``shutdown=False`` (a restart) workers park again as usual.
        """
        self._shutdown = shutdown
        if shutdown:
            for worker in self._idle:
                worker.wake.release()   # task is None: the worker exits
            self._idle.clear()
        return set(self._threads)

    def owns_current_thread(self) -> bool:
        """Whether the calling thread is one of this pool's workers."""
        with self._lock:
            return threading.current_thread() in self._threads

    @property
    def thread_count(self) -> int:
        return len(self._threads)

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    # -- called without the lock -------------------------------------------
    def spawn(self, records: list) -> None:
        """Start one worker thread for each already-started record."""
        for record in records:
            worker = _Worker()
            thread = threading.Thread(
                target=self._work, args=(worker, record),
                name=f"{self._name}_{next(self._counter)}", daemon=True)
            worker.thread = thread
            with self._lock:
                self._threads.add(thread)
            try:
                thread.start()
            except RuntimeError as exc:   # e.g. can't start new thread
                with self._lock:
                    self._threads.discard(thread)
                self._abandon(record, exc)

    launch = spawn

    def _abandon(self, record: Any, exc: BaseException) -> None:
        host = self._host
        with self._lock:
            due = host._finish_locked(record, (False, exc))
            self.dispatcher.release()
            spawn = self.kick_locked()
        if due:
            host._after(record)
        if spawn:
            self.spawn(spawn)

    def _work(self, worker: _Worker, record: Any) -> None:
        host = self._host
        lock = self._lock
        dispatcher = self.dispatcher
        run = host._run
        finish_locked = host._finish_locked
        start_locked = host._start_locked
        after = host._after
        while True:
            outcome = run(record)
            leaving = False
            if not lock.acquire(False):
                acquire_contended(lock)
            try:        # lock held
                due = finish_locked(record, outcome)
                dispatcher.release()
                following = dispatcher.pop()
                if following is not None:
                    start_locked(following)
                elif self._shutdown:
                    self._threads.discard(worker.thread)
                    leaving = True
                else:
                    self._idle.append(worker)
            finally:
                lock.release()
            del outcome             # drop the result before parking
            if due:
                after(record)
            if following is None:
                if leaving:
                    return
                following = self._park(worker)
                if following is None:
                    return
            record = following

    def _park(self, worker: _Worker) -> Any:
        """Wait for a hand-off; None means: exit."""
        woken = worker.wake.acquire(timeout=self._host.idle_thread_timeout)
        with self._lock:
            record = worker.task
            if record is not None:
                worker.task = None
                if not woken:
                    # handed over just as the wait timed out: the release
                    # already happened under the lock, so this succeeds
                    worker.wake.acquire(blocking=False)
                return record
            if worker in self._idle:     # timed out (not shut down)
                self._idle.remove(worker)
            self._threads.discard(worker.thread)
            return None
