"""The user code around a task: event hooks (``on(event, fn)``), the
task's callbacks and its ``task_context``; and the running of a thread
task's code.

All of it runs in the thread that moved the task (a pool thread, the
process pool's manager thread, an aloop's thread, the timer thread or the
caller of ``cancel_task``/``stop``), never under the engine's lock.
Whatever it raises -- ``SystemExit`` and ``KeyboardInterrupt`` included --
is delivered to the task's owner (the task's own exception) or logged and
ignored: it cannot change what happens to the task, nor end our thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from ._constants import TASK_STATUS_CANCELED, TASK_STATUS_COMPLETED, \
    TASK_STATUS_FAILED
from ._taskinfo import TaskInfo, log_failure
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

    __slots__ = ("by_event", "_lock", "task_context")

    def __init__(self, task_context: Optional[Callable[[], Any]] = None
                 ) -> None:
        self.by_event: dict[str, tuple[Callable[[TaskInfo], Any], ...]] = {}
        self._lock = threading.Lock()
        #: a factory of context managers around thread tasks, or None
        self.task_context = task_context

    def run_task(self, record: TaskInfo) -> tuple[bool, Any]:
        """Run a thread task's code (with its start hooks and context);
        return ``(True, result)`` or ``(False, exception)``."""
        if self.by_event:
            self.emit("task_started", record)
        args, kwargs = record._args, record._kwargs
        if args is None:    # ended before it ran (mark_task_completed)
            return False, None
        try:
            if self.task_context is None:
                return True, record.task(*args, **kwargs)  # type: ignore
            with self.task_context():
                return True, record.task(*args, **kwargs)  # type: ignore
        except BaseException as exc:  # noqa: B036 -- delivered to its owner
            log_failure(record, exc)
            return False, exc

    def emit_started(self, record: TaskInfo) -> None:
        """The ``task_started`` hooks, if any."""
        if self.by_event:
            self.emit("task_started", record)

    def after(self, record: TaskInfo) -> None:
        """Run the callback of an ended task, then its final hooks."""
        if record.status == TASK_STATUS_COMPLETED:
            callback, argument = record._callback, record.result
        else:
            callback, argument = record._error_callback, record.exception
        record._callback = record._error_callback = None
        if callback is not None:
            try:
                callback(argument)
            except BaseException:  # noqa: B036 -- user code; we go on
                logger.exception("callback %r of task %s (%s) raised",
                                 callback, record.id, record.name)
        if self.by_event:
            self.emit_final(record)

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
