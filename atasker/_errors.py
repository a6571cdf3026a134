"""Exceptions raised by atasker itself."""

from __future__ import annotations

import signal


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


def describe_exit(exitcode: "int | None") -> str:
    """'exit code 3' or 'signal SIGKILL' for a process's exit code."""
    if exitcode is None:
        return "unknown exit status"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class WorkerLostError(RuntimeError):
    """The worker process running a task died before returning a result.

    Attributes:
        task_id: the task that was running.
        pid: the process id of the worker.
        exitcode: its exit code (negative: killed by that signal number).
    """

    def __init__(self, task_id: str, pid: "int | None",
                 exitcode: "int | None") -> None:
        super().__init__(
            f"worker process {pid} running task {task_id} died "
            f"({describe_exit(exitcode)})")
        self.task_id = task_id
        self.pid = pid
        self.exitcode = exitcode

    def __reduce__(self):
        return (type(self), (self.task_id, self.pid, self.exitcode))


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in a worker process.

    Set as ``__cause__`` of the exception a process task raised, so that the
    parent's traceback shows where in the worker it came from.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\"\"\"\n{self.text}\"\"\""
