"""Workers: objects that keep generating tasks (the base and the loop,
async and event workers; timed ones in ``_timed_workers``, the queue worker
in ``_queue_worker``).

Every run of a worker's executor is a task of its supervisor -- on the
thread pool, the process pool (a ``run`` staticmethod) or an aloop (a
coroutine executor) -- submitted with the worker's priority, so it shows in
``get_info()`` and counts in its pool band.  What starts the next run is
event-driven: the end of the previous run (its task callback), the
engine's timer heap, a ``put()`` or a ``trigger()``.  Nothing polls.

State
-----
Each worker's ``_lock`` guards ``_state``, ``_generation``, ``_runs``
(task ids of runs decided and not yet ended), ``_due`` (runs decided but
not yet submitted) and the subclass's own fields listed in its docstring.
``_generation`` grows on every start and stop, so a run decided, or ended,
before a stop never starts another one.  Runs are decided under ``_lock``
and submitted after it is released, under ``_submit_lock`` (an ``RLock``:
a submission that fails at once calls the run's error callback in the
same thread, which may decide the next run).  ``_submit_lock`` is taken
before, never inside, ``_lock``; :meth:`BackgroundWorker.stop` takes it to
let a submission in flight finish, so no run starts after ``stop()``.
Lock order: ``_submit_lock`` → ``_lock`` → the engine's lock → the
timers' lock (``_lock`` is held while scheduling a timer or unregistering
from the engine, which take only their own locks).
User code -- the executor, ``on_error``, ``process_result`` -- never runs
under either lock.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import threading
from collections import deque
from concurrent.futures import CancelledError
from typing import Any, Callable, Optional, Union

from ._constants import TASK_NORMAL, TT_COROUTINE, TT_MP, TT_THREAD
from ._default import resolve_supervisor
from ._engine import Engine
from ._validation import check_callable, check_priority

logger = logging.getLogger("atasker.workers")

_STOPPED, _STARTED = "stopped", "started"
_names = itertools.count(1)


class BackgroundWorker:
    """Runs its executor again and again, as tasks of the supervisor.

    The executor is the function given to :func:`background_worker` (or as
    ``executor_func``), else the ``run`` method of a subclass.  It receives
    the arguments of :meth:`start` plus keyword arguments ``_worker`` (this
    object), ``_worker_name`` and ``o`` (the ``o=`` given at creation).
    Returning ``False`` stops the worker.  An exception is logged by the
    supervisor and passed to ``on_error(e=exception, **on_error_kwargs)``;
    the worker keeps going.

    A subclass whose ``run`` is a ``staticmethod`` runs it in the process
    pool (with the :meth:`start` arguments only) and receives each result
    in :meth:`process_result`.  A coroutine executor runs on the default
    aloop or ``loop=``.

    Guarantees: after :meth:`stop` the executor never starts again (until
    :meth:`start`); ``stop(wait=True)`` returns once the current run ended.
    """

    _tt = TT_THREAD

    def __init__(self, name: Optional[str] = None,
                 executor_func: Optional[Callable[..., Any]] = None, *,
                 priority: int = TASK_NORMAL, o: Any = None,
                 on_error: Optional[Callable[..., Any]] = None,
                 on_error_kwargs: Optional[dict] = None,
                 supervisor: Any = None,
                 loop: Any = None, **kwargs: Any) -> None:
        check_callable("executor_func", executor_func)
        check_callable("on_error", on_error)
        check_priority(priority)
        for legacy in ("daemon", "poll_delay"):
            kwargs.pop(legacy, None)        # accepted for compatibility
        if kwargs:
            raise TypeError(f"unexpected argument(s): {', '.join(kwargs)}")
        self.supervisor = resolve_supervisor(supervisor)
        self._engine: Engine = self.supervisor._engine
        self._executor, self._tt = self._pick_executor(executor_func)
        self.name = name or getattr(executor_func, "__name__", None) or \
            f"{type(self).__name__}-{next(_names)}"
        self.priority = priority
        self.o = o
        self.on_error = on_error
        self.on_error_kwargs = dict(on_error_kwargs or {})
        self.loop = loop
        self._lock = threading.Lock()
        self._submit_lock = threading.RLock()
        self._state = _STOPPED
        self._generation = 0
        self._runs: set[str] = set()
        self._due: deque[tuple[int, str, tuple]] = deque()
        self._start_args: tuple = ()
        self._start_kwargs: dict = {}
        self._inside = threading.local()

    def _pick_executor(self, executor_func: Optional[Callable[..., Any]]
                       ) -> tuple[Callable[..., Any], int]:
        if executor_func is not None:
            return executor_func, TT_COROUTINE if \
                inspect.iscoroutinefunction(executor_func) else TT_THREAD
        if isinstance(inspect.getattr_static(type(self), "run"),
                      staticmethod):
            return type(self).run, TT_MP
        tt = TT_COROUTINE if inspect.iscoroutinefunction(self.run) \
            else self._tt
        return self.run, tt

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self._state}>"

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The executor, when none was given: override it."""
        raise NotImplementedError(
            f"{type(self).__name__} needs an executor: pass executor_func "
            f"or override run()")

    def process_result(self, result: Any) -> Any:
        """Receive the result of a process-pool ``run``; return ``False``
        to stop the worker."""
        return None

    # -- lifecycle ---------------------------------------------------------
    def start(self, *args: Any, **kwargs: Any) -> None:
        """Start the worker; *args*/*kwargs* go to every executor run.

        ``_priority``, ``_worker_name``, ``_loop`` and the subclass's
        ``_interval``/``_delay``/``_delay_before`` override the values
        given at creation.  Starting a started worker does nothing.

        Raises ``RuntimeError`` if the supervisor is stopped.
        """
        overrides = {key: kwargs.pop(key) for key in list(kwargs)
                     if key.startswith("_") and key[1:] in self._overridable}
        self._engine.ensure_running()
        with self._lock:
            if self._state == _STARTED:
                return
            for key, value in overrides.items():
                self._override(key[1:], value)
            self._start_args, self._start_kwargs = args, kwargs
            self._state = _STARTED
            self._generation += 1
            self._on_start_locked()
        self._engine.register_scheduler(self)
        self._submit_due(quiet=False)

    _overridable = frozenset(("priority", "worker_name", "loop"))

    def _override(self, key: str, value: Any) -> None:
        if key == "priority":
            check_priority(value)
            self.priority = value
        elif key == "worker_name":
            self.name = value
        else:
            setattr(self, key, value)

    def stop(self, wait: Union[bool, float] = True) -> None:
        """Stop: no run starts any more.  Runs not yet started are
        canceled; ``wait=True`` returns once the current run (if any) has
        ended, a number of seconds waits that long at most.  Stopping from
        inside the executor never waits for itself."""
        with self._lock:
            if self._state == _STOPPED:
                return
            self._state = _STOPPED
            self._generation += 1
            self._on_stop_locked()
        with self._submit_lock:     # a submission in flight lands first
            with self._lock:
                # runs decided but not submitted never will be: undo them
                for _, task_id, extra in self._due:
                    self._undo_locked(task_id, extra)
                self._due.clear()
                runs = list(self._runs)
        engine = self._engine
        engine.unregister_scheduler(self)
        for task_id in runs:
            engine.cancel(task_id)
        # ids already forgotten belong to runs that ended long ago
        runs = [task_id for task_id in runs
                if task_id in engine.registry.tasks]
        if wait is not False and runs and \
                not getattr(self._inside, "flag", False):
            try:
                engine.registry.wait(runs, None if wait is True else wait)
            except TimeoutError:    # a bounded wait ran out
                pass

    def restart(self, *args: Any, **kwargs: Any) -> None:
        """Stop (waiting for the current run), then start again."""
        self.stop()
        self.start(*args, **kwargs)

    def is_active(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._state == _STARTED

    is_started = is_active

    def is_stopped(self) -> bool:
        """True when stopped and no run of it is left."""
        with self._lock:
            return self._state == _STOPPED and not self._runs

    # -- subclass hooks (worker lock held) ---------------------------------
    def _on_start_locked(self) -> None:
        self._run_locked()

    def _on_stop_locked(self) -> None:
        pass

    def _after_run_locked(self) -> None:
        self._run_locked()

    def _run_failed_locked(self, extra: tuple) -> None:
        """A decided run could not be submitted (*extra*: its arguments)."""

    def _undo_locked(self, task_id: str, extra: tuple) -> None:
        """Forget a decided run that will not be submitted."""
        self._runs.discard(task_id)
        self._run_failed_locked(extra)

    # -- running -----------------------------------------------------------
    def _run_locked(self, *extra: Any) -> None:
        """Decide one run of the executor (lock held); it is submitted by
        :meth:`_submit_due` once the lock is released."""
        task_id = self._engine.registry.new_id()
        self._runs.add(task_id)
        self._due.append((self._generation, task_id, extra))

    def _submit_due(self, quiet: bool) -> None:
        """Submit the runs decided so far (no lock held).

        Each caller submits what is due when it gets ``_submit_lock`` --
        runs decided meanwhile are submitted by the thread that decided
        them, so no caller loops for ever behind a fast loop worker.  If
        the supervisor refuses a run, the worker stops: *quiet* (the end of
        a run, a timer) logs it -- the supervisor is stopping -- else the
        error is raised to the caller.
        """
        with self._submit_lock:
            with self._lock:
                due = list(self._due)
                self._due.clear()
            for index, (generation, task_id, extra) in enumerate(due):
                with self._lock:
                    if generation != self._generation:  # stopped meanwhile
                        self._undo_locked(task_id, extra)
                        continue
                try:
                    self._submit(generation, task_id, extra)
                except Exception as exc:
                    with self._lock:
                        for _, undone, undone_extra in due[index:]:
                            self._undo_locked(undone, undone_extra)
                    self.stop(wait=False)
                    if not quiet:
                        raise
                    logger.debug("worker %s stopped: %s", self.name, exc)
                    return

    def _submit(self, generation: int, task_id: str, extra: tuple) -> None:
        args = extra + self._start_args
        if self._tt == TT_MP:
            target: Callable[..., Any] = self._executor
            kwargs = self._start_kwargs
        else:
            target = self._call
            kwargs = {"_executor_args": args}
            args = ()
        self._engine.submit(
            target=target, args=args, kwargs=kwargs, name=self.name,
            priority=self.priority, tt=self._tt, task_id=task_id,
            callback=functools.partial(self._ended, generation, task_id,
                                       True),
            error_callback=functools.partial(self._ended, generation,
                                             task_id, False),
            loop=self.loop)

    def _call(self, _executor_args: tuple) -> Any:
        """A thread or coroutine run: the executor with its keywords."""
        call = functools.partial(
            self._executor, *_executor_args, _worker=self,
            _worker_name=self.name, o=self.o, **self._start_kwargs)
        if self._tt == TT_COROUTINE:
            return self._call_async(call)
        self._inside.flag = True
        try:
            return call()
        finally:
            self._inside.flag = False

    async def _call_async(self, call: Callable[..., Any]) -> Any:
        self._inside.flag = True
        try:
            return await call()
        finally:
            self._inside.flag = False

    def _ended(self, generation: int, task_id: str, ok: bool,
               value: Any) -> None:
        """A run's task has ended (its callback; no lock held)."""
        with self._lock:
            self._runs.discard(task_id)
            current = generation == self._generation
        if not ok:
            if isinstance(value, CancelledError) and not current:
                return                  # canceled by stop()
            self._handle_error(value)
        else:
            try:
                verdict = self.process_result(value) \
                    if self._tt == TT_MP else value
            except BaseException:  # noqa: B036 -- user code; we go on
                logger.exception("worker %s: process_result raised",
                                 self.name)
                verdict = None
            if verdict is False:
                self.stop(wait=False)
                return
        with self._lock:
            if generation == self._generation:
                self._after_run_locked()
        self._submit_due(quiet=True)

    def _handle_error(self, exc: BaseException) -> None:
        # the supervisor has logged the failure already
        if self.on_error is None:
            return
        try:
            self.on_error(e=exc, **self.on_error_kwargs)
        except BaseException:  # noqa: B036 -- user code; we go on
            logger.exception("worker %s: on_error raised", self.name)


class BackgroundAsyncWorker(BackgroundWorker):
    """A loop worker whose executor is a coroutine function, run on the
    supervisor's default aloop or ``loop=`` (an aloop, its name or an
    asyncio loop)."""

    _tt = TT_COROUTINE


class BackgroundEventWorker(BackgroundWorker):
    """Runs its executor each time it is triggered.

    Triggers that arrive while a run is going on make one more run after it
    (they are coalesced); one that arrives before :meth:`start` makes a run
    at start.  Guarded by ``_lock`` too: ``_busy``, ``_pending``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._busy = False
        self._pending = False

    def trigger(self) -> None:
        """Ask for a run (thread-safe; never blocks on a run).

        Raises ``RuntimeError`` if the supervisor is stopped."""
        with self._lock:
            if self._state != _STARTED:
                self._pending = True
                return
            self._request_locked()
        self._submit_due(quiet=False)

    trigger_threadsafe = trigger

    def _request_locked(self) -> None:
        """A run is wanted: start it, or note it for after the current."""
        if self._busy:
            self._pending = True
        else:
            self._busy = True
            self._run_locked()

    def _run_pending_locked(self) -> bool:
        """The current run ended: start the noted run, if any."""
        self._busy = False
        if not self._pending:
            return False
        self._pending = False
        self._request_locked()
        return True

    def _on_start_locked(self) -> None:
        self._run_pending_locked()

    def _after_run_locked(self) -> None:
        self._run_pending_locked()

    def _run_failed_locked(self, extra: tuple) -> None:
        self._busy = False
