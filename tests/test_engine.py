"""The engine's guarantees at its edges: user code cannot end our threads,
exit does not wait again for what a bounded stop gave up on, and a worker
whose submission fails at once does not deadlock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

import atasker
from atasker import TT_MP, TaskSupervisor
from atasker import _thread_pool

from . import mp_funcs
from .conftest import SAFETY


def double(x):
    return x * 2


def raise_system_exit(_=None):
    raise SystemExit(3)


def raise_keyboard_interrupt(_=None):
    raise KeyboardInterrupt


@pytest.mark.parametrize("raiser", [raise_system_exit,
                                    raise_keyboard_interrupt])
def test_a_callback_raising_base_exception_leaves_the_pool_thread(raiser):
    """One pool thread: its next task still runs after a callback raised
    SystemExit or KeyboardInterrupt (the thread logged it and went on)."""
    sup = TaskSupervisor(pool_size=1, reserve_normal=0, reserve_high=0)
    try:
        gate = threading.Event()
        first = sup.put_task(gate.wait, callback=raiser)
        second = sup.put_task(double, args=(21,))
        gate.set()
        assert sup.wait_completed(second, timeout=SAFETY) == 42
        assert sup.get_task_info(first).status == atasker.TASK_STATUS_COMPLETED
    finally:
        sup.stop(wait=SAFETY)


def test_a_hook_raising_system_exit_leaves_the_pool_thread():
    """A ``task_started`` hook that raises SystemExit neither fails the task
    nor ends the thread."""
    sup = TaskSupervisor(pool_size=1, reserve_normal=0, reserve_high=0)
    try:
        sup.on("task_started", raise_system_exit)
        sup.on("task_completed", raise_system_exit)
        ids = [sup.put_task(double, args=(i,)) for i in range(3)]
        assert sup.wait_completed(ids, timeout=SAFETY) == [0, 2, 4]
    finally:
        sup.stop(wait=SAFETY)


def test_a_process_task_callback_raising_system_exit_keeps_the_pool():
    """Process tasks' callbacks run on the manager thread: SystemExit there
    must not end the process pool."""
    sup = TaskSupervisor(pool_size=2)
    sup.set_mp_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    try:
        first = sup.put_task(mp_funcs.add, args=(1, 2), tt=TT_MP,
                             callback=raise_system_exit)
        assert sup.wait_completed(first, timeout=SAFETY) == 3
        second = sup.put_task(mp_funcs.add, args=(2, 2), tt=TT_MP)
        assert sup.wait_completed(second, timeout=SAFETY) == 4
    finally:
        sup.stop(wait=SAFETY)


def test_a_timeout_error_callback_raising_system_exit_keeps_the_timers():
    """A timed-out task's error callback runs on the timer thread: after it
    raised SystemExit, delays still fire."""
    sup = TaskSupervisor(pool_size=2)
    gate = threading.Event()
    try:
        sup.put_task(gate.wait, timeout=0.01,
                     error_callback=raise_system_exit)
        later = sup.put_task(double, args=(5,), delay=0.05)
        assert sup.wait_completed(later, timeout=SAFETY) == 10
    finally:
        gate.set()
        sup.stop(wait=SAFETY)


def test_exit_does_not_wait_again_for_what_a_bounded_stop_gave_up():
    """A thread task that never returns, abandoned by ``stop(wait=0.2)``:
    the interpreter then exits at once instead of waiting for ever."""
    script = textwrap.dedent("""
        import threading, atasker
        stuck = threading.Event()
        atasker.task_supervisor.put_task(stuck.wait)
        atasker.task_supervisor.stop(wait=0.2)
        print("stopped", flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], timeout=20,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stopped\n"


def test_a_worker_whose_submission_fails_at_once_does_not_deadlock(
        monkeypatch):
    """The thread of a run cannot be started: the run fails at once, in the
    submitting thread, and calls the worker back.  ``start()`` returns; the
    worker's ``on_error`` sees the failure."""
    sup = TaskSupervisor(pool_size=2)
    errors = []

    class NoThread(threading.Thread):
        def start(self):
            raise RuntimeError("can't start new thread")

    worker = atasker.BackgroundEventWorker(
        executor_func=lambda **_: None, supervisor=sup,
        on_error=lambda e: errors.append(e))
    starter = threading.Thread(target=lambda: (worker.start(),
                                               worker.trigger()))
    # from here on the pool cannot start a thread (the starter exists)
    monkeypatch.setattr(_thread_pool.threading, "Thread", NoThread)
    starter.start()
    starter.join(SAFETY)
    assert not starter.is_alive(), "start()/trigger() deadlocked"
    monkeypatch.undo()
    assert errors and "can't start" in str(errors[0])
    worker.stop()
    sup.stop(wait=SAFETY)


