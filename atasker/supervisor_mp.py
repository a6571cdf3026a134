"""The supervisor's process pool configuration.

A mixin of :class:`atasker.TaskSupervisor`: ``_mp_pool``, ``_mp_numbers``,
``_mp_context`` and ``_mp_max_tasks`` are guarded by the supervisor's
``_lock``; ``_mp_create`` serialises making the pool (it starts a thread)
and is taken before, never inside, ``_lock``.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, cast

from .constants import SUPERVISOR_RUNNING
from .dispatcher import Dispatcher, validate_pool_numbers
from .mp import check_mp_numbers, default_mp_pool_size, resolve_context
from .process_pool import ProcessPool

__all__ = ["ProcessPoolMixin"]


class ProcessPoolMixin:
    """``set_mp_pool``, ``create_mp_pool`` and the lazy process pool."""

    id: str
    _lock: threading.Lock
    _state: str
    _mp_create: threading.Lock
    _mp_pool: Optional[ProcessPool]
    _mp_numbers: tuple[Optional[int], int, int]
    _mp_context: Any
    _mp_max_tasks: Optional[int]

    # provided by TaskSupervisor
    _ensure_running: Callable[[], None]
    _stopped_error: Callable[[], RuntimeError]

    def set_mp_pool(self, pool_size: Optional[int] = None,
                    reserve_normal: Optional[int] = None,
                    reserve_high: Optional[int] = None, context: Any = None,
                    max_tasks_per_child: Optional[int] = None) -> None:
        """Configure the process pool.

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
        """
        check_mp_numbers(pool_size, max_tasks_per_child)
        ctx = None if context is None else resolve_context(context)
        with self._lock:
            current = self._mp_numbers
            numbers = (current[0] if pool_size is None else pool_size,
                       current[1] if reserve_normal is None
                       else reserve_normal,
                       current[2] if reserve_high is None else reserve_high)
            validate_pool_numbers(numbers[0] or 1, numbers[1], numbers[2])
            pool = self._mp_pool
            if pool is not None and not pool.closing and (
                    ctx is not None or max_tasks_per_child is not None):
                name = "context" if ctx is not None \
                    else "max_tasks_per_child"
                raise ValueError(f"{name} can only be set before the "
                                 f"process pool starts")
            self._mp_numbers = numbers
            if ctx is not None:
                self._mp_context = ctx
            if max_tasks_per_child is not None:
                self._mp_max_tasks = max_tasks_per_child
            sends = None
            if pool is not None and not pool.closing:
                size = self._mp_size_locked()
                pool.dispatcher.configure(*self._mp_limits_locked())
                pool.resize_locked(size)
                sends = pool.kick_locked()
        if sends:
            pool.launch(sends)  # type: ignore[union-attr]

    def create_mp_pool(self, processes: Optional[int] = None) -> None:
        """Compatibility: a process pool of *processes* (default: CPU
        count) with no reserves, started now."""
        self.set_mp_pool(pool_size=processes or default_mp_pool_size(),
                         reserve_normal=0, reserve_high=0)
        self._ensure_running()
        self._ensure_mp_pool()

    def _mp_limits_locked(self) -> tuple[int, int, int]:
        size, normal, high = self._mp_numbers
        return (size or default_mp_pool_size(), normal, high)

    def _mp_size_locked(self) -> int:
        return sum(self._mp_limits_locked())

    def _ensure_mp_pool(self) -> ProcessPool:
        """The running process pool, made now if there is none."""
        pool = self._mp_pool
        if pool is not None and not pool.closing:
            return pool
        with self._mp_create:
            with self._lock:
                pool = self._mp_pool
                if pool is not None and not pool.closing:
                    return pool
                if self._state != SUPERVISOR_RUNNING:
                    raise self._stopped_error()
                old, self._mp_pool = pool, None
                limits = self._mp_limits_locked()
                context = self._mp_context or resolve_context(None)
                max_tasks = self._mp_max_tasks
            if old is not None:
                old.join()
            # starts the manager thread: outside the supervisor's lock
            pool = ProcessPool(self._lock,
                               Dispatcher(*limits, capped=True),
                               cast(Any, self),
                               name=f"atasker_{self.id}_mp",
                               context=context,
                               max_tasks_per_child=max_tasks)
            with self._lock:
                self._mp_pool = pool
            return pool
