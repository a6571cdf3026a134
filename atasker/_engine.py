"""The engine: one lock, the task registry, the state machine of every task,
hooks, timers, and the pools that run tasks.

Everything that submits work -- ``background_task``, ``put_task``,
``co_apply``/``co_mp_apply``, workers, collections, the app runner -- goes
through :meth:`Engine.submit`.  Pools report back through the
:class:`~atasker._pool.Owner` protocol (``start_locked``,
``finish_locked``, ``after``, ``run_task``, ``emit_started``).

State
-----
``Engine.lock`` (one ``threading.Lock``) guards ``state``, ``schedulers``,
``on_quiet``, ``started_at``, ``gave_up``, the registry (see
``_registry``), every pool's queue and bookkeeping, and every
``TaskInfo``'s fields while the task is not final.  ``_all_done`` is a
condition on it, notified when the last unfinished task of a stopping
engine ends.  ``Timers`` and each ``ALoop`` have locks of their own, taken
after (never before) the engine's.  ``state`` is also read without the lock
on the submit fast path: a stale read only sends the caller to the locked
check.

Task status moves only here, one method per transition:
:meth:`_enqueue_locked` (new/delayed → queued), :meth:`start_locked`
(queued → started) and :meth:`finish_locked` / :meth:`_cancel_locked` (→
completed | failed | canceled).  User code -- the task, callbacks, hooks,
alarm functions -- runs only without the lock, and whatever it raises is
delivered or logged: it never ends a thread of ours.

Nothing here references the public :class:`TaskSupervisor`: it holds the
engine, never the other way round, so a dropped supervisor is collected
and its finalizer stops the engine (see ``_shutdown``).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from concurrent.futures import CancelledError
from typing import Any, Callable, Optional

from ._constants import (SUPERVISOR_NEW, SUPERVISOR_RUNNING,
                         SUPERVISOR_STOPPED, SUPERVISOR_STOPPING,
                         TASK_NORMAL, TASK_STATUS_CANCELED,
                         TASK_STATUS_COMPLETED,
                         TASK_STATUS_DELAYED, TASK_STATUS_FAILED,
                         TASK_STATUS_QUEUED, TASK_STATUS_STARTED,
                         TT_COROUTINE, TT_MP, TT_THREAD)
from ._coroutines import Aloops
from ._dispatcher import Dispatcher
from ._executor_pool import ExecutorPool
from ._errors import TaskTimeoutError
from ._hooks import Hooks
from ._pool import Outcome, Pool
from ._process_pool import ProcessPool
from ._registry import Registry
from ._taskinfo import TaskInfo
from ._thread_pool import ThreadPool
from ._timers import Timers

logger = logging.getLogger("atasker")

_NEW, _RUNNING, _STOPPING, _STOPPED = (
    SUPERVISOR_NEW, SUPERVISOR_RUNNING, SUPERVISOR_STOPPING,
    SUPERVISOR_STOPPED)

#: every engine that may own threads: drained at interpreter exit, reset
#: in a forked child
live_engines: "weakref.WeakSet[Engine]" = weakref.WeakSet()


class Engine:
    """The working part of a :class:`~atasker.TaskSupervisor`."""

    def __init__(self, engine_id: str, pool_size: int, reserve_normal: int,
                 reserve_high: int,
                 task_context: Optional[Callable[[], Any]]) -> None:
        self.id = engine_id
        self.lock = threading.Lock()
        self._all_done = threading.Condition(self.lock)
        self.stopped_event = threading.Event()
        self.state = _NEW
        self.started_at: Optional[float] = None
        #: a bounded stop gave up on running tasks: exit does not wait again
        self.gave_up = False
        #: called (lock held, must not block) when the engine may have
        #: become idle or stopped (the app runner's wake-up)
        self.on_quiet: Optional[Callable[[], None]] = None
        self.schedulers: list[Any] = []
        self.registry = Registry(self.lock, f"{engine_id}-")
        self._new_id = self.registry.new_id         # the submit hot path
        self._tasks = self.registry.tasks           # (read-only here)
        self._home = self.registry.token
        self.hooks = hooks = Hooks(task_context)
        # the Owner protocol's user-code calls, made by the hooks object
        self.run_task = hooks.run_task
        self.emit_started = hooks.emit_started
        self.after = hooks.after
        self.timers = Timers(f"atasker_{engine_id}")
        self.idle_thread_timeout = 60.0
        self.timeout_warning: Optional[float] = None
        self.timeout_warning_func: Optional[Callable[[TaskInfo], Any]] = None
        self.timeout_critical: Optional[float] = None
        self.timeout_critical_func: Optional[Callable[[TaskInfo], Any]] = None
        self.threads = ThreadPool(
            self, Dispatcher(pool_size, reserve_normal, reserve_high),
            name=f"atasker_{engine_id}")
        self.processes = ProcessPool(self, name=f"atasker_{engine_id}_mp")
        self.aloops = Aloops(self)
        self._pools: dict[int, Pool] = {
            TT_THREAD: self.threads, TT_MP: self.processes,
            TT_COROUTINE: self.aloops}
        #: pools replaced by an executor pool: still joined at stop
        self._replaced: list[Pool] = []
        # from the start: an aloop may run before the first task
        live_engines.add(self)

    @property
    def task_context(self) -> Optional[Callable[[], Any]]:
        """The factory of context managers around thread and coroutine
        tasks, or None."""
        return self.hooks.task_context

    # ------------------------------------------------------------------
    # lifecycle
    # ------------------------------------------------------------------
    def start(self) -> None:
        """Accept tasks (again).  ``RuntimeError`` while a ``stop()`` is
        still under way: start again once it has returned."""
        with self.lock:
            if self.state == _RUNNING:
                return
            if self.state == _STOPPING:
                raise RuntimeError(f"supervisor {self.id} is stopping; "
                                   f"start it again once stop() returned")
            self.state = _RUNNING
            self.started_at = time.monotonic()
            self.gave_up = False
            for pool in self._pools.values():
                pool.restart_locked()
            self.timers.open()
            self.stopped_event.clear()
        logger.debug("supervisor %s started", self.id)

    def ensure_running(self) -> None:
        """Start a new engine on first use; ``RuntimeError`` if stopped."""
        if self.state == _NEW:
            self.start()
        if self.state != _RUNNING:
            raise self.stopped_error()

    def stopped_error(self) -> RuntimeError:
        return RuntimeError(f"supervisor {self.id} is stopped: it accepts "
                            f"no tasks until start() is called")

    def owns_current_thread(self) -> bool:
        """Whether the calling thread is one of this engine's."""
        thread = threading.current_thread()
        return self.timers.owns(thread) or any(
            pool.owns(thread) for pool in self.pools())

    def begin_stop(self, stop_schedulers: bool) -> list[Any]:
        """running → stopping; return the schedulers to stop."""
        with self.lock:
            if self.state in (_RUNNING, _NEW):
                self.state = _STOPPING
            self._notify_quiet_locked()
            return list(self.schedulers) if stop_schedulers else []

    def wait_all_done(self, deadline: Optional[float]) -> bool:
        """Wait until no task is unfinished, until the monotonic *deadline*
        at most; ``False`` if it came first."""
        with self._all_done:
            while self.registry.unfinished:
                if deadline is None:
                    self._all_done.wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._all_done.wait(left)
        return True

    def end_stop(self, gave_up: bool) -> Optional[threading.Thread]:
        """stopping → stopped; pool threads leave once idle.  If nothing is
        unfinished, wind down now (else the last task to end does) and
        return the timer thread to join."""
        with self.lock:
            self.state = _STOPPED
            self.gave_up = gave_up
            self.threads.shutdown_locked()
            timer_thread = None
            if not self.registry.unfinished:
                timer_thread = self._wind_down_locked()
        self.stopped_event.set()
        return timer_thread

    def pools(self) -> list[Pool]:
        """Every pool: threads, processes (or the executor pool that
        replaced them, and the pool it replaced), coroutines."""
        return list(self._pools.values()) + self._replaced

    @property
    def mp_pool(self) -> Any:
        """The pool that runs ``TT_MP`` tasks now: the own processes or
        an executor pool."""
        return self._pools[TT_MP]

    def use_executor(self, executor: Any, pool_size: int,
                     reserve_normal: int, reserve_high: int) -> None:
        """Run ``TT_MP`` tasks on *executor* from now on (see
        ``set_mp_pool``); ``ValueError`` while process tasks are queued
        or running."""
        pool = ExecutorPool(self, executor, pool_size, reserve_normal,
                            reserve_high, name=f"atasker_{self.id}")
        with self.lock:
            current = self.mp_pool
            if current.dispatcher.running or current.dispatcher.queued():
                raise ValueError(
                    "set_mp_pool(executor=...) while process tasks are "
                    "queued or running; wait for them first")
            if self.state == _RUNNING:
                pool.restart_locked()
            current.shutdown_locked()       # its processes leave
            if current is self.processes and current not in self._replaced:
                # joined at stop; a replaced executor pool's thread ends
                # at once (nothing runs), and the pool is let go
                self._replaced.append(current)
            self._pools[TT_MP] = pool

    def unfinished(self) -> list[TaskInfo]:
        """The tasks not yet ended, running ones first."""
        with self.lock:
            records = self.registry.unfinished_locked()
        return sorted(records, key=lambda r: r.status != TASK_STATUS_STARTED)

    def abandon(self) -> list[TaskInfo]:
        """End what can be ended now (a bounded stop ran out): every pool
        kills what it can.  Returns the thread tasks left running."""
        for pool in self._pools.values():
            pool.abandon()
        with self.lock:
            return [r for r in self.registry.unfinished_locked()
                    if r.tt == TT_THREAD]

    def _wind_down_locked(self) -> Optional[threading.Thread]:
        """Stopped and nothing left to do: let timers and processes go.
        Returns the timer thread, for joining."""
        self._pools[TT_MP].shutdown_locked()
        return self.timers.close()

    def _notify_quiet_locked(self) -> None:
        if self.on_quiet is not None:
            self.on_quiet()

    def quiet(self) -> bool:
        """No unfinished task and no registered worker."""
        with self.lock:
            return not self.registry.unfinished and not self.schedulers

    def register_scheduler(self, scheduler: Any) -> None:
        with self.lock:
            if scheduler not in self.schedulers:
                self.schedulers.append(scheduler)

    def unregister_scheduler(self, scheduler: Any) -> None:
        with self.lock:
            if scheduler in self.schedulers:
                self.schedulers.remove(scheduler)
                if not self.schedulers:
                    self._notify_quiet_locked()

    def reset_after_fork(self) -> None:
        """In a forked child: no thread of ours exists there; the parent's
        unfinished tasks stay the parent's.  Start afresh."""
        reinit = getattr(self.lock, "_at_fork_reinit", None)
        if reinit is not None:
            reinit()        # the same object: the pools share it
        self._all_done = threading.Condition(self.lock)
        self.registry.forget_unfinished_locked()
        for pool in self._pools.values():
            pool.reset_after_fork()
        self.timers.reset_after_fork()

    # ------------------------------------------------------------------
    # submitting
    # ------------------------------------------------------------------
    def submit(self, *, target: Callable[..., Any], args: tuple = (),
               kwargs: Optional[dict] = None, name: str,
               priority: int = TASK_NORMAL, delay: Optional[float] = None,
               tt: int = TT_THREAD,
               callback: Optional[Callable[[Any], Any]] = None,
               error_callback: Optional[Callable[[BaseException], Any]]
               = None,
               timeout: Optional[float] = None,
               task_id: Optional[str] = None, waiter: Any = None,
               loop: Any = None) -> TaskInfo:
        """Accept a validated task; return its record (the hot path).
        (Only the public calls that return an id make a :class:`TaskId`
        handle of it: the others need none.)

        *waiter*, if given, is registered on the task before it can end
        (``count`` 1, ``release()``).  Raises ``RuntimeError`` when stopped, and what
        the pool's ``prepare`` raises for bad input.
        """
        if self.state != _RUNNING:
            self.ensure_running()
        if task_id is None:
            task_id = self._new_id()
        pool = self._pools[tt]
        payload, run_kwargs, runner = pool.prepare(
            target, args, kwargs or {}, task_id, loop)
        record = TaskInfo(task_id, target, tt, priority, name,
                          TASK_STATUS_QUEUED, payload, run_kwargs, callback,
                          error_callback, timeout, time.time())
        record._runner = runner
        record._home = self._home
        if waiter is not None:
            record._waiters = [waiter]
        actions = None
        with self.lock:
            if self.state != _RUNNING:
                raise self.stopped_error()
            if task_id in self._tasks:
                raise ValueError(f"task_id {task_id!r} is already in use")
            if delay:
                record.status = TASK_STATUS_DELAYED
                record._timer = self.timers.schedule(delay, self._on_delay,
                                                     record)
            else:
                # _enqueue_locked() written out: the status is queued
                # already, and this is the hot path
                actions = pool.push_locked(record)
                if self.timeout_warning is not None or \
                        self.timeout_critical is not None:
                    self._schedule_alarms_locked(record)
            # registry.add_locked(), written out for the same reason
            self._tasks[task_id] = record
            self.registry.unfinished += 1
        if actions is not None:
            pool.launch(actions)
        return record

    # ------------------------------------------------------------------
    # transitions (lock held) and the Owner protocol
    # ------------------------------------------------------------------
    def _enqueue_locked(self, record: TaskInfo, pool: Pool) -> Any:
        record.status = TASK_STATUS_QUEUED
        actions = pool.push_locked(record)
        self._schedule_alarms_locked(record)
        return actions

    def _schedule_alarms_locked(self, record: TaskInfo) -> None:
        """The queue-wait alarms of a task that has just been queued."""
        warn, crit = self.timeout_warning, self.timeout_critical
        if warn is None and crit is None:
            return
        # held weakly: a finished task must not wait for its alarm to go
        ref = weakref.ref(record)
        if warn is not None:
            self.timers.schedule(warn, self._on_queue_alarm, ref, False)
        if crit is not None:
            self.timers.schedule(crit, self._on_queue_alarm, ref, True)

    def start_locked(self, record: TaskInfo) -> None:
        record.time_started = time.time()
        record.status = TASK_STATUS_STARTED
        if record._timeout is not None:
            record._timer = self.timers.schedule(
                record._timeout, self._on_timeout, record)

    def finish_locked(self, record: TaskInfo, outcome: Outcome) -> bool:
        if record.status != TASK_STATUS_STARTED:
            return False        # already failed by timeout, or marked
        ok, value = outcome
        if self.registry.finalize_locked(record, TASK_STATUS_COMPLETED,
                                         value, None) if ok else \
                self.registry.finalize_locked(record, TASK_STATUS_FAILED,
                                              None, value):
            self._all_ended_locked()
        return True

    def _finalize_locked(self, record: TaskInfo, status: int, result: Any,
                         exception: Optional[BaseException]) -> None:
        if self.registry.finalize_locked(record, status, result, exception):
            self._all_ended_locked()

    def _all_ended_locked(self) -> None:
        """No task is unfinished any more."""
        self._notify_quiet_locked()
        self._all_done.notify_all()
        if self.state == _STOPPED:
            self._wind_down_locked()

    def _cancel_locked(self, record: TaskInfo) -> None:
        if record.status == TASK_STATUS_QUEUED:
            self._pools[record.tt].remove_locked(record)
        self._finalize_locked(record, TASK_STATUS_CANCELED,
                              None, CancelledError(f"task {record.id} "
                                                   f"canceled"))

    # ------------------------------------------------------------------
    # timer callbacks (timer thread, no lock held on entry)
    # ------------------------------------------------------------------
    def _on_delay(self, record: TaskInfo) -> None:
        pool = self._pools[record.tt]
        with self.lock:
            if record.status != TASK_STATUS_DELAYED:
                return
            record._timer = None
            actions = self._enqueue_locked(record, pool)
        if actions is not None:
            pool.launch(actions)

    def _on_timeout(self, record: TaskInfo) -> None:
        with self.lock:
            if record.status != TASK_STATUS_STARTED:
                return
            record._timer = None
            self._finalize_locked(
                record, TASK_STATUS_FAILED, None,
                TaskTimeoutError(record.id, float(record._timeout or 0)))
        if not self._pools[record.tt].kill(record):
            logger.warning(
                "task %s (%s) timed out after %g s; its thread cannot be "
                "killed and keeps its pool slot until the function returns",
                record.id, record.name, record._timeout)
        self.after(record)

    def _on_queue_alarm(self, ref: "weakref.ref[TaskInfo]",
                        critical: bool) -> None:
        record = ref()
        if record is None:
            return
        with self.lock:
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
            except BaseException:  # noqa: B036 -- user code; we go on
                logger.exception("queue-wait alarm function %r raised", func)

    # ------------------------------------------------------------------
    # canceling, marking
    # ------------------------------------------------------------------
    def cancel(self, task_id: str) -> bool:
        """Cancel a queued or delayed task; False if it is not waiting."""
        with self.lock:
            record = self.registry.find(task_id)
            if record is None or record.status not in (TASK_STATUS_QUEUED,
                                                       TASK_STATUS_DELAYED):
                return False
            self._cancel_locked(record)
        self.after(record)
        return True

    def cancel_pending(self) -> int:
        """Cancel every queued and delayed task; return how many."""
        with self.lock:
            canceled = [record for pool in self._pools.values()
                        for record in pool.drain_locked()]
            canceled.extend(r for r in self.registry.unfinished_locked()
                            if r.status == TASK_STATUS_DELAYED)
            for record in canceled:
                self._cancel_locked(record)
        for record in canceled:
            self.after(record)
        return len(canceled)

    def mark_completed(self, task_id: str) -> bool:
        """Compatibility: a running task counts as completed now."""
        with self.lock:
            record = self.registry.find(task_id)
            if record is None:
                raise KeyError(f"unknown task id {task_id!r}")
            if record.status != TASK_STATUS_STARTED:
                return False
            self._finalize_locked(record, TASK_STATUS_COMPLETED, None, None)
        self.after(record)
        return True