def _stop_and_record(supervisor, seen, done):
    def callback(_value):
        try:
            supervisor.stop()               # wait=True: from our own thread
        except RuntimeError as exc:
            seen.append(exc)
        finally:
            done.set()
    return callback


def test_stop_waiting_from_a_timeout_callback_raises_instead_of_hanging():
    """A timed-out task's error callback runs on the timer thread: there
    ``stop()`` (waiting) raises the clear ``RuntimeError``."""
    sup = TaskSupervisor(pool_size=2)
    gate, done, seen = threading.Event(), threading.Event(), []
    try:
        sup.put_task(gate.wait, timeout=0.01,
                     error_callback=_stop_and_record(sup, seen, done))
        assert done.wait(SAFETY), "the error callback never ran"
        assert seen and "stop(wait=False)" in str(seen[0])
    finally:
        gate.set()
        sup.stop(wait=SAFETY)


def test_stop_waiting_from_a_process_task_callback_raises_instead_of_hanging():
    """A process task's callback runs on the pool's manager thread: there
    ``stop()`` (waiting) raises the clear ``RuntimeError``."""
    sup = TaskSupervisor(pool_size=2)
    sup.set_mp_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    done, seen = threading.Event(), []
    try:
        sup.put_task(mp_funcs.add, args=(1, 2), tt=TT_MP,
                     callback=_stop_and_record(sup, seen, done))
        assert done.wait(SAFETY), "the callback never ran"
        assert seen and "stop(wait=False)" in str(seen[0])
    finally:
        sup.stop(wait=SAFETY)


def test_start_while_stop_waits_is_refused_and_stop_still_returns(gates):
    """``start()`` while a ``stop()`` waits raises ``RuntimeError``; the
    stop returns once its task ends (it used to hang for ever)."""
    sup = TaskSupervisor(pool_size=2)
    gate = gates()
    sup.put_task(gate)
    gate.wait_started()
    began = threading.Event()

    class Scheduler:        # stop() asks it first: stop() has begun
        def stop(self, wait=True):
            began.set()

    sup.register_scheduler(Scheduler())
    stopper = threading.Thread(target=sup.stop)
    stopper.start()
    assert began.wait(SAFETY)
    with pytest.raises(RuntimeError, match="stopping"):
        sup.start()
    gate.open()
    stopper.join(SAFETY)
    assert not stopper.is_alive(), "stop() hung"
    sup.start()                         # after stop() returned: fine
    assert sup.wait_completed(sup.put_task(double, args=(2,)), SAFETY) == 4
    sup.stop()


def test_a_callback_that_waits_for_a_new_thread_task_is_not_deadlocked():
    """A task's callback submits a thread task and waits for it: the task
    runs on another thread, never on the one busy with the callback."""
    sup = TaskSupervisor(pool_size=4)
    got, done = [], threading.Event()

    def callback(_):
        try:
            got.append(sup.wait_completed(sup.put_task(double, args=(5,)),
                                          timeout=SAFETY))
        finally:
            done.set()
    try:
        sup.put_task(double, args=(1,), callback=callback)
        assert done.wait(SAFETY * 2)
        assert got == [10]
    finally:
        sup.stop(wait=SAFETY)


def test_a_background_task_keeps_its_supervisor_alive():
    """``background_task(f, supervisor=TaskSupervisor())`` keeps working
    however often the collector runs: the function refers to it."""
    import gc
    submit = atasker.background_task(double,
                                     supervisor=TaskSupervisor(pool_size=2))
    gc.collect()
    assert atasker.wait_completed(submit(4), SAFETY,
                                  supervisor=submit.supervisor) == 8
    submit.supervisor.stop()


def test_a_dropped_supervisor_is_freed_without_the_cycle_collector():
    """Nothing of a supervisor refers back to it strongly: dropping the
    last reference frees it at once, even with the collector off."""
    import gc
    import weakref
    sup = TaskSupervisor(pool_size=2)
    assert sup.wait_completed(sup.put_task(double, args=(1,)), SAFETY) == 2
    ref = weakref.ref(sup)
    gc.disable()
    try:
        del sup
        assert ref() is None
    finally:
        gc.enable()
    gc.collect()


def test_exit_stops_the_aloops_of_a_supervisor_never_started():
    """An aloop (a non-daemon thread) created on a supervisor that never
    ran a task does not keep the interpreter from exiting."""
    script = textwrap.dedent("""
        import asyncio, atasker
        sup = atasker.TaskSupervisor(pool_size=2)
        aloop = sup.create_aloop("io")

        async def answer():
            return 42

        print(aloop.run(answer()), flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], timeout=20,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "42\n"
