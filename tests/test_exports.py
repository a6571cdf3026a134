"""The public API is exactly what the docs promise."""

from __future__ import annotations

import atasker

DOCUMENTED = {
    "ALoop", "BackgroundAsyncWorker", "BackgroundEventWorker",
    "BackgroundIntervalWorker", "BackgroundQueueWorker",
    "BackgroundTimerWorker", "BackgroundWorker", "background_worker",
    "FunctionCollection", "LocalProxy", "Locker", "RemoteTraceback",
    "StatusServer",
    "SupervisorInfo",
    "TASK_CRITICAL", "TASK_HIGH", "TASK_LOW", "TASK_NORMAL",
    "TASK_STATUS_CANCELED", "TASK_STATUS_COMPLETED", "TASK_STATUS_DELAYED",
    "TASK_STATUS_FAILED", "TASK_STATUS_QUEUED", "TASK_STATUS_STARTED",
    "TT_COROUTINE", "TT_MP", "TT_THREAD", "TaskCollection", "TaskError",
    "TaskId", "TaskInfo", "TaskSupervisor", "TaskTimeoutError", "WorkerLostError",
    "background_task", "co_apply", "co_mp_apply",
    "g", "set_debug", "task_supervisor", "wait_completed",
}


def test_all_is_sorted_and_documented():
    assert atasker.__all__ == sorted(atasker.__all__)
    assert set(atasker.__all__) == DOCUMENTED


def test_every_name_is_importable():
    for name in atasker.__all__:
        assert getattr(atasker, name) is not None


def test_constant_values():
    assert (atasker.TASK_CRITICAL, atasker.TASK_HIGH, atasker.TASK_NORMAL,
            atasker.TASK_LOW) == (0, 50, 100, 200)
    assert (atasker.TT_COROUTINE, atasker.TT_THREAD, atasker.TT_MP) == \
        (0, 1, 2)
    assert (atasker.TASK_STATUS_CANCELED, atasker.TASK_STATUS_QUEUED,
            atasker.TASK_STATUS_STARTED, atasker.TASK_STATUS_COMPLETED,
            atasker.TASK_STATUS_FAILED, atasker.TASK_STATUS_DELAYED) == \
        (-1, 0, 1, 2, 3, 4)


def test_typed_package():
    import pathlib
    assert (pathlib.Path(atasker.__file__).parent / "py.typed").exists()
