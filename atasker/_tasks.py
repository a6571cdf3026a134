"""``background_task`` and ``wait_completed``: the task API."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, Optional, TypeVar, Union, overload

from ._constants import TASK_NORMAL, TASK_STATUS_COMPLETED, TT_MP, \
    TT_THREAD
from ._default import resolve_supervisor
from ._supervisor import TaskSupervisor
from ._validation import check_args, check_callable, check_kwargs, \
    check_name, check_task_options, resolve_tt, task_name
from ._taskinfo import TaskId

_new_str = str.__new__

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

    Coroutine functions are detected and run on an aloop.  Use it as
    ``@background_task``, ``@background_task(priority=TASK_HIGH)``
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
        tt: ``TT_THREAD`` runs it on the thread pool, ``TT_MP`` in the
            process pool (the function and arguments must pickle: a
            ``TypeError`` naming the culprit is raised at submission; the
            function gets ``_task_id=`` if its signature accepts it).
        callback: ``callback(result)`` after success.
        error_callback: ``error_callback(exception)`` after failure,
            timeout or cancel.  Callbacks run in the thread that ended the
            task; an exception they raise is logged and ignored.
        timeout: seconds of running time; past it the task fails with
            ``TaskTimeoutError``.  A process task's worker is killed (with
            its children) and replaced; a thread cannot be killed: it keeps
            its pool slot until the function returns.
        loop: for a coroutine function (run as a ``TT_COROUTINE`` task):
            an :class:`ALoop`, an aloop's name or an asyncio loop; default:
            the supervisor's default aloop, created as ``"default"`` if
            there is none.  Its callbacks run on that loop's thread.
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
    check_task_options(priority, delay, tt, callback, error_callback,
                       timeout)
    check_name(name)
    tt = resolve_tt(f, tt)
    owner = resolve_supervisor(supervisor)
    engine = owner._engine
    display_name = name or task_name(f)

    @functools.wraps(f)
    def submit(*args: Any, **kwargs: Any) -> TaskId[Any]:
        record = engine.submit(
            target=f, args=args, kwargs=kwargs, name=display_name,
            priority=priority, delay=delay, tt=tt, callback=callback,
            error_callback=error_callback, timeout=timeout, loop=loop)
        # TaskId.of(), written out: the hot path
        handle: TaskId[Any] = _new_str(TaskId, record.id)
        handle._info = record
        return handle

    # the decorated function keeps its supervisor alive, as a bound
    # ``executor.submit`` keeps its executor
    submit.supervisor = owner  # type: ignore[attr-defined]
    return submit


def wait_completed(task_ids: Union[str, list, tuple],
                   timeout: Optional[float] = None,
                   supervisor: Optional[TaskSupervisor] = None) -> Any:
    """Wait for tasks of *supervisor* (default: the global one) to end.

    See :meth:`TaskSupervisor.wait_completed`: one id returns its result, a
    list or tuple returns the list of results; the task's exception,
    ``CancelledError`` or ``TimeoutError`` is raised.
    """
    return resolve_supervisor(supervisor).wait_completed(task_ids, timeout)


class _AsyncWaiter:
    """Resolves an asyncio future, on its own loop, when a task ends.

    ``release()`` runs under the supervisor's lock: it only schedules the
    wake-up on the loop (non-blocking, no user code).
    """

    __slots__ = ("count", "_loop", "_future")

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 future: "asyncio.Future[None]") -> None:
        self.count = 1
        self._loop = loop
        self._future = future

    def release(self) -> None:
        try:
            self._loop.call_soon_threadsafe(_resolve, self._future)
        except RuntimeError:    # the loop is closed: nobody awaits
            pass


def _resolve(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


async def _co_run(tt: int, f: Callable[..., Any], args: Any,
                  kwargs: Optional[dict], priority: Optional[int],
                  delay: Optional[float],
                  supervisor: Optional[TaskSupervisor],
                  timeout: Optional[float]) -> Any:
    check_callable("f", f, optional=False)
    args = check_args(args)
    kwargs = check_kwargs(kwargs)
    if priority is None:
        priority = TASK_NORMAL
    check_task_options(priority, delay, tt, None, None, timeout)
    loop = asyncio.get_running_loop()
    future: "asyncio.Future[None]" = loop.create_future()
    waiter = _AsyncWaiter(loop, future)
    target = resolve_supervisor(supervisor)
    record = target._engine.submit(
        target=f, args=args, kwargs=kwargs, name=task_name(f),
        priority=priority, delay=delay, tt=tt, timeout=timeout,
        waiter=waiter)
    try:
        await future
    except asyncio.CancelledError:
        target.cancel_task(record.id)   # only if it has not started
        raise
    if record.status == TASK_STATUS_COMPLETED:
        return record.result
    raise record.exception


async def co_mp_apply(f: Callable[..., Any], args: Any = (),
                      kwargs: Optional[dict] = None,
                      priority: Optional[int] = None,
                      delay: Optional[float] = None,
                      supervisor: Optional[TaskSupervisor] = None,
                      timeout: Optional[float] = None) -> Any:
    """Run ``f(*args, **kwargs)`` in the process pool and await its result.

    Works from any running asyncio loop.  The task is queued with
    *priority* (default ``TASK_NORMAL``) like any ``TT_MP`` task; its
    exception, ``TaskTimeoutError`` or ``WorkerLostError`` is raised in the
    awaiting coroutine.  Cancelling the coroutine cancels the task if it
    has not started yet::

        async def main():
            digest = await co_mp_apply(hash_file, args=("big.iso",))

    Raises:
        TypeError: at once, if *f* or its arguments cannot be pickled.
    """
    return await _co_run(TT_MP, f, args, kwargs, priority, delay,
                         supervisor, timeout)


async def co_apply(f: Callable[..., Any], args: Any = (),
                   kwargs: Optional[dict] = None,
                   priority: Optional[int] = None,
                   delay: Optional[float] = None,
                   supervisor: Optional[TaskSupervisor] = None,
                   timeout: Optional[float] = None) -> Any:
    """Like :func:`co_mp_apply`, for the thread pool: await a blocking
    function run as a thread task."""
    return await _co_run(TT_THREAD, f, args, kwargs, priority, delay,
                         supervisor, timeout)
