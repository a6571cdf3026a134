"""Stopping an engine against one deadline, at interpreter exit, and
resetting engines in a forked child.

``stop_engine`` computes one monotonic deadline from ``wait`` and stops
every part against it, in order: workers are asked to stop (all at once,
without waiting), the engine waits for its unfinished tasks; if the
deadline comes first it cancels what waits, kills running process tasks,
cancels coroutine tasks and names the thread tasks it leaves running;
then the aloops are stopped (all asked, then joined), the pools' threads
leave, and every thread is joined until the deadline.  No part gets a
wait of its own.

The exit hook runs before the interpreter joins threads (as
``concurrent.futures`` does): it drains every live engine, except that it
does not wait again for what a bounded stop gave up on.
"""

from __future__ import annotations

import _thread
import logging
import os
import sys
import threading
import time
import types
import weakref
from typing import Any, Optional, Union

from ._atexit import before_threads_join
from ._engine import Engine, live_engines
from ._constants import STATUS_NAMES, SUPERVISOR_NEW, SUPERVISOR_STOPPED
from ._validation import deadline_of, time_left

logger = logging.getLogger("atasker")


#: at interpreter exit, seconds between warnings naming the tasks that
#: exit still waits for
EXIT_REPORT_EVERY = 5.0


def stop_engine(engine: Engine, wait: Union[bool, float] = True,
                stop_schedulers: bool = True, cancel_tasks: bool = False,
                report_every: Optional[float] = None) -> None:
    """See :meth:`TaskSupervisor.stop`; *report_every* seconds of waiting,
    a warning names the unfinished tasks."""
    deadline = deadline_of("wait", wait)
    if _handler_interrupted_us():
        _thread.start_new_thread(_stop_in_thread, (
            engine, wait, stop_schedulers, cancel_tasks))
        return
    waits = wait is not False
    if waits and engine.owns_current_thread():
        raise RuntimeError(
            "stop() cannot wait from inside a task or callback of the "
            "same supervisor; call stop(wait=False)")
    for scheduler in engine.begin_stop(stop_schedulers):
        try:
            scheduler.stop(wait=False)  # their runs are waited for below
        except BaseException:  # noqa: B036 -- user code; we go on
            logger.exception("supervisor %s: stopping %r failed",
                             engine.id, scheduler)
    if cancel_tasks:
        engine.cancel_pending()
    gave_up = waits and not _wait_all_done(engine, deadline, report_every)
    if gave_up:
        _give_up(engine, wait)
    engine.aloops.stop_all(gave_up, deadline, wait=False)
    timer_thread = engine.end_stop(gave_up)
    if waits:
        for pool in engine.pools():
            pool.join(deadline)
        if timer_thread is not None and \
                timer_thread is not threading.current_thread():
            timer_thread.join(time_left(deadline))
    logger.debug("supervisor %s stopped", engine.id)


def _wait_all_done(engine: Engine, deadline: Optional[float],
                   report_every: Optional[float]) -> bool:
    """``engine.wait_all_done(deadline)``, saying every *report_every*
    seconds what it still waits for."""
    if report_every is None:
        return engine.wait_all_done(deadline)
    while True:
        report_at = time.monotonic() + report_every
        if deadline is not None and deadline <= report_at:
            return engine.wait_all_done(deadline)
        if engine.wait_all_done(report_at):
            return True
        left = engine.unfinished()
        logger.warning(
            "supervisor %s: exit waits for %d unfinished task(s): %s%s",
            engine.id, len(left), ", ".join(
                f"{r.id} ({r.name}, {STATUS_NAMES[r.status]})"
                for r in left[:10]), ", ..." if len(left) > 10 else "")


def _stop_in_thread(engine: Engine, wait: Union[bool, float],
                    stop_schedulers: bool, cancel_tasks: bool) -> None:
    try:
        stop_engine(engine, wait, stop_schedulers, cancel_tasks)
    except BaseException:  # noqa: B036 -- nobody else would see it
        logger.exception("supervisor %s: stop() failed", engine.id)


