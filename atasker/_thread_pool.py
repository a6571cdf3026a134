"""Reusable worker threads fed by the dispatcher.

A finishing worker takes its next task itself: in one acquisition of the
engine's lock it records the outcome, frees its slot and pops the next
startable task (:meth:`SlotPool.end_locked`).  Only when nothing may start
does it park on its own wake lock, on a LIFO stack of idle workers; a
submission then hands the task to the most recently parked worker
directly.  Workers that stay idle for ``owner.idle_thread_timeout`` seconds
exit, so the pool shrinks back after a burst.  Nothing polls.

State
-----
Guarded by the engine's lock: ``_idle`` (parked workers, LIFO),
``_threads`` (every live worker thread), ``_shutdown``, and each
``_Worker.task``.  Invariant: a worker is in ``_idle`` iff it is parked
with ``task is None``; after any locked operation either the dispatcher has
nothing startable or it has been handed to workers.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Optional

from ._constants import TT_THREAD
from ._dispatcher import Dispatcher
from ._pool import Owner, SlotPool
from ._spin import acquire_contended
from ._taskinfo import TaskInfo
from ._validation import time_left


class _Worker:
    __slots__ = ("wake", "task", "thread")

    def __init__(self) -> None:
        # Held while the worker is busy or idle; a hand-off stores the task
        # in ``task`` and releases it (under the engine's lock).
        self.wake = threading.Lock()
        self.wake.acquire()
        self.task: Optional[TaskInfo] = None
        self.thread: Optional[threading.Thread] = None


class ThreadPool(SlotPool):
    """The thread pool of one engine (``TT_THREAD`` tasks)."""

    tt = TT_THREAD

    def __init__(self, owner: Owner, dispatcher: Dispatcher,
                 name: str) -> None:
        super().__init__(owner, dispatcher)
        self._name = name
        self._idle: list[_Worker] = []
        self._threads: set[threading.Thread] = set()
        self._shutdown = False
        self._counter = itertools.count(1)

    # -- the engine's side -------------------------------------------------
    def configure(self, pool_size: Optional[int],
                  reserve_normal: Optional[int],
                  reserve_high: Optional[int]) -> None:
        """Change the numbers (``None`` keeps one); a larger pool starts
        waiting tasks at once.  See ``set_thread_pool``."""
        with self._lock:
            self.set_numbers_locked(pool_size, reserve_normal, reserve_high)
            spawn = self.kick_locked()
        if spawn:
            self.launch(spawn)

    def prepare(self, target: Any, args: tuple, kwargs: dict, task_id: str,
                loop: Any) -> tuple[Any, Any, Any]:
        return args, kwargs, None

    def push_locked(self, record: TaskInfo) -> Optional[list[TaskInfo]]:
        # enqueue_locked(), written out: this is the submit hot path
        record._key = self._push(record.priority, record)
        return self.kick_locked()

    def kick_locked(self) -> Optional[list[TaskInfo]]:
        """Hand startable tasks to idle workers; return the ones that need
        a new thread (for :meth:`launch`), or ``None``.  (``take_locked``
        written out: this runs on every submission.)"""
        record = self._pop()
        if record is None:
            return None
        spawn = None
        idle = self._idle
        start_locked = self._start_locked
        while record is not None:
            start_locked(record)
            if idle:
                worker = idle.pop()
                worker.task = record
                worker.wake.release()
            elif spawn is None:
                spawn = [record]
            else:
                spawn.append(record)
            record = self._pop()
        return spawn

    def launch(self, records: list[TaskInfo]) -> None:
        """Start one worker thread for each already-started record."""
        records = list(records)
        while records:
            record = records.pop()
            worker = _Worker()
            # handed over in the worker, not in the thread's arguments
            # (which live as long as the thread: so would the outcome)
            worker.task = record
            thread = threading.Thread(
                target=self._work, args=(worker,),
                name=f"{self._name}_{next(self._counter)}", daemon=True)
            worker.thread = thread
            with self._lock:
                self._threads.add(thread)
            try:
                thread.start()
            except RuntimeError as exc:   # e.g. can't start new thread
                with self._lock:
                    self._threads.discard(thread)
                    due, following = self.end_locked(record, (False, exc))
                if due:
                    self._owner.after(record)
                if following is not None:
                    records.append(following)

    def kill(self, record: TaskInfo) -> bool:
        return False

    def abandon(self) -> None:
        pass        # a thread cannot be stopped from outside

    def shutdown_locked(self) -> None:
        self._shutdown = True
        for worker in self._idle:
            worker.wake.release()       # task is None: the worker exits
        self._idle.clear()

    def restart_locked(self) -> None:
        self._shutdown = False

    def join(self, deadline: Optional[float]) -> None:
        with self._lock:
            threads = set(self._threads)
        threads.discard(threading.current_thread())
        for thread in threads:
            if thread.ident is not None:    # not one being started now
                thread.join(time_left(deadline))

    def owns(self, thread: threading.Thread) -> bool:
        return thread in self._threads

    def reset_after_fork(self) -> None:
        self._idle = []
        self._threads = set()
        self.drain_locked()
        self.dispatcher.running = 0

    @property
    def thread_count(self) -> int:
        return len(self._threads)

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    # -- worker threads ----------------------------------------------------
    def _work(self, worker: _Worker) -> None:
        record = worker.task
        assert record is not None, "launch() hands every thread a task"
        worker.task = None
        lock = self._lock
        run = self._owner.run_task
        end_locked = self.end_locked
        after = self._owner.after
        following: Optional[TaskInfo]
        while True:
            outcome = run(record)
            if not lock.acquire(False):
                acquire_contended(lock)
            try:        # lock held
                due, following = end_locked(record, outcome)
            finally:
                lock.release()
            del outcome             # drop the result before parking
            if due:
                # before this thread is idle: a callback that submits a
                # task and waits for it is never handed its own task
                after(record)
            if following is None:
                # a parked thread must not keep its last task's outcome
                del record
                following = self._next(worker)
                if following is None:
                    return
            record = following

    def _next(self, worker: _Worker) -> Optional[TaskInfo]:
        """Take the next startable task, or park until one is handed over;
        None means: exit (shut down, or idle for too long)."""
        with self._lock:
            record = self.take_locked()
            if record is not None:
                return record
            if self._shutdown:
                self._threads.discard(worker.thread)
                return None
            self._idle.append(worker)
        woken = worker.wake.acquire(timeout=self._owner.idle_thread_timeout)
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
