"""Lifecycle event hooks of a supervisor: ``on(event, fn)``.

Hooks run in the thread that moved the task (a pool thread, the process
pool's manager thread, an aloop's thread, the timer thread or the caller of
``cancel_task``/``stop``), never under the supervisor's lock.  A hook that
raises is logged and ignored: it cannot change what happens to the task.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from .constants import TASK_STATUS_CANCELED, TASK_STATUS_COMPLETED, \
    TASK_STATUS_FAILED
from .taskinfo import TaskInfo
from .validation import check_callable

__all__ = ["HooksMixin", "EVENTS"]

logger = logging.getLogger("atasker")

#: the events a hook can be registered for
EVENTS = ("task_started", "task_completed", "task_failed", "task_canceled")

_FINAL_EVENTS = {TASK_STATUS_COMPLETED: "task_completed",
                 TASK_STATUS_FAILED: "task_failed",
                 TASK_STATUS_CANCELED: "task_canceled"}


class HooksMixin:
    """The ``on``/``off`` part of :class:`~atasker.TaskSupervisor`.

    ``_hooks`` maps an event to a tuple of functions.  It is replaced, never
    changed in place, under ``_hooks_lock`` (which serialises ``on``/``off``
    only), so the hot path reads it without any lock.
    """

    _hooks: dict[str, tuple[Callable[[TaskInfo], Any], ...]]

    def _init_hooks(self) -> None:
        self._hooks = {}
        # serialises on()/off(); readers take a reference to the dict
        self._hooks_lock = threading.Lock()

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
        self._check_event(event)
        check_callable("fn", fn, optional=False)
        with self._hooks_lock:
            hooks = dict(self._hooks)
            hooks[event] = hooks.get(event, ()) + (fn,)
            self._hooks = hooks

    def off(self, event: str, fn: Callable[[TaskInfo], Any]) -> bool:
        """Remove one registration of *fn* for *event*; False if absent."""
        self._check_event(event)
        with self._hooks_lock:
            current = self._hooks.get(event, ())
            if fn not in current:
                return False
            index = current.index(fn)
            hooks = dict(self._hooks)
            hooks[event] = current[:index] + current[index + 1:]
            if not hooks[event]:
                del hooks[event]
            self._hooks = hooks
        return True

    @staticmethod
    def _check_event(event: str) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; one of: "
                             f"{', '.join(EVENTS)}")

    def _emit(self, event: str, record: TaskInfo) -> None:
        """Call the hooks of *event* (no lock held)."""
        for fn in self._hooks.get(event, ()):
            try:
                fn(record)
            except Exception:
                logger.exception("%s hook %r raised for task %s (%s)",
                                 event, fn, record.id, record.name)

    def _emit_final(self, record: TaskInfo) -> None:
        event = _FINAL_EVENTS.get(record.status)
        if event is not None:
            self._emit(event, record)