def _handler_interrupted_us() -> bool:
    """Whether the caller runs in the main thread on top of atasker code
    that it interrupted -- as a signal handler does.

    Python runs a signal handler in the main thread between two steps of
    whatever that thread was doing.  If it was inside atasker (in
    ``put_task``, say, holding the supervisor's lock), a stop that takes
    our locks or waits would wait for the very thread it runs in.  So:
    below the ``stop()`` call (its own atasker frames skipped, then the
    caller's), is there an atasker frame of a module that takes our
    locks?  Modules that merely call user code (the command line,
    ``Locker``, collections) do not count: ``stop()`` from code they run
    is an ordinary call.  No installed handler is consulted: one-shot
    handlers uninstall themselves before they call ``stop()``.
    """
    if _thread.get_ident() != threading.main_thread().ident:
        return False
    frame: Optional[types.FrameType] = sys._getframe(1)
    while frame is not None and _ours(_module(frame)):
        frame = frame.f_back        # stop_engine, TaskSupervisor.stop...
    while frame is not None:
        module = _module(frame)
        if _ours(module) and module not in _CALLS_USER_CODE:
            return True
        frame = frame.f_back
    return False


#: atasker modules whose frames run user code in the calling thread
#: without holding a lock of ours
_CALLS_USER_CODE = frozenset({"atasker._cli", "atasker.__main__",
                              "atasker._locker", "atasker._collections",
                              "atasker._local", "atasker._demo"})


def _module(frame: types.FrameType) -> str:
    return frame.f_globals.get("__name__", "")


def _ours(module: str) -> bool:
    return module == "atasker" or module.startswith("atasker.")


def _give_up(engine: Engine, wait: Any) -> None:
    """A bounded stop ran out: cancel what waits, end what can be ended,
    and say which thread tasks are left running."""
    canceled = engine.cancel_pending()
    left = engine.abandon()
    logger.warning(
        "supervisor %s: stop(wait=%s) timed out; canceled %d waiting "
        "tasks, killed running process tasks, canceled coroutine tasks; "
        "%d thread task(s) go on in their threads: %s", engine.id, wait,
        canceled, len(left),
        ", ".join(f"{r.id} ({r.name})" for r in left[:10]) or "none")


def release_when_collected(supervisor: Any, engine: Engine) -> None:
    """Stop *engine* without waiting once *supervisor* is collected: queued
    work still drains, then its threads and processes end."""
    weakref.finalize(supervisor, _release, engine).atexit = False


def _release(engine: Engine) -> None:
    """Finalizer of a dropped supervisor: stop its engine without waiting.

    It runs wherever the collector does -- possibly inside a locked section
    of any thread, even of this engine's -- so it only starts a bare thread
    (taking no lock of ours or of ``threading``), which starts the thread
    that stops the engine.
    """
    if _idle(engine):
        return
    try:
        _thread.start_new_thread(_release_in_thread, (engine,))
    except RuntimeError:    # interpreter shutdown: the exit hook stops it
        pass


def _idle(engine: Engine) -> bool:
    """Whether stopping *engine* cannot end any thread (a lock-free guess
    that errs on the side of "no")."""
    state = engine.state
    return (state == SUPERVISOR_STOPPED and not engine.registry.unfinished
            ) or (state == SUPERVISOR_NEW and not engine.aloops.count())


def _release_in_thread(engine: Engine) -> None:
    threading.Thread(target=stop_engine, args=(engine, False),
                     name=f"atasker_{engine.id}_release",
                     daemon=True).start()


def _stop_all_at_exit() -> None:
    for engine in list(live_engines):
        try:
            # a bounded stop that gave up was the user's decision: exit
            # does not wait again for what it abandoned
            stop_engine(engine, wait=not engine.gave_up,
                        report_every=EXIT_REPORT_EVERY)
        except Exception:
            logger.exception("stopping supervisor %s at exit failed",
                             engine.id)


def _reset_all_after_fork() -> None:
    for engine in list(live_engines):
        engine.reset_after_fork()


before_threads_join(_stop_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all_after_fork)
