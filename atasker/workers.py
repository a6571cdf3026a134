"""Workers: objects that keep generating tasks.

Every run of a worker's executor is a task of its supervisor -- on the
thread pool, the process pool (a ``run`` staticmethod) or an aloop (a
coroutine executor) -- submitted with the worker's priority, so it shows in
``get_info()`` and counts in its pool band.  What starts the next run is
event-driven: the end of the previous run (its task callback), the
supervisor's timer heap, a ``put()`` or a ``trigger()``.  Nothing polls.

Each worker's ``_lock`` guards ``_state``, ``_generation``, ``_runs`` (task
ids of runs not yet ended) and the subclass's own fields listed in its
docstring.  ``_generation`` grows on every start and stop, so the end of a
run started before a stop never starts another one.  The lock may be held
while submitting to the supervisor (which never calls back under its own
lock); user code -- the executor, ``on_error``, ``process_result`` -- never
runs under it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
import math
import queue
import threading
import time
from concurrent.futures import CancelledError
from typing import Any, Callable, Optional

from .constants import TASK_NORMAL, TT_COROUTINE, TT_MP, TT_THREAD
from .supervisor import TaskSupervisor, resolve_supervisor
from .validation import check_callable, check_priority, check_seconds

__all__ = ["BackgroundWorker", "BackgroundAsyncWorker",
           "BackgroundIntervalWorker", "BackgroundQueueWorker",
           "BackgroundEventWorker", "BackgroundTimerWorker",
           "background_worker"]

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
                 supervisor: Optional[TaskSupervisor] = None,
                 loop: Any = None, **kwargs: Any) -> None:
        check_callable("executor_func", executor_func)
        check_callable("on_error", on_error)
        check_priority(priority)
        for legacy in ("daemon", "poll_delay"):
            kwargs.pop(legacy, None)        # accepted for compatibility
        if kwargs:
            raise TypeError(f"unexpected argument(s): {', '.join(kwargs)}")
        self.supervisor = resolve_supervisor(supervisor)
        if executor_func is not None:
            self._executor: Callable[..., Any] = executor_func
            self._tt = TT_COROUTINE if inspect.iscoroutinefunction(
                executor_func) else TT_THREAD
        elif isinstance(inspect.getattr_static(type(self), "run"),
                        staticmethod):
            self._executor = type(self).run
            self._tt = TT_MP
        else:
            self._executor = self.run
            if inspect.iscoroutinefunction(self.run):
                self._tt = TT_COROUTINE
        self.name = name or getattr(executor_func, "__name__", None) or \
            f"{type(self).__name__}-{next(_names)}"
        self.priority = priority
        self.o = o
        self.on_error = on_error
        self.on_error_kwargs = dict(on_error_kwargs or {})
        self.loop = loop
        self._lock = threading.Lock()
        self._state = _STOPPED
        self._generation = 0
        self._runs: set[str] = set()
        self._start_args: tuple = ()
        self._start_kwargs: dict = {}
        self._inside = threading.local()

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
        supervisor = self.supervisor
        supervisor._ensure_running()
        if not supervisor.is_active:
            raise RuntimeError(f"supervisor {supervisor.id} is stopped")
        supervisor._timers.start()
        with self._lock:
            if self._state == _STARTED:
                return
            for key, value in overrides.items():
                self._override(key[1:], value)
            self._start_args, self._start_kwargs = args, kwargs
            self._state = _STARTED
            self._generation += 1
            self._on_start_locked()
        supervisor.register_scheduler(self)

    _overridable = frozenset(("priority", "worker_name", "loop"))

    def _override(self, key: str, value: Any) -> None:
        if key == "priority":
            check_priority(value)
            self.priority = value
        elif key == "worker_name":
            self.name = value
        else:
            setattr(self, key, value)

    def stop(self, wait: bool = True) -> None:
        """Stop: no run starts any more; with ``wait``, return once the
        current run (if any) has ended.  Runs not yet started are canceled.
        Stopping from inside the executor never waits for itself."""
        with self._lock:
            if self._state == _STOPPED:
                return
            self._state = _STOPPED
            self._generation += 1
            self._on_stop_locked()
            runs = list(self._runs)
        supervisor = self.supervisor
        supervisor.unregister_scheduler(self)
        for task_id in runs:
            supervisor.cancel_task(task_id)
        if wait and runs and not getattr(self._inside, "flag", False):
            try:
                supervisor._wait_records(runs, None)
            except KeyError:        # long forgotten: it has ended
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

    # -- running -----------------------------------------------------------
    def _run_locked(self, *extra: Any) -> None:
        """Submit one run of the executor (lock held)."""
        supervisor = self.supervisor
        task_id = supervisor._new_task_id()
        generation = self._generation
        args = extra + self._start_args
        if self._tt == TT_MP:
            target: Callable[..., Any] = self._executor
            kwargs = self._start_kwargs
        else:
            target = self._call
            kwargs = {"_executor_args": args}
            args = ()
        self._runs.add(task_id)
        try:
            supervisor._submit(
                target, args, kwargs, self.name, self.priority, None,
                functools.partial(self._ended, generation, task_id, True),
                functools.partial(self._ended, generation, task_id, False),
                None, task_id, self._tt, None, self.loop)
        except Exception:
            self._runs.discard(task_id)
            raise

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
        """A run's task has ended (called by the supervisor, no lock)."""
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
            except Exception:
                logger.exception("worker %s: process_result raised",
                                 self.name)
                verdict = None
            if verdict is False:
                self.stop(wait=False)
                return
        with self._lock:
            if generation == self._generation:
                self._after_run_locked()

    def _handle_error(self, exc: BaseException) -> None:
        # the supervisor has logged the failure already
        if self.on_error is None:
            return
        try:
            self.on_error(e=exc, **self.on_error_kwargs)
        except Exception:
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
        """Ask for a run (thread-safe; never blocks)."""
        with self._lock:
            if self._state != _STARTED:
                self._pending = True
            else:
                self._request_locked()

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


