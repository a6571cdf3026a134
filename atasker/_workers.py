"""``background_worker``: make a worker of a function, its kind chosen by
the options."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Optional

from ._queue_worker import BackgroundQueueWorker
from ._timed_workers import BackgroundIntervalWorker, BackgroundTimerWorker
from ._validation import check_callable
from ._worker import (BackgroundAsyncWorker, BackgroundEventWorker,
                      BackgroundWorker)


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
