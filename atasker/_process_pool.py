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
``_numbers`` (the configured sizes), ``_context`` and ``_max_tasks``.
``_start_lock`` serialises starting a manager (taken before, never inside,
the engine's lock).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Optional

from ._constants import TT_MP
from ._dispatcher import Dispatcher, validate_pool_numbers
from ._mp import (accepts_task_id, default_mp_pool_size, kill_tree,
                  pickle_task, resolve_context)
from ._pool import Owner
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
        if accepts_task_id(target):
            kwargs = {**kwargs, "_task_id": task_id}
        # pickled once, here: errors reach the caller, and the bytes go to
        # the worker as they are
        payload = pickle_task(target, args, kwargs)
        self.start()
        return payload, None, None

    def start(self) -> None:
        """Make sure the manager runs (it starts the processes)."""
        if self._manager is not None and not self._closing:
            return
        with self._start_lock:
            with self._lock:
                old = self._manager
                if old is not None and not self._closing:
                    return
            if old is not None:
                old.join()      # the previous run's workers are leaving
            with self._lock:
                self._closing = False
                self._wake = WakePipe()
                if self._context is None:
                    self._context = resolve_context(None)
                manager = threading.Thread(
                    target=self._manage, args=(self._wake,),
                    name=f"{self._name}_manager", daemon=True)
                self._manager = manager
            manager.start()

    def push_locked(self, record: TaskInfo) -> Optional[list]:
        if self._closing or self._manager is None:
            raise RuntimeError("the process pool is closed")
        self.enqueue_locked(record)
        return self._kick_locked()

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
        """Let every worker exit once it is free; then the manager ends."""
        self._closing = True
        self._poke_locked()

    def restart_locked(self) -> None:
        pass        # the next task starts a new manager (see start())

    def join(self, deadline: Optional[float]) -> None:
        manager = self._manager
        if manager is not None and manager is not threading.current_thread():
            manager.join(None if deadline is None
                         else max(0.0, deadline - time.monotonic()))

    def owns(self, thread: threading.Thread) -> bool:
        return thread is self._manager

    def reset_after_fork(self) -> None:
        # the workers and the manager belong to the parent
        for proc in self._procs:
            proc.conn.close()
        self._procs, self._free, self._starting = [], [], 0
        self._manager, self._wake, self._closing = None, None, False
        self._start_lock = threading.Lock()
        self.drain_locked()
        self.dispatcher.running = 0
