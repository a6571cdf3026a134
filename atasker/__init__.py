"""atasker: supervised background tasks on prioritised, reusable pools.

Everything public is importable from here and listed in ``__all__``; the
modules with a leading underscore are private (``atasker.supervisor`` and
``atasker.workers`` re-export their public names for code written for the
original atasker)::

    from atasker import background_task, wait_completed, TASK_HIGH

    @background_task(priority=TASK_HIGH)
    def work(x):
        return x * 2

    assert wait_completed(work(21)) == 42
"""

from __future__ import annotations

from ._aloop import ALoop
from ._collections import FunctionCollection, TaskCollection
from ._constants import (
    TASK_CRITICAL, TASK_HIGH, TASK_LOW, TASK_NORMAL, TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED, TASK_STATUS_DELAYED, TASK_STATUS_FAILED,
    TASK_STATUS_QUEUED, TASK_STATUS_STARTED, TT_COROUTINE, TT_MP, TT_THREAD)
from ._debug import set_debug
from ._errors import RemoteTraceback, TaskError, TaskTimeoutError, \
    WorkerLostError
from ._local import LocalProxy, g
from ._locker import Locker
from ._status_server import StatusServer
from ._supervisor import TaskSupervisor, task_supervisor
from ._taskinfo import SupervisorInfo, TaskId, TaskInfo
from ._tasks import background_task, co_apply, co_mp_apply, wait_completed
from ._workers import (BackgroundAsyncWorker, BackgroundEventWorker,
                       BackgroundIntervalWorker, BackgroundQueueWorker,
                       BackgroundTimerWorker, BackgroundWorker,
                       background_worker)

__version__ = "0.8.0.dev0"

__all__ = [
    "ALoop",
    "BackgroundAsyncWorker",
    "BackgroundEventWorker",
    "BackgroundIntervalWorker",
    "BackgroundQueueWorker",
    "BackgroundTimerWorker",
    "BackgroundWorker",
    "FunctionCollection",
    "LocalProxy",
    "Locker",
    "RemoteTraceback",
    "StatusServer",
    "SupervisorInfo",
    "TASK_CRITICAL",
    "TASK_HIGH",
    "TASK_LOW",
    "TASK_NORMAL",
    "TASK_STATUS_CANCELED",
    "TASK_STATUS_COMPLETED",
    "TASK_STATUS_DELAYED",
    "TASK_STATUS_FAILED",
    "TASK_STATUS_QUEUED",
    "TASK_STATUS_STARTED",
    "TT_COROUTINE",
    "TT_MP",
    "TT_THREAD",
    "TaskCollection",
    "TaskError",
    "TaskId",
    "TaskInfo",
    "TaskSupervisor",
    "TaskTimeoutError",
    "WorkerLostError",
    "background_task",
    "background_worker",
    "co_apply",
    "co_mp_apply",
    "g",
    "set_debug",
    "task_supervisor",
    "wait_completed",
]
