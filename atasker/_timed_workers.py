"""Workers on a schedule: interval (and delay) workers, and the one-shot
timer worker.  Their timers live in the engine's timer heap; the worker's
``_lock`` guards ``_timer`` and ``_planned`` too (see ``_worker``)."""

from __future__ import annotations

import math
import time
from typing import Any, Optional

from ._validation import check_seconds
from ._worker import _STARTED, _STOPPED, BackgroundEventWorker, \
    BackgroundWorker


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
        self._timer = self._engine.timers.schedule(
            delay, self._fire, self._generation)

    def _fire(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self._timer = None
            self._request_locked()
        self._submit_due(quiet=True)

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
        self._timer = self._engine.timers.schedule(
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
        self._submit_due(quiet=True)

    def _after_run_locked(self) -> None:
        # one run only: stop without waiting (we are that run's callback)
        self._state = _STOPPED
        self._generation += 1
        self._engine.unregister_scheduler(self)
