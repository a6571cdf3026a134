"""Compatibility: the import path ``atasker.workers`` of the original
atasker.  New code imports from ``atasker``."""

from ._queue_worker import BackgroundQueueWorker
from ._timed_workers import BackgroundIntervalWorker, BackgroundTimerWorker
from ._worker import (BackgroundAsyncWorker, BackgroundEventWorker,
                      BackgroundWorker)
from ._workers import background_worker

__all__ = ["BackgroundAsyncWorker", "BackgroundEventWorker",
           "BackgroundIntervalWorker", "BackgroundQueueWorker",
           "BackgroundTimerWorker", "BackgroundWorker", "background_worker"]
