"""``TaskSupervisor``: the public facade, and the global ``task_supervisor``.

A supervisor is a thin front over its :class:`~atasker._engine.Engine`
(which does the work) and its clients: the app runner (``_app``) and the
status snapshot and server (``_status``, ``_status_server``).  It owns no
state of its own beyond those references.  Nothing of atasker's holds a
supervisor strongly -- threads hold the engine -- so a supervisor that its
program drops is collected like a dropped ``ThreadPoolExecutor``: its
finalizer stops the engine without waiting, queued work still drains, and
its threads and processes end.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Iterable, Optional, Union

from . import _default
from ._aloop import ALoop
from ._app import App
from ._constants import SUPERVISOR_RUNNING, TASK_NORMAL, TT_THREAD
from ._dispatcher import validate_pool_numbers
from ._engine import Engine
from ._backends import backend_for
from ._mp import check_mp_numbers, default_mp_pool_size
from ._shutdown import release_when_collected, stop_engine
from ._status import snapshot, supervisor_info
from ._status_server import StatusServer, check_address
from ._taskinfo import SupervisorInfo, TaskId, TaskInfo
from ._validation import (check_args, check_callable, check_kwargs,
                          check_name, check_task_options,
                          resolve_tt, task_name)


def _default_pool_size() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


class _EngineSetting:
    """A tunable attribute that lives on the engine (or on its *part*)."""

    def __init__(self, part: Optional[str] = None) -> None:
        self._part = part

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def _holder(self, supervisor: Any) -> Any:
        engine = supervisor._engine
        return engine if self._part is None else getattr(engine, self._part)

    def __get__(self, supervisor: Any, owner: type) -> Any:
        if supervisor is None:
            return self
        return getattr(self._holder(supervisor), self._name)

    def __set__(self, supervisor: Any, value: Any) -> None:
        setattr(self._holder(supervisor), self._name, value)


def _to_app(method: Callable[..., Any]) -> Callable[..., Any]:
    """A supervisor method that is the app runner's *method*."""
    @functools.wraps(method)
    def call(self: "TaskSupervisor", *args: Any, **kwargs: Any) -> Any:
        return getattr(self._app, method.__name__)(*args, **kwargs)
    return call


