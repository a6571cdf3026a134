"""What every pool shares: the protocol to the engine, and the slot cycle.

A pool runs the tasks of one task type.  The engine talks to it through
:class:`Pool` (``prepare`` / ``push_locked`` / ``launch`` / ``remove_locked``
/ ``drain_locked`` / ``kill`` / ``shutdown_locked`` / ``join``) and the pool
reports back through :class:`Owner`, declared here once.  A pool owns its
:class:`~atasker._dispatcher.Dispatcher` and its workers; the engine never
touches either.

:class:`SlotPool` writes the cycle that every slot-limited pool repeats
once: a task ends → its outcome is recorded → its slot is freed → the next
startable task is popped and marked started.  All of it runs under the
engine's lock (the ``lock`` of the owner), in one acquisition.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Protocol

from ._dispatcher import Dispatcher
from ._taskinfo import TaskInfo
from ._validation import time_left

#: what a pool's thread passes to the engine: (True, result) or
#: (False, exception)
Outcome = tuple[bool, Any]


class Owner(Protocol):
    """The engine, as its pools see it."""

    id: str
    lock: threading.Lock
    #: "new", "running", "stopping" or "stopped" (read without the lock
    #: only as a hint)
    state: str
    idle_thread_timeout: float

    @property
    def task_context(self) -> Optional[Callable[[], Any]]:
        """A factory of context managers wrapped around thread and
        coroutine tasks, or None."""

    def start_locked(self, record: TaskInfo) -> None:
        """queued → started (lock held)."""

    def finish_locked(self, record: TaskInfo, outcome: Outcome) -> bool:
        """started → completed | failed (lock held); ``True`` if the
        record's callbacks are due (:meth:`after`)."""

    def after(self, record: TaskInfo) -> None:
        """Callbacks and final hooks of an ended record (no lock held)."""

    def run_task(self, record: TaskInfo) -> Outcome:
        """Run a thread task's code with hooks and context (no lock)."""

    def emit_started(self, record: TaskInfo) -> None:
        """The ``task_started`` hooks (no lock held)."""


class Pool(Protocol):
    """A pool, as the engine sees it.  Methods named ``*_locked`` are
    called with the engine's lock held; the others without it."""

    def prepare(self, target: Any, args: tuple, kwargs: dict, task_id: str,
                loop: Any) -> tuple[Any, Any, Any]:
        """Get ready for a task before it is registered: may start the
        pool's threads, and raises on bad input.  Returns what the record
        keeps: (arguments, keyword arguments, runner)."""

    def push_locked(self, record: TaskInfo) -> Any:
        """Queue *record*; return what to :meth:`launch` once the lock is
        released, or ``None``."""

    def launch(self, actions: Any) -> None:
        """Carry out what :meth:`push_locked` decided."""

    def remove_locked(self, record: TaskInfo) -> None:
        """Forget a queued *record* (it is being canceled)."""

    def drain_locked(self) -> list[TaskInfo]:
        """Remove and return every queued record."""

    def kill(self, record: TaskInfo) -> bool:
        """Stop a running *record* after its timeout; ``False`` if the pool
        cannot (a thread cannot be killed)."""

    def shutdown_locked(self) -> None:
        """Workers leave once nothing is startable (the engine accepts no
        new work)."""

    def restart_locked(self) -> None:
        """Undo :meth:`shutdown_locked` (the engine runs again)."""

    def abandon(self) -> None:
        """A bounded stop ran out: end what can be ended now."""

    def join(self, deadline: Optional[float]) -> None:
        """Wait, until the monotonic *deadline* at most, for the pool's
        threads (and processes) to end."""

    def owns(self, thread: threading.Thread) -> bool:
        """Whether *thread* is one of the pool's threads."""

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's threads and work."""


class SlotPool:
    """A pool whose tasks hold one of the dispatcher's slots while running.

    ``dispatcher`` and every record's ``_key`` are guarded by the owner's
    lock and written only here.  Invariant: ``dispatcher.running`` is the
    number of records this pool marked started and has not yet ended.
    """

    def __init__(self, owner: Owner, dispatcher: Dispatcher) -> None:
        self._owner = owner
        self._lock = owner.lock
        self.dispatcher = dispatcher
        # bound once: the cycle below runs for every task
        self._finish_locked = owner.finish_locked
        self._start_locked = owner.start_locked
        self._push = dispatcher.push
        self._pop = dispatcher.pop
        self._release = dispatcher.release

    def set_numbers_locked(self, pool_size: Optional[int],
                           reserve_normal: Optional[int],
                           reserve_high: Optional[int]) -> None:
        """Change the dispatcher's numbers; ``None`` keeps one.  (The
        caller then starts what became startable.)"""
        d = self.dispatcher
        d.configure(d.pool_size if pool_size is None else pool_size,
                    d.reserve_normal if reserve_normal is None
                    else reserve_normal,
                    d.reserve_high if reserve_high is None else reserve_high)

    # -- queue (lock held) -------------------------------------------------
    def enqueue_locked(self, record: TaskInfo) -> None:
        record._key = self.dispatcher.push(record.priority, record)

    def remove_locked(self, record: TaskInfo) -> None:
        if record._key:
            self.dispatcher.remove(record.priority, record._key)
            record._key = 0

    def drain_locked(self) -> list[TaskInfo]:
        records = self.dispatcher.drain()
        for record in records:
            record._key = 0
        return records

    # -- the cycle (lock held) ---------------------------------------------
    def take_locked(self) -> Optional[TaskInfo]:
        """Pop the next startable record and mark it started, or None.
        (A popped record's ``_key`` is stale; only queued records are ever
        removed, and a started one is never queued again.)"""
        record = self._pop()
        if record is not None:
            self._start_locked(record)
        return record

    def end_locked(self, record: TaskInfo, outcome: Outcome,
                   take: bool = True) -> tuple[bool, Optional[TaskInfo]]:
        """*record* ended with *outcome*: record it, free its slot and
        (with *take*) start the next startable record.

        Returns (callbacks due, next record or None).  This is the hot
        path of every pool: :meth:`take_locked` is written out here.
        """
        due = self._finish_locked(record, outcome)
        self._release()
        if not take:
            return due, None
        following = self._pop()
        if following is not None:
            self._start_locked(following)
        return due, following


def join_thread(thread: Optional[threading.Thread],
                deadline: Optional[float]) -> None:
    """Join *thread* until the monotonic *deadline* -- unless it is None
    or the calling thread (stop() from a callback on it)."""
    if thread is not None and thread is not threading.current_thread():
        thread.join(time_left(deadline))
