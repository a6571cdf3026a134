"""Exceptions raised by atasker itself."""

from __future__ import annotations

__all__ = ["TaskError", "TaskTimeoutError"]


class TaskError(Exception):
    """An expected failure, raised by a task on purpose.

    The task ends as failed, exactly as with any other exception, but the
    supervisor logs it as a warning with its message only, no traceback::

        @background_task
        def fetch(url):
            if not reachable(url):
                raise TaskError(f"{url} is unreachable")
    """


class TaskTimeoutError(TimeoutError):
    """A task ran longer than its ``timeout=``.

    Attributes:
        task_id: the id of the task that timed out.
        timeout: the limit, in seconds, that it exceeded.
    """

    def __init__(self, task_id: str, timeout: float) -> None:
        super().__init__(
            f"task {task_id} did not finish within {timeout:g} s")
        self.task_id = task_id
        self.timeout = timeout

    def __reduce__(self):  # keep it picklable with its facts
        return (type(self), (self.task_id, self.timeout))