class TaskSupervisor:
    """Runs tasks on a prioritised thread pool, process pool and aloops.

    ``pool_size`` (default ``min(32, CPU count + 4)``), ``reserve_normal`` and
    ``reserve_high`` are the thread pool numbers of :meth:`set_thread_pool`.
    A supervisor starts by itself on first use; after :meth:`stop`,
    submitting raises ``RuntimeError`` until :meth:`start` is called again.

    Guarantees: every accepted task ends in exactly one of completed, failed
    or canceled, visible in :meth:`get_task_info` and through its callbacks;
    no thread of a supervisor outlives ``stop(wait=True)`` or the
    interpreter, and a supervisor the program no longer references is
    stopped and its threads end.

    Tunable attributes: ``keep_finished`` (how many finished tasks stay
    findable by a plain-string id, default 100; a held :class:`TaskId`
    always finds its task), ``idle_thread_timeout`` (seconds an idle pool
    thread lingers, default 60), and the queue-wait alarms
    ``timeout_warning``/``timeout_critical`` (seconds a task may wait in the
    queue before ``timeout_warning_func``/``timeout_critical_func`` is called
    with its :class:`TaskInfo` and a log record is written).

    ``task_context``, a factory of context managers (a function returning
    one, such as a ``contextlib.contextmanager``), wraps the code of every
    thread and coroutine task: it runs as ``with task_context(): ...`` in
    the thread that runs the task.  Process tasks run in another process
    and are not wrapped.  An exception from the context manager fails the
    task like one from its code.
    """

    keep_finished = _EngineSetting("registry")
    idle_thread_timeout = _EngineSetting()
    timeout_warning = _EngineSetting()
    timeout_warning_func = _EngineSetting()
    timeout_critical = _EngineSetting()
    timeout_critical_func = _EngineSetting()

    def __init__(self, pool_size: Optional[int] = None,
                 reserve_normal: int = 5, reserve_high: int = 5, *,
                 supervisor_id: Optional[str] = None,
                 task_context: Optional[Callable[[], Any]] = None) -> None:
        if pool_size is None:
            pool_size = _default_pool_size()
        validate_pool_numbers(pool_size, reserve_normal, reserve_high)
        check_callable("task_context", task_context)
        self.id = supervisor_id or os.urandom(4).hex()
        self._engine = engine = Engine(self.id, pool_size, reserve_normal,
                                       reserve_high, task_context)
        self._app = App(self, engine)
        #: compatibility only: nothing in atasker polls
        self.poll_delay = 0.1
        release_when_collected(self, engine)

    def __repr__(self) -> str:
        return f"<TaskSupervisor {self.id} {self._engine.state}>"

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        """Start accepting tasks (done implicitly on first use).

        Calling it on a running supervisor does nothing; calling it after
        :meth:`stop` makes the supervisor usable again.
        """
        self._engine.start()

    @property
    def is_active(self) -> bool:
        """True while the supervisor accepts tasks."""
        return self._engine.state == SUPERVISOR_RUNNING

    def block(self) -> None:
        """Block the calling thread until the supervisor is stopped."""
        self._engine.stopped_event.wait()

    def stop(self, wait: Union[bool, float] = True,
             stop_schedulers: bool = True, cancel_tasks: bool = False) -> None:
        """Stop accepting tasks and wind down.

        Args:
            wait: ``True`` waits until every accepted task has ended and every
                thread of the supervisor has exited.  A number of seconds is
                one deadline for the whole stop: it returns by then; what
                still waits is canceled, running process tasks are killed,
                running coroutine tasks are canceled and running thread
                tasks are left to finish in their threads (a warning names
                them).  ``False`` returns at once while the work drains.
            stop_schedulers: stop registered workers first.
            cancel_tasks: cancel queued and delayed tasks (their
                ``error_callback`` gets ``CancelledError``); running tasks
                are still waited for.

        It may be called from any thread and from a signal handler.  A
        handler runs in the main thread between two steps of whatever it
        was doing; if that was this library's own code (``put_task``, say),
        the stop cannot wait there for what the interrupted code holds:
        it is begun in a thread of its own and ``stop()`` returns at once.
        A later ``stop()``, ``block()`` or interpreter exit waits for it.
        (This is told from the call stack: ``stop()`` called in the main
        thread from code that one of this library's functions is running
        -- other than ``Locker``, collections and ``atasker run`` -- is
        treated the same way.)

        Raises:
            RuntimeError: asked to wait from one of this supervisor's own
                threads (a task, a callback, a timer): it would wait for
                itself.  ``stop(wait=False)`` works there.
        """
        stop_engine(self._engine, wait, stop_schedulers, cancel_tasks)

    # -- configuration -----------------------------------------------------
    def set_thread_pool(self, pool_size: Optional[int] = None,
                        reserve_normal: Optional[int] = None,
                        reserve_high: Optional[int] = None) -> None:
        """Set the thread pool numbers; takes effect at once.

        Low-priority tasks run while fewer than ``pool_size`` tasks run,
        normal ones up to ``pool_size + reserve_normal``, high ones up to
        ``pool_size + reserve_normal + reserve_high``; critical tasks always
        start.  ``pool_size=0`` means unlimited.  An argument left as
        ``None`` keeps its current value.
        """
        self._engine.threads.configure(pool_size, reserve_normal,
                                       reserve_high)

    @property
    def thread_pool_size(self) -> int:
        return self._engine.threads.dispatcher.pool_size

    @property
    def thread_reserve_normal(self) -> int:
        return self._engine.threads.dispatcher.reserve_normal

    @property
    def thread_reserve_high(self) -> int:
        return self._engine.threads.dispatcher.reserve_high

    def set_mp_pool(self, pool_size: Optional[int] = None,
                    reserve_normal: Optional[int] = None,
                    reserve_high: Optional[int] = None, context: Any = None,
                    max_tasks_per_child: Optional[int] = None,
                    executor: Any = None) -> None:
        """Configure the process pool, or run process tasks on an executor.

        It runs ``pool_size + reserve_normal + reserve_high`` processes;
        low-priority tasks use up to ``pool_size`` of them, normal ones
        ``reserve_normal`` more, high ones ``reserve_high`` more, and a
        critical task goes first to the next free process.  Unless set, the
        pool has one process per CPU and no reserves.  It is created on first
        use; the numbers may be changed at any time (processes are added at
        once, surplus ones leave when free).

        Args:
            context: a start method name (``"forkserver"``, ``"spawn"``) or
                a multiprocessing context; default ``forkserver`` where
                available, else ``spawn``.  Only before the pool starts.
            max_tasks_per_child: replace a worker process after it has run
                that many tasks.  Only before the pool starts.
            executor: a ``concurrent.futures.Executor`` (or any object
                with an executor's ``submit``) to run ``TT_MP`` tasks --
                and ``co_mp_apply`` and process-pool workers -- instead of
                the own processes, from now on.  The numbers above still
                rule: the executor is treated as ``pool_size +
                reserve_normal + reserve_high`` slots (``pool_size``
                defaults to its ``_max_workers`` when it has one, else the
                CPU count; for a dask ``distributed.Client``, the
                cluster's worker threads) and gets only tasks that may
                start now, so priorities stay strict.  Task ids, info,
                callbacks, hooks and ``delay`` work as before.  A
                ``timeout`` fails the task; a plain executor cannot stop
                the call (it keeps its slot until it returns, as a thread
                task does), while on a dask cluster the worker running it
                is made to exit (its nanny starts a new one).  The
                executor stays yours: ``stop()`` does not shut it down.
                Later calls without ``executor`` change the numbers.

        Raises:
            ValueError: ``executor`` given while process tasks are queued
                or running, or with ``context``/``max_tasks_per_child``.
            TypeError: ``executor`` has no callable ``submit``.
        """
        check_mp_numbers(pool_size, max_tasks_per_child)
        engine = self._engine
        if executor is not None:
            if not callable(getattr(executor, "submit", None)):
                raise TypeError(f"executor must have a submit() method, "
                                f"got {executor!r}")
            if context is not None or max_tasks_per_child is not None:
                raise ValueError("context and max_tasks_per_child are "
                                 "for the own processes, not an executor")
            size = pool_size or backend_for(executor).default_size() \
                or default_mp_pool_size()
            validate_pool_numbers(size, reserve_normal or 0,
                                  reserve_high or 0)
            engine.use_executor(executor, size, reserve_normal or 0,
                                reserve_high or 0)
            return
        pool = engine.mp_pool
        if pool is engine.processes:
            pool.configure(pool_size, reserve_normal, reserve_high, context,
                           max_tasks_per_child)
        elif context is not None or max_tasks_per_child is not None:
            raise ValueError("process tasks run on an executor: context and "
                             "max_tasks_per_child do not apply")
        else:
            pool.configure(pool_size, reserve_normal, reserve_high)

    def create_mp_pool(self, processes: Optional[int] = None) -> None:
        """Compatibility: a process pool of *processes* (default: CPU
        count) with no reserves, started now."""
        self.set_mp_pool(pool_size=processes or default_mp_pool_size(),
                         reserve_normal=0, reserve_high=0)
        self._engine.ensure_running()
        if self._engine.mp_pool is self._engine.processes:
            self._engine.processes.start()

    def register_scheduler(self, scheduler: Any) -> None:
        """Register a worker; :meth:`stop` calls its ``stop(wait=False)``
        and then waits for its runs with everything else."""
        self._engine.register_scheduler(scheduler)

    def unregister_scheduler(self, scheduler: Any) -> None:
        """Forget a registered worker (unknown ones are ignored)."""
        self._engine.unregister_scheduler(scheduler)

    # -- tasks -------------------------------------------------------------
    def put_task(self, target: Callable[..., Any], args: Iterable[Any] = (),
                 kwargs: Optional[dict] = None,
                 callback: Optional[Callable[[Any], Any]] = None,
                 priority: int = TASK_NORMAL, delay: Optional[float] = None,
                 tt: int = TT_THREAD, task_id: Optional[str] = None, *,
                 name: Optional[str] = None,
                 error_callback: Optional[Callable[[BaseException], Any]]
                 = None,
                 timeout: Optional[float] = None) -> TaskId[Any]:
        """Submit ``target(*args, **kwargs)``; return its :class:`TaskId`
        (a ``str`` that keeps the task's outcome reachable while held).

        Same options as :func:`atasker.background_task`; ``task_id`` lets
        the caller choose the id: a ``str`` not in use, and not of the form
        of this supervisor's automatic ids (``<supervisor id>-<number>``).

        Raises:
            TypeError, ValueError: a bad argument (named in the message).
            RuntimeError: the supervisor is stopped.
        """
        check_callable("target", target, optional=False)
        args = check_args(args)
        kwargs = check_kwargs(kwargs)
        check_task_options(priority, delay, tt, callback, error_callback,
                           timeout)
        check_name(name)
        if task_id is not None:
            self._engine.registry.check_chosen_id(task_id)
        return TaskId.of(self._engine.submit(
            target=target, args=args, kwargs=kwargs,
            name=name or task_name(target), priority=priority, delay=delay,
            tt=resolve_tt(target, tt), callback=callback,
            error_callback=error_callback, timeout=timeout, task_id=task_id))

    def get_task_info(self, task_id: str) -> Optional[TaskInfo]:
        """The :class:`TaskInfo` of *task_id*, or ``None`` if it is unknown.

        A held :class:`TaskId` finds its task for as long as it is held; a
        plain string only while the task is unfinished or among the last
        ``keep_finished`` to end.
        """
        return self._engine.registry.find(task_id)

    def cancel_task(self, task_id: str) -> bool:
        """Cancel a queued or delayed task.

        Returns ``True`` if the task was waiting and is now canceled (its
        ``error_callback`` receives ``CancelledError``); ``False`` if it is
        unknown, already running or already finished.
        """
        return self._engine.cancel(task_id)

    def wait_completed(self, task_ids: Union[str, list, tuple],
                       timeout: Optional[float] = None) -> Any:
        """Wait for tasks to end and return their results.

        Args:
            task_ids: one id (returns its result) or a list/tuple of ids
                (returns a list of results, in the same order).
            timeout: seconds to wait at most; ``None`` waits for ever.

        Raises:
            The task's own exception if it failed (the first failed one, in
            order); ``concurrent.futures.CancelledError`` if it was canceled;
            ``TimeoutError`` if the tasks did not all end in time;
            ``KeyError`` for an id that is unknown or already forgotten.
        """
        return self._engine.registry.results(task_ids, timeout)

    def mark_task_completed(self, task: Optional[TaskInfo] = None,
                            task_id: Optional[str] = None) -> bool:
        """Compatibility: declare a running task completed now.

        Waiters wake at once with result ``None``; whatever the function
        returns later is discarded.  Returns ``False`` if the task had
        already ended.  Raises ``KeyError`` for an unknown id.
        """
        if task_id is None:
            if task is None:
                raise TypeError("give task or task_id")
            task_id = task.id
        return self._engine.mark_completed(task_id)

    def get_info(self, tt: Optional[int] = None, aloops: bool = True,
                 schedulers: bool = True) -> SupervisorInfo:
        """A consistent snapshot of pools, queues and unfinished tasks.

        ``tt`` limits ``task_info`` to one task type.
        """
        return supervisor_info(self._engine, tt, aloops, schedulers)

    # -- aloops ------------------------------------------------------------
    def create_aloop(self, name: str, daemon: bool = False,
                     start: bool = True, default: bool = False) -> ALoop:
        """Create an :class:`ALoop` named *name* (started unless
        ``start=False``; the default aloop if ``default=True``).

        Raises ``ValueError`` if the name is taken.
        """
        return self._engine.aloops.create(name, daemon, start, default, self)

    def get_aloop(self, name: Optional[str] = None,
                  default: bool = True) -> Optional[ALoop]:
        """The aloop named *name*; with no name, the default aloop (if
        ``default``).  ``None`` if there is no such aloop."""
        return self._engine.aloops.get(name, default)

    def set_default_aloop(self, aloop: Union[ALoop, str]) -> None:
        """Make *aloop* (an :class:`ALoop` or its name) the default one."""
        self._engine.aloops.set_default(aloop)

    def start_aloop(self, name: str) -> None:
        """Start the aloop named *name*."""
        self._engine.aloops.named(name).start()

    def stop_aloop(self, name: str, wait: Union[bool, float] = True,
                   cancel_tasks: bool = False) -> None:
        """Stop the aloop named *name* (see :meth:`ALoop.stop`)."""
        self._engine.aloops.named(name).stop(wait=wait,
                                             cancel_tasks=cancel_tasks)

    # -- hooks -------------------------------------------------------------
    def on(self, event: str, fn: Callable[[TaskInfo], Any]) -> None:
        """Call ``fn(task_info)`` on every *event* of this supervisor.

        Events: ``"task_started"`` (the task's code is about to run),
        ``"task_completed"``, ``"task_failed"`` (including timeouts and
        lost process workers), ``"task_canceled"``.  A final-event hook
        runs after the task's own callback, in the thread that ended the
        task; an exception it raises is logged and ignored.  Registering
        the same function twice calls it twice.

        Raises:
            ValueError: an unknown event; TypeError: *fn* is not callable.
        """
        self._engine.hooks.on(event, fn)

    def off(self, event: str, fn: Callable[[TaskInfo], Any]) -> bool:
        """Remove one registration of *fn* for *event*; False if absent."""
        return self._engine.hooks.off(event, fn)

    # -- observability -----------------------------------------------------
    def status(self) -> dict:
        """A JSON-ready snapshot of what the supervisor is doing (see
        :func:`atasker._status.snapshot` for the keys)."""
        return snapshot(self._engine)

    def serve_status(self, port: int = 0, host: str = "127.0.0.1", *,
                     allow_remote: bool = False) -> StatusServer:
        """Serve this supervisor's status over HTTP from a thread.

        ``port=0`` picks a free port (see the returned server's ``port``
        and ``url``).  The server listens on loopback unless *host* is
        another address *and* ``allow_remote=True``: it has no
        authentication.  Without ``allow_remote`` it answers only requests
        whose ``Host`` names the loopback (others get 421: DNS
        rebinding).  It serves every client at once, each connection
        within 5 seconds, and holds this supervisor weakly (503 once it is
        gone).  Call ``stop()`` on the returned :class:`StatusServer` to
        close it (it is closed at interpreter exit in any case).

        Raises:
            ValueError: a non-loopback *host* without ``allow_remote``, or
                a bad port.
            OSError: the address cannot be bound.
        """
        check_address(port, host, allow_remote)
        return StatusServer(self, host, port, allow_remote=allow_remote)

    # -- the app runner (see atasker._app) ----------------------------------
    init_task = _to_app(App.init_task)
    task = _to_app(App.task)
    timer = _to_app(App.timer)
    worker = _to_app(App.worker)
    run = _to_app(App.run)


#: The global supervisor used when none is given.
task_supervisor = TaskSupervisor(supervisor_id="default")
_default.register(TaskSupervisor, task_supervisor)
