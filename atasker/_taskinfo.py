"""The record of one task, as returned by ``get_task_info``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Optional, TypeVar

from ._constants import FINAL_STATUSES, STATUS_NAMES, TT_NAMES
from ._errors import TaskError

logger = logging.getLogger("atasker")

R = TypeVar("R", covariant=True)
_new_str = str.__new__


class TaskId(str, Generic[R]):
    """The id of a submitted task: a ``str``, and a handle on the task.

    It prints, hashes, compares and serialises (JSON, pickle) as the plain
    string.  While you hold this object, its task's outcome stays
    reachable: ``get_task_info`` and ``wait_completed`` with it work
    however many tasks have finished since (as a ``Future`` lives as long
    as its holder).  A plain string equal to it finds the task only while
    it is unfinished or still in the supervisor's bounded history.  For
    type checkers it is generic in the task's result type: ``TaskId[int]``.
    """

    # a str subclass cannot have __slots__: this lives in the instance dict
    # (a TaskId made by hand has none: it finds by its string only)
    _info: "TaskInfo"

    @classmethod
    def of(cls, record: "TaskInfo") -> "TaskId[Any]":
        """A new handle on *record* (what a submission returns)."""
        handle: TaskId[Any] = _new_str(cls, record.id)
        handle._info = record
        return handle

    def __reduce__(self) -> tuple:
        return str, (str(self),)

    def __copy__(self) -> "TaskId[R]":
        return self

    def __deepcopy__(self, memo: dict) -> "TaskId[R]":
        return self




class TaskInfo:
    """What the supervisor knows about one task.

    The object is live: the supervisor updates it as the task moves through
    ``queued``/``delayed`` → ``started`` → ``completed``/``failed``, or to
    ``canceled``.  Read it; do not assign to it.

    Attributes:
        id: the task id (a str).
        task: the callable that runs.
        tt: ``TT_THREAD``, ``TT_MP`` or ``TT_COROUTINE``.
        priority: the priority it was submitted with.
        name: the name given at submission, else the callable's name.
        time_queued: ``time.time()`` when the task was accepted.
        time_started: when it started running, else ``None``.
        time_completed: when it reached a final status, else ``None``.
        status: one of the ``TASK_STATUS_*`` constants.
        result: the return value once completed.
        exception: the exception once failed or canceled.
        worker: for a process task, the pid of the worker process it was
            handed to, or, on a dask cluster, the address of the worker
            that ran it (known once it has returned); else ``None``.
    """

    __slots__ = ("id", "task", "tt", "priority", "name", "time_queued",
                 "time_started", "time_completed", "status", "result",
                 "exception", "worker",
                 # private to the supervisor, guarded by its lock:
                 "_args", "_kwargs", "_callback", "_error_callback",
                 "_timeout", "_key", "_timer", "_waiters", "_runner",
                 "_home", "__weakref__")

    def __init__(self, task_id: str, task: Callable[..., Any], tt: int,
                 priority: int, name: str, status: int, args: Any,
                 kwargs: Optional[dict], callback: Optional[Callable[[Any], Any]],
                 error_callback: Optional[Callable[[BaseException], Any]],
                 timeout: Optional[float], time_queued: float) -> None:
        self.id = task_id
        self.task = task
        self.tt = tt
        self.priority = priority
        self.name = name
        self.time_queued = time_queued
        self.time_started: Optional[float] = None
        self.time_completed: Optional[float] = None
        self.status = status
        self.result: Any = None
        self.exception: Optional[BaseException] = None
        self.worker: Any = None
        # thread task: the arguments; process task: the pickled
        # (function, args, kwargs) in _args and None in _kwargs
        self._args: Any = args
        self._kwargs: Optional[dict] = kwargs
        self._callback = callback
        self._error_callback = error_callback
        self._timeout = timeout
        self._key = 0          # dispatcher key while queued
        self._timer: Any = None     # TimerHandle for delay or timeout
        self._waiters: Optional[list] = None   # wait_completed waiters
        # coroutine task: its event loop while queued, its asyncio.Task
        # while running
        self._runner: Any = None
        self._home: Any = None     # its registry's token

    @property
    def done(self) -> bool:
        """True once the task is completed, failed or canceled."""
        return self.status in FINAL_STATUSES

    def __repr__(self) -> str:
        return (f"<TaskInfo {self.id} {self.name!r} "
                f"{TT_NAMES.get(self.tt, self.tt)} priority={self.priority} "
                f"{STATUS_NAMES.get(self.status, self.status)}>")


@dataclass
class SupervisorInfo:
    """A snapshot returned by :meth:`TaskSupervisor.get_info`."""

    id: str
    active: bool
    started: bool
    thread_pool_size: int = 0
    thread_reserve_normal: int = 0
    thread_reserve_high: int = 0
    #: thread tasks holding a slot (running, including timed-out ones)
    thread_tasks_count: int = 0
    #: thread tasks waiting for a slot
    thread_queue: int = 0
    #: waiting thread tasks per band: critical, high, normal, low
    thread_queue_by_band: dict = field(default_factory=dict)
    #: live pool threads, idle ones included
    thread_threads: int = 0
    mp_pool_size: int = 0
    mp_reserve_normal: int = 0
    mp_reserve_high: int = 0
    #: process tasks running, and waiting for a process
    mp_tasks_count: int = 0
    mp_queue: int = 0
    #: live worker processes (0 until the pool is first used)
    mp_processes: int = 0
    aloops: dict = field(default_factory=dict)
    schedulers: list = field(default_factory=list)
    #: unfinished tasks (queued, delayed, started) by id
    task_info: dict = field(default_factory=dict)


def log_failure(record: TaskInfo, exc: BaseException) -> None:
    """Log an exception raised by a task's own code.

    Called by the thread that received it, before the outcome is recorded,
    so the record is written before any waiter wakes up (and before the
    exception is raised again elsewhere).  ``TaskError`` is an expected
    failure: a warning without traceback.
    """
    if isinstance(exc, TaskError):
        logger.warning("task %s (%s) failed: %s", record.id, record.name,
                       exc)
    else:
        logger.error("task %s (%s) raised %s", record.id, record.name,
                     type(exc).__name__, exc_info=exc)
