"""The app runner: startup work declared on a supervisor, and ``run()``.

::

    @task_supervisor.init_task
    def connect():              # runs first; if it fails, nothing starts
        ...

    @task_supervisor.task
    def main_job():             # started once the init tasks are done
        ...

    @task_supervisor.timer(interval=60)
    def refresh():              # every minute while the app runs
        ...

    sys.exit(task_supervisor.run())

``run()`` blocks the calling thread on two pipes (``_app_wake``): handled
signals write their numbers to one; the end of an init task, the
supervisor becoming idle (for ``until_complete``) or stopped, and the end
of the drain write a byte to the other.  Nothing polls.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import signal
import threading
import time
import weakref
from typing import Any, Callable, Optional

from ._constants import TASK_NORMAL, TASK_STATUS_COMPLETED, TT_THREAD
from ._app_wake import AppWake
from ._engine import Engine
from ._workers import BackgroundIntervalWorker, background_worker
from ._validation import check_args, check_callable, check_kwargs, \
    check_name, check_priority, \
    check_seconds, check_task_options, task_name

logger = logging.getLogger("atasker")

#: run() exit statuses
EXIT_OK, EXIT_INIT_FAILED, EXIT_FORCED = 0, 1, 130

class App:
    """The declared app of one supervisor and its ``run()``.

    A client of the supervisor (``start``/``stop``/``put_task``...) and of
    its engine (``on_quiet``, ``quiet()``, ``cancel_pending()``).  The
    declaration lists and ``_app_running`` are guarded by ``_app_lock``
    (taken alone, never with the engine's lock).
    """

    def __init__(self, supervisor: Any, engine: Engine) -> None:
        # weakly: the supervisor holds its app, and a dropped supervisor
        # is freed at once, without waiting for the cycle collector
        self._supervisor = weakref.proxy(supervisor)
        self._engine = engine
        self.id = engine.id
        # serialises declarations and run()
        self._app_lock = threading.Lock()
        self._init_tasks: list[tuple[int, int, Callable[..., Any], str,
                                     Optional[float]]] = []
        self._app_tasks: list[tuple[Callable[..., Any], dict]] = []
        self._app_workers: list[Any] = []
        self._app_seq = itertools.count()
        self._app_running = False

    # -- declarations ------------------------------------------------------
    def init_task(self, f: Optional[Callable[..., Any]] = None, *,
                  priority: int = TASK_NORMAL, name: Optional[str] = None,
                  timeout: Optional[float] = None) -> Any:
        """Declare *f* (plain or async, no arguments) as startup work.

        :meth:`run` runs init tasks one at a time, most urgent priority
        first (in declaration order within a priority), before any task,
        timer or worker starts.  If one fails or times out, the app does
        not start: ``run()`` logs why, stops the supervisor and returns 1.
        Use as ``@init_task`` or ``@init_task(priority=TASK_HIGH)``;
        returns *f* unchanged.
        """
        if f is None:
            return functools.partial(self.init_task, priority=priority,
                                     name=name, timeout=timeout)
        check_callable("f", f, optional=False)
        check_priority(priority)
        check_seconds("timeout", timeout)
        with self._app_lock:
            self._init_tasks.append((priority, next(self._app_seq), f,
                                     name or task_name(f), timeout))
        return f

    def task(self, f: Optional[Callable[..., Any]] = None, *,
             args: tuple = (), kwargs: Optional[dict] = None,
             priority: int = TASK_NORMAL, tt: int = TT_THREAD,
             name: Optional[str] = None,
             timeout: Optional[float] = None) -> Any:
        """Declare *f* (plain or async) to be submitted once by :meth:`run`,
        after the init tasks, with these task options.  Returns *f*
        unchanged.  Its failure is logged; it does not stop the app.
        """
        if f is None:
            return functools.partial(self.task, args=args, kwargs=kwargs,
                                     priority=priority, tt=tt, name=name,
                                     timeout=timeout)
        check_callable("f", f, optional=False)
        check_task_options(priority, None, tt, None, None, timeout)
        check_name(name)
        options = {"args": check_args(args), "kwargs": check_kwargs(kwargs),
                   "priority": priority, "tt": tt, "name": name,
                   "timeout": timeout}
        with self._app_lock:
            self._app_tasks.append((f, options))
        return f

    def timer(self, f: Optional[Callable[..., Any]] = None, *,
              interval: float, on_start: bool = False,
              priority: int = TASK_NORMAL,
              name: Optional[str] = None) -> Any:
        """Declare *f* (plain or async, no arguments) to run every
        *interval* seconds while the app runs.

        The first run is one interval after :meth:`run` has started it, or
        at once with ``on_start=True``.  The schedule does not drift and
        skips beats missed by a long run.  Returns the
        :class:`~atasker.BackgroundIntervalWorker` (``trigger()``,
        ``stop()``); *f* returning ``False`` stops the timer.
        """
        if f is None:
            return functools.partial(self.timer, interval=interval,
                                     on_start=on_start, priority=priority,
                                     name=name)
        check_callable("f", f, optional=False)
        check_seconds("interval", interval)
        if not interval:
            raise ValueError("interval must be > 0")
        worker = BackgroundIntervalWorker(
            name or task_name(f), _without_worker_kwargs(f),
            interval=interval, delay_before=None if on_start else interval,
            priority=priority, supervisor=self._supervisor)
        with self._app_lock:
            self._app_workers.append(worker)
        return worker

    def worker(self, f: Optional[Callable[..., Any]] = None,
               **options: Any) -> Any:
        """Declare a worker (the options of :func:`atasker.background_worker`)
        that :meth:`run` starts after the init tasks; returns the worker."""
        if f is None:
            return functools.partial(self.worker, **options)
        if "supervisor" in options:
            raise TypeError("worker() makes workers of this supervisor; "
                            "do not pass supervisor=")
        made = background_worker(f, supervisor=self._supervisor, **options)
        with self._app_lock:
            self._app_workers.append(made)
        return made

    # -- running -----------------------------------------------------------
    def run(self, until_complete: bool = False,
            for_time: Optional[float] = None,
            handle_signals: bool = True) -> int:
        """Run the declared app; return an exit status for ``sys.exit``.

        Starts the supervisor, runs the init tasks, starts the declared
        timers and workers and submits the declared tasks, then blocks
        until SIGINT or SIGTERM (when *handle_signals* and called from the
        main thread), until every task has ended and no worker is active
        (``until_complete=True``), until *for_time* seconds have passed, or
        until the supervisor is stopped from elsewhere -- whichever comes
        first.  Then it drains: workers stop, queued work runs to its end,
        the supervisor stops.  A second signal during the drain cancels
        queued and delayed tasks and kills running process tasks; a third
        returns at once without waiting for running thread tasks.  The
        same signal again within 0.25 s of the last one counted is the
        same request, not another: GNU ``timeout`` and other launchers
        signal the app and its process group, so it receives their one
        signal twice.  Process-pool workers are not in that group; the
        supervisor decides their fate.

        Returns 0 after a drain, 1 if an init task failed (the supervisor
        is then stopped and nothing else was started), 130 after a third
        signal.  Signal handlers are restored on return.

        Raises:
            RuntimeError: ``run()`` is already running.  An exception
            raised while starting the declared timers, workers or tasks is
            logged and raised again after the supervisor has stopped.
        """
        check_seconds("for_time", for_time)
        with self._app_lock:
            if self._app_running:
                raise RuntimeError(f"supervisor {self.id} is already "
                                   f"running run()")
            self._app_running = True
            init_tasks = sorted(self._init_tasks, key=lambda t: t[:2])
        deadline = None if for_time is None else time.monotonic() + for_time
        wake = AppWake(self.id)
        signals = wake.signals
        if handle_signals and \
                threading.current_thread() is threading.main_thread():
            wake.handle_signals((signal.SIGINT, signal.SIGTERM))
        try:
            self._supervisor.start()
            if not self._run_init_tasks(init_tasks, wake, signals):
                self._supervisor.stop(wait=True, cancel_tasks=True)
                return EXIT_INIT_FAILED
            with self._engine.lock:
                self._engine.on_quiet = wake.poke
            self._start_work()
            reason = self._wait_for_end(wake, signals, until_complete,
                                        deadline)
            logger.info("app %s stopping (%s): draining queued work",
                        self.id, reason)
            return self._drain(wake, signals)
        finally:
            with self._engine.lock:
                self._engine.on_quiet = None
            wake.close()
            with self._app_lock:
                self._app_running = False

    def _start_work(self) -> None:
        """Start the declared workers and submit the declared tasks; on a
        failure stop the supervisor, then raise it."""
        with self._app_lock:
            app_tasks = list(self._app_tasks)
            workers = list(self._app_workers)
        try:
            for made in workers:
                made.start()
            for f, options in app_tasks:
                self._supervisor.put_task(f, **options)
        except BaseException:
            logger.exception("app %s: starting its work failed; stopping",
                             self.id)
            self._supervisor.stop(wait=True, cancel_tasks=True)
            raise
        logger.info("app %s started: %d task(s), %d timer(s)/worker(s)",
                    self.id, len(app_tasks), len(workers))

    def _run_init_tasks(self, init_tasks: list, wake: AppWake,
                        signals: list) -> bool:
        for priority, _, f, name, timeout in init_tasks:
            task_id = self._supervisor.put_task(
                f, priority=priority, name=name, timeout=timeout,
                callback=wake.poke, error_callback=wake.poke)
            info = self._supervisor.get_task_info(task_id)
            while not info.done:
                if signals:
                    self._supervisor.cancel_task(task_id)
                    logger.error("app %s: interrupted by signal %d during "
                                 "init task %s; not starting", self.id,
                                 signals[0], name)
                    return False
                wake.wait(None)
            if info.status != TASK_STATUS_COMPLETED:
                logger.error("app %s: init task %s failed, not starting: "
                             "%s: %s", self.id, name,
                             type(info.exception).__name__, info.exception)
                return False
        return True

    def _wait_for_end(self, wake: AppWake, signals: list,
                      until_complete: bool, deadline: Optional[float]) -> str:
        while True:
            if signals:
                return f"signal {signal.Signals(signals[0]).name}"
            if not self._supervisor.is_active:
                return "stopped"
            if until_complete and self._engine.quiet():
                return "all work done"
            timeout = None
            if deadline is not None:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    return "for_time elapsed"
            wake.wait(timeout)

    def _drain(self, wake: AppWake, signals: list) -> int:
        failure: list[BaseException] = []
        finished = threading.Event()

        def drain() -> None:
            try:
                self._supervisor.stop(wait=True)
            except BaseException as exc:  # reported by run()
                failure.append(exc)
            finally:
                finished.set()          # before the poke that reports it
                wake.poke()

        seen = len(signals)
        drainer = threading.Thread(target=drain, daemon=True,
                                   name=f"atasker_{self.id}_drain")
        drainer.start()
        forced = False
        while not finished.is_set():
            wake.wait(None)
            extra = len(signals) - seen
            if extra >= 2:
                logger.error("app %s: third signal: returning without "
                             "waiting for running tasks", self.id)
                return EXIT_FORCED
            if extra == 1 and not forced:
                forced = True
                self._abandon_queued()
        drainer.join()
        if failure:
            raise failure[0]
        logger.info("app %s stopped", self.id)
        return EXIT_OK

    def _abandon_queued(self) -> None:
        canceled = self._engine.cancel_pending()
        self._engine.mp_pool.abandon()
        logger.warning("app %s: second signal: canceled %d queued task(s) "
                       "and killed running process tasks; waiting for "
                       "running thread tasks", self.id, canceled)


def _without_worker_kwargs(f: Callable[..., Any]) -> Callable[..., Any]:
    """*f* as a worker executor: called with no arguments."""
    if inspect.iscoroutinefunction(f):
        async def tick_async(**_: Any) -> Any:
            return await f()
        return functools.wraps(f)(tick_async)

    def tick(**_: Any) -> Any:
        return f()
    return functools.wraps(f)(tick)
