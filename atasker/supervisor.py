"""The task supervisor: the task registry and its state machine, and the
thread pool, process pool, timers and aloops that it owns.

The aloop and process-pool parts of the class live in ``supervisor_aloops``
and ``supervisor_mp``, event hooks in ``hooks``, the app runner in ``app``
and the status snapshot and server in ``status`` (mixins); they share this
module's lock and rules.

State and its owner
-------------------
``TaskSupervisor._lock`` (one ``threading.Lock``) guards: ``_tasks`` (the
registry), ``_finished`` (bounded history), ``_unfinished``, ``_state``, the
thread and process pools' dispatchers and attributes, ``_mp_*``,
``_schedulers``, ``_aloops``/``_default_aloop``, ``_totals``,
``_started_at``, ``_on_quiet`` (the app runner's wake-up, called under the
lock), and every ``TaskInfo``'s ``status``/``time_*``/``result``/
``exception`` and private fields while the task is not final.
``_all_done`` is a condition on that lock, notified when ``_unfinished``
drops to zero.  ``Timers`` has a lock of its own, taken after
(never before) the supervisor's; ``_hooks_lock`` (hooks) and ``_app_lock``
(app declarations) are taken alone.

``_state`` is also read without the lock on the submit fast path and in
``is_active``: a stale read only sends the caller to the locked check.

Invariants: ``_unfinished`` equals the number of registered tasks whose status
is not final; ``dispatcher.running`` equals the number of pool slots held
(started tasks whose thread has not returned, including timed-out ones).

Every status change goes through one transition method: ``_enqueue_locked``
(new/delayed → queued), ``_start_locked`` (queued → started) and
``_finalize_locked`` (→ completed | failed | canceled).  User code --
callbacks, alarm functions, the task itself -- runs only without the lock.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref
from concurrent.futures import CancelledError
from typing import Any, Callable, Iterable, Optional, Union, cast

from .aio import ALoop
from .constants import (
    SUPERVISOR_NEW, SUPERVISOR_RUNNING, SUPERVISOR_STOPPED,
    SUPERVISOR_STOPPING, BAND_NAMES, FINAL_STATUSES, TASK_NORMAL, TASK_STATUS_CANCELED,
    TASK_STATUS_COMPLETED, TASK_STATUS_DELAYED, TASK_STATUS_FAILED,
    TASK_STATUS_QUEUED, TASK_STATUS_STARTED, TT_COROUTINE, TT_MP, TT_THREAD)
from .app import AppMixin
from .dispatcher import Dispatcher, validate_pool_numbers
from .errors import TaskTimeoutError
from .hooks import HooksMixin
from .mp import accepts_task_id, pickle_task
from .process_pool import ProcessPool
from .status import StatusMixin, stop_all_servers
from .supervisor_aloops import AloopsMixin
from .supervisor_mp import ProcessPoolMixin
from .taskinfo import SupervisorInfo, TaskInfo, log_failure
from .thread_pool import ThreadPool
from .timers import Timers
from .validation import check_callable, check_kwargs, check_seconds, \
    check_task_options, resolve_tt, task_name

__all__ = ["TaskSupervisor", "SupervisorInfo", "task_supervisor"]

logger = logging.getLogger("atasker")

_NEW, _RUNNING, _STOPPING, _STOPPED = (
    SUPERVISOR_NEW, SUPERVISOR_RUNNING, SUPERVISOR_STOPPING,
    SUPERVISOR_STOPPED)

#: every supervisor that may own threads; stopped at interpreter exit
_live: "weakref.WeakSet[TaskSupervisor]" = weakref.WeakSet()


#: index in TaskSupervisor._totals lists, by final status
_TOTAL_INDEX = {TASK_STATUS_COMPLETED: 0, TASK_STATUS_FAILED: 1,
                TASK_STATUS_CANCELED: 2}


def _default_pool_size() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


class _Waiter:
    """One ``wait_completed`` call: released when ``count`` tasks ended.

    ``release()`` is called once, under the supervisor's lock, by the
    transition that ends the last of the tasks.
    """

    __slots__ = ("count", "lock", "release")

    def __init__(self, count: int) -> None:
        self.count = count
        self.lock = threading.Lock()
        self.lock.acquire()
        self.release = self.lock.release


class TaskSupervisor(AloopsMixin, ProcessPoolMixin, HooksMixin, AppMixin,
                     StatusMixin):
    """Runs tasks on a prioritised thread pool, process pool and aloops.

    ``pool_size`` (default ``min(32, CPU count + 4)``), ``reserve_normal`` and
    ``reserve_high`` are the thread pool numbers of :meth:`set_thread_pool`.
    A supervisor starts by itself on first use; after :meth:`stop`,
    submitting raises ``RuntimeError`` until :meth:`start` is called again.

    Guarantees: every accepted task ends in exactly one of completed, failed
    or canceled, visible in :meth:`get_task_info` and through its callbacks;
    no thread of a supervisor outlives ``stop(wait=True)`` or the interpreter.

    Tunable attributes: ``keep_finished`` (how many finished tasks stay
    visible, default 10,000), ``idle_thread_timeout`` (seconds an idle pool
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

    def __init__(self, pool_size: Optional[int] = None,
                 reserve_normal: int = 5, reserve_high: int = 5, *,
                 supervisor_id: Optional[str] = None,
                 task_context: Optional[Callable[[], Any]] = None) -> None:
        if pool_size is None:
            pool_size = _default_pool_size()
        validate_pool_numbers(pool_size, reserve_normal, reserve_high)
        check_callable("task_context", task_context)
        self.id = supervisor_id or os.urandom(4).hex()
        self._task_context = task_context
        self._init_hooks()
        self._init_app()
        #: tasks that reached a final status: tt -> [completed, failed,
        #: canceled] (guarded by ``_lock``)
        self._totals = {TT_THREAD: [0, 0, 0], TT_MP: [0, 0, 0],
                        TT_COROUTINE: [0, 0, 0]}
        #: time.monotonic() of the last start(), else None
        self._started_at: Optional[float] = None
        #: called (lock held, must not block) when the supervisor may have
        #: become idle or stopped: see AppMixin.run
        self._on_quiet: Optional[Callable[[], None]] = None
        self._lock = threading.Lock()
        self._all_done = threading.Condition(self._lock)
        self._stopped_event = threading.Event()
        self._state = _NEW
        self._tasks: dict[str, TaskInfo] = {}
        self._finished: "list[TaskInfo]" = []
        self._finished_head = 0
        self._unfinished = 0
        self._id_prefix = f"{self.id}-"
        self._ids = itertools.count(1)      # next() is atomic
        self._dispatcher = Dispatcher(pool_size, reserve_normal, reserve_high)
        self._pool = ThreadPool(self._lock, self._dispatcher, self,
                                name=f"atasker_{self.id}")
        # The process pool is made on first use.  ``_mp_create`` serialises
        # that (it is taken before, never inside, ``_lock``); ``_lock``
        # guards the attributes themselves.
        self._mp_create = threading.Lock()
        self._mp_pool: Optional[ProcessPool] = None
        self._mp_numbers: tuple[Optional[int], int, int] = (None, 0, 0)
        self._mp_context: Any = None
        self._mp_max_tasks: Optional[int] = None
        self._timers = Timers(f"atasker_{self.id}")
        self._schedulers: list[Any] = []
        # aloops by name, and the default one; ``_aloop_create`` serialises
        # making the implicit "default" aloop (taken before ``_lock``)
        self._aloops: dict[str, ALoop] = {}
        self._default_aloop: Optional[ALoop] = None
        self._aloop_create = threading.Lock()
        self.keep_finished = 10_000
        self.idle_thread_timeout = 60.0
        #: compatibility only: nothing in atasker polls
        self.poll_delay = 0.1
        self.timeout_warning: Optional[float] = None
        self.timeout_warning_func: Optional[Callable[[TaskInfo], Any]] = None
        self.timeout_critical: Optional[float] = None
        self.timeout_critical_func: Optional[Callable[[TaskInfo], Any]] = None

    def __repr__(self) -> str:
        return f"<TaskSupervisor {self.id} {self._state}>"

    # ------------------------------------------------------------------
    # lifecycle
    # ------------------------------------------------------------------
    def start(self) -> None:
        """Start accepting tasks (done implicitly on first use).

        Calling it on a running supervisor does nothing; calling it after
        :meth:`stop` makes the supervisor usable again.
        """
        with self._lock:
            if self._state == _RUNNING:
                return
            self._state = _RUNNING
            self._started_at = time.monotonic()
            self._pool.shutdown_locked(False)
            old_mp = self._mp_pool
            if old_mp is not None and old_mp.closing:
                self._mp_pool = None    # a new one is made on demand
            else:
                old_mp = None
            self._stopped_event.clear()
            _live.add(self)
        if old_mp is not None:
            old_mp.join()
        logger.debug("supervisor %s started", self.id)

    @property
    def is_active(self) -> bool:
        """True while the supervisor accepts tasks."""
        return self._state == _RUNNING

    def _ensure_running(self) -> None:
        if self._state == _NEW:
            self.start()

    def block(self) -> None:
        """Block the calling thread until the supervisor is stopped."""
        self._stopped_event.wait()

    def stop(self, wait: Union[bool, float] = True,
             stop_schedulers: bool = True, cancel_tasks: bool = False) -> None:
        """Stop accepting tasks and wind down.

        Args:
            wait: ``True`` waits until every accepted task has ended and every
                pool thread has exited; a number waits at most that many
                seconds, then cancels whatever is still queued or delayed;
                ``False`` returns at once while queued work drains in the
                background.
            stop_schedulers: stop registered workers first.
            cancel_tasks: cancel queued and delayed tasks (their
                ``error_callback`` gets ``CancelledError``); running tasks
                are still waited for.

        Raises:
            RuntimeError: when asked to wait from inside one of this
                supervisor's own tasks (it would wait for itself).
        """
        if not isinstance(wait, bool):
            check_seconds("wait", wait)
        if wait is not False and (self._pool.owns_current_thread()
                                  or self._in_aloop_thread()):
            raise RuntimeError(
                "stop() cannot wait from inside a task of the same "
                "supervisor; call stop(wait=False)")
        deadline = None
        if wait is not True and wait is not False:
            deadline = time.monotonic() + wait
        with self._lock:
            if self._state in (_RUNNING, _NEW):
                self._state = _STOPPING
            schedulers = list(self._schedulers) if stop_schedulers else []
            if self._on_quiet is not None:
                self._on_quiet()
        for scheduler in schedulers:
            try:
                scheduler.stop(wait=bool(wait))
            except Exception:
                logger.exception("supervisor %s: stopping %r failed",
                                 self.id, scheduler)
        if cancel_tasks:
            self._cancel_pending()
        timed_out = False
        if wait is not False:
            if not self._wait_all_done(deadline):
                timed_out = True
                cancelled = self._cancel_pending()
                logger.warning(
                    "supervisor %s: stop(wait=%s) timed out; canceled %d "
                    "waiting tasks; running process tasks are killed, "
                    "running thread tasks go on in their threads",
                    self.id, wait, cancelled)
        with self._lock:
            aloops = list(self._aloops.values())
        for aloop in aloops:
            aloop.stop(wait=wait, cancel_tasks=timed_out)
        with self._lock:
            self._state = _STOPPED
            threads = self._pool.shutdown_locked(True)
            mp_pool = self._mp_pool
            if self._unfinished == 0:
                # otherwise the last task to end does this
                timer_thread = self._wind_down_locked()
                if timer_thread is not None:
                    threads.add(timer_thread)
        self._stopped_event.set()
        if mp_pool is not None and timed_out:
            mp_pool.terminate()
        if wait is not False:
            threads.discard(threading.current_thread())
            for thread in threads:
                thread.join(None if deadline is None
                            else max(0.0, deadline - time.monotonic()))
            if mp_pool is not None:
                mp_pool.join(None if deadline is None
                             else max(0.0, deadline - time.monotonic()))
        logger.debug("supervisor %s stopped", self.id)

    def _wait_all_done(self, deadline: Optional[float]) -> bool:
        with self._all_done:
            while self._unfinished:
                if deadline is None:
                    self._all_done.wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._all_done.wait(left)
        return True

    def _cancel_pending(self) -> int:
        """Cancel every queued and delayed task; return how many."""
        with self._lock:
            canceled = self._dispatcher.drain()
            if self._mp_pool is not None:
                canceled += self._mp_pool.dispatcher.drain()
            for record in canceled:
                record._key = 0         # no longer in the dispatcher
            canceled.extend(
                record for record in self._tasks.values()
                if record.status == TASK_STATUS_DELAYED or (
                    record.status == TASK_STATUS_QUEUED
                    and record.tt == TT_COROUTINE))
            for record in canceled:
                self._cancel_locked(record)
        for record in canceled:
            self._after(record)
        return len(canceled)

    # ------------------------------------------------------------------
    # configuration
    # ------------------------------------------------------------------
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
        dispatcher = self._dispatcher
        with self._lock:
            dispatcher.configure(
                dispatcher.pool_size if pool_size is None else pool_size,
                dispatcher.reserve_normal if reserve_normal is None
                else reserve_normal,
                dispatcher.reserve_high if reserve_high is None
                else reserve_high)
            actions = self._pool.kick_locked()
        if actions:
            self._pool.launch(actions)

    @property
    def thread_pool_size(self) -> int:
        return self._dispatcher.pool_size

    @property
    def thread_reserve_normal(self) -> int:
        return self._dispatcher.reserve_normal

    @property
    def thread_reserve_high(self) -> int:
        return self._dispatcher.reserve_high

    def register_scheduler(self, scheduler: Any) -> None:
        """Register a worker; :meth:`stop` calls its ``stop(wait=...)``."""
        with self._lock:
            if scheduler not in self._schedulers:
                self._schedulers.append(scheduler)

    def unregister_scheduler(self, scheduler: Any) -> None:
        """Forget a registered worker (unknown ones are ignored)."""
        with self._lock:
            if scheduler in self._schedulers:
                self._schedulers.remove(scheduler)
                if not self._schedulers and self._on_quiet is not None:
                    self._on_quiet()

    # ------------------------------------------------------------------
    # submitting
    # ------------------------------------------------------------------
    def put_task(self, target: Callable[..., Any], args: Iterable[Any] = (),
                 kwargs: Optional[dict] = None,
                 callback: Optional[Callable[[Any], Any]] = None,
                 priority: int = TASK_NORMAL, delay: Optional[float] = None,
                 tt: int = TT_THREAD, task_id: Optional[str] = None, *,
                 name: Optional[str] = None,
                 error_callback: Optional[Callable[[BaseException], Any]]
                 = None,
                 timeout: Optional[float] = None) -> str:
        """Submit ``target(*args, **kwargs)``; return the task id.

        Same options as :func:`atasker.background_task`; ``task_id`` lets
        the caller choose the id (it must not be in use).

        Raises:
            TypeError, ValueError: a bad argument (named in the message).
            RuntimeError: the supervisor is stopped.
        """
        check_callable("target", target, optional=False)
        kwargs = check_kwargs(kwargs)
        check_task_options(priority, delay, tt, callback, error_callback,
                           timeout)
        tt = resolve_tt(target, tt)
        if task_id is not None and not isinstance(task_id, str):
            raise TypeError(f"task_id must be a str, not "
                            f"{type(task_id).__name__}")
        return self._submit(target, tuple(args), kwargs,
                            name or task_name(target), priority, delay,
                            callback, error_callback, timeout, task_id, tt)

    def _submit(self, target: Callable[..., Any], args: tuple, kwargs: dict,
                name: str, priority: int, delay: Optional[float],
                callback: Optional[Callable[[Any], Any]],
                error_callback: Optional[Callable[[BaseException], Any]],
                timeout: Optional[float], task_id: Optional[str] = None,
                tt: int = TT_THREAD, waiter: Any = None,
                loop: Any = None) -> str:
        """Accept a validated task (the hot path).

        *waiter*, if given, is registered on the task before it can end
        (like ``_Waiter``: ``count`` 1, ``release()``), and gets the
        task's record as ``waiter.record``.
        """
        if self._state != _RUNNING:
            self._ensure_running()
            if self._state != _RUNNING:
                raise self._stopped_error()
        if delay or timeout is not None or self.timeout_warning is not None \
                or self.timeout_critical is not None:
            self._timers.start()
        if task_id is None:
            task_id = self._new_task_id()
        payload: Any = args         # what the record keeps to run
        run_kwargs: Optional[dict] = kwargs
        pool: Any = None
        event_loop = None
        if tt == TT_THREAD:
            pool = self._pool
        elif tt == TT_COROUTINE:
            event_loop = self._event_loop_for(loop)
        else:
            pool = self._ensure_mp_pool()
            if accepts_task_id(target):
                kwargs = {**kwargs, "_task_id": task_id}
            # pickled once, here: errors reach the caller, and the bytes
            # go to the worker as they are
            payload, run_kwargs = pickle_task(target, args, kwargs), None
        now = time.time()
        with self._lock:
            if self._state != _RUNNING or (tt == TT_MP and pool.closing):
                raise self._stopped_error()
            if task_id in self._tasks:
                raise ValueError(f"task_id {task_id!r} is already in use")
            record = TaskInfo(task_id, target, tt, priority, name,
                              TASK_STATUS_QUEUED, payload, run_kwargs,
                              callback, error_callback, timeout, now)
            if waiter is not None:
                record._waiters = [waiter]
                waiter.record = record
            record._runner = event_loop
            self._tasks[task_id] = record
            self._unfinished += 1
            if delay:
                record.status = TASK_STATUS_DELAYED
                record._timer = self._timers.schedule(delay, self._on_delay,
                                                      record)
                return task_id
            if pool is None:
                actions = None
            else:
                self._enqueue_locked(record)
                actions = pool.kick_locked()
        if pool is None:
            self._launch_coroutine(record)
        elif actions:
            pool.launch(actions)
        return task_id

    def _stopped_error(self) -> RuntimeError:
        return RuntimeError(f"supervisor {self.id} is stopped: it accepts "
                            f"no tasks until start() is called")

    def _new_task_id(self) -> str:
        """A fresh task id (thread-safe)."""
        return f"{self._id_prefix}{next(self._ids)}"

    def _pool_locked(self, tt: int) -> Any:
        """The pool that runs tasks of type *tt* (not for coroutine tasks,
        which have none; lock held)."""
        return self._mp_pool if tt == TT_MP else self._pool

    # ------------------------------------------------------------------
    # transitions (lock held)
    # ------------------------------------------------------------------
    def _enqueue_locked(self, record: TaskInfo) -> None:
        record.status = TASK_STATUS_QUEUED
        record._key = self._pool_locked(record.tt).dispatcher.push(
            record.priority, record)
        warn, crit = self.timeout_warning, self.timeout_critical
        if warn is not None:
            self._timers.schedule(warn, self._on_queue_alarm, record, False)
        if crit is not None:
            self._timers.schedule(crit, self._on_queue_alarm, record, True)

    def _start_locked(self, record: TaskInfo) -> None:
        record.status = TASK_STATUS_STARTED
        record.time_started = time.time()
        if record._timeout is not None:
            record._timer = self._timers.schedule(
                record._timeout, self._on_timeout, record)

    def _finalize_locked(self, record: TaskInfo, status: int, result: Any,
                         exception: Optional[BaseException]) -> None:
        record.status = status
        record.result = result
        record.exception = exception
        record.time_completed = time.time()
        self._totals[record.tt][_TOTAL_INDEX[status]] += 1
        record._args = record._kwargs = None
        timer = record._timer
        if timer is not None:
            timer.cancel()
            record._timer = None
        waiters = record._waiters
        if waiters is not None:
            record._waiters = None
            for waiter in waiters:
                waiter.count -= 1
                if not waiter.count:
                    waiter.release()
        self._remember_locked(record)
        self._unfinished -= 1
        if not self._unfinished:
            if self._on_quiet is not None:
                self._on_quiet()
            if self._state != _RUNNING:
                self._all_done.notify_all()
                if self._state == _STOPPED:
                    self._wind_down_locked()

    def _wind_down_locked(self) -> Optional[threading.Thread]:
        """Stopped and nothing left to do: let timers and processes go.

        Returns the timer thread, for joining.
        """
        if self._mp_pool is not None:
            self._mp_pool.close_locked()
        return self._timers.stop()

    def _remember_locked(self, record: TaskInfo) -> None:
        """Keep *record* in the bounded history; forget the oldest."""
        finished = self._finished
        finished.append(record)
        excess = len(finished) - self._finished_head - self.keep_finished
        if excess > 0:
            tasks = self._tasks
            head = self._finished_head
            for old in finished[head:head + excess]:
                if tasks.get(old.id) is old:
                    del tasks[old.id]
            head += excess
            # compact once the dead prefix is as long as the live part
            if head >= len(finished) - head:
                del finished[:head]
                head = 0
            self._finished_head = head

    def _cancel_locked(self, record: TaskInfo) -> None:
        if record.status == TASK_STATUS_QUEUED:
            # callers that drained the dispatcher have removed it already
            if record._key:
                self._pool_locked(record.tt).dispatcher.remove(
                    record.priority, record._key)
        self._finalize_locked(record, TASK_STATUS_CANCELED, None,
                              CancelledError(f"task {record.id} canceled"))

    # ------------------------------------------------------------------
    # thread pool host protocol
    # ------------------------------------------------------------------
    def _run(self, record: TaskInfo) -> tuple[bool, Any]:
        if self._hooks:
            self._emit("task_started", record)
        try:
            # _args/_kwargs are set until the task ends
            if self._task_context is None:
                return True, record.task(
                    *record._args, **record._kwargs)  # type: ignore[arg-type]
            with self._task_context():
                return True, record.task(
                    *record._args, **record._kwargs)  # type: ignore[arg-type]
        except BaseException as exc:  # delivered to the task's owner
            log_failure(record, exc)
            return False, exc

    def _finish_locked(self, record: TaskInfo,
                       outcome: tuple[bool, Any]) -> bool:
        if record.status != TASK_STATUS_STARTED:
            return False        # already failed by timeout, or marked
        ok, value = outcome
        if ok:
            self._finalize_locked(record, TASK_STATUS_COMPLETED, value, None)
        else:
            self._finalize_locked(record, TASK_STATUS_FAILED, None, value)
        return True

    def _after(self, record: TaskInfo) -> None:
        """Log the end of a task and run its callback (no lock held)."""
        status = record.status
        if status == TASK_STATUS_COMPLETED:
            callback, argument = record._callback, record.result
        else:
            callback, argument = record._error_callback, record.exception
        record._callback = record._error_callback = None
        if callback is not None:
            try:
                callback(argument)
            except Exception:
                logger.exception("callback %r of task %s (%s) raised",
                                 callback, record.id, record.name)
        if self._hooks:
            self._emit_final(record)

    # ------------------------------------------------------------------
    # timer callbacks (timer thread, no lock held on entry)
    # ------------------------------------------------------------------
    def _on_delay(self, record: TaskInfo) -> None:
        with self._lock:
            if record.status != TASK_STATUS_DELAYED:
                return
            record._timer = None
            if record.tt == TT_COROUTINE:
                record.status = TASK_STATUS_QUEUED
                pool = actions = None
            else:
                self._enqueue_locked(record)
                pool = self._pool_locked(record.tt)
                actions = pool.kick_locked()
        if pool is None:
            self._launch_coroutine(record)
        elif actions:
            pool.launch(actions)

    def _on_timeout(self, record: TaskInfo) -> None:
        with self._lock:
            if record.status != TASK_STATUS_STARTED:
                return
            record._timer = None
            self._finalize_locked(
                record, TASK_STATUS_FAILED, None,
                TaskTimeoutError(record.id, cast(float, record._timeout)))
            mp_pool = self._mp_pool if record.tt == TT_MP else None
            runner = record._runner if record.tt == TT_COROUTINE else None
        if mp_pool is not None:
            mp_pool.kill_task(record)
        elif runner is not None:
            runner.get_loop().call_soon_threadsafe(runner.cancel)
        else:
            logger.warning(
                "task %s (%s) timed out after %g s; its thread cannot be "
                "killed and keeps its pool slot until the function returns",
                record.id, record.name, record._timeout)
        self._after(record)

    def _on_queue_alarm(self, record: TaskInfo, critical: bool) -> None:
        with self._lock:
            if record.status != TASK_STATUS_QUEUED:
                return
            waited = time.time() - record.time_queued
        if critical:
            func = self.timeout_critical_func
            logger.critical("task %s (%s) has waited %.3f s in the queue",
                            record.id, record.name, waited)
        else:
            func = self.timeout_warning_func
            logger.warning("task %s (%s) has waited %.3f s in the queue",
                           record.id, record.name, waited)
        if func is not None:
            try:
                func(record)
            except Exception:
                logger.exception("queue-wait alarm function %r raised", func)

    # ------------------------------------------------------------------
    # querying, waiting, canceling
    # ------------------------------------------------------------------
    def get_task_info(self, task_id: str) -> Optional[TaskInfo]:
        """The :class:`TaskInfo` of *task_id*, or ``None`` if it is unknown
        or finished long enough ago to be forgotten (see ``keep_finished``).
        """
        return self._tasks.get(task_id)

    def cancel_task(self, task_id: str) -> bool:
        """Cancel a queued or delayed task.

        Returns ``True`` if the task was waiting and is now canceled (its
        ``error_callback`` receives ``CancelledError``); ``False`` if it is
        unknown, already running or already finished.
        """
        with self._lock:
            record = self._tasks.get(task_id)
            if record is None or record.status not in (TASK_STATUS_QUEUED,
                                                       TASK_STATUS_DELAYED):
                return False
            self._cancel_locked(record)
        self._after(record)
        return True

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
        single = isinstance(task_ids, str)
        ids: Union[list, tuple]
        if single:
            ids = [task_ids]
        elif isinstance(task_ids, (list, tuple)):
            ids = task_ids
        else:
            raise TypeError(f"task_ids must be a str, list or tuple, not "
                            f"{type(task_ids).__name__}")
        results = []
        for record in self._wait_records(ids, timeout):
            if record.status != TASK_STATUS_COMPLETED:
                raise cast(BaseException, record.exception)
            results.append(record.result)
        return results[0] if single else results

    def _wait_records(self, ids: Union[list, tuple],
                      timeout: Optional[float]) -> list[TaskInfo]:
        """Wait until the tasks *ids* have ended; return their records."""
        check_seconds("timeout", timeout)
        with self._lock:
            records = []
            for task_id in ids:
                record = self._tasks.get(task_id)
                if record is None:
                    raise KeyError(f"unknown task id {task_id!r} (never "
                                   f"submitted here, or already forgotten)")
                records.append(record)
            pending = [r for r in records if r.status not in FINAL_STATUSES]
            waiter = None
            if pending:
                waiter = _Waiter(len(pending))
                for record in pending:
                    if record._waiters is None:
                        record._waiters = [waiter]
                    else:
                        record._waiters.append(waiter)
        if waiter is not None and not waiter.lock.acquire(
                timeout=-1 if timeout is None else timeout):
            with self._lock:
                if waiter.count:
                    for record in pending:
                        if record._waiters and waiter in record._waiters:
                            record._waiters.remove(waiter)
                    raise TimeoutError(
                        f"{waiter.count} of {len(ids)} tasks did not end "
                        f"within {timeout:g} s")
        return records

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
        with self._lock:
            record = self._tasks.get(task_id)
            if record is None:
                raise KeyError(f"unknown task id {task_id!r}")
            if record.status != TASK_STATUS_STARTED:
                return False
            self._finalize_locked(record, TASK_STATUS_COMPLETED, None, None)
        self._after(record)
        return True

    def get_info(self, tt: Optional[int] = None, aloops: bool = True,
                 schedulers: bool = True) -> SupervisorInfo:
        """A consistent snapshot of pools, queues and unfinished tasks.

        ``tt`` limits ``task_info`` to one task type.
        """
        dispatcher = self._dispatcher
        with self._lock:
            info = SupervisorInfo(
                id=self.id, active=self._state == _RUNNING,
                started=self._state != _NEW,
                thread_pool_size=dispatcher.pool_size,
                thread_reserve_normal=dispatcher.reserve_normal,
                thread_reserve_high=dispatcher.reserve_high,
                thread_tasks_count=dispatcher.running,
                thread_queue=dispatcher.queued(),
                thread_queue_by_band={
                    name: dispatcher.queued(band)
                    for band, name in enumerate(BAND_NAMES)},
                thread_threads=self._pool.thread_count)
            info.mp_pool_size, info.mp_reserve_normal, \
                info.mp_reserve_high = self._mp_limits_locked()
            mp_pool = self._mp_pool
            if mp_pool is not None:
                info.mp_tasks_count = mp_pool.dispatcher.running
                info.mp_queue = mp_pool.dispatcher.queued()
                info.mp_processes = mp_pool.process_count
            if schedulers:
                info.schedulers = list(self._schedulers)
            if aloops:
                info.aloops = dict(self._aloops)
            info.task_info = {
                task_id: record for task_id, record in self._tasks.items()
                if record.status not in FINAL_STATUSES
                and (tt is None or record.tt == tt)}
        return info


def resolve_supervisor(supervisor: Optional[TaskSupervisor]
                       ) -> TaskSupervisor:
    """*supervisor*, or the global one for ``None``; ``TypeError`` for
    anything else."""
    if supervisor is None:
        return task_supervisor
    if not isinstance(supervisor, TaskSupervisor):
        raise TypeError(f"supervisor must be a TaskSupervisor, got "
                        f"{supervisor!r}")
    return supervisor


def _stop_all_at_exit() -> None:
    for supervisor in list(_live):
        try:
            supervisor.stop(wait=True)
        except Exception:
            logger.exception("stopping supervisor %s at exit failed",
                             supervisor.id)
    stop_all_servers()


# Run before the interpreter joins threads, as concurrent.futures does, so
# queued work still drains and pool threads may still be started; fall
# back to atexit where that hook does not exist.
_register_atexit = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:
    _register_atexit(_stop_all_at_exit)
else:  # pragma: no cover
    import atexit
    atexit.register(_stop_all_at_exit)

#: The global supervisor used when none is given.
task_supervisor = TaskSupervisor(supervisor_id="default")
