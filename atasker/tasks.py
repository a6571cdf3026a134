"""``background_task`` and ``wait_completed``: the task API."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Optional, TypeVar, Union, overload

from .constants import TASK_NORMAL, TT_THREAD
from .supervisor import TaskSupervisor, _task_name, check_callable, \
    check_task_options, task_supervisor

__all__ = ["background_task", "wait_completed"]

F = TypeVar("F", bound=Callable[..., Any])


@overload
def background_task(f: Callable[..., Any], *, name: Optional[str] = ...,
                    priority: int = ..., delay: Optional[float] = ...,
                    tt: int = ..., callback: Optional[Callable] = ...,
                    error_callback: Optional[Callable] = ...,
                    timeout: Optional[float] = ..., loop: Any = ...,
                    supervisor: Optional[TaskSupervisor] = ...
                    ) -> Callable[..., str]: ...


@overload
def background_task(f: None = ..., *, name: Optional[str] = ...,
                    priority: int = ..., delay: Optional[float] = ...,
                    tt: int = ..., callback: Optional[Callable] = ...,
                    error_callback: Optional[Callable] = ...,
                    timeout: Optional[float] = ..., loop: Any = ...,
                    supervisor: Optional[TaskSupervisor] = ...
                    ) -> Callable[[Callable[..., Any]], Callable[..., str]]:
    ...


def background_task(f: Optional[Callable[..., Any]] = None, *,
                    name: Optional[str] = None, priority: int = TASK_NORMAL,
                    delay: Optional[float] = None, tt: int = TT_THREAD,
                    callback: Optional[Callable[[Any], Any]] = None,
                    error_callback: Optional[Callable[[BaseException], Any]]
                    = None,
                    timeout: Optional[float] = None, loop: Any = None,
                    supervisor: Optional[TaskSupervisor] = None) -> Any:
    """Make *f* start in the background each time it is called.

    Use it as ``@background_task``, ``@background_task(priority=TASK_HIGH)``
    or ``background_task(f, priority=...)``.  Calling the wrapped function
    submits one task with those arguments and returns its id at once::

        @background_task(priority=TASK_HIGH)
        def resize(path, width):
            ...

        task_id = resize("a.png", width=640)
        wait_completed(task_id)            # the return value of resize

    Args:
        name: shown in task info and logs (default: the function's name).
        priority: ``TASK_CRITICAL`` … ``TASK_LOW`` or any int.
        delay: seconds to wait, without holding a pool slot, before the
            task is queued.
        tt: task type; ``TT_THREAD`` runs it on the thread pool.
        callback: ``callback(result)`` after success.
        error_callback: ``error_callback(exception)`` after failure,
            timeout or cancel.  Callbacks run in the thread that ended the
            task; an exception they raise is logged and ignored.
        timeout: seconds of running time; past it the task fails with
            ``TaskTimeoutError`` (a thread cannot be killed: it keeps its
            pool slot until the function returns).
        loop: reserved for coroutine tasks.
        supervisor: a :class:`TaskSupervisor` (default: the global one).

    Raises:
        TypeError, ValueError: at decoration time, naming a bad argument.
    """
    if f is None:
        return functools.partial(
            background_task, name=name, priority=priority, delay=delay,
            tt=tt, callback=callback, error_callback=error_callback,
            timeout=timeout, loop=loop, supervisor=supervisor)
    check_callable("f", f, optional=False)
    if inspect.iscoroutinefunction(f):
        raise NotImplementedError(
            "coroutine functions are not supported by this version of "
            "atasker's background_task")
    check_task_options(priority, delay, tt, callback, error_callback,
                       timeout)
    if supervisor is not None and not isinstance(supervisor, TaskSupervisor):
        raise TypeError(f"supervisor must be a TaskSupervisor, got "
                        f"{supervisor!r}")
    task_name = name or _task_name(f)
    target = supervisor or task_supervisor

    @functools.wraps(f)
    def submit(*args: Any, **kwargs: Any) -> str:
        return target._submit(f, args, kwargs, task_name, priority, delay,
                              callback, error_callback, timeout)

    return submit


def wait_completed(task_ids: Union[str, list, tuple],
                   timeout: Optional[float] = None,
                   supervisor: Optional[TaskSupervisor] = None) -> Any:
    """Wait for tasks of *supervisor* (default: the global one) to end.

    See :meth:`TaskSupervisor.wait_completed`: one id returns its result, a
    list or tuple returns the list of results; the task's exception,
    ``CancelledError`` or ``TimeoutError`` is raised.
    """
    return (supervisor or task_supervisor).wait_completed(task_ids, timeout)
