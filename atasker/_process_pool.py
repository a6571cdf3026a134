"""The process pool (``TT_MP`` tasks): the engine's side.

The parent always knows which task each process runs: a process gets its
next task only when it is free, from the pool's queue, so priorities and
reserve bands hold exactly as for threads, and a process that dies fails
exactly the task it held (see ``_process_manager``).  The manager thread is
started by the first task (or :meth:`ProcessPool.start`) and ends once the
pool is closed and every worker has left; the first task after a restart
starts a new one.  Per-task timeouts kill the worker and its child
processes (psutil); the manager then starts a replacement.

State
-----
As in ``_process_manager``, plus, guarded by the engine's lock,
``_numbers`` (the configured sizes), ``_context``, ``_max_tasks``,
``_last_manager`` and ``_retired`` (the engine has wound down).
``_start_lock`` serialises starting a manager (taken before, never inside,
the engine's lock).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

from ._constants import TT_MP
from ._dispatcher import Dispatcher, validate_pool_numbers
from ._mp import (default_mp_pool_size, forget_child, kill_tree,
                  prepare_payload, resolve_context)
from ._pool import Owner, join_thread
from ._process_manager import ProcessManager
from ._taskinfo import TaskInfo
from ._wakeup import WakePipe

logger = logging.getLogger("atasker.process_pool")


class ProcessPool(ProcessManager):
    """The process pool of one engine."""

    tt = TT_MP

    def __init__(self, owner: Owner, name: str) -> None:
        super().__init__(owner, Dispatcher(default_mp_pool_size(), 0, 0,
                                           capped=True), name)
        self._numbers: tuple[Optional[int], int, int] = (None, 0, 0)
        # serialises starting a manager; taken before the engine's lock
        self._start_lock = threading.Lock()
        #: the manager to join at stop (it outlives ``_manager`` briefly)
        self._last_manager: Optional[threading.Thread] = None
        #: the engine has wound down: start() refuses until it restarts
        self._retired = False

    def configure(self, pool_size: Optional[int], reserve_normal:
                  Optional[int], reserve_high: Optional[int], context: Any,
                  max_tasks_per_child: Optional[int]) -> None:
        """Change the numbers (at once) or, before the processes start,
        the context and the recycling limit.  See ``set_mp_pool``."""
        ctx = None if context is None else resolve_context(context)
        with self._lock:
            current = self._numbers
            numbers = (current[0] if pool_size is None else pool_size,
                       current[1] if reserve_normal is None
                       else reserve_normal,
                       current[2] if reserve_high is None else reserve_high)
            validate_pool_numbers(numbers[0] or 1, numbers[1], numbers[2])
            if self._manager is not None and not self._closing and (
                    ctx is not None or max_tasks_per_child is not None):
                what = "context" if ctx is not None \
                    else "max_tasks_per_child"
                raise ValueError(f"{what} can only be set before the "
                                 f"process pool starts")
            self._numbers = numbers
            if ctx is not None:
                self._context = ctx
            if max_tasks_per_child is not None:
                self._max_tasks = max_tasks_per_child
            self.dispatcher.configure(*self.limits_locked())
            self.size = sum(self.limits_locked())
            self._poke_locked()
            sends = self._kick_locked()
        if sends:
            self.launch(sends)

    def limits_locked(self) -> tuple[int, int, int]:
        """(pool_size, reserve_normal, reserve_high) in effect."""
        size, normal, high = self._numbers
        return (size or default_mp_pool_size(), normal, high)

    @property
    def process_count(self) -> int:
        return len(self._procs)

    def prepare(self, target: Any, args: tuple, kwargs: dict, task_id: str,
                loop: Any) -> tuple[Any, Any, Any]:
        payload = prepare_payload(target, args, kwargs, task_id)
        if self._manager is None or self._closing:
            self.start()
        return payload, None, None

    def start(self) -> None:
        """Make sure a manager runs (it starts the processes).

        A closing manager that has not ended yet is reopened rather than
        waited for; once it has given up its role (``_manager`` is None)
        a new one is made.  Raises ``RuntimeError`` once the engine has
        wound down (a submission that raced ``stop()``).
        """
        if self._manager is not None and not self._closing:
            return
        with self._start_lock:
            with self._lock:
                if self._retired:
                    raise RuntimeError(f"supervisor {self._owner.id} is "
                                       f"stopped")
                self._closing = False
                if self._manager is not None:
                    self._poke_locked()     # reopened: it adjusts again
                    return
                self._wake = wake = WakePipe()
                if self._context is None:
                    self._context = resolve_context(None)
                manager = threading.Thread(
                    target=self._manage, args=(wake,),
                    name=f"{self._name}_manager", daemon=True)
                self._manager = self._last_manager = manager
            manager.start()     # under _start_lock: one manager at a time

    def push_locked(self, record: TaskInfo) -> Optional[list]:
        # enqueue_locked(), written out: this is the submit hot path
        record._key = self._push(record.priority, record)
        if self._manager is None or self._closing:
            return [None]       # launch() starts a manager first
        if not self._procs and not self._starting:
            self._poke_locked()     # starting processes failed: try again
        return self._kick_locked()

    def restart(self) -> None:
        """Called by :meth:`launch` for a task queued while no manager
        runs (a delayed task came due on a pool that closed after a
        failure): start one; it hands out the queue."""
        self.start()

    def kill(self, record: TaskInfo) -> bool:
        """Kill the worker running *record* (after a timeout)."""
        with self._lock:
            proc = next((p for p in self._procs if p.task is record), None)
            if proc is None or proc.leaving:
                return True
            proc.leaving = True
            pid = proc.process.pid
        logger.warning("killing worker process %s (and its children) that "
                       "runs timed-out task %s", pid, record.id)
        kill_tree(pid)
        return True

    def shutdown_locked(self) -> None:
        """The engine has wound down: every worker exits once it is free,
        then the manager ends; no manager starts until the engine does."""
        self._closing = self._retired = True
        self._poke_locked()

    def restart_locked(self) -> None:
        self._retired = False   # the next task starts a manager

    def join(self, deadline: Optional[float]) -> None:
        join_thread(self._last_manager, deadline)

    def owns(self, thread: threading.Thread) -> bool:
        return thread is self._manager

    def reset_after_fork(self) -> None:
        # the workers and the manager belong to the parent
        for proc in self._procs:
            proc.conn.close()
            forget_child(proc.process)
        if self._wake is not None:
            self._wake.close_after_fork()
        self._procs, self._free, self._starting = [], [], 0
        self._manager = self._last_manager = None
        self._wake, self._closing = None, False
        self._start_lock = threading.Lock()
        self.drain_locked()
        self.dispatcher.running = 0