class BackgroundIntervalWorker(BackgroundEventWorker):
    """Runs its executor on a schedule.

    * ``interval=`` keeps a fixed period: the next run is planned one
      interval after the previous *planned* start, so it does not drift;
      beats missed because a run took too long are skipped, not bursted.
    * ``delay=`` waits that long after each run has ended.
    * ``delay_before=`` waits before the first run.
    * with none of them, it runs again as soon as a run has ended.

    ``interval`` and ``delay`` exclude each other.  :meth:`trigger` runs the
    executor now (once more after the current run, if one is going on).
    Guarded by ``_lock`` too: ``_timer``, ``_planned``.
    """

    _overridable = BackgroundWorker._overridable | {
        "interval", "delay", "delay_before"}

    def __init__(self, *args: Any, interval: Optional[float] = None,
                 delay: Optional[float] = None,
                 delay_before: Optional[float] = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.interval: Optional[float] = None
        self.delay: Optional[float] = None
        self.delay_before: Optional[float] = None
        self._set_timing(interval, delay, delay_before)
        self._timer: Any = None
        self._planned = 0.0

    def _set_timing(self, interval: Optional[float], delay: Optional[float],
                    delay_before: Optional[float]) -> None:
        for name, value in (("interval", interval), ("delay", delay),
                            ("delay_before", delay_before)):
            check_seconds(name, value)
        if interval is not None and delay is not None:
            raise ValueError("interval and delay exclude each other")
        if interval == 0:
            raise ValueError("interval must be > 0")
        self.interval, self.delay = interval, delay
        self.delay_before = delay_before

    def _override(self, key: str, value: Any) -> None:
        if key in ("interval", "delay", "delay_before"):
            timing = {"interval": self.interval, "delay": self.delay,
                      "delay_before": self.delay_before, key: value}
            if key == "interval" and value is not None:
                timing["delay"] = None
            elif key == "delay" and value is not None:
                timing["interval"] = None
            self._set_timing(**timing)
        else:
            super()._override(key, value)

    def _on_start_locked(self) -> None:
        self._busy = self._pending = False
        self._planned = time.monotonic() + (self.delay_before or 0)
        self._schedule_locked(self.delay_before or 0)

    def _on_stop_locked(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule_locked(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.supervisor._timers.schedule(
            delay, self._fire, self._generation)

    def _fire(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._timer = None
                self._request_locked()

    def _after_run_locked(self) -> None:
        if self._run_pending_locked():
            return
        if self.interval is not None:
            now = time.monotonic()
            self._planned = next_beat(self._planned, self.interval, now)
            self._schedule_locked(self._planned - now)
        elif self.delay is not None:
            self._schedule_locked(self.delay)
        else:
            self._request_locked()


def next_beat(planned: float, interval: float, now: float) -> float:
    """The next planned start after *planned*: one *interval* later, or the
    first beat not in the past if runs fell behind (missed beats are
    skipped, not bursted)."""
    planned += interval
    if planned < now:
        planned += math.ceil((now - planned) / interval) * interval
    return planned


class BackgroundQueueWorker(BackgroundWorker):
    """Runs its executor once for every item put into its queue.

    The item is the executor's first argument.  ``q=True`` (or ``queue=``)
    is a FIFO queue; a class -- ``queue.PriorityQueue``,
    ``queue.LifoQueue`` or their ``asyncio`` namesakes -- picks that order.
    ``workers=N`` runs up to N items at once; ``maxsize=`` bounds the items
    waiting: :meth:`put` then blocks while the queue is full (``timeout=``
    raises ``queue.Full``) and :meth:`aput` awaits.  Items left when the
    worker stops stay queued for the next start.  Guarded by ``_lock`` too:
    ``_idle`` (free consumers) and ``_space_waiters``.
    """

    def __init__(self, *args: Any, q: Any = True, queue: Any = None,
                 workers: int = 1, maxsize: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(workers, bool) or not isinstance(workers, int) or \
                workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or \
                maxsize < 0:
            raise ValueError(f"maxsize must be an int >= 0, got {maxsize!r}")
        self.workers = workers
        self._queue = _make_queue(queue if queue is not None else q, maxsize)
        self._idle = 0
        self._space_waiters: list[tuple[Any, Any]] = []

    def put(self, item: Any, timeout: Optional[float] = None) -> None:
        """Queue *item* (thread-safe).  Blocks while the queue is full;
        raises ``queue.Full`` after *timeout* seconds."""
        check_seconds("timeout", timeout)
        self._queue.put(item, timeout=timeout)
        self._dispatch()

    put_threadsafe = put

    async def aput(self, item: Any) -> None:
        """Queue *item* from a coroutine, awaiting room if it is full."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                try:
                    self._queue.put_nowait(item)
                    break
                except queue.Full:
                    room: asyncio.Future = loop.create_future()
                    self._space_waiters.append((loop, room))
            await room
        self._dispatch()

    def qsize(self) -> int:
        """Items waiting for a consumer."""
        return self._queue.qsize()

    def _on_start_locked(self) -> None:
        self._idle = self.workers
        self._take_locked()

    def _on_stop_locked(self) -> None:
        self._idle = 0

    def _dispatch(self) -> None:
        with self._lock:
            self._take_locked()

    def _take_locked(self) -> None:
        while self._state == _STARTED and self._idle > 0:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            self._idle -= 1
            self._wake_space_waiters_locked()
            self._run_locked(item)

    def _wake_space_waiters_locked(self) -> None:
        waiters, self._space_waiters = self._space_waiters, []
        for loop, room in waiters:
            try:
                loop.call_soon_threadsafe(_set_if_pending, room)
            except RuntimeError:        # that loop is closed
                pass

    def _after_run_locked(self) -> None:
        self._idle += 1
        self._take_locked()


def _set_if_pending(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _make_queue(kind: Any, maxsize: int) -> queue.Queue:
    if kind is True or kind is None:
        return queue.Queue(maxsize)
    if isinstance(kind, type):
        if issubclass(kind, (queue.PriorityQueue, asyncio.PriorityQueue)):
            return queue.PriorityQueue(maxsize)
        if issubclass(kind, (queue.LifoQueue, asyncio.LifoQueue)):
            return queue.LifoQueue(maxsize)
        if issubclass(kind, (queue.Queue, asyncio.Queue)):
            return queue.Queue(maxsize)
    raise TypeError(f"q must be True or a queue class, got {kind!r}")


class BackgroundTimerWorker(BackgroundWorker):
    """Runs its executor once, ``delay=`` seconds after :meth:`start`.

    :meth:`reset` pushes the run back to the full delay again (a watchdog:
    keep resetting it and it never fires).  After its run the worker stops
    by itself.  Guarded by ``_lock`` too: ``_timer``.
    """

    _overridable = BackgroundWorker._overridable | {"delay"}

    def __init__(self, *args: Any, delay: float = 0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_seconds("delay", delay)
        self.delay = delay
        self._timer: Any = None

    def _override(self, key: str, value: Any) -> None:
        if key == "delay":
            check_seconds("delay", value)
        super()._override(key, value)

    def _on_start_locked(self) -> None:
        self._arm_locked()

    def _on_stop_locked(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_locked(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.supervisor._timers.schedule(
            self.delay, self._fire, self._generation)

    def reset(self) -> bool:
        """Push the run back to the full delay.  Returns ``False`` if the
        worker is not waiting (stopped, or its run has begun)."""
        with self._lock:
            if self._state != _STARTED or self._timer is None:
                return False
            self._arm_locked()
            return True

    def _fire(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self._timer = None
            self._run_locked()

    def _after_run_locked(self) -> None:
        # one run only: stop without waiting (we are that run's callback)
        self._state = _STOPPED
        self._generation += 1
        self.supervisor.unregister_scheduler(self)


def background_worker(f: Optional[Callable[..., Any]] = None,
                      **kwargs: Any) -> Any:
    """Make a worker of *f*; the kind follows the options (first match):

    ``timer=True`` → :class:`BackgroundTimerWorker`; ``q``/``queue`` →
    :class:`BackgroundQueueWorker`; ``e``/``event`` →
    :class:`BackgroundEventWorker`; ``interval``/``delay``/``delay_before``
    → :class:`BackgroundIntervalWorker`; a coroutine function →
    :class:`BackgroundAsyncWorker`; else :class:`BackgroundWorker`.
    Other options go to the class::

        @background_worker(interval=60, priority=TASK_LOW)
        def cleanup(**kwargs):
            ...

        cleanup.start()
    """
    if f is None:
        return functools.partial(background_worker, **kwargs)
    check_callable("f", f, optional=False)
    if kwargs.pop("timer", False):
        cls: type = BackgroundTimerWorker
    elif kwargs.get("q") or kwargs.get("queue"):
        cls = BackgroundQueueWorker
    elif kwargs.pop("e", False) or kwargs.pop("event", False):
        cls = BackgroundEventWorker
    elif any(kwargs.get(k) is not None
             for k in ("interval", "delay", "delay_before")):
        cls = BackgroundIntervalWorker
    elif inspect.iscoroutinefunction(f):
        cls = BackgroundAsyncWorker
    else:
        cls = BackgroundWorker
    name = kwargs.pop("name", None)
    return cls(name, f, **kwargs)
