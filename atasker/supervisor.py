"""Compatibility: the import path ``atasker.supervisor`` of the original
atasker.  New code imports from ``atasker``."""

from ._constants import (TASK_CRITICAL, TASK_HIGH, TASK_LOW, TASK_NORMAL,
                         TT_COROUTINE, TT_MP, TT_THREAD)
from ._supervisor import TaskSupervisor, task_supervisor
from ._taskinfo import SupervisorInfo, TaskInfo

__all__ = ["TASK_CRITICAL", "TASK_HIGH", "TASK_LOW", "TASK_NORMAL",
           "TT_COROUTINE", "TT_MP", "TT_THREAD", "SupervisorInfo",
           "TaskInfo", "TaskSupervisor", "task_supervisor"]
