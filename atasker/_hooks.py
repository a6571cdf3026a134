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

from ._constants import TASK_STATUS_CANCELED, TASK_STATUS_COMPLETED, \
    TASK_STATUS_FAILED
from ._taskinfo import TaskInfo
from ._validation import check_callable

logger = logging.getLogger("atasker")

#: the events a hook can be registered for
EVENTS = ("task_started", "task_completed", "task_failed", "task_canceled")

_FINAL_EVENTS = {TASK_STATUS_COMPLETED: "task_completed",
                 TASK_STATUS_FAILED: "task_failed",
                 TASK_STATUS_CANCELED: "task_canceled"}


class Hooks:
    """The hooks of one supervisor, by event.

    ``by_event`` maps an event to a tuple of functions.  It is replaced,
    never changed in place, under ``_lock`` (which serialises ``on``/``off``
    only), so the hot path reads it without any lock: it is empty while no
    hook is registered (test ``hooks.by_event``, a plain attribute: cheap).
    """

    __slots__ = ("by_event", "_lock")

    def __init__(self) -> None:
        self.by_event: dict[str, tuple[Callable[[TaskInfo], Any], ...]] = {}
        self._lock = threading.Lock()

    def on(self, event: str, fn: Callable[[TaskInfo], Any]) -> None:
        """Call ``fn(task_info)`` on every *event* (see
        :meth:`TaskSupervisor.on`)."""
        _check_event(event)
        check_callable("fn", fn, optional=False)
        with self._lock:
            hooks = dict(self.by_event)
            hooks[event] = hooks.get(event, ()) + (fn,)
            self.by_event = hooks

    def off(self, event: str, fn: Callable[[TaskInfo], Any]) -> bool:
        """Remove one registration of *fn* for *event*; False if absent."""
        _check_event(event)
        with self._lock:
            current = self.by_event.get(event, ())
            if fn not in current:
                return False
            index = current.index(fn)
            hooks = dict(self.by_event)
            hooks[event] = current[:index] + current[index + 1:]
            if not hooks[event]:
                del hooks[event]
            self.by_event = hooks
        return True

    def emit(self, event: str, record: TaskInfo) -> None:
        """Call the hooks of *event* (no lock held); whatever a hook raises
        is logged and ignored."""
        for fn in self.by_event.get(event, ()):
            try:
                fn(record)
            except BaseException:  # noqa: B036 -- user code; we go on
                logger.exception("%s hook %r raised for task %s (%s)",
                                 event, fn, record.id, record.name)

    def emit_final(self, record: TaskInfo) -> None:
        """The hooks of the final status *record* reached."""
        event = _FINAL_EVENTS.get(record.status)
        if event is not None:
            self.emit(event, record)


def _check_event(event: str) -> None:
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; one of: "
                         f"{', '.join(EVENTS)}")
