"""Priorities, task types and task statuses.

Priorities are plain ints: lower is more urgent.  Any int is accepted; it
belongs to the band of the nearest constant at or above it (75 is in the
normal band, -3 in the critical band, 500 in the low band).
"""

from __future__ import annotations

TASK_CRITICAL = 0
TASK_HIGH = 50
TASK_NORMAL = 100
TASK_LOW = 200

TT_COROUTINE = 0
TT_THREAD = 1
TT_MP = 2

TASK_STATUS_CANCELED = -1
TASK_STATUS_QUEUED = 0
TASK_STATUS_STARTED = 1
TASK_STATUS_COMPLETED = 2
TASK_STATUS_FAILED = 3
TASK_STATUS_DELAYED = 4

#: Supervisor states
SUPERVISOR_NEW = "new"
SUPERVISOR_RUNNING = "running"
SUPERVISOR_STOPPING = "stopping"
SUPERVISOR_STOPPED = "stopped"

#: Band indexes, most urgent first; used as list indexes by the dispatcher.
BAND_CRITICAL = 0
BAND_HIGH = 1
BAND_NORMAL = 2
BAND_LOW = 3
BAND_NAMES = ("critical", "high", "normal", "low")

FINAL_STATUSES = frozenset(
    (TASK_STATUS_COMPLETED, TASK_STATUS_FAILED, TASK_STATUS_CANCELED))

STATUS_NAMES = {
    TASK_STATUS_CANCELED: "canceled",
    TASK_STATUS_QUEUED: "queued",
    TASK_STATUS_STARTED: "started",
    TASK_STATUS_COMPLETED: "completed",
    TASK_STATUS_FAILED: "failed",
    TASK_STATUS_DELAYED: "delayed",
}

TT_NAMES = {TT_COROUTINE: "coroutine", TT_THREAD: "thread", TT_MP: "mp"}


def priority_band(priority: int) -> int:
    """Return the band index (``BAND_*``) that *priority* falls into."""
    if priority <= TASK_CRITICAL:
        return BAND_CRITICAL
    if priority <= TASK_HIGH:
        return BAND_HIGH
    if priority <= TASK_NORMAL:
        return BAND_NORMAL
    return BAND_LOW
