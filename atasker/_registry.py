"""The task registry: id → :class:`TaskInfo`, bounded history, totals and
the waiters of ``wait_completed``.

State
-----
Every attribute is guarded by the engine's lock (passed in as ``lock``).
A record is registered by ``Engine.submit`` itself -- ``tasks[id] =
record`` and ``unfinished += 1``, on its hot path -- and ends here, in
:meth:`Registry.finalize_locked`.
Invariants: ``unfinished`` equals the number of registered records whose
status is not final; a record's ``_waiters`` holds the waiters not yet
released for it, and a waiter is released exactly once, by the transition
that ends the last of its tasks.  The history keeps the last
``keep_finished`` finished records visible by id; older ones are
forgotten (dropped from ``tasks``) and live on only while someone holds
their :class:`TaskId` handle, which :meth:`Registry.find` accepts when
the record carries this registry's ``token`` (immutable).
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Iterable, Optional

from ._constants import (FINAL_STATUSES, TASK_STATUS_CANCELED,
                         TASK_STATUS_COMPLETED, TASK_STATUS_FAILED,
                         TT_COROUTINE, TT_MP, TT_THREAD)
from ._taskinfo import TaskId, TaskInfo
from ._validation import timeout_arg

#: how many finished tasks stay findable by a plain-string id by default
#: (a held :class:`TaskId` finds its task for as long as it is held)
KEEP_FINISHED = 100

#: index in ``Registry.totals`` lists, by final status
_TOTAL_INDEX = {TASK_STATUS_COMPLETED: 0, TASK_STATUS_FAILED: 1,
                TASK_STATUS_CANCELED: 2}


class _Waiter:
    """One ``wait_completed`` call: released when ``count`` tasks ended.

    ``release()`` is called once, under the engine's lock, by the
    transition that ends the last of the tasks.
    """

    __slots__ = ("count", "lock", "release")

    def __init__(self, count: int) -> None:
        self.count = count
        self.lock = threading.Lock()
        self.lock.acquire()
        self.release = self.lock.release


class Registry:
    """Records by id, the finished history and the per-type totals."""

    def __init__(self, lock: threading.Lock, id_prefix: str) -> None:
        self._lock = lock
        self.tasks: dict[str, TaskInfo] = {}
        self._finished: list[TaskInfo] = []
        self._finished_head = 0
        self.unfinished = 0
        #: tasks that reached a final status: tt -> [completed, failed,
        #: canceled]
        self.totals = {TT_THREAD: [0, 0, 0], TT_MP: [0, 0, 0],
                       TT_COROUTINE: [0, 0, 0]}
        self.keep_finished = KEEP_FINISHED
        self._id_prefix = id_prefix
        # what a record holds to say it is ours (not the registry itself:
        # that would be a reference cycle)
        self.token = object()
        self._ids = itertools.count(1)      # next() is atomic

    def check_chosen_id(self, task_id: str) -> None:
        """Refuse a caller's id that is not a str, or that an automatic id
        could take later (``<prefix><number>``)."""
        if not isinstance(task_id, str):
            raise TypeError(f"task_id must be a str, not "
                            f"{type(task_id).__name__}")
        prefix = self._id_prefix
        if task_id.startswith(prefix) and task_id[len(prefix):].isdigit():
            raise ValueError(f"task_id {task_id!r} has the form of this "
                             f"supervisor's automatic ids "
                             f"({prefix}<number>); choose another")

    def new_id(self) -> str:
        """A fresh task id (thread-safe without the lock)."""
        return f"{self._id_prefix}{next(self._ids)}"

    def finalize_locked(self, record: TaskInfo, status: int, result: Any,
                        exception: Optional[BaseException]) -> bool:
        """Give *record* its final status; wake its waiters.  Returns True
        when no unfinished task is left."""
        # every field before the status: a reader without the lock who sees
        # the final status also sees the result
        record.result = result
        record.exception = exception
        record.time_completed = time.time()
        record._args = record._kwargs = None
        record.status = status
        self.totals[record.tt][_TOTAL_INDEX[status]] += 1
        timer = record._timer
        if timer is not None:
            timer.cancel()
            record._timer = None
        waiters = record._waiters
        if waiters is not None:
            record._waiters = None
            for waiter in waiters:
                waiter.count -= 1
                if not waiter.count:
                    waiter.release()
        self._remember_locked(record)
        self.unfinished -= 1
        return not self.unfinished

    def _remember_locked(self, record: TaskInfo) -> None:
        """Keep *record* in the bounded history; forget the oldest."""
        finished = self._finished
        finished.append(record)
        excess = len(finished) - self._finished_head - self.keep_finished
        if excess > 0:
            tasks = self.tasks
            head = self._finished_head
            for old in finished[head:head + excess]:
                if tasks.get(old.id) is old:
                    del tasks[old.id]
            head += excess
            # compact once the dead prefix is as long as the live part
            if head >= len(finished) - head:
                del finished[:head]
                head = 0
            self._finished_head = head

    def unfinished_locked(self) -> list[TaskInfo]:
        return [record for record in self.tasks.values()
                if record.status not in FINAL_STATUSES]

    def find(self, task_id: str) -> Optional[TaskInfo]:
        """The record of *task_id*: by its handle (a :class:`TaskId`
        returned by this registry's engine, however long ago its task
        ended), else by the plain string (while unfinished or in the
        history)."""
        if type(task_id) is TaskId:
            # its own record first: the string may name a newer task now
            record: Optional[TaskInfo] = getattr(task_id, "_info", None)
            if record is not None and record._home is self.token:
                return record
        return self.tasks.get(task_id)

    def wait(self, ids: Iterable[str], timeout: Optional[float]
             ) -> list[TaskInfo]:
        """Wait until the tasks *ids* have ended; return their records.

        Raises ``KeyError`` for an unknown id and ``TimeoutError`` when
        *timeout* seconds pass first.
        """
        limit = timeout_arg("timeout", timeout)
        ids = list(ids)
        tasks, token = self.tasks, self.token
        with self._lock:
            records = []
            for task_id in ids:
                # find(), written out: a burst waits on many ids
                record = getattr(task_id, "_info", None) \
                    if type(task_id) is TaskId else None
                if record is None or record._home is not token:
                    record = tasks.get(task_id)
                if record is None:
                    raise KeyError(f"unknown task id {task_id!r} (never "
                                   f"submitted here, or already forgotten)")
                records.append(record)
            pending = [r for r in records if r.status not in FINAL_STATUSES]
            waiter = None
            if pending:
                waiter = _Waiter(len(pending))
                for record in pending:
                    if record._waiters is None:
                        record._waiters = [waiter]
                    else:
                        record._waiters.append(waiter)
        if waiter is not None and not waiter.lock.acquire(timeout=limit):
            with self._lock:
                if waiter.count:
                    for record in pending:
                        if record._waiters and waiter in record._waiters:
                            record._waiters.remove(waiter)
                    raise TimeoutError(
                        f"{waiter.count} of {len(ids)} tasks did not end "
                        f"within {timeout:g} s")
        return records

    def results(self, task_ids: Any, timeout: Optional[float]) -> Any:
        """What ``wait_completed`` returns: the result of one id, or the
        list of results of a list or tuple of ids; the first failed task's
        exception is raised."""
        single = isinstance(task_ids, str)
        if not single and not isinstance(task_ids, (list, tuple)):
            raise TypeError(f"task_ids must be a str, list or tuple, not "
                            f"{type(task_ids).__name__}")
        results = []
        for record in self.wait([task_ids] if single else task_ids,
                                timeout):
            if record.status != TASK_STATUS_COMPLETED:
                raise record.exception  # type: ignore[misc]
            results.append(record.result)
        return results[0] if single else results

    def forget_unfinished_locked(self) -> None:
        """In a forked child: the parent's unfinished tasks run there, not
        here; forget them so that nothing waits for them."""
        for record in self.unfinished_locked():
            del self.tasks[record.id]
            record._waiters = None
        self.unfinished = 0
